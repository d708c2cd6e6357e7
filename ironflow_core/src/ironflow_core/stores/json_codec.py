"""Bytes on disk for the JSON store: primaries, summary sidecars, journal lines (ST-30..33).

Everything here is pure (no I/O) so it can be tested on its own and called
from worker threads. Records travel as their JSON dicts (``RunRecord.to_json``
shape) between decode, journal replay and encode, which keeps a compaction to
one parse and one serialisation.

Primary layout (what upstream writes and reads)::

    {
      "_ironflow_revision": "<uuid4>",
      "_ironflow_summary_digest": "<sha-256 hex of the summary>",
      "id": "...", "flow_name": ..., "status": ..., "started": ...,
      "finished": ..., "ctx": {...}, "tasks": {...}
    }

The journal is Python-private (``.<run_id>.journal``, ignored by upstream as a
dot file): one compact JSON line per task upsert or context merge,
``{"n":<task count after it>,"rev":"<primary revision>","tasks":[...]}`` or
``{"n":...,"rev":...,"ctx":{...}}``. A line only applies to the primary whose
revision it names, so a journal left behind by a compaction or a deleted run
can never roll a record back.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import orjson

from ironflow_core.errors import StoreCorruptionError
from ironflow_core.jsonutil import (  # json_store calls codec.compact_json(_bytes)
    compact_json as compact_json,
)
from ironflow_core.jsonutil import (
    compact_json_bytes as compact_json_bytes,
)
from ironflow_core.jsonutil import loads_strict
from ironflow_core.model import (
    RecordError,
    RunSummary,
    check_run_json,
    check_task_json,
    structure_record,
)
from ironflow_core.runid import run_id_problem
from ironflow_core.stores.cursor import chrono_timestamp

REVISION_FIELD = "_ironflow_revision"
DIGEST_FIELD = "_ironflow_summary_digest"
HEADER_BYTES = 512
"""How much of a primary the listing reads to find its revision and digest."""

_DIGEST = re.compile(r"[0-9a-f]{64}")
_HEADER = re.compile(
    rb'\s*\{\s*"_ironflow_revision"\s*:\s*"([^"\\]*)"\s*,'
    rb'\s*"_ironflow_summary_digest"\s*:\s*"([^"\\]*)"\s*,'
    rb'\s*"id"\s*:\s*"([^"\\]*)"'
)
_JOURNAL_HEAD = re.compile(rb'\{"n":(\d+),"rev":"([0-9a-f-]{36})",')

_pretty_fallback = json.JSONEncoder(
    sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False
).encode
_encode_str: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]
_ordered_compact = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def corruption(what: str, detail: str) -> StoreCorruptionError:
    """The error of a damaged file: ``<what>: <detail>`` (ST-33)."""
    return StoreCorruptionError(f"{what}: {detail}")


def is_canonical_revision(value: object) -> bool:
    """Whether ``value`` is a revision we (or upstream) write: a lower-case canonical UUID."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def parse_json(data: bytes) -> Any:
    """Strict JSON (:func:`~ironflow_core.jsonutil.loads_strict`) from UTF-8 bytes only."""
    return loads_strict(data.decode("utf-8"), max_depth=None)


