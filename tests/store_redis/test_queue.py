"""The ``redis`` run queue and ``Worker`` against a real redis-server (issue 16).

Workers run in this process here (``Worker.serve`` in a trio nursery), so each
test sees exactly what a worker did; ``test_queue_processes.py`` runs the real
``ironflow worker``/``submit``/``serve`` processes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import trio

from ironflow_core.engine import prepare_run
from ironflow_core.loading import load_flow
from ironflow_core.model import EventType, RunStatus
from ironflow_core.queues.select import open_queue
from ironflow_core.queues.submit import CompletionWaiters, submit_run
from ironflow_core.queues.worker import Worker, WorkerSettings
from ironflow_core.registry import build_registry
from ironflow_core.stores.select import open_store

STREAM = "ironflow:{queue}:runs"
DEAD = "ironflow:{queue}:dead"


@pytest.fixture(scope="module")
def registry():  # type: ignore[no-untyped-def]
    return build_registry({})


@pytest.fixture
def make_cluster(registry):  # type: ignore[no-untyped-def]
    made: list[Cluster] = []

    def make(env, flow_path):  # type: ignore[no-untyped-def]
        made.append(Cluster(registry, env, flow_path))
        return made[-1]

    yield make
    for cluster in made:
        cluster.close()


def env_for(url: str, **extra: str) -> dict[str, str]:
    return {"IRONFLOW_QUEUE": "redis", "IRONFLOW_STORE": "redis", "REDIS_URL": url,
            "IRONFLOW_LEASE_TTL_SECONDS": "1", **extra}


def write_flow(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "flow.lua"
    path.write_text(textwrap.dedent(body))
    return path


TWO_STEPS = """
    local flow = Flow.new("two_steps")
    flow:step("a", nodes.delay({ seconds = 0.05 }))
    flow:step("b", nodes.delay({ seconds = 0.05 })):depends_on("a")
    return flow
