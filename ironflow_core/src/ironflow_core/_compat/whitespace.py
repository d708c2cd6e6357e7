"""What Rust's ``str::trim`` strips.

Rust's ``char::is_whitespace`` is Unicode White_Space; Python's ``str.strip()``
also strips U+001C..U+001F, which Rust keeps.
"""

from __future__ import annotations

RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""The characters Rust's ``str::trim`` strips, for ``str.strip(RUST_WHITESPACE)``."""


def rust_trim(text: str) -> str:
    """Trim as Rust's ``str::trim`` does."""
    return text.strip(RUST_WHITESPACE)
