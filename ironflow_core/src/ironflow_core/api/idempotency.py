"""``Idempotency-Key`` for ``POST /flows/run`` (API-20..22).

The key names the run (``idem-`` + SHA-256 of the key), and a fingerprint of
the request is kept in the run context as ``_ironflow_idempotency``. A retry
with the same key and body finds the run; the same key with another body is a
conflict. The fingerprint hashes a type-tagged, length-prefixed encoding, so
no two different requests can share an encoding (``"1"`` vs ``1``, or keys
that contain the separators).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

MARKER = "_ironflow_idempotency"
INVALID_KEY = (
    "Idempotency-Key must contain 1 through 128 ASCII letters, digits, "
    "'-', '_', '.', or ':'"
)
_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def valid_key(key: str) -> bool:
    """An ``Idempotency-Key`` of the allowed length and characters."""
    return _KEY.fullmatch(key) is not None


def run_id_for_key(key: str) -> str:
    """The deterministic run ID of an idempotency key, so a retry finds its run."""
    return "idem-" + hashlib.sha256(key.encode("ascii")).hexdigest()


def _encode(value: Any, out: bytearray) -> None:
    def chunk(tag: bytes, payload: bytes) -> None:
        out.extend(tag)
        out.extend(len(payload).to_bytes(8, "big"))
        out.extend(payload)

    if value is None:
        out.extend(b"n")
    elif value is True or value is False:
        out.extend(b"t" if value else b"f")
    elif isinstance(value, int):
        chunk(b"i", str(value).encode())
    elif isinstance(value, float):
        chunk(b"d", repr(value).encode())
    elif isinstance(value, str):
        chunk(b"s", value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, list):
        out.extend(b"a")
        out.extend(len(value).to_bytes(8, "big"))
        for item in value:
            _encode(item, out)
    elif isinstance(value, dict):
        out.extend(b"o")
        out.extend(len(value).to_bytes(8, "big"))
        for key in sorted(value):
            chunk(b"k", key.encode("utf-8", "surrogatepass"))
            _encode(value[key], out)
    else:  # pragma: no cover - request bodies are JSON
        raise TypeError(f"not a JSON value: {type(value).__name__}")


def fingerprint(kind: str, value: str, context: dict[str, Any] | None) -> str:
    """Lowercase hex SHA-256 of ``{kind, value, context}`` (API-21)."""
    out = bytearray(b"ironflow-idempotency-v1")
    _encode({"kind": kind, "value": value, "context": context}, out)
    return hashlib.sha256(out).hexdigest()