# ------------------------------------------------------------------ summaries
def summary_of(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The ST-11 summary of a record dict, in digest member order."""
    return {
        "id": raw["id"],
        "flow_name": raw["flow_name"],
        "status": raw["status"],
        "started": raw.get("started"),
        "finished": raw.get("finished"),
        "task_count": len(raw["tasks"]),
    }


_DIGEST_ORDER = ("id", "flow_name", "status", "started", "finished", "task_count")


def _digest_of(summary: Mapping[str, Any]) -> str:
    ordered = {key: summary.get(key) for key in _DIGEST_ORDER}
    return hashlib.sha256(_ordered_compact(ordered).encode()).hexdigest()


def summary_digest(summary: Mapping[str, Any]) -> str:
    """SHA-256 of the compact summary in ``id, flow_name, ..., task_count`` order (ST-30).

    Timestamps are hashed as upstream prints them (``chrono``: 0/3/6/9
    fractional digits): upstream verifies a digest by re-printing the parsed
    times, so ``...:00.120000Z`` must be hashed as ``...:00.120Z`` for it to
    accept our files. For every timestamp upstream writes, and for ours unless
    the microseconds end in ``000``, this is the exact stored string.
    """
    reprinted = dict(summary)
    for key in ("started", "finished"):
        if reprinted.get(key) is not None:
            reprinted[key] = chrono_timestamp(reprinted[key])
    return _digest_of(reprinted)


def digest_matches(summary: Mapping[str, Any], digest: str) -> bool:
    """Upstream's digest, or one over the exact stored strings (ST-30's literal reading)."""
    return summary_digest(summary) == digest or _digest_of(summary) == digest


def sidecar_bytes(revision: str, digest: str, summary: Mapping[str, Any]) -> bytes:
    """The summary sidecar: revision, digest and the summary, compact and in member order."""
    body = {REVISION_FIELD: revision, DIGEST_FIELD: digest, **summary}
    return _ordered_compact(body).encode()


# -------------------------------------------------------------------- encode
@attrs.frozen
class EncodedRun:
    """A primary ready to publish, with the revision, digest and sidecar that go with it."""

    data: bytes
    revision: str
    digest: str
    sidecar: bytes


@attrs.define
class PrettyCache:
    """Pretty text of the parts of a record that did not change since the last encode.

    For records that orjson cannot write as the reference does (see
    :func:`encode_primary`), which are then encoded task by task: a running
    record changes a few tasks between compactions, so re-encoding only those
    keeps a compaction's cost proportional to what changed. Each task's entry
    is its whole ``"name": {...}`` member, indented and UTF-8.
    """

    tasks: dict[str, bytes] = attrs.field(factory=dict)
    ctx: bytes | None = None

    def forget_task(self, name: str) -> None:
        """Drop a task's cached text after it changed."""
        self.tasks.pop(name, None)


_FAST_PRETTY = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS
_FAST_HEADER = orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_SUBCLASS
_FIVE_ZEROS = re.compile(rb"0\.0000[0-9]*(?:[,\n]|\Z)")
_ONE_DIGIT_EXPONENT = re.compile(rb"e-[1-9](?:[,\n]|\Z)")
"""Where orjson and Python may spell a float differently: a number token ``0.0000...`` or
``...e-<one digit>``. Each pattern starts with a literal, so its search is a fast C scan."""
_TOKEN_START = (b" ", b"-", b"")


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _floats_differ(text: bytes) -> bool:
    """Whether orjson's indented ``text`` may spell a float otherwise than ``float.__repr__``.

    They agree on every float but those of magnitude in [1e-9, 1e-4), which
    orjson writes as ``0.00001`` and ``1e-6`` where Python writes ``1e-05`` and
    ``1e-06`` (tests/core/test_json_codec_pretty.py sweeps every exponent).
    A candidate counts when it is a whole number token (a space or a minus
    before it); text in a string that merely looks like one only costs the
    reference path.
    """
    for match in _FIVE_ZEROS.finditer(text):
        start = match.start()
        if text[start - 1:start] in _TOKEN_START:
            return True
    for match in _ONE_DIGIT_EXPONENT.finditer(text):
        start = match.start()
        while start and text[start - 1] in b"0123456789.":  # back to the token's start
            start -= 1
        if text[start - 1:start] in _TOKEN_START and text[start:start + 1] != b".":
            return True
    return False


def _fast_pretty(value: Any) -> bytes | None:
    """orjson's indented, key-sorted text of ``value`` when it is the reference's, else None."""
    try:
        text = orjson.dumps(value, default=_refuse, option=_FAST_PRETTY)
    except (orjson.JSONEncodeError, TypeError):
        return None  # big integers, lone surrogates, subclasses, deep nesting: the reference
    return None if _floats_differ(text) else text


