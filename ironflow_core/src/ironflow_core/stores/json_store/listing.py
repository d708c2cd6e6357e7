"""Listing the runs of a JSON store directory (ST-31), from summaries rather than records.

Dot names are never runs; other ``.json`` names must be. Entries that are not
runs (a stray ``not-a-uuid.json``, a directory ``x.json``) and run files that
cannot be read (empty, ``[]``) are skipped with a line naming the path: one
bad file never hides the other runs. A run's summary comes from the first
bytes of its primary and its sidecar; the whole primary is read only when
they disagree (and the sidecar is then rebuilt), and the task count of a run
being written comes from the tail of its live journal segment.
"""

from __future__ import annotations

import os
from typing import Any

from ironflow_core.errors import StoreCorruptionError
from ironflow_core.model import RunPage, RunStatus, RunSummary
from ironflow_core.runid import run_id_problem
from ironflow_core.stores import json_codec as codec
from ironflow_core.stores.cursor import Cursor, build_page
from ironflow_core.stores.json_store.files import (
    StoreFiles,
    log,
    primary_name,
    sidecar_name,
    unavailable,
)
from ironflow_core.stores.json_store.journal import journal_names, journal_run_id, read_run

JOURNAL_TAIL_BYTES = 64 * 1024


def list_runs(
    files: StoreFiles, status: RunStatus | None, limit: int, cursor: Cursor | None
) -> tuple[RunPage, list[str]]:
    """One page of run summaries, and what was skipped (also logged as warnings)."""
    summaries = []
    skipped: list[str] = []
    for run_id, has_sidecar, has_journal in _scan(files, skipped):
        try:
            summary = _summary(files, run_id, has_sidecar, has_journal)
        except StoreCorruptionError as exc:
            skipped.append(f"{files.path(primary_name(run_id))}: {exc}")
            continue
        if summary is not None:
            summaries.append(summary)
    for line in skipped:
        log.warning("skipped JSON store entry %s", line)
    return build_page(summaries, status=status, limit=limit, after=cursor), skipped


def _scan(files: StoreFiles, skipped: list[str]) -> list[tuple[str, bool, bool]]:
    """Run candidates per ST-31: dot names are never runs, other ``.json`` names must be."""
    if not files.root_exists():
        return []
    primaries: list[str] = []
    sidecars: set[str] = set()
    journals: set[str] = set()
    try:
        with os.scandir(files.root) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    journal_of = journal_run_id(name)
                    if journal_of is not None:
                        journals.add(journal_of)
                    continue
                if name.endswith(".summary.json"):
                    run_id, is_sidecar = name[:-13], True
                elif name.endswith(".json"):
                    run_id, is_sidecar = name[:-5], False
                else:
                    continue
                problem = run_id_problem(run_id)
                if problem is not None:
                    skipped.append(f"{files.path(name)}: not a run file name ({problem})")
                    continue
                if not entry.is_file(follow_symlinks=False):
                    skipped.append(f"{files.path(name)}: not a regular file")
                    continue
                if is_sidecar:
                    sidecars.add(run_id)
                else:
                    primaries.append(run_id)
    except OSError as exc:
        raise unavailable("Failed to list the JSON store directory", exc) from None
    return [(r, r in sidecars, r in journals) for r in primaries]


def _summary(
    files: StoreFiles, run_id: str, has_sidecar: bool, has_journal: bool
) -> RunSummary | None:
    """A run's summary from its header and sidecar; the full primary only when they disagree."""
    name = primary_name(run_id)
    prefix = files.read(name, limit=codec.HEADER_BYTES)
    if prefix is None:
        return None  # deleted since the directory scan
    header = codec.decode_header(prefix, run_id)
    sidecar = None
    if has_sidecar:
        data = files.read(sidecar_name(run_id))
        if data is not None:
            sidecar = codec.decode_sidecar(data, run_id, sidecar_name(run_id))
    summary: dict[str, Any] | None = None
    revision: str | None = None
    if header is not None and _sidecar_matches(sidecar, header.revision, header.digest):
        assert sidecar is not None
        summary, revision = sidecar.summary, header.revision
    else:
        data = files.read(name)
        if data is None:
            return None
        decoded = codec.decode_primary(data, run_id, name)
        summary, revision = codec.summary_of(decoded.raw), decoded.revision
        if revision is not None:
            digest = decoded.digest or codec.summary_digest(summary)
            if not _sidecar_matches(sidecar, revision, digest):
                files.write_sidecar(run_id, codec.sidecar_bytes(revision, digest, summary))
    if has_journal and revision is not None:
        count = _journal_count(files, run_id, revision)
        if count >= 0:
            summary = {**summary, "task_count": count}
    return RunSummary.from_json(summary)


def _journal_count(files: StoreFiles, run_id: str, revision: str) -> int:
    """Task count after the last line that extends ``revision``, reading only segment tails."""
    for segment in journal_names(run_id):
        fd = files.open_regular(segment)
        if fd is None:
            continue
        try:
            size = os.fstat(fd).st_size
            start = max(0, size - JOURNAL_TAIL_BYTES)
            tail = os.pread(fd, size - start, start)
        except OSError as exc:
            raise unavailable(f"Failed to read the journal of run '{run_id}'", exc) from None
        finally:
            os.close(fd)
        count = codec.journal_tail_count(tail, revision, start == 0)
        if count is None:  # a very long last line, or a malformed one: replay it all
            decoded, _, _ = read_run(files, run_id)
            return len(decoded.raw["tasks"])
        if count >= 0:
            return count
    return -1


def _sidecar_matches(sidecar: codec.Sidecar | None, revision: str, digest: str) -> bool:
    return (
        sidecar is not None
        and sidecar.revision == revision
        and sidecar.digest == digest
        and codec.digest_matches(sidecar.summary, digest)
    )
