"""The JSON store: conformance suite plus its on-disk contract (ST-30..35)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import trio

from ironflow_core.errors import (
    RunConflictError,
    RunNotFoundError,
    StoreCorruptionError,
    StoreUnavailableError,
)
from ironflow_core.model import RunStatus, TaskStatus
from ironflow_core.store_conformance import T0, T1, T2, StoreConformance, record, task
from ironflow_core.stores.json_store import JsonStore


class TestJsonStore(StoreConformance):
    journal_min_bytes: int | None = None

    @pytest.fixture(autouse=True)
    def _root(self, tmp_path: Path) -> None:
        self.root = tmp_path / "runs"

    async def make_store(self) -> JsonStore:
        if self.journal_min_bytes is None:
            return JsonStore(self.root)
        return JsonStore(self.root, journal_min_bytes=self.journal_min_bytes)

    def write_volume(self, store: JsonStore) -> int:
        return store.stats.bytes_written

    def storage_touched(self, store: JsonStore) -> bool:
        return self.root.exists()


class TestJsonStoreEagerCompaction(TestJsonStore):
    """The same suite with compaction as soon as the journal outgrows the primary."""

    journal_min_bytes = 0


# --------------------------------------------------------------------- helpers
def files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


async def make_run(root: Path, run_id: str = "run-1", **kwargs) -> JsonStore:
    store = JsonStore(root)
    await store.create_run(record(run_id, **kwargs))
    return store


def summary_digest(summary: dict) -> str:
    ordered = {k: summary[k] for k in ("id", "flow_name", "status", "started", "finished", "task_count")}
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


LEGACY = """{
  "tasks": {
    "b": {"name": "b", "status": "success", "attempt": 1, "node_type": "log",
          "output": {"x": 1.0}, "started": "2026-01-01T00:00:00.123456789Z",
          "finished": "2026-01-01T00:00:01Z"}
  },
  "ctx": {"z": 1, "a": [true, null]},
  "finished": "2026-01-01T00:00:01Z",
  "started": "2026-01-01T00:00:00.123456789Z",
  "status": "success",
  "flow_name": "legacy",
  "id": "legacy-1"
}"""


# ------------------------------------------------------------------ ST-30 layout
async def test_st_30_primary_layout_header_first_and_pretty(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root, ctx={"b": 1, "a": {"y": 2, "x": 1}}, tasks={"t": task("t")})
    text = (root / "run-1.json").read_text()
    assert text.startswith('{\n  "_ironflow_revision": "')
    data = json.loads(text)
    assert list(data) == [
        "_ironflow_revision", "_ironflow_summary_digest", "id", "flow_name", "status",
        "started", "finished", "ctx", "tasks",
    ]
    assert str(uuid.UUID(data["_ironflow_revision"])) == data["_ironflow_revision"]
    assert text == (
        "{\n"
        f'  "_ironflow_revision": "{data["_ironflow_revision"]}",\n'
        f'  "_ironflow_summary_digest": "{data["_ironflow_summary_digest"]}",\n'
        '  "id": "run-1",\n  "flow_name": "flow",\n  "status": "pending",\n'
        f'  "started": "{T0}",\n  "finished": null,\n'
        '  "ctx": {\n    "a": {\n      "x": 1,\n      "y": 2\n    },\n    "b": 1\n  },\n'
        '  "tasks": {\n    "t": {\n      "attempt": 0,\n      "name": "t",\n'
        '      "node_type": "code",\n      "status": "pending"\n    }\n  }\n}'
    )
    summary = {"id": "run-1", "flow_name": "flow", "status": "pending", "started": T0,
               "finished": None, "task_count": 1}
    # Hashed the way upstream re-prints the time (chrono drops an all-zero fraction).
    assert data["_ironflow_summary_digest"] == summary_digest(
        {**summary, "started": "2026-01-01T00:00:00Z"}
    )
    sidecar = (root / "run-1.summary.json").read_text()
    assert sidecar == json.dumps(
        {"_ironflow_revision": data["_ironflow_revision"],
         "_ironflow_summary_digest": data["_ironflow_summary_digest"], **summary},
        separators=(",", ":"),
    )
    await store.aclose()


async def test_st_30_digest_vector():
    from ironflow_core.stores.json_codec import digest_matches
    from ironflow_core.stores.json_codec import summary_digest as codec_digest

    text = ('{"id":"r1","flow_name":"f","status":"pending",'
            '"started":"2026-01-01T00:00:00.123456Z","finished":null,"task_count":0}')
    summary = {"task_count": 0, "finished": None, "started": "2026-01-01T00:00:00.123456Z",
               "status": "pending", "flow_name": "f", "id": "r1"}
    assert codec_digest(summary) == hashlib.sha256(text.encode()).hexdigest()
    # Microseconds ending in 000 are hashed as upstream prints them; a digest
    # over the exact stored string is accepted too.
    summary["started"] = "2026-01-01T00:00:00.120000Z"
    upstream = text.replace(".123456Z", ".120Z")
    literal = text.replace(".123456Z", ".120000Z")
    assert codec_digest(summary) == hashlib.sha256(upstream.encode()).hexdigest()
    assert digest_matches(summary, hashlib.sha256(literal.encode()).hexdigest())


async def test_st_30_revision_changes_on_every_write(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root)
    first = json.loads((root / "run-1.json").read_text())["_ironflow_revision"]
    await store.set_status("run-1", RunStatus.RUNNING)
    second = json.loads((root / "run-1.json").read_text())["_ironflow_revision"]
    assert first != second
    await store.aclose()


async def test_st_30_root_is_created_on_first_write_with_private_modes(tmp_path):
    root = tmp_path / "deep" / "runs"
    store = JsonStore(root)
    assert (await store.list_runs()).runs == ()
    with pytest.raises(RunNotFoundError):
        await store.get_run("run-1")
    assert not root.exists()
    await store.create_run(record(tasks={"a": task("a")}))
    await store.set_status("run-1", RunStatus.RUNNING)
    await store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING)])
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert files(root) == [".run-1.journal", "run-1.json", "run-1.summary.json"]
    for name in files(root):
        assert stat.S_IMODE((root / name).stat().st_mode) == 0o600, name
    await store.aclose()


async def test_st_30_a_symlinked_root_is_corruption(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "runs").symlink_to(real)
    store = JsonStore(tmp_path / "runs")
    with pytest.raises(StoreCorruptionError, match="store directory"):
        await store.list_runs()
    with pytest.raises(StoreCorruptionError):
        await store.create_run(record())
    assert list(real.iterdir()) == []


# ------------------------------------------------------------- ST-31 ignoring
async def test_st_31_upstream_and_private_entries_are_never_runs(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root)
    for name in (".run-1.json.0123abcd.tmp", ".ironflow-run-catalog-v1.bin",
                 ".ironflow-run-catalog-v1.delta", ".ironflow-run-catalog-v1.state",
                 ".ironflow-run-catalog-v1.lock", ".hidden.json", "notes.txt", "run-2.json.bak",
                 ".ghost.journal"):
        (root / name).write_text("garbage")
    for name in (".ironflow-run-leases-v1", ".ironflow-schedule-claims-v1",
                 ".ironflow-schedule-claim-index-v1"):
        (root / name).mkdir()
    page = await store.list_runs()
    assert [s.id for s in page.runs] == ["run-1"]
    assert (await store.get_run("run-1")).id == "run-1"
    await store.aclose()


@pytest.mark.parametrize("name", ["run.id.json", "-run.json", "run_.json", "x y.json",
                                  "bad.name.summary.json"])
async def test_st_31_a_non_canonical_json_name_is_corruption(tmp_path, name):
    root = tmp_path / "runs"
    store = await make_run(root)
    (root / name).write_text("{}")
    await assert_listing_skips(store, "not a run file name")
    await store.aclose()


async def test_st_31_a_symlinked_or_directory_candidate_is_corruption(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root)
    outside = tmp_path / "outside.json"
    outside.write_text((root / "run-1.json").read_text().replace('"run-1"', '"run-2"'))
    (root / "run-2.json").symlink_to(outside)
    await assert_listing_skips(store, "not a regular file")
    with pytest.raises(StoreCorruptionError, match="symlink"):
        await store.get_run("run-2")
    (root / "run-2.json").unlink()
    (root / "run-3.json").mkdir()
    await assert_listing_skips(store, None)
    await store.aclose()



async def assert_listing_skips(store, match):
    """Issue 14: a bad entry is skipped and reported by path; the listing still works."""
    page = await store.list_runs()
    assert all(run.id != "run-1" or match is None or "run-1" not in str(store.skipped)
               for run in page.runs)
    assert store.skipped, "the bad entry was not reported"
    assert all(line.startswith(store.root) for line in store.skipped)
    if match is not None:
        assert any(re.search(match, line) for line in store.skipped), store.skipped

# ---------------------------------------------------------- ST-33 corruption
async def test_st_33_unparsable_primary_is_corruption_on_get_and_list(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root)
    (root / "run-1.json").write_text('{"id": "run-1", ')
    with pytest.raises(StoreCorruptionError, match=r"^Failed to parse run 'run-1'"):
        await store.get_run("run-1")
    await assert_listing_skips(store, None)
    # Another process never mistakes it for a fresh run either.
    with pytest.raises(StoreCorruptionError):
        await JsonStore(root).set_status("run-1", RunStatus.RUNNING)
    with pytest.raises(StoreCorruptionError):
        await JsonStore(root).upsert_tasks("run-1", [task("a")])
    await store.aclose()


@pytest.mark.parametrize(
    ("edit", "message", "header_damaged"),
    [
        (lambda d: d.update(id="run-2"), "payload ID does not match its filename", True),
        (lambda d: d.update(id="../x"), "Invalid run ID stored in 'run-1.json'", True),
        (lambda d: d.update(_ironflow_revision="not-a-uuid"), "revision must be a canonical UUID",
         True),
        (lambda d: d.update(_ironflow_revision=d["_ironflow_revision"].upper()),
         "revision must be a canonical UUID", True),
        (lambda d: d.update(_ironflow_summary_digest="ABC"), "lowercase SHA-256", True),
        (lambda d: d.update(_ironflow_summary_digest="0" * 64), "does not match", True),
        (lambda d: d.pop("_ironflow_revision"), "a summary digest requires a revision", True),
        (lambda d: d.update(flow_name="changed"), "does not match", False),
        (lambda d: d.update(status="exploded"), "status is not a run status", False),
        (lambda d: d.update(started="yesterday"), "started is not an RFC 3339 timestamp", False),
        (lambda d: d.update(ctx=[]), "ctx is not an object", False),
        (lambda d: d.update(tasks={"a": {"name": "a"}}), "tasks.a.status", False),
        (lambda d: d.update(ctx={"x": float("nan")}), "NaN", False),
    ],
)
async def test_st_33_damaged_primaries_are_corruption(tmp_path, edit, message, header_damaged):
    root = tmp_path / "runs"
    store = await make_run(root)
    data = json.loads((root / "run-1.json").read_text())
    edit(data)
    (root / "run-1.json").write_text(json.dumps(data, indent=2))
    with pytest.raises(StoreCorruptionError, match=message):
        await store.get_run("run-1")
    # Listing trusts a sidecar that matches the primary's header (ST-21: pages
    # never load full records), so only header damage surfaces there...
    if header_damaged:
        await assert_listing_skips(store, None)
    # ...and always once the sidecar is gone.
    (root / "run-1.summary.json").unlink()
    await assert_listing_skips(store, message)
    await store.aclose()


async def test_st_33_corrupt_primary_header_surfaces_even_when_the_sidecar_is_fine(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root)
    text = (root / "run-1.json").read_text()
    revision = json.loads(text)["_ironflow_revision"]
    (root / "run-1.json").write_text(text.replace(revision, revision.upper()))
    await assert_listing_skips(store, "canonical UUID")
    await store.aclose()


async def test_st_21_listing_reads_the_header_and_sidecar_not_the_whole_record(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root, ctx={"pad": "x" * 2000})
    text = (root / "run-1.json").read_text()
    (root / "run-1.json").write_text(text[:600] + "<<damaged body>>")
    page = await store.list_runs()
    assert [s.id for s in page.runs] == ["run-1"]
    with pytest.raises(StoreCorruptionError):
        await store.get_run("run-1")
    await store.aclose()


# ------------------------------------------------------------- ST-32 sidecars
@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.unlink(),
        lambda p: p.write_text("not json"),
        # What a crash can leave of a sidecar, whose writes are not synced:
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(p.read_bytes()[:60]),
        lambda p: p.write_bytes(b"\0" * len(p.read_bytes())),
        lambda p: p.write_text(p.read_text().replace('"task_count":1', '"task_count":7')),
        lambda p: p.write_text(p.read_text().replace('"status":"running"', '"status":"failed"')),
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()),
                                           "_ironflow_revision": str(uuid.uuid4())})),
    ],
)
async def test_st_32_missing_or_stale_sidecar_is_ignored_and_rebuilt(tmp_path, damage):
    root = tmp_path / "runs"
    store = await make_run(root, tasks={"a": task("a")})
    await store.set_status("run-1", RunStatus.RUNNING)
    good = (root / "run-1.summary.json").read_text()
    damage(root / "run-1.summary.json")
    page = await store.list_runs()
    assert [(s.id, s.status, s.task_count) for s in page.runs] == [
        ("run-1", RunStatus.RUNNING, 1)
    ]
    assert (root / "run-1.summary.json").read_text() == good
    await store.aclose()


async def test_st_32_sidecar_naming_another_run_is_corruption(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root)
    sidecar = json.loads((root / "run-1.summary.json").read_text())
    sidecar["id"] = "run-9"
    (root / "run-1.summary.json").write_text(json.dumps(sidecar))
    await assert_listing_skips(store, "does not match its filename")
    await store.aclose()


async def test_st_32_duplicate_create_from_another_process_view_is_a_conflict(tmp_path):
    root = tmp_path / "runs"
    first = await make_run(root, flow_name="first")
    second = JsonStore(root)
    with pytest.raises(RunConflictError, match=r"^Run 'run-1' already exists$"):
        await second.create_run(record(flow_name="second"))
    assert (await second.get_run("run-1")).flow_name == "first"
    assert [n for n in files(root) if n.endswith(".tmp")] == []
    await first.aclose()
    await second.aclose()


# ----------------------------------------------------------- crash safety
async def test_st_32_a_write_interrupted_before_rename_keeps_the_old_record(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    store = await make_run(root, tasks={"a": task("a")})
    await store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING, attempt=1)])
    before = (root / "run-1.json").read_bytes()

    def crash(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StoreUnavailableError, match="Failed to replace JSON store entry"):
        await store.set_status("run-1", RunStatus.SUCCESS)
    monkeypatch.undo()
    assert (root / "run-1.json").read_bytes() == before
    assert [n for n in files(root) if n.endswith(".tmp")] == []
    # A temporary file left by a crash elsewhere is never read as a run.
    (root / f".run-1.json.{uuid.uuid4().hex}.tmp").write_text('{"id": "run-1", "status": "x"}')
    got = await store.get_run("run-1")
    assert got.status is RunStatus.PENDING
    assert got.tasks["a"].status is TaskStatus.RUNNING  # the journal survived too
    assert [s.id for s in (await store.list_runs()).runs] == ["run-1"]
    # The store recovers: the next status change goes through.
    await store.set_status("run-1", RunStatus.SUCCESS)
    got = await store.get_run("run-1")
    assert got.status is RunStatus.SUCCESS and got.tasks["a"].status is TaskStatus.RUNNING
    await store.aclose()


WRITER = textwrap.dedent(
    """
    import sys, trio
    from ironflow_core.model import RunRecord, RunStatus, TaskRecord, TaskStatus
    from ironflow_core.stores.json_store import JsonStore

    async def main(root):
        store = JsonStore(root, journal_min_bytes=0)
        i = 0
        while True:
            run_id = f"run-{i}"
            await store.create_run(RunRecord(
                id=run_id, flow_name="f", started="2026-01-01T00:00:00Z",
                tasks={f"t{k}": TaskRecord(name=f"t{k}", node_type="x") for k in range(20)}))
            await store.set_status(run_id, RunStatus.RUNNING)
            for k in range(20):
                await store.upsert_tasks(run_id, [TaskRecord(
                    name=f"t{k}", node_type="x", status=TaskStatus.SUCCESS, attempt=1,
                    output={"k": k, "pad": "x" * 500})])
            await store.set_status(run_id, RunStatus.SUCCESS)
            if i == 2:
                print("ready", flush=True)
            i += 1

    trio.run(main, sys.argv[1])
    """
)


async def test_st_32_a_killed_writer_leaves_every_run_readable(tmp_path):
    root = tmp_path / "runs"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(root)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        await trio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    store = JsonStore(root)
    page = await store.list_runs(limit=1000)
    assert len(page.runs) >= 3
    for summary in page.runs:
        run = await store.get_run(summary.id)
        assert run.status in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SUCCESS)
        assert len(run.tasks) == 20 == summary.task_count
        if run.status is RunStatus.SUCCESS:
            assert all(t.status is TaskStatus.SUCCESS for t in run.tasks.values())
    # Whatever run was interrupted can be carried on by a new process.
    last = page.runs[0].id
    await store.upsert_tasks(last, [task("t0", TaskStatus.FAILED, error="resumed")])
    await store.set_status(last, RunStatus.FAILED)
    assert (await store.get_run(last)).tasks["t0"].error == "resumed"
    await store.aclose()


# ---------------------------------------------------------------- journal
async def test_journal_torn_last_line_is_an_unfinished_append(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root, tasks={"a": task("a"), "b": task("b")})
    await store.set_status("run-1", RunStatus.RUNNING)
    await store.upsert_tasks("run-1", [task("a", TaskStatus.SUCCESS, output={"v": 1})])
    await store.aclose()
    journal = root / ".run-1.journal"
    with journal.open("ab") as f:
        f.write(b'{"n":2,"rev":"')
    other = JsonStore(root)
    got = await other.get_run("run-1")
    assert got.tasks["a"].output == {"v": 1} and got.tasks["b"].status is TaskStatus.PENDING
    assert (await other.list_runs()).runs[0].task_count == 2
    await other.upsert_tasks("run-1", [task("b", TaskStatus.SUCCESS, output={"v": 2})])
    got = await other.get_run("run-1")
    assert got.tasks["a"].output == {"v": 1} and got.tasks["b"].output == {"v": 2}
    await other.aclose()


async def test_journal_damaged_complete_line_is_corruption(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root, tasks={"a": task("a")})
    await store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING)])
    await store.aclose()
    with (root / ".run-1.journal").open("ab") as f:
        f.write(b"{garbage}\n")
    with pytest.raises(StoreCorruptionError, match="Corrupt journal of run 'run-1'"):
        await JsonStore(root).get_run("run-1")


async def test_journal_lines_of_an_older_revision_never_roll_a_run_back(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root, tasks={"a": task("a")})
    await store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING)])
    old_journal = (root / ".run-1.journal").read_bytes()
    await store.upsert_tasks("run-1", [task("a", TaskStatus.SUCCESS)])
    await store.set_status("run-1", RunStatus.SUCCESS)
    await store.aclose()
    assert not (root / ".run-1.journal").exists()
    # A crash between publishing a primary and removing the journal leaves this:
    (root / ".run-1.journal").write_bytes(old_journal)
    other = JsonStore(root)
    assert (await other.get_run("run-1")).tasks["a"].status is TaskStatus.SUCCESS
    assert (await other.list_runs()).runs[0].task_count == 1
    await other.aclose()


async def test_listing_counts_tasks_added_through_the_journal(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root, tasks={"a": task("a")})
    await store.set_status("run-1", RunStatus.RUNNING)
    await store.upsert_tasks("run-1", [task("b"), task("c")])
    await store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING)])
    assert (root / ".run-1.journal").exists()
    for reader in (store, JsonStore(root)):
        summary = (await reader.list_runs()).runs[0]
        assert summary.task_count == 3 and summary.status is RunStatus.RUNNING
    await store.aclose()


async def test_finished_run_has_no_journal_and_compactions_stay_logarithmic(tmp_path):
    root = tmp_path / "runs"
    store = JsonStore(root, journal_min_bytes=0)
    names = [f"s{i}" for i in range(2000)]
    await store.create_run(record(tasks={n: task(n) for n in names}))
    await store.set_status("run-1", RunStatus.RUNNING)
    for name in names:
        await store.upsert_tasks("run-1", [task(name, TaskStatus.RUNNING, attempt=1, started=T0)])
        await store.upsert_tasks("run-1", [task(name, TaskStatus.SUCCESS, attempt=1, started=T0,
                                                finished=T1, output={"n": name})])
    await store.set_status("run-1", RunStatus.SUCCESS, at=T2)
    assert files(root) == ["run-1.json", "run-1.summary.json"]
    # Compaction only when the journal outgrows the primary: a handful, not 4,000.
    assert store.stats.compactions <= 12
    assert store.stats.journal_appends == 4000
    await store.aclose()


# ------------------------------------------------------------------ legacy
async def test_st_30_legacy_upstream_record_without_ironflow_fields_is_read(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    (root / "legacy-1.json").write_text(LEGACY)
    store = JsonStore(root)
    got = await store.get_run("legacy-1")
    assert got.flow_name == "legacy" and got.status is RunStatus.SUCCESS
    assert got.started == "2026-01-01T00:00:00.123456789Z"
    assert json.dumps(got.tasks["b"].output) == '{"x": 1.0}'
    page = await store.list_runs()
    assert [(s.id, s.task_count) for s in page.runs] == [("legacy-1", 1)]
    assert files(root) == ["legacy-1.json"]  # reading never rewrites a legacy record
    await store.merge_context("legacy-1", {"new": 1})
    data = json.loads((root / "legacy-1.json").read_text())
    assert list(data)[:3] == ["_ironflow_revision", "_ironflow_summary_digest", "id"]
    assert (await store.get_run("legacy-1")).ctx == {"z": 1, "a": [True, None], "new": 1}
    await store.aclose()


async def test_st_30_upstream_digest_over_reprinted_timestamps_is_accepted(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    data = json.loads(LEGACY)
    data["started"] = "2026-01-01T00:00:00.120000Z"
    summary = {"id": "legacy-1", "flow_name": "legacy", "status": "success",
               "started": "2026-01-01T00:00:00.120Z", "finished": "2026-01-01T00:00:01Z",
               "task_count": 1}
    body = {"_ironflow_revision": str(uuid.uuid4()),
            "_ironflow_summary_digest": summary_digest(summary), **data}
    (root / "legacy-1.json").write_text(json.dumps(body, indent=2))
    store = JsonStore(root)
    assert (await store.get_run("legacy-1")).started == "2026-01-01T00:00:00.120000Z"
    await store.aclose()


# ------------------------------------------------------------ ST-34, ST-35
async def test_st_34_upstream_catalog_is_dropped_after_a_write(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root)
    catalog = [".ironflow-run-catalog-v1." + s for s in ("bin", "delta", "state", "lock")]
    for name in catalog:
        (root / name).write_bytes(b"x")
    await store.list_runs()
    assert all((root / n).exists() for n in catalog)  # reading leaves them alone
    await store.set_status("run-1", RunStatus.RUNNING)
    assert not any((root / n).exists() for n in catalog)
    await store.aclose()


async def test_st_35_delete_removes_summary_primary_journal_and_lease(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root, tasks={"a": task("a")})
    await store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING)])
    leases = root / ".ironflow-run-leases-v1"
    leases.mkdir()
    (leases / "run-1.lease").write_text('{"run_id":"run-1","owner":"o","expires_micros":1}')
    await store.delete_run("run-1")
    assert files(root) == [".ironflow-run-leases-v1"]
    assert list(leases.iterdir()) == []
    await store.aclose()


async def test_st_35_live_lease_protects_an_executing_run(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root)
    leases = root / ".ironflow-run-leases-v1"
    leases.mkdir()
    far = 10**18
    (leases / "run-1.lease").write_text(
        json.dumps({"run_id": "run-1", "owner": "peer", "expires_micros": far})
    )
    with pytest.raises(RunConflictError, match=r"^Run 'run-1' is still executing$"):
        await store.delete_run("run-1")
    assert (root / "run-1.json").exists()
    await store.set_status("run-1", RunStatus.FAILED)
    await store.delete_run("run-1")
    assert not (root / "run-1.json").exists()
    await store.aclose()


# ------------------------------------------------------- ST-51/52 lease files
def micros_now() -> int:
    return time.time_ns() // 1000


def write_lease(root: Path, run_id: str, owner: str, expires: int) -> Path:
    leases = root / ".ironflow-run-leases-v1"
    leases.mkdir(exist_ok=True)
    path = leases / f"{run_id}.lease"
    path.write_text(json.dumps({"run_id": run_id, "owner": owner, "expires_micros": expires}))
    return path


async def test_st_51_lease_file_layout_and_modes(tmp_path):
    root = tmp_path / "runs"
    store = await make_run(root)
    before = micros_now()
    await store.acquire_lease("run-1", "owner-a", 90)
    leases = root / ".ironflow-run-leases-v1"
    assert os.listdir(leases) == ["run-1.lease"]  # no temporary file left behind
    lease = leases / "run-1.lease"
    text = lease.read_text()
    assert list(json.loads(text)) == ["run_id", "owner", "expires_micros"]
    data = json.loads(text)
    assert (data["run_id"], data["owner"]) == ("run-1", "owner-a")
    assert before + 90_000_000 <= data["expires_micros"] <= micros_now() + 90_000_000
    assert stat.S_IMODE(lease.stat().st_mode) == 0o600
    assert stat.S_IMODE(leases.stat().st_mode) == 0o700
    await store.renew_lease("run-1", "owner-a", 90)
    assert json.loads(lease.read_text())["expires_micros"] >= data["expires_micros"]
    assert [s.id for s in (await store.list_runs()).runs] == ["run-1"]  # ST-31: not a run
    await store.release_lease("run-1", "owner-a")
    assert os.listdir(leases) == []
    await store.aclose()


async def test_fencing_trusts_a_live_lease_it_read_until_shortly_before_its_expiry(
        tmp_path, monkeypatch):
    from ironflow_core.errors import LeaseLostError
    from ironflow_core.stores.json_store import lease_files

    root = tmp_path / "runs"
    store = await make_run(root)
    await store.acquire_lease("run-1", "owner-a", 60)
    looks = []
    real_lstat = os.lstat

    def lstat(path, *args, **kwargs):
        if str(path).endswith(".lease"):
            looks.append(path)
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", lstat)
    for i in range(20):
        await store.upsert_tasks("run-1", [task(f"t{i}")], owner="owner-a")
    assert len(looks) == 1  # nobody may take a live lease: the first look answers for all
    # A minute later the lease has expired and another process takes the run over.
    later = micros_now() + 61_000_000
    monkeypatch.setattr(lease_files, "clock_micros", lambda: later)
    other = JsonStore(root)
    await other.acquire_lease("run-1", "owner-b", 60)
    with pytest.raises(LeaseLostError):
        await store.upsert_tasks("run-1", [task("late")], owner="owner-a")
    await other.upsert_tasks("run-1", [task("b")], owner="owner-b")
    assert "late" not in (await other.get_run("run-1")).tasks
    await store.aclose()
    await other.aclose()


async def test_fencing_looks_at_a_short_lease_on_every_write(tmp_path):
    from ironflow_core.errors import LeaseLostError

    root = tmp_path / "runs"
    store = await make_run(root)
    await store.acquire_lease("run-1", "paused", 0.05)  # shorter than the trust margin
    await store.upsert_tasks("run-1", [task("a")], owner="paused")
    await trio.sleep(0.1)  # expired (real time: sleeping longer only helps)
    other = JsonStore(root)  # another process takes the run over
    await other.acquire_lease("run-1", "new-owner", 60)
    with pytest.raises(LeaseLostError):
        await store.upsert_tasks("run-1", [task("a", TaskStatus.FAILED)], owner="paused")
    await store.aclose()
    await other.aclose()


async def test_st_52_reconcile_a_run_left_by_a_dead_process(tmp_path):
    """Another process created the run and its lease, then died (no one renewed)."""
    root = tmp_path / "runs"
    writer = await make_run(root, tasks={"a": task("a"), "b": task("b")})
    await writer.set_status("run-1", RunStatus.RUNNING)
    await writer.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING, attempt=1, started=T0)])
    await writer.aclose()  # the journal is left behind, as a killed process leaves it
    lease = write_lease(root, "run-1", "dead-process", micros_now() - 1)
    store = JsonStore(root)
    assert await store.reconcile_expired(micros_now()) == ["run-1"]
    assert not lease.exists()
    got = await store.get_run("run-1")
    assert got.status is RunStatus.STALLED and got.finished is not None
    assert (got.tasks["a"].status, got.tasks["b"].status) == (
        TaskStatus.FAILED, TaskStatus.SKIPPED)
    primary = json.loads((root / "run-1.json").read_text())
    assert primary["status"] == "stalled"  # folded into the primary: upstream reads it
    assert primary["tasks"]["a"]["error"] == "task stopped after execution-owner lease expired"
    assert not (root / ".run-1.journal").exists()
    await store.aclose()


async def test_st_52_damaged_leases_and_records_are_reported_and_skipped(tmp_path, caplog):
    root = tmp_path / "runs"
    writer = await make_run(root)
    await writer.create_run(record("run-2"))
    await writer.create_run(record("run-3"))
    await writer.aclose()
    store = JsonStore(root)  # a server process that did not write these runs
    leases = root / ".ironflow-run-leases-v1"
    leases.mkdir()
    (leases / "run-1.lease").write_text("{not json")
    (leases / ".run-2.lease.0123.tmp").write_text("a temporary file")
    write_lease(root, "run-2", "dead", 1)
    write_lease(root, "run-3", "dead", 1)
    (root / "run-3.json").write_text("{damaged")
    assert await store.reconcile_expired(micros_now()) == ["run-2"]
    assert "skipping lease of run run-1: Invalid lease file" in caplog.text
    assert "could not reconcile run run-3: " in caplog.text
    assert (await store.get_run("run-1")).status is RunStatus.PENDING
    assert sorted(os.listdir(leases)) == [".run-2.lease.0123.tmp", "run-1.lease", "run-3.lease"]
    await store.aclose()