def _pretty(value: Any, newline: str) -> str:
    """``json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)``, nested at ``newline``.

    The reference path, for what :func:`_fast_pretty` leaves to it. The
    standard library's indenting encoder is pure Python and slow; this one
    leaves strings to the C escaper and is about twice as fast on records.
    """
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if kind is dict:
        if not value:
            return "{}"
        inner = newline + "  "
        parts = [inner + _encode_str(key) + ": " + _pretty(value[key], inner) for key in sorted(value)]
        return "{" + ",".join(parts) + newline + "}"
    if kind is list:
        if not value:
            return "[]"
        inner = newline + "  "
        return "[" + ",".join([inner + _pretty(item, inner) for item in value]) + newline + "]"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    # Subclasses, non-finite floats (rejected), anything unusual: the reference encoder.
    return _pretty_fallback(value).replace("\n", newline)


def pretty_bytes(value: Any, indent: int) -> bytes:
    """The reference's indented, key-sorted text of ``value`` as UTF-8, nested ``indent`` levels.

    The same bytes as ``json.dumps(value, indent=2, sort_keys=True,
    ensure_ascii=False).encode()`` with every line after the first indented
    by ``2 * indent`` spaces: orjson's text where it is the same, the
    reference path where it may not be. ``value`` is a record's JSON as the
    store holds it (parsed text, so no NaN or infinity, which orjson would
    write as ``null``).
    """
    text = _fast_pretty(value)
    if text is None:
        return _pretty(value, "\n" + "  " * indent).encode()
    return text.replace(b"\n", b"\n" + b"  " * indent) if indent else text


def _task_member(name: str, task: Any) -> bytes:
    """``    "name": {...}`` of the tasks object (two levels deep); one encoder call."""
    text = _fast_pretty({name: task})
    if text is None:
        return f"    {_encode_str(name)}: {_pretty(task, chr(10) + '    ')}".encode()
    # {"name": {...}} less its own braces, indented two more levels.
    return b"  " + text[2:-2].replace(b"\n", b"\n  ")


def _tasks_text(tasks: Mapping[str, Any], cache: PrettyCache) -> bytes:
    if not tasks:
        return b"{}"
    chunks = cache.tasks
    members = []
    for name in sorted(tasks):
        chunk = chunks.get(name)
        if chunk is None:
            chunk = chunks[name] = _task_member(name, tasks[name])
        members.append(chunk)
    return b"{\n" + b",\n".join(members) + b"\n  }"


def _member(key: str, value: Any) -> str:
    return f"  {_encode_str(key)}: {_pretty(value, chr(10) + '  ')}"


def _fast_primary(header: dict[str, Any], raw: Mapping[str, Any]) -> bytes | None:
    """The whole primary from two encoder calls, or None where the reference must write it.

    ``ctx`` sorts before ``tasks``, so the key-sorted text of the two is
    already at the primary's indentation, and the header (in member order,
    not sorted) is encoded without sorting: the two objects are spliced.
    """
    body = _fast_pretty({"ctx": raw["ctx"], "tasks": raw["tasks"]})
    if body is None:
        return None
    try:
        head = orjson.dumps(header, default=_refuse, option=_FAST_HEADER)
    except (orjson.JSONEncodeError, TypeError):
        return None
    # {head...\n} and {\n  "ctx": ...}: a view, so the large part is copied once.
    return b"".join([head[:-2], b",\n", memoryview(body)[2:]])


def _cached_primary(header: dict[str, Any], raw: Mapping[str, Any], cache: PrettyCache) -> bytes:
    """The primary with each task encoded on its own and cached (values orjson spells otherwise)."""
    if cache.ctx is None:
        cache.ctx = pretty_bytes(raw["ctx"], 1)
    members = ",\n".join([_member(key, value) for key, value in header.items()])
    return b"".join([
        b"{\n", members.encode(), b',\n  "ctx": ', cache.ctx,
        b',\n  "tasks": ', _tasks_text(raw["tasks"], cache), b"\n}",
    ])