"""


class Cluster:
    """Store, queue and a submitter in one process, plus workers started on demand."""

    def __init__(self, registry, env, flow_path: Path) -> None:  # type: ignore[no-untyped-def]
        self.registry = registry
        self.env = env
        self.store = open_store(registry, env)
        self.queue = open_queue(registry, env)
        self.opened: list = [self.store, self.queue]
        self.flow = load_flow(str(flow_path), registry=registry, env=env)

    async def submit(self, **context):  # type: ignore[no-untyped-def]
        executor = prepare_run(self.flow, store=self.store, registry=self.registry,
                               context=context, env=self.env, plugin_observers=False)
        return (await submit_run(executor, self.queue)).id

    def worker(self, name: str, **settings) -> Worker:  # type: ignore[no-untyped-def]
        base = WorkerSettings.from_env(self.env, name=name, concurrency=2)
        import attrs

        queue, store = open_queue(self.registry, self.env), open_store(self.registry, self.env)
        self.opened += [queue, store]
        return Worker(queue, store, registry=self.registry, env=self.env,
                      settings=attrs.evolve(base, **settings))

    def close(self) -> None:
        """Close every connection pool, so no connection outlives the test."""

        async def close_all() -> None:
            for opened in self.opened:
                await opened.aclose()

        trio.run(close_all)

    async def wait_status(self, run_id: str, statuses: tuple[RunStatus, ...],
                          timeout: float = 30) -> RunStatus:
        with trio.fail_after(timeout):
            while True:
                status = (await self.store.get_run(run_id)).status
                if status in statuses:
                    return status
                await trio.sleep(0.05)


def test_a_worker_executes_a_submitted_run_publishes_its_events_and_acknowledges_it(
        make_cluster, redis_url, redis_client, tmp_path):
    env = env_for(redis_url)
    cluster = make_cluster(env, write_flow(tmp_path, TWO_STEPS))
    seen = []

    async def main() -> None:
        waiters = CompletionWaiters(cluster.store)

        def sink(event):  # type: ignore[no-untyped-def]
            seen.append(event)
            waiters.sink(event)

        worker = cluster.worker("w1")
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: cluster.queue.follow(
                sink, task_status=task_status))
            run_id = await cluster.submit(x=1)
            assert (await cluster.store.get_run(run_id)).status is RunStatus.PENDING
            async with trio.open_nursery() as workers:
                workers.start_soon(worker.serve)
                with trio.fail_after(30):
                    record = await waiters.wait(run_id)
                status = await cluster.queue.status()
                assert [w.name for w in status.workers] == ["w1"]
                worker.stop()
            with trio.fail_after(10):  # the last events arrive after the record is final
                while not any(e.type is EventType.RUN_FINISHED for e in seen):
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        assert record.status is RunStatus.SUCCESS
        assert record.ctx["x"] == 1
        assert worker.counts["finished"] == 1
        types = [e.type for e in seen if e.run_id == run_id]
        assert types[0] is EventType.RUN_STARTED and types[-1] is EventType.RUN_FINISHED
        assert EventType.TASK_SUCCEEDED in types
        final = await cluster.queue.status()
        assert (final.depth, final.pending, final.dead, final.workers) == (0, 0, 0, ())
        assert await cluster.store.get_lease(run_id) is None

    trio.run(main)
    assert redis_client.xlen(STREAM) == 0  # acknowledged messages are deleted


def test_a_run_whose_worker_dies_every_time_goes_to_the_dead_letter_stream(
        make_cluster, redis_url, redis_client, tmp_path):
    env = env_for(redis_url, IRONFLOW_RECOVERY="resume", IRONFLOW_RECOVERY_MAX_ATTEMPTS="1")
    cluster = make_cluster(env, write_flow(tmp_path, TWO_STEPS))

    async def main() -> str:
        run_id = await cluster.submit()
        await cluster.queue.claim("ghost", 1, 0.1)  # a worker that died holding it
        [[message_id, _fields]] = redis_client.xrange(STREAM)
        for _ in range(2):  # ... twice more: three deliveries, each ending in a crash
            redis_client.xclaim(STREAM, "workers", "ghost", 0, [message_id])
        worker = cluster.worker("w1", lease_ttl=0.5)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.serve)
            await cluster.wait_status(run_id, (RunStatus.FAILED,))
            with trio.fail_after(10):
                while redis_client.xlen(DEAD) == 0:
                    await trio.sleep(0.05)
            worker.stop()
        assert worker.counts["dead_lettered"] == 1
        return run_id

    run_id = trio.run(main)
    [[_id, letter]] = redis_client.xrange(DEAD)
    assert letter["run_id"] == run_id and letter["deliveries"] == "4"
    assert "IRONFLOW_RECOVERY_MAX_ATTEMPTS=1" in letter["reason"]
    assert redis_client.xpending(STREAM, "workers")["pending"] == 0

    async def tasks():  # type: ignore[no-untyped-def]
        return await cluster.store.get_run(run_id)

    record = trio.run(tasks)
    assert record.status is RunStatus.FAILED
    assert all("dead-letter stream" in (t.error or "") for t in record.tasks.values())


def test_stopping_hands_unfinished_runs_back_and_another_worker_finishes_them(
        make_cluster, redis_url, redis_client, tmp_path):
    flow = write_flow(tmp_path, """
        local flow = Flow.new("handback")
        flow:step("a", nodes.delay({ seconds = 0.05 }))
        flow:step("b", nodes.delay({ seconds = 1.5 })):depends_on("a")
        return flow
    """)
    env = env_for(redis_url, IRONFLOW_LEASE_TTL_SECONDS="5")
    cluster = make_cluster(env, flow)

    async def main() -> str:
        run_id = await cluster.submit()
        first = cluster.worker("first", grace_seconds=0.0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(first.serve)
            with trio.fail_after(30):
                while (await cluster.store.get_run(run_id)).tasks["b"].status != "running":
                    await trio.sleep(0.02)
            first.stop()
        assert first.counts["handed_back"] == 1
        assert redis_client.xpending(STREAM, "workers")["pending"] == 0
        assert redis_client.xlen(STREAM) == 1  # a fresh message, waiting for anyone
        assert await cluster.store.get_lease(run_id) is None
        second = cluster.worker("second")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(second.serve)
            await cluster.wait_status(run_id, (RunStatus.SUCCESS,))
            second.stop()
        return run_id

    run_id = trio.run(main)

    async def read():  # type: ignore[no-untyped-def]
        return await cluster.store.get_run(run_id), await cluster.store.get_origin(run_id)

    record, origin = trio.run(read)
    assert record.tasks["a"].attempt == 1  # recorded before the hand-back: kept, not run again
    assert record.tasks["b"].attempt == 2
    assert origin is not None and origin.recoveries == 0  # a hand-back is not a recovery
    assert redis_client.xlen(DEAD) == 0


def test_stall_mode_leaves_a_dead_workers_run_stalled_and_acknowledges_it(
        make_cluster, redis_url, redis_client, tmp_path):
    env = env_for(redis_url)  # IRONFLOW_RECOVERY defaults to stall
    cluster = make_cluster(env, write_flow(tmp_path, TWO_STEPS))

    async def main() -> str:
        run_id = await cluster.submit()
        await cluster.queue.claim("ghost", 1, 0.1)
        await cluster.store.acquire_lease(run_id, "ghost-owner", 0.5)
        await cluster.store.set_status(run_id, RunStatus.RUNNING, owner="ghost-owner")
        worker = cluster.worker("w1", lease_ttl=0.5)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.serve)
            await cluster.wait_status(run_id, (RunStatus.STALLED,))
            with trio.fail_after(10):
                while redis_client.xpending(STREAM, "workers")["pending"]:
                    await trio.sleep(0.05)
            worker.stop()
        assert worker.counts["reclaimed"] == 1
        return run_id

    trio.run(main)
    assert redis_client.xlen(DEAD) == 0


def test_metrics_scrape_reports_the_queue_depth_and_pending_runs(
        make_cluster, redis_url, redis_client, tmp_path):
    import httpx
    from starlette.applications import Starlette

    from ironflow_core.api.metrics import metrics_route
    from ironflow_core.metrics import METRICS_PLUGIN_NAME, MetricsObserver, MetricsPlugin

    env = env_for(redis_url, REDIS_PREFIX="metricsq:")
    cluster = make_cluster(env, write_flow(tmp_path, TWO_STEPS))
    observer = MetricsObserver()
    registry = build_registry({}, extra=[(METRICS_PLUGIN_NAME, MetricsPlugin(observer))])

    app = Starlette(routes=[metrics_route(registry, cluster.queue)])

    async def submit_two_and_scrape() -> str:
        await cluster.submit(x=1)
        await cluster.submit(x=2)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return (await client.get("/metrics")).text

    page = trio.run(submit_two_and_scrape)
    assert "ironflow_queue_depth 2.0" in page
    assert "ironflow_queue_pending 0.0" in page
    assert "ironflow_queue_dead_letters 0.0" in page
    assert "ironflow_workers 0.0" in page
