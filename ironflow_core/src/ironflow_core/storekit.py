"""Everything a state-store (or run-queue) plugin needs from the core, in one place.

A store plugin imports from ``ironflow_core`` (the specs and ``hookimpl``) and
from this module, nothing else of the core: the rules every store applies the
same way live here, so a new store behaves like the built-in ones and keeps
working when the core's internal modules move. ``docs/plugins.md`` ("State
stores") describes how the pieces fit together; the store conformance
suite (``ironflow_core.store_conformance.StoreConformance``, needs pytest)
checks a store against all of them.

What is here:

* **records and their codec**: ``RunRecord``, ``TaskRecord``, ``RunSummary``,
  ``RunPage``, ``FlowSourceRecord``, ``RunOrigin``, ``LeaseInfo`` and the one
  converter that turns them into JSON and back (``unstructure_record``,
  ``structure_record``, ``check_run_json``/``check_task_json`` for stores
  that keep raw JSON, ``task_json_fits`` as their per-step yes/no); a bad stored record raises ``RecordError`` naming
  each bad field;
* **strict JSON**: ``loads_strict`` (refuses ``NaN``/``Infinity``, numbers out
  of range, over-deep values), ``dumps`` (canonical, key-sorted) and
  ``compact_json`` (``dumps`` or the caller's error);
* **checks before a write**: ``validate_run_id``, ``check_new_record``,
  ``check_context``, ``check_origin``;
* **listing**: the run-list order and the portable keyset cursors
  (``order_key``, ``encode_cursor``, ``decode_cursor``, ``cursor_for_filter``,
  ``check_limit``, ``coerce_status``, ``build_page``);
* **leases**: wall-clock expiries, the fencing rule and the error texts
  (``clock_micros``, ``expiry_after``, ``owner_may_write``, ``fenced``,
  ``lease_taken``, ``lease_lost``, ``still_executing``, ``is_unfinished``,
  ``stall_record``);
* **errors**: the ``StoreError`` family the API maps to HTTP statuses, and
  ``ConfigError`` for bad settings;
* **settings**: ``StoreSettings``/``QueueSettings`` (with ``option()`` for a
  plugin's own environment/yaml settings), and ``redact_urls`` for messages
  that may carry credentials;
* **queues**: ``Delivery``, ``EventSink``, ``QueueStatus``, ``WorkerInfo``.
"""

from __future__ import annotations

from ironflow_core.errors import (
    ConfigError,
    InvalidInputError,
    LeaseLostError,
    RunConflictError,
    RunNotFoundError,
    StoreCorruptionError,
    StoreError,
    StoreUnavailableError,
)
from ironflow_core.jsonutil import (
    JsonNestingError,
    compact_json,
    dumps,
    is_timestamp,
    loads_strict,
    now_timestamp,
    timestamp_micros,
)
from ironflow_core.model import (
    RUN_STATUSES,
    Event,
    EventType,
    FlowSourceRecord,
    LeaseInfo,
    RecordError,
    RunOrigin,
    RunPage,
    RunRecord,
    RunStatus,
    RunSummary,
    TaskRecord,
    TaskStatus,
    check_run_json,
    check_task_json,
    structure_record,
    task_json_fits,
    unstructure_record,
)
from ironflow_core.queues import Delivery, EventSink, QueueStatus, WorkerInfo
from ironflow_core.redact import redact_urls
from ironflow_core.runid import validate_run_id
from ironflow_core.specs import QueueSettings, StateStore, StoreSettings
from ironflow_core.stores.cursor import (
    INVALID_CURSOR,
    Cursor,
    build_page,
    check_limit,
    coerce_status,
    cursor_for_filter,
    decode_cursor,
    encode_cursor,
    order_key,
)
from ironflow_core.stores.leases import (
    LEASE_EXPIRED_ERROR,
    clock_micros,
    expiry_after,
    fenced,
    is_unfinished,
    lease_lost,
    lease_taken,
    owner_may_write,
    stall_record,
    still_executing,
)
from ironflow_core.stores.memory import (
    check_context,
    check_new_record,
    check_origin,
    checked_status_change,
)

__all__ = [
    "INVALID_CURSOR",
    "LEASE_EXPIRED_ERROR",
    "RUN_STATUSES",
    "ConfigError",
    "Cursor",
    "Delivery",
    "Event",
    "EventSink",
    "EventType",
    "FlowSourceRecord",
    "InvalidInputError",
    "JsonNestingError",
    "LeaseInfo",
    "LeaseLostError",
    "QueueSettings",
    "QueueStatus",
    "RecordError",
    "RunConflictError",
    "RunNotFoundError",
    "RunOrigin",
    "RunPage",
    "RunRecord",
    "RunStatus",
    "RunSummary",
    "StateStore",
    "StoreCorruptionError",
    "StoreError",
    "StoreSettings",
    "StoreUnavailableError",
    "TaskRecord",
    "TaskStatus",
    "WorkerInfo",
    "build_page",
    "check_context",
    "check_limit",
    "check_new_record",
    "check_origin",
    "check_run_json",
    "check_task_json",
    "checked_status_change",
    "clock_micros",
    "coerce_status",
    "compact_json",
    "cursor_for_filter",
    "decode_cursor",
    "dumps",
    "encode_cursor",
    "expiry_after",
    "fenced",
    "is_timestamp",
    "is_unfinished",
    "lease_lost",
    "lease_taken",
    "loads_strict",
    "now_timestamp",
    "order_key",
    "owner_may_write",
    "redact_urls",
    "stall_record",
    "still_executing",
    "structure_record",
    "task_json_fits",
    "timestamp_micros",
    "unstructure_record",
    "validate_run_id",
]