def encode_primary(raw: Mapping[str, Any], cache: PrettyCache | None = None) -> EncodedRun:
    """Pretty primary with a fresh revision; the three header members come first.

    The whole record in one pass where orjson writes the reference's text
    (re-encoding it all costs less than keeping pieces); otherwise task by
    task, reusing ``cache``.
    """
    revision = str(uuid.uuid4())
    summary = summary_of(raw)
    digest = summary_digest(summary)
    header = {
        REVISION_FIELD: revision,
        DIGEST_FIELD: digest,
        "id": raw["id"],
        "flow_name": raw["flow_name"],
        "status": raw["status"],
        "started": raw.get("started"),
        "finished": raw.get("finished"),
    }
    data = _fast_primary(header, raw)
    if data is None:
        data = _cached_primary(header, raw, cache if cache is not None else PrettyCache())
    return EncodedRun(data, revision, digest, sidecar_bytes(revision, digest, summary))


# -------------------------------------------------------------------- decode
@attrs.frozen
class DecodedRun:
    """A checked primary as its JSON dict, with the revision and digest it carried."""

    raw: dict[str, Any]
    revision: str | None
    digest: str | None


def _check_stored_id(stored: object, run_id: str, name: str) -> None:
    problem = run_id_problem(stored)
    if problem is not None:
        raise corruption(f"Invalid run ID stored in '{name}'", problem)
    if stored != run_id:
        raise corruption(
            f"Invalid run identity stored in '{name}'", "payload ID does not match its filename"
        )


def check_task(task: object, where: str) -> dict[str, Any]:
    """A task record as ENG-21 shapes it; raises ``ValueError`` naming the field."""
    return check_task_json(task, where)


def _check_body(raw: dict[str, Any]) -> None:
    check_run_json(raw)


