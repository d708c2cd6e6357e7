"""Run-list order and keyset cursors shared by every store (ST-20..22).

Order: ``started`` descending after truncation to whole microseconds, runs
without ``started`` last, then run ID descending byte-wise. A cursor names the
last item of a page; the next page holds the items strictly after it, so it
keeps working when that run has been deleted.

The cursor text is the base64url (no padding) of the compact JSON
``{"version":1,"status":...,"started":...,"id":...}`` in exactly that member
order, with ``started`` printed the way upstream's ``chrono`` prints it
(0/3/6/9 fractional digits), so cursors travel between implementations.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import re
from collections.abc import Iterable
from typing import Any

import attrs

from ironflow_core.errors import InvalidInputError
from ironflow_core.jsonutil import (
    TIMESTAMP,
    format_timestamp,
    is_timestamp,
    loads_strict,
    parse_timestamp,
    timestamp_micros,
)
from ironflow_core.model import RUN_STATUSES, RunPage, RunStatus, RunSummary
from ironflow_core.runid import is_canonical_run_id

CURSOR_VERSION = 1
MAX_CURSOR_CHARS = 1024
INVALID_CURSOR = "invalid run-list cursor"
FILTER_MISMATCH = "run-list cursor does not match the status filter"

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")

OrderKey = tuple[int, int, bytes]
"""Sorts ascending in the *reverse* of ST-20 order: compare with ``>`` for "earlier"."""


def order_key(started: str | None, run_id: str) -> OrderKey:
    """Key whose *descending* order is ST-20: newest first, null last, then ID desc."""
    if started is None:
        return (0, 0, run_id.encode())
    return (1, timestamp_micros(started), run_id.encode())


def summary_key(summary: RunSummary) -> OrderKey:
    """The ST-20 order key of a run summary."""
    return order_key(summary.started, summary.id)


def chrono_timestamp(text: str) -> str:
    """Re-print a timestamp as upstream does: UTC, ``Z``, 0/3/6/9 fractional digits."""
    match = TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    fraction = (match.group(3) or "").ljust(9, "0")
    moment = parse_timestamp(text)
    base = format_timestamp(moment)[:19]  # YYYY-MM-DDTHH:MM:SS in UTC
    nanos = int(fraction)
    if nanos == 0:
        digits = ""
    elif nanos % 1_000_000 == 0:
        digits = "." + fraction[:3]
    elif nanos % 1_000 == 0:
        digits = "." + fraction[:6]
    else:
        digits = "." + fraction
    return f"{base}{digits}Z"


@attrs.frozen
class Cursor:
    """A decoded cursor: the last run of the previous page and the filter it was made for."""

    """A decoded cursor: the ST-20 position of the last item of a page."""

    status: RunStatus | None
    started: str | None
    id: str

    @property
    def key(self) -> OrderKey:
        """The ST-20 order key of the run the cursor names."""
        return order_key(self.started, self.id)


def encode_cursor(summary: RunSummary, status: RunStatus | None) -> str:
    """The cursor after ``summary`` for a listing filtered by ``status``."""
    started = chrono_timestamp(summary.started) if summary.started is not None else None
    payload = {
        "version": CURSOR_VERSION,
        "status": None if status is None else str(status),
        "started": started,
        "id": summary.id,
    }
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode("ascii").rstrip("=")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key!r}")
        result[key] = value
    return result


_ANY_FILTER: Any = object()


def decode_cursor(text: object, status: RunStatus | None = _ANY_FILTER) -> Cursor:
    """Parse a cursor; anything malformed is ``InvalidInputError(invalid run-list cursor)``.

    With ``status``, also check the cursor was made for that filter (ST-22), so
    a CLI can validate ``--after`` before it opens the store (CLI-50).
    """
    if not isinstance(text, str) or not text or len(text) > MAX_CURSOR_CHARS:
        raise InvalidInputError(INVALID_CURSOR)
    if _BASE64URL.fullmatch(text) is None or len(text) % 4 == 1:
        raise InvalidInputError(INVALID_CURSOR)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInputError(INVALID_CURSOR) from None
    # Canonical encodings only (no stray trailing bits), like upstream's decoder.
    if base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != text:
        raise InvalidInputError(INVALID_CURSOR)
    try:
        data = loads_strict(
            raw.decode("utf-8"),
            max_depth=None,
            parse_float=float,
            object_pairs_hook=_reject_duplicates,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidInputError(INVALID_CURSOR) from None
    if not isinstance(data, dict):
        raise InvalidInputError(INVALID_CURSOR)
    version = data.get("version")
    if type(version) is not int or version != CURSOR_VERSION:
        raise InvalidInputError(INVALID_CURSOR)
    raw_status = data.get("status")
    if raw_status is not None and raw_status not in RUN_STATUSES:
        raise InvalidInputError(INVALID_CURSOR)
    started = data.get("started")
    if started is not None and not is_timestamp(started):
        raise InvalidInputError(INVALID_CURSOR)
    run_id = data.get("id")
    if not isinstance(run_id, str) or not is_canonical_run_id(run_id):
        raise InvalidInputError(INVALID_CURSOR)
    cursor = Cursor(
        status=None if raw_status is None else RunStatus(raw_status), started=started, id=run_id
    )
    if status is not _ANY_FILTER and cursor.status != coerce_status(status):
        raise InvalidInputError(FILTER_MISMATCH)
    return cursor


def cursor_for_filter(after: str | None, status: RunStatus | None) -> Cursor | None:
    """Decode ``after`` and check it was made for the same status filter (ST-22)."""
    if after is None:
        return None
    return decode_cursor(after, status)


def coerce_status(status: object) -> RunStatus | None:
    """A listing's status filter; unknown values are invalid input (CLI-50)."""
    if status is None:
        return None
    try:
        return RunStatus(status)  # type: ignore[arg-type]  # anything else is refused below
    except ValueError:
        raise InvalidInputError(f"Invalid status filter: {status}") from None


def check_limit(limit: int) -> None:
    """A page size must be a positive integer (``InvalidInputError`` otherwise)."""
    if type(limit) is not int or limit <= 0:
        raise InvalidInputError("list limit must be greater than zero")


def build_page(
    summaries: Iterable[RunSummary],
    *,
    status: RunStatus | None,
    limit: int,
    after: Cursor | None,
) -> RunPage:
    """Filter, order and cut one page; ``next_cursor`` only when more items exist."""
    candidates: Iterable[RunSummary] = summaries
    if status is not None:
        candidates = (s for s in candidates if s.status == status)
    if after is not None:
        bound = after.key
        candidates = (s for s in candidates if summary_key(s) < bound)
    chosen = heapq.nlargest(limit + 1, candidates, key=summary_key)
    if len(chosen) <= limit:
        return RunPage(runs=tuple(chosen), next_cursor=None)
    page = chosen[:limit]
    return RunPage(runs=tuple(page), next_cursor=encode_cursor(page[-1], status))
