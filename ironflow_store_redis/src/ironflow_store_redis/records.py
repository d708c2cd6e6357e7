"""What a run hash holds and how a full record is rebuilt from it (pure, no I/O).

Upstream keeps the whole run in the ``info`` field and rewrites it on every
task update, which makes a long run quadratic. Here ``info`` is the record as
of the last *fold* (creation and every status change) and newer writes live
beside it in Python-private fields of the same hash:

* ``py:task:<name>`` — the task record JSON written since the last fold, or
  ``""`` once the task is folded into ``info`` (every task has the field, so a
  script can tell a new task name from a known one and keep ``task_count``);
* ``py:ctx:<key>`` — a context value merged since the last fold;
* ``py:layout`` = ``1`` — the run was written in this layout;
* ``py:base`` — token of the last fold (the compare-and-swap guard of folds,
  which task upserts do not touch, so they never make a fold retry).

A reader overlays the private fields on ``info``. A finished run is folded
at its final status change, so upstream reads complete records of finished
runs; while a run is in progress upstream sees the tasks of the last fold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ironflow_core.storekit import (
    StoreCorruptionError,
    check_run_json,
    check_task_json,
    dumps,
    loads_strict,
)

LAYOUT = "py:layout"
BASE = "py:base"
TASK = "py:task:"
CTX = "py:ctx:"


def parse_json(text: str) -> Any:
    """Strict JSON as a Redis field holds it (no ``NaN``, no out-of-range numbers)."""
    return loads_strict(text, max_depth=None)


def encode_info(raw: Mapping[str, Any]) -> str:
    """Compact record JSON with upstream's member order (nested objects sorted)."""
    return (
        f'{{"id":{dumps(raw["id"])},"flow_name":{dumps(raw["flow_name"])},'
        f'"status":{dumps(raw["status"])},"started":{dumps(raw.get("started"))},'
        f'"finished":{dumps(raw.get("finished"))},"ctx":{dumps(raw["ctx"])},'
        f'"tasks":{dumps(raw["tasks"])}}}'
    )


def summary_head(raw: Mapping[str, Any]) -> str:
    """The summary JSON (ST-11 member order) up to ``"task_count":``; a script adds the count."""
    return (
        f'{{"id":{dumps(raw["id"])},"flow_name":{dumps(raw["flow_name"])},'
        f'"status":{dumps(raw["status"])},"started":{dumps(raw.get("started"))},'
        f'"finished":{dumps(raw.get("finished"))},"task_count":'
    )


def summary_text(raw: Mapping[str, Any]) -> str:
    """The whole summary JSON of a record (ST-11 member order)."""
    return f"{summary_head(raw)}{len(raw['tasks'])}}}"


@attrs.define
class StoredRun:
    """A run hash decoded: the full record plus what a fold needs to know."""

    raw: dict[str, Any]
    revision: str
    base: str
    """The compare-and-swap token of the next fold."""
    ours: bool
    folded_tasks: list[tuple[str, str]]
    """``(name, text)`` of tasks to fold: overlay texts, and ``""`` for unmarked ones."""
    folded_ctx: list[tuple[str, str]]
    lease_owner: str | None = None
    """``lease_owner`` of the hash: who executes the run (ST-42), if anyone."""
    lease_expires: str | None = None
    """``lease_expires_micros`` as stored (a decimal string)."""


def _corrupt(run_id: str, detail: str) -> StoreCorruptionError:
    return StoreCorruptionError(f"Failed to parse run '{run_id}' stored in Redis: {detail}")


def _parsed_record(raw: Any, run_id: str) -> dict[str, Any]:
    """``info`` parsed: an object about this run, its empty maps filled in (checked later)."""
    if not isinstance(raw, dict):
        raise ValueError("the record is not an object")
    if raw.get("id") != run_id:
        raise ValueError("its id does not match the key")
    # An ``info`` field may leave out an empty context or task map.
    raw.setdefault("ctx", {})
    raw.setdefault("tasks", {})
    return raw


def _check_record(raw: dict[str, Any], replaced: set[str]) -> None:
    """Check ``info`` as a run record: the run's own fields, then each task an overlay does
    not replace by itself (``check_task_json``, the per-step check)."""
    tasks = raw["tasks"]
    if not isinstance(tasks, dict):
        check_run_json(raw)  # refuses, saying why
    view = {**raw, "tasks": {}}
    check_run_json(view)
    raw.setdefault("started", view["started"])
    raw.setdefault("finished", view["finished"])
    for name, task in tasks.items():
        if name not in replaced:
            check_task_json(task, f"task '{name}'")


def _parse_many(texts: list[str]) -> list[Any]:
    """Parse several JSON texts with one parser call; one by one (naming the bad one) on error."""
    if not texts:
        return []
    try:
        values = parse_json("[" + ",".join(texts) + "]")
    except ValueError:
        values = None
    if isinstance(values, list) and len(values) == len(texts):
        return values
    return [parse_json(text) for text in texts]


def decode_run(run_id: str, fields: Mapping[str, str]) -> StoredRun:
    """Rebuild a run from its hash fields (``HGETALL``); any defect is ``StoreCorruptionError``.

    Each task is checked once, by itself: an overlay task, or the one in
    ``info`` when no overlay replaces it. The overlay texts are parsed in one
    go (a parser call per task cost more than its parsing).
    """
    info = fields.get("info")
    if info is None:
        raise _corrupt(run_id, "the hash has no info field")
    try:
        raw = _parsed_record(parse_json(info), run_id)
        tasks = raw["tasks"]
        ctx = raw["ctx"]
        folded_tasks: list[tuple[str, str]] = []
        folded_ctx: list[tuple[str, str]] = []
        marked: set[str] = set()
        for field, text in fields.items():
            if field.startswith(TASK):
                name = field[len(TASK):]
                marked.add(name)
                if text:
                    folded_tasks.append((name, text))
            elif field.startswith(CTX):
                ctx[field[len(CTX):]] = parse_json(text)
                folded_ctx.append((field[len(CTX):], text))
        _check_record(raw, {name for name, _text in folded_tasks})
        overlay = _parse_many([text for _name, text in folded_tasks])
        for (name, _text), task in zip(folded_tasks, overlay, strict=True):
            check_task_json(task, f"task '{name}'")
        for (name, _text), task in zip(folded_tasks, overlay, strict=True):
            tasks[name] = task
    except ValueError as exc:
        raise _corrupt(run_id, str(exc)) from None
    folded_tasks.extend((name, "") for name in tasks if name not in marked)
    ours = fields.get(LAYOUT) == "1"
    revision = fields.get("revision", "")
    return StoredRun(
        raw=raw,
        revision=revision,
        base=fields.get(BASE, "") if ours else revision,
        ours=ours,
        folded_tasks=folded_tasks,
        folded_ctx=folded_ctx,
        lease_owner=fields.get("lease_owner"),
        lease_expires=fields.get("lease_expires_micros"),
    )
