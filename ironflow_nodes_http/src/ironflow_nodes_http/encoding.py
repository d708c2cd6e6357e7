"""Turning a step's headers, auth and body into request headers and bytes (HTTP-2, HTTP-3).

Header values, ``auth.token``, ``auth.key`` and every string inside ``body``
are interpolated (INT-10, INT-12); header names, ``auth.username`` /
``auth.password`` and ``auth.header`` are used as written.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import quote

from ironflow_core import NodeError, interpolate_deep, json_dumps

BODY_TYPES = ("json", "form", "text")

# RFC 9110 token characters: what a header name may contain.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible ASCII and tab: what a header value given as text may contain.
_VALUE = re.compile(r"[\t\x20-\x7e]*")


class HeaderList:
    """Request headers in order, names compared case-insensitively."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def has(self, name: str) -> bool:
        """Whether a header of this name (any case) is present."""
        lowered = name.lower()
        return any(key.lower() == lowered for key, _ in self.items)

    def append(self, name: str, value: str) -> None:
        """Add a header, keeping any of the same name."""
        _check_header(name, value)
        self.items.append((name, value))

    def replace(self, name: str, value: str) -> None:
        """Set a header, dropping any of the same name (any case)."""
        _check_header(name, value)
        lowered = name.lower()
        self.items = [(k, v) for k, v in self.items if k.lower() != lowered]
        self.items.append((name, value))


def _check_header(name: str, value: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise NodeError(f"Invalid HTTP header name '{name}'")
    if not _VALUE.fullmatch(value):
        # The value may be a credential: name the header, never echo the value.
        raise NodeError(f"Invalid value for HTTP header '{name}'")


def apply_headers(ctx: Any, headers: Any, into: HeaderList) -> bool:
    """Configured headers (string values only); True if one of them is Content-Type."""
    if not isinstance(headers, dict):
        return False
    has_content_type = False
    for name in sorted(headers):
        value = headers[name]
        if isinstance(value, str):
            into.replace(name, ctx.interpolate(value))
            has_content_type = has_content_type or name.lower() == "content-type"
    return has_content_type


def apply_auth(ctx: Any, auth: Any, into: HeaderList) -> None:
    """HTTP-2: bearer (default), basic or api_key; an unknown type adds nothing."""
    if not isinstance(auth, dict):
        return
    kind = auth.get("type")
    kind = kind if isinstance(kind, str) else "bearer"
    if kind == "bearer":
        token = auth.get("token")
        if isinstance(token, str):
            into.append("Authorization", f"Bearer {ctx.interpolate(token)}")
    elif kind == "basic":
        username = auth.get("username")
        password = auth.get("password")
        user = username if isinstance(username, str) else ""
        secret = password if isinstance(password, str) else ""
        token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
        into.append("Authorization", f"Basic {token}")
    elif kind == "api_key":
        key = auth.get("key")
        if isinstance(key, str):
            header = auth.get("header")
            into.append(header if isinstance(header, str) else "X-API-Key", ctx.interpolate(key))


def stringify(value: Any) -> str:
    """Form/text rendering of a JSON value: strings raw, null empty, the rest compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json_dumps(value)


def _percent(text: str) -> str:
    # quote() keeps exactly A-Za-z0-9 and "-_.~" when safe="" (space -> %20, not +).
    return quote(text, safe="")


def encode_body(
    ctx: Any, body: Any, body_type: Any, has_content_type: bool, into: HeaderList
) -> bytes:
    """HTTP-3: the body bytes after recursive interpolation; sets a default Content-Type."""
    kind = body_type if isinstance(body_type, str) else "json"
    if kind not in BODY_TYPES:
        raise NodeError(f"Unsupported body_type '{kind}'. Expected one of: json, form, text")
    rendered = interpolate_deep(body, ctx)
    if kind == "json":
        if not into.has("content-type"):
            into.append("Content-Type", "application/json")
        return json_dumps(rendered).encode("utf-8")
    if kind == "form":
        if not isinstance(rendered, dict):
            raise NodeError("body_type='form' requires 'body' to be an object")
        text = "&".join(
            f"{_percent(key)}={_percent(stringify(rendered[key]))}" for key in sorted(rendered)
        )
        if not has_content_type:
            into.append("Content-Type", "application/x-www-form-urlencoded")
        return text.encode("utf-8")
    if not has_content_type:
        into.append("Content-Type", "text/plain; charset=utf-8")
    return stringify(rendered).encode("utf-8")
