"""Run IDs: the canonical form every store, cursor and API path accepts (ST-1, ST-2).

A canonical ID is 1–128 bytes of ASCII letters, digits, ``-`` and ``_`` that
starts and ends with a letter or digit. The check is byte-exact (no trimming,
case folding or normalisation), so an ID can safely become a file name or a
Redis key segment.
"""

from __future__ import annotations

import re
import uuid

from ironflow_core.errors import InvalidInputError

MAX_RUN_ID_BYTES = 128

_ALLOWED = re.compile(r"[A-Za-z0-9_-]*")
_EDGE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def run_id_problem(run_id: object) -> str | None:
    """Why ``run_id`` is not canonical (the reasons of API-60), or ``None`` if it is."""
    if not isinstance(run_id, str):
        return "run ID must be a string"
    if not run_id:
        return "run ID must not be empty"
    if len(run_id.encode("utf-8", "surrogatepass")) > MAX_RUN_ID_BYTES:
        return f"run ID must not exceed {MAX_RUN_ID_BYTES} bytes"
    if _ALLOWED.fullmatch(run_id) is None:
        return "run ID may contain only ASCII letters, digits, '-' and '_'"
    if run_id[0] not in _EDGE or run_id[-1] not in _EDGE:
        return "run ID must start and end with an ASCII letter or digit"
    return None


def is_canonical_run_id(run_id: object) -> bool:
    """Whether ``run_id`` may name a stored run; for callers that branch instead of raising."""
    return run_id_problem(run_id) is None


def validate_run_id(run_id: object) -> None:
    """Raise ``InvalidInputError("Invalid run ID: <reason>")`` unless canonical (ST-1)."""
    problem = run_id_problem(run_id)
    if problem is not None:
        raise InvalidInputError(f"Invalid run ID: {problem}")


def new_run_id() -> str:
    """A fresh engine-generated ID: lowercase, hyphenated UUIDv4 (ST-2, ENG-14)."""
    return str(uuid.uuid4())
