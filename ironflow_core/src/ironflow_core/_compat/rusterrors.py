"""Error texts worded as Rust's standard library words them (no Python class names)."""

from __future__ import annotations

import os


def os_error_text(exc: OSError) -> str:
    """An OS error worded like Rust's ``io::Error`` display."""
    if exc.errno is None:
        return str(exc)
    return f"{exc.strerror or os.strerror(exc.errno)} (os error {exc.errno})"


def utf8_error_text(exc: UnicodeDecodeError) -> str:
    """A UTF-8 decoding error worded like Rust's ``Utf8Error`` display."""
    if exc.reason == "unexpected end of data":
        return f"incomplete utf-8 byte sequence from index {exc.start}"
    return f"invalid utf-8 sequence of {exc.end - exc.start} bytes from index {exc.start}"
