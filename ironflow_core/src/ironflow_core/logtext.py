"""Log message text that cannot forge a log line.

Flow authors and API callers control what ``log()``, ``print`` and the
``log`` node write. A newline, carriage return, escape sequence or other
control character in that text would let it start a fake log line (or
rewrite the terminal), so such characters are written as visible escapes.
Tabs stay: they cannot end a line and ``print`` separates values with them.
"""

from __future__ import annotations

import re

_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with line breaks and other control characters escaped (``\\n``, ``\\x1b``)."""
    return _CONTROLS.sub(_escape, text)