def decode_primary(data: bytes, run_id: str, name: str) -> DecodedRun:
    """Validate a primary strictly; every defect is ``StoreCorruptionError`` (ST-33)."""
    try:
        raw = parse_json(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise corruption(f"Failed to parse run '{run_id}'", str(exc)) from None
    if not isinstance(raw, dict):
        raise corruption(f"Failed to parse run '{run_id}'", "the record is not an object")
    _check_stored_id(raw.get("id"), run_id, name)
    revision = raw.pop(REVISION_FIELD, None)
    digest = raw.pop(DIGEST_FIELD, None)
    try:
        _check_body(raw)
    except ValueError as exc:
        raise corruption(f"Failed to parse run '{run_id}'", str(exc)) from None
    if revision is not None and not is_canonical_revision(revision):
        raise corruption(
            f"Invalid JSON store revision in '{name}'", "revision must be a canonical UUID"
        )
    if digest is not None:
        if revision is None:
            raise corruption(
                f"Invalid JSON store summary digest in '{name}'",
                "a summary digest requires a revision",
            )
        if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
            raise corruption(
                f"Invalid JSON store summary digest in '{name}'",
                "digest must be a lowercase SHA-256 value",
            )
        if not digest_matches(summary_of(raw), digest):
            raise corruption(
                f"Invalid JSON store summary digest in '{name}'",
                "digest does not match the authoritative primary summary",
            )
    return DecodedRun(raw, revision, digest)


@attrs.frozen
class Header:
    """Revision and digest read from the first bytes of a primary (the listing's fast path)."""

    revision: str
    digest: str


def decode_header(prefix: bytes, run_id: str) -> Header | None:
    """Revision and digest from the first bytes of a primary we (or upstream) wrote.

    ``None`` for legacy or reformatted files: the caller then decodes the whole
    record, which reports any corruption.
    """
    match = _HEADER.match(prefix)
    if match is None:
        return None
    revision, digest, stored = (part.decode("ascii", "replace") for part in match.groups())
    if stored != run_id or not is_canonical_revision(revision):
        return None
    if _DIGEST.fullmatch(digest) is None:
        return None
    return Header(revision, digest)


@attrs.frozen
class Sidecar:
    """A usable summary sidecar; ``revision``/``digest`` are ``None`` when they were damaged."""

    revision: str | None
    digest: str | None
    summary: dict[str, Any]


def decode_sidecar(data: bytes, run_id: str, name: str) -> Sidecar | None:
    """A summary cache, or ``None`` if unusable; an ``id`` naming another run is corruption."""
    try:
        value = parse_json(data)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        return None
    _check_stored_id(value["id"], run_id, name)
    revision = value.get(REVISION_FIELD)
    digest = value.get(DIGEST_FIELD)
    summary = {key: value.get(key) for key in
               ("id", "flow_name", "status", "started", "finished", "task_count")}
    try:
        structure_record(summary, RunSummary)
    except RecordError:
        return None
    return Sidecar(
        revision if is_canonical_revision(revision) else None,
        digest if isinstance(digest, str) and _DIGEST.fullmatch(digest) else None,
        summary,
    )


# ------------------------------------------------------------------- journal
def journal_tasks_line(revision: str, count: int, tasks_json: bytes) -> bytes:
    """A journal line that upserts tasks (``tasks_json`` is their compact JSON list)."""
    return b'{"n":%d,"rev":"%s","tasks":%s}\n' % (count, revision.encode(), tasks_json)


def journal_ctx_line(revision: str, count: int, ctx_json: bytes) -> bytes:
    """A journal line that merges context keys (``ctx_json`` is a compact JSON object)."""
    return b'{"n":%d,"rev":"%s","ctx":%s}\n' % (count, revision.encode(), ctx_json)


def _journal_entries(body: bytes, run_id: str) -> list[Any]:
    """Parse complete journal lines; one C-level parse in the common case."""
    try:
        return parse_json(b"[" + body.replace(b"\n", b",") + b"]")
    except (UnicodeDecodeError, ValueError):
        pass
    for number, line in enumerate(body.split(b"\n"), 1):
        try:
            parse_json(line)
        except (UnicodeDecodeError, ValueError) as exc:
            raise corruption(f"Corrupt journal of run '{run_id}'", f"line {number}: {exc}") from None
    raise corruption(f"Corrupt journal of run '{run_id}'", "unreadable")  # pragma: no cover


def replay_journal(data: bytes, raw: dict[str, Any], revision: str | None, run_id: str) -> int:
    """Apply the lines written against ``revision`` to ``raw``; returns how many applied.

    A last line without its newline is an append that never finished and is
    ignored; any other malformed line is corruption.
    """
    end = data.rfind(b"\n")
    if end <= 0 or revision is None:
        return 0
    applied = 0
    for number, entry in enumerate(_journal_entries(data[:end], run_id), 1):
        try:
            if not isinstance(entry, dict) or not isinstance(entry.get("rev"), str):
                raise ValueError("not a journal entry")
            if entry["rev"] != revision:
                continue  # written against an older primary that already holds it
            if "tasks" in entry:
                tasks = entry["tasks"]
                if not isinstance(tasks, list):
                    raise ValueError("tasks is not a list")
                for task in tasks:
                    check_task(task, "task")
                    raw["tasks"][task["name"]] = task
            elif isinstance(entry.get("ctx"), dict):
                raw["ctx"].update(entry["ctx"])
            else:
                raise ValueError("unknown journal entry")
        except ValueError as exc:
            raise corruption(f"Corrupt journal of run '{run_id}'", f"line {number}: {exc}") from None
        applied += 1
    return applied


def journal_tail_count(tail: bytes, revision: str, at_start: bool) -> int | None:
    """Task count from the last complete line in ``tail`` if it names ``revision``.

    ``tail`` is the end of the journal; ``at_start`` says it begins at the file
    start. Returns ``None`` when the answer needs more of the file (the caller
    then replays the whole journal) and ``-1`` when no line applies.
    """
    end = tail.rfind(b"\n")
    if end < 0:
        return -1 if at_start else None
    start = tail.rfind(b"\n", 0, end) + 1
    if start == 0 and not at_start:
        return None
    match = _JOURNAL_HEAD.match(tail, start)
    if match is None:
        return None
    if match.group(2).decode() != revision:
        return -1
    return int(match.group(1))

