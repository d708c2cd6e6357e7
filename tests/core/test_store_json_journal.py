"""The JSON store's journal under load: batches, background folds and SIGKILL (issue 17).

A batch of task records is one journal line, so a kill leaves all of it or
none of it; an acknowledged batch survives a kill at any moment, including
while a fold runs in the background (``journal_min_bytes=0`` folds as soon
as the journal outgrows the primary, so these tests fold many times).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import trio

from ironflow_core.model import RunRecord, RunStatus, TaskRecord, TaskStatus
from ironflow_core.stores.json_store import JsonStore

BATCH = 25

WRITER = textwrap.dedent(
    f"""
    import sys
    import trio
    from ironflow_core.model import RunRecord, RunStatus, TaskRecord, TaskStatus
    from ironflow_core.stores.json_store import JsonStore

    async def main(root):
        store = JsonStore(root, journal_min_bytes=0)
        await store.create_run(RunRecord(id="run-1", flow_name="f",
                                         started="2026-01-01T00:00:00Z"))
        await store.set_status("run-1", RunStatus.RUNNING)
        batch = 0
        while True:
            await store.upsert_tasks("run-1", [
                TaskRecord(name=f"b{{batch}}-{{i}}", node_type="x", status=TaskStatus.SUCCESS,
                           attempt=1, output={{"batch": batch, "pad": "x" * 200}})
                for i in range({BATCH})])
            print(batch, flush=True)  # acknowledged
            batch += 1

    trio.run(main, sys.argv[1])
    """
)


def batches_in(run: RunRecord) -> dict[int, int]:
    """How many tasks of each batch the record holds."""
    counts: dict[int, int] = {}
    for name, task in run.tasks.items():
        batch = int(name[1:].split("-")[0])
        assert task.output == {"batch": batch, "pad": "x" * 200}
        counts[batch] = counts.get(batch, 0) + 1
    return counts


async def test_a_killed_writer_keeps_every_acknowledged_batch_whole(tmp_path: Path):
    rng = random.Random()
    for round_, (low, high) in enumerate([(0.02, 0.2), (0.2, 0.7)]):
        root = tmp_path / f"runs-{round_}"
        script = tmp_path / "writer.py"
        script.write_text(WRITER)
        proc = subprocess.Popen([sys.executable, str(script), str(root)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == b"0", proc.stderr.read() if proc.stderr else ""
            await trio.sleep(rng.uniform(low, high))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        acked = [0, *(int(line) for line in proc.stdout.read().split())]
        store = JsonStore(root)
        run = await store.get_run("run-1")
        counts = batches_in(run)
        assert all(count == BATCH for count in counts.values()), "a torn batch"
        assert set(range(max(acked) + 1)) <= set(counts), "an acknowledged batch was lost"
        assert max(counts) <= max(acked) + 1  # at most the one in flight besides
        summary = (await store.list_runs()).runs[0]
        assert summary.task_count == len(run.tasks)
        # A new writer carries on from what the killed one left (folding its journal).
        await store.upsert_tasks("run-1", [TaskRecord(name="after", node_type="x")])
        await store.set_status("run-1", RunStatus.SUCCESS)
        await store.aclose()
        final = await JsonStore(root).get_run("run-1")
        assert len(final.tasks) == len(run.tasks) + 1
        assert sorted(p.name for p in root.iterdir() if "journal" in p.name) == []


async def test_appends_go_on_while_a_fold_runs_and_nothing_is_lost(tmp_path: Path):
    root = tmp_path / "runs"
    store = JsonStore(root, journal_min_bytes=0)
    await store.create_run(RunRecord(id="run-1", flow_name="f"))
    await store.set_status("run-1", RunStatus.RUNNING)
    handle = store._handles["run-1"]
    during = 0
    for batch in range(200):
        await store.upsert_tasks("run-1", [
            TaskRecord(name=f"b{batch}-{i}", node_type="x", status=TaskStatus.SUCCESS,
                       output={"batch": batch, "pad": "x" * 200}) for i in range(BATCH)])
        if handle.fold is not None:
            during += 1
        if batch % 20 == 0:
            await trio.sleep(0)  # let finished folds land
            # Another reader sees everything acknowledged so far, fold or not.
            seen = await JsonStore(root).get_run("run-1")
            assert batches_in(seen) == {b: BATCH for b in range(batch + 1)}
    assert during > 0, "no append happened while a fold was running"
    assert store.stats.compactions >= 3
    assert store.stats.journal_appends == 200  # one write per batch, however large
    await store.aclose()
    run = await JsonStore(root).get_run("run-1")
    assert batches_in(run) == {b: BATCH for b in range(200)}


async def test_a_batch_is_one_journal_line(tmp_path: Path):
    root = tmp_path / "runs"
    store = JsonStore(root)
    await store.create_run(RunRecord(id="run-1", flow_name="f"))
    await store.upsert_tasks("run-1", [TaskRecord(name=f"t{i}", node_type="x") for i in range(500)])
    lines = (root / ".run-1.journal").read_bytes().splitlines()
    assert len(lines) == 1 and store.stats.journal_appends == 1
    assert len(json.loads(lines[0])["tasks"]) == 500
    await store.aclose()
