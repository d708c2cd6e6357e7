"""Error-text hygiene (ENG-140): URLs in any stored or returned error are redacted.

User-info is removed, every query value becomes ``[REDACTED]``, the fragment is
dropped and an http(s) path becomes ``/[REDACTED]``. A URL that cannot be
parsed becomes ``[REDACTED URL]``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")


_CLOSERS = {")": "(", "]": "[", "}": "{"}


def _split_trailing(url: str) -> tuple[str, str]:
    """Separate sentence punctuation after a URL; a closing bracket stays when balanced.

    Keeping balanced brackets makes redaction idempotent: ``/[REDACTED]`` and
    ``http://[::1]`` survive a second pass unchanged.
    """
    trailing = ""
    while url:
        last = url[-1]
        if last in ".,;:" or (last in _CLOSERS and url.count(last) > url.count(_CLOSERS[last])):
            trailing = last + trailing
            url = url[:-1]
        else:
            break
    return url, trailing


def redact_url(url: str) -> str:
    """``url`` fit for a stored or returned error: no user info, query values, fragment or http(s) path."""
    url, trailing = _split_trailing(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "[REDACTED URL]" + trailing
    if not parts.scheme or (not host and parts.scheme in ("http", "https")):
        return "[REDACTED URL]" + trailing
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    path = parts.path
    if parts.scheme.lower() in ("http", "https"):
        path = "/[REDACTED]" if path not in ("", "/") else path
    query = ""
    if parts.query:
        pieces = []
        for piece in parts.query.split("&"):
            name, sep, _value = piece.partition("=")
            pieces.append(f"{name}=[REDACTED]" if sep else "[REDACTED]")
        query = "?" + "&".join(pieces)
    return f"{parts.scheme}://{netloc}{path}{query}{trailing}"


def redact_urls(text: str) -> str:
    """Redact every URL inside a free-form error text."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: redact_url(m.group(0)), text)
