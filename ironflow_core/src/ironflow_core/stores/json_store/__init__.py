"""The default state store: one JSON file per run, in upstream's layout (ST-30..35).

Files in the store directory, per run:

* ``<id>.json`` — the authoritative record (see ``json_codec``), replaced
  atomically (``files``).
* ``<id>.summary.json`` — a summary cache for listing; rebuilt from the
  primary whenever it is missing or stale (``listing``).
* ``.ironflow-run-leases-v1/<id>.lease`` — the owner lease of a run being
  executed (``lease_files``).
* ``.ironflow-flows-v1/<sha256>.json`` — a flow source a run ran, stored once
  per distinct source (``FlowSourceRecord``), so a run can be resumed without
  its file.
* ``.ironflow-run-origins-v1/<id>.json`` — the run's ``RunOrigin`` (flow
  digest, initial context, sub-flows, recoveries): what a resume needs,
  kept beside the record so the record stays upstream's.
* ``.<id>.journal`` and ``.<id>.journal.1`` — Python-private journal
  segments: task upserts and context merges appended as one line per call,
  folded into the primary in the background and on every status change
  (``journal``); a finished run has none.

The rooms: ``files`` (names, safe opens relative to the root, atomic publish,
fsync), ``journal`` (appends, segments, replay, the background fold),
``lease_files``, ``listing`` and ``store`` (``JsonStore`` itself).
"""

from __future__ import annotations

from ironflow_core.stores.json_store.files import JsonStoreStats
from ironflow_core.stores.json_store.store import DEFAULT_JOURNAL_MIN_BYTES, JsonStore

__all__ = ["DEFAULT_JOURNAL_MIN_BYTES", "JsonStore", "JsonStoreStats"]
