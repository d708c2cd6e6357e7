"""The Redis store against the shared conformance suite, plus its Redis layout (ST-40..46)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import trio

from ironflow_core.errors import RunConflictError, RunNotFoundError, StoreCorruptionError
from ironflow_core.model import RunStatus, TaskStatus
from ironflow_core.store_conformance import T0, T1, T2, StoreConformance, record, task
from ironflow_store_redis.address import parse_redis_url
from ironflow_store_redis.store import RedisStore

from .conftest import RedisServer, bytes_received, round_trips, sent_commands


class TestRedisStore(StoreConformance):
    @pytest.fixture(autouse=True)
    def _server(self, redis_server: RedisServer, redis_url: str) -> None:
        self.server = redis_server
        self.url = redis_url

    async def make_store(self) -> RedisStore:
        return RedisStore(parse_redis_url(self.url), prefix=f"t{uuid.uuid4().hex[:8]}:")

    def write_volume(self, store: RedisStore) -> int:
        """Bytes the server received (each test has the server to itself)."""
        with self.server.client() as client:
            return bytes_received(client)

    def storage_touched(self, store: RedisStore) -> bool:
        return store.client.calls > 0


# --------------------------------------------------------------------- helpers
def open_store(url: str, **kwargs) -> RedisStore:
    return RedisStore(parse_redis_url(url), **kwargs)


async def seeded(url: str, *runs: tuple[str, str | None], **kwargs) -> RedisStore:
    store = open_store(url, **kwargs)
    for run_id, started in runs:
        await store.create_run(record(run_id, started=started, tasks={"a": task("a")}))
    return store


def catalog(client, prefix: str = "ironflow:") -> dict:
    """Every catalog structure, as an independent client (redis-py) sees it."""
    return {
        "index": client.smembers(f"{prefix}runs:index"),
        "members": client.hgetall(f"{prefix}run_catalog:v1:members"),
        "all": client.zrange(f"{prefix}run_catalog:v1:all", 0, -1),
        **{
            status: client.zrange(f"{prefix}run_catalog:v1:status:{status}", 0, -1)
            for status in ("pending", "running", "success", "failed", "stalled", "cancelled")
        },
    }


STATUSES = ("pending", "running", "success", "failed", "stalled", "cancelled")


# ------------------------------------------------------------- ST-41..43 keys
async def test_st_42_create_writes_upstream_keys_fields_and_catalog(redis_url, redis_client):
    store = open_store(redis_url)
    await store.create_run(record("run-1", ctx={"x": 1.0}, tasks={"a": task("a")}))
    key = "ironflow:runs:run-1"
    assert redis_client.type(key) == "hash"
    fields = redis_client.hgetall(key)
    assert {"info", "summary", "revision", "incarnation"} <= set(fields)
    assert fields["summary"] == (
        '{"id":"run-1","flow_name":"flow","status":"pending",'
        f'"started":"{T0}","finished":null,"task_count":1}}'
    )
    info = json.loads(fields["info"])
    assert list(info) == ["id", "flow_name", "status", "started", "finished", "ctx", "tasks"]
    assert info == (await store.get_run("run-1")).to_json()
    assert '"x":1.0' in fields["info"]  # JSON-2: a float stays a float
    member = "1:8006474846204000:run-1"
    assert catalog(redis_client) == {
        "index": {"run-1"}, "members": {"run-1": member}, "all": [member],
        "pending": [member], **{s: [] for s in STATUSES[1:]},
    }
    await store.aclose()


async def test_st_43_status_changes_move_the_member_between_status_sets(redis_url, redis_client):
    store = await seeded(redis_url, ("run-1", T0))
    member = "1:8006474846204000:run-1"
    await store.set_status("run-1", RunStatus.RUNNING)
    assert catalog(redis_client)["running"] == [member]
    assert catalog(redis_client)["pending"] == []
    await store.set_status("run-1", RunStatus.FAILED, at=T1)
    view = catalog(redis_client)
    assert view["failed"] == [member] and view["all"] == [member]
    assert all(view[s] == [] for s in STATUSES if s != "failed")
    await store.delete_run("run-1")
    assert catalog(redis_client) == {
        "index": set(), "members": {}, "all": [], **{s: [] for s in STATUSES}
    }
    await store.aclose()


async def test_st_41_a_run_called_index_gets_a_hex_segment(redis_url, redis_client):
    store = await seeded(redis_url, ("index", T0), ("other", T1))
    assert redis_client.type("ironflow:runs:~696e646578") == "hash"
    assert redis_client.type("ironflow:runs:index") == "set"  # the legacy catalog, not a run
    assert redis_client.smembers("ironflow:runs:index") == {"index", "other"}
    assert (await store.get_run("index")).id == "index"
    assert [s.id for s in (await store.list_runs()).runs] == ["other", "index"]
    await store.delete_run("index")
    assert redis_client.exists("ironflow:runs:~696e646578") == 0
    await store.aclose()


async def test_st_40_prefix_applies_to_every_key(redis_url, redis_client):
    store = await seeded(redis_url, ("run-1", T0), prefix="tenant-a/")
    await store.set_status("run-1", RunStatus.SUCCESS)
    keys = sorted(redis_client.keys("*"))
    assert keys == [
        "tenant-a/run_catalog:v1:all", "tenant-a/run_catalog:v1:members",
        "tenant-a/run_catalog:v1:status:success", "tenant-a/runs:index",
        "tenant-a/runs:run-1",
    ]
    other = open_store(redis_url)  # the default prefix sees nothing
    assert (await other.list_runs()).runs == ()
    await store.aclose()
    await other.aclose()


# -------------------------------------------------------- ST-44 revisions, CAS
async def test_st_44_revision_changes_on_every_mutation_incarnation_never(redis_url, redis_client):
    store = await seeded(redis_url, ("run-1", T0))
    key = "ironflow:runs:run-1"
    seen = [redis_client.hget(key, "revision")]
    incarnation = redis_client.hget(key, "incarnation")
    await store.set_status("run-1", RunStatus.RUNNING)
    seen.append(redis_client.hget(key, "revision"))
    await store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING, attempt=1)])
    seen.append(redis_client.hget(key, "revision"))
    await store.merge_context("run-1", {"k": 1})
    seen.append(redis_client.hget(key, "revision"))
    await store.set_status("run-1", RunStatus.SUCCESS)
    seen.append(redis_client.hget(key, "revision"))
    assert len(set(seen)) == len(seen)
    assert redis_client.hget(key, "incarnation") == incarnation
    await store.aclose()


async def test_st_46_a_finished_run_has_a_complete_upstream_record(redis_url, redis_client):
    store = open_store(redis_url)
    await store.create_run(record("run-1", ctx={"in": 1}, tasks={"a": task("a"), "b": task("b")}))
    await store.set_status("run-1", RunStatus.RUNNING)
    await store.upsert_tasks("run-1", [task("a", TaskStatus.SUCCESS, attempt=1, output={"v": 1})])
    await store.upsert_tasks("run-1", [task("c", TaskStatus.SKIPPED, finished=T1)])
    await store.merge_context("run-1", {"out": [1, 2]})
    await store.set_status("run-1", RunStatus.SUCCESS, at=T2)
    fields = redis_client.hgetall("ironflow:runs:run-1")
    expected = (await store.get_run("run-1")).to_json()
    assert json.loads(fields["info"]) == expected
    assert expected["ctx"] == {"in": 1, "out": [1, 2]} and sorted(expected["tasks"]) == ["a", "b", "c"]
    assert json.loads(fields["summary"])["task_count"] == 3
    # Nothing newer than `info` is left in the private fields.
    assert not [f for f, v in fields.items() if f.startswith(("py:task:", "py:ctx:")) and v]
    await store.aclose()


async def test_st_46_a_run_written_by_upstream_is_read_listed_and_updated(redis_url, redis_client):
    raw = record("up-1", status=RunStatus.RUNNING, ctx={"n": 1},
                 tasks={"a": task("a", TaskStatus.RUNNING, attempt=1), "b": task("b")}).to_json()
    summary = {k: raw[k] for k in ("id", "flow_name", "status", "started", "finished")}
    summary["task_count"] = 2
    member = "1:8006474846204000:up-1"
    redis_client.hset("ironflow:runs:up-1", mapping={
        "info": json.dumps(raw), "summary": json.dumps(summary),
        "revision": "r1", "incarnation": "i1",
    })
    redis_client.sadd("ironflow:runs:index", "up-1")
    redis_client.hset("ironflow:run_catalog:v1:members", "up-1", member)
    redis_client.zadd("ironflow:run_catalog:v1:all", {member: 0})
    redis_client.zadd("ironflow:run_catalog:v1:status:running", {member: 0})
    store = open_store(redis_url)
    assert (await store.get_run("up-1")).to_json() == raw
    assert [s.task_count for s in (await store.list_runs(status=RunStatus.RUNNING)).runs] == [2]
    await store.upsert_tasks("up-1", [task("a", TaskStatus.SUCCESS, attempt=1), task("c")])
    got = await store.get_run("up-1")
    assert got.tasks["a"].status is TaskStatus.SUCCESS and sorted(got.tasks) == ["a", "b", "c"]
    assert (await store.list_runs()).runs[0].task_count == 3
    await store.set_status("up-1", RunStatus.SUCCESS)
    assert json.loads(redis_client.hget("ironflow:runs:up-1", "info")) == (
        await store.get_run("up-1")
    ).to_json()
    assert redis_client.hget("ironflow:runs:up-1", "incarnation") == "i1"
    await store.aclose()


# -------------------------------------------------- cost: O(that task) per step
async def test_arch_3_a_task_update_costs_the_same_in_a_small_and_a_2000_step_run(
    redis_url, redis_client
):
    """Counted by the server: the commands the store sent and the bytes it received."""
    store = open_store(redis_url)
    await store.create_run(record("warm-up", tasks={"a": task("a")}))
    await store.upsert_tasks("warm-up", [task("a")])  # the server learns the script once
    costs = []
    for run_id, size in (("small", 10), ("large", 2000)):
        names = [f"step_{i:04d}" for i in range(size)]
        await store.create_run(record(run_id, tasks={n: task(n) for n in names}))
        info = redis_client.hget(f"ironflow:runs:{run_id}", "info")
        commands, received = sent_commands(redis_client), bytes_received(redis_client)
        await store.upsert_tasks(run_id, [task("step_0005", TaskStatus.SUCCESS, attempt=1,
                                               output={"v": 1})])
        sent = sent_commands(redis_client) - commands
        # The byte count includes the two INFO requests of the snapshot: constant too.
        costs.append((round_trips(sent), sent["evalsha"], bytes_received(redis_client) - received))
        # The whole record was not rewritten: `info` is untouched by a task update.
        assert redis_client.hget(f"ironflow:runs:{run_id}", "info") == info
    assert costs[0] == costs[1]
    assert costs[0][:2] == (1, 1)  # one EVALSHA per task upsert, nothing else
    assert costs[0][2] < 450
    await store.aclose()


# ---------------------------------------------------------------- ST-45 TTL
async def test_st_45_every_mutation_slides_the_ttl(redis_url, redis_client):
    store = open_store(redis_url, ttl_seconds=1000)
    await store.create_run(record("run-1", tasks={"a": task("a")}))
    key = "ironflow:runs:run-1"
    assert 990 < redis_client.ttl(key) <= 1000
    mutations = [
        lambda: store.set_status("run-1", RunStatus.RUNNING),
        lambda: store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING, attempt=1)]),
        lambda: store.merge_context("run-1", {"k": 1}),
        lambda: store.set_status("run-1", RunStatus.SUCCESS),
    ]
    for mutate in mutations:
        redis_client.expire(key, 5)
        await mutate()
        assert 990 < redis_client.ttl(key) <= 1000
    # The catalog itself never expires; only run hashes do.
    assert redis_client.ttl("ironflow:run_catalog:v1:all") == -1
    await store.aclose()


async def test_st_45_without_ttl_the_run_hash_is_persisted(redis_url, redis_client):
    store = await seeded(redis_url, ("run-1", T0))
    key = "ironflow:runs:run-1"
    assert redis_client.ttl(key) == -1
    redis_client.expire(key, 50)  # e.g. left by a writer that had REDIS_TTL set
    await store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING, attempt=1)])
    assert redis_client.ttl(key) == -1
    await store.aclose()


async def test_st_45_expired_runs_leave_the_catalog_when_listing_meets_them(
    redis_url, redis_client
):
    store = await seeded(redis_url, ("run-1", T0), ("run-2", T1), ("run-3", T2), ttl_seconds=600)
    redis_client.pexpire("ironflow:runs:run-2", 1)
    time.sleep(0.05)
    assert redis_client.exists("ironflow:runs:run-2") == 0
    assert "run-2" in catalog(redis_client)["members"]  # not yet noticed
    page = await store.list_runs(status=RunStatus.PENDING, limit=1)
    assert [s.id for s in page.runs] == ["run-3"]
    page = await store.list_runs(status=RunStatus.PENDING, limit=1, after=page.next_cursor)
    assert [s.id for s in page.runs] == ["run-1"] and not page.has_more
    view = catalog(redis_client)
    assert "run-2" not in view["members"] and "run-2" not in view["index"]
    assert not any("run-2" in m for s in ("all", *STATUSES) for m in view[s])
    with pytest.raises(RunNotFoundError):
        await store.get_run("run-2")
    with pytest.raises(RunNotFoundError):
        await store.upsert_tasks("run-2", [task("a")])  # an expired run is never resurrected
    await store.aclose()


# --------------------------------------------------- ST-43 catalog repair
async def test_st_43_stale_catalog_entries_are_repaired_by_listing(redis_url, redis_client):
    store = await seeded(redis_url, ("run-1", T0), ("run-2", T1))
    await store.set_status("run-1", RunStatus.SUCCESS)
    member1 = redis_client.hget("ironflow:run_catalog:v1:members", "run-1")
    # A writer that died half-way would leave run-1 filed under `running` too.
    redis_client.zadd("ironflow:run_catalog:v1:status:running", {member1: 0})
    # ... and an entry at a wrong position (as if `started` had been different).
    wrong = "1:8006474846204001:run-2"
    redis_client.zadd("ironflow:run_catalog:v1:all", {wrong: 0})
    assert (await store.list_runs(status=RunStatus.RUNNING)).runs == ()
    assert redis_client.zrange("ironflow:run_catalog:v1:status:running", 0, -1) == []
    assert [s.id for s in (await store.list_runs()).runs] == ["run-2", "run-1"]
    assert wrong not in redis_client.zrange("ironflow:run_catalog:v1:all", 0, -1)
    await store.aclose()


async def test_st_22_pages_stay_stable_while_runs_are_added(redis_url):
    def at(second: float) -> str:
        whole, frac = divmod(int(second * 10), 10)
        return f"2026-01-01T00:{whole // 60:02d}:{whole % 60:02d}.{frac}Z"

    store = await seeded(redis_url, *[(f"run-{i:02d}", at(i)) for i in range(20)])
    first = await store.list_runs(limit=5)
    assert [s.id for s in first.runs] == [f"run-{i:02d}" for i in range(19, 14, -1)]
    # Newer runs arrive, and one lands between runs still to be paged.
    for i in range(20, 30):
        await store.create_run(record(f"run-{i:02d}", started=at(i)))
    await store.create_run(record("run-mid", started=at(12.5)))
    seen = [s.id for s in first.runs]
    after = first.next_cursor
    while after is not None:
        page = await store.list_runs(limit=5, after=after)
        seen += [s.id for s in page.runs]
        after = page.next_cursor
    expected = [f"run-{i:02d}" for i in range(19, 12, -1)] + ["run-mid"] + [
        f"run-{i:02d}" for i in range(12, -1, -1)
    ]
    assert seen == expected
    await store.aclose()


# ------------------------------------------------ ST-13 writers, ST-35 delete
async def test_st_13_a_writer_outliving_delete_and_recreate_gets_not_found(redis_url):
    engine_a = await seeded(redis_url, ("run-1", T0))
    await engine_a.set_status("run-1", RunStatus.RUNNING)
    other = open_store(redis_url)
    await other.delete_run("run-1")
    await other.create_run(record("run-1", flow_name="new", tasks={"a": task("a")}))
    with pytest.raises(RunNotFoundError):
        await engine_a.upsert_tasks("run-1", [task("a", TaskStatus.SUCCESS, attempt=1)])
    with pytest.raises(RunNotFoundError):
        await engine_a.set_status("run-1", RunStatus.SUCCESS)
    got = await other.get_run("run-1")
    assert (got.flow_name, got.status, got.tasks["a"].status) == (
        "new", RunStatus.PENDING, TaskStatus.PENDING
    )
    await engine_a.aclose()
    await other.aclose()


async def test_st_35_deleting_a_running_run_with_a_live_lease_is_a_conflict(
    redis_url, redis_client
):
    store = await seeded(redis_url, ("run-1", T0))
    await store.set_status("run-1", RunStatus.RUNNING)
    future = int((time.time() + 60) * 1_000_000)
    redis_client.hset("ironflow:runs:run-1", mapping={
        "lease_owner": "someone", "lease_expires_micros": str(future)
    })
    with pytest.raises(RunConflictError, match=r"^Run 'run-1' is still executing$"):
        await store.delete_run("run-1")
    await store.set_status("run-1", RunStatus.STALLED)
    await store.delete_run("run-1")
    assert redis_client.exists("ironflow:runs:run-1") == 0
    await store.aclose()


async def test_st_44_separate_writers_on_one_run_lose_no_update(redis_url):
    """Five store instances (as five processes would) write one run at once."""
    names = [f"t{i}" for i in range(100)]
    creator = open_store(redis_url)
    await creator.create_run(record("run-1", tasks={n: task(n) for n in names}))
    writers = [open_store(redis_url) for _ in range(5)]

    async def write(w: int) -> None:
        store = writers[w]
        for i in range(w, 100, 5):
            await store.upsert_tasks("run-1", [task(f"t{i}", TaskStatus.RUNNING, attempt=1)])
            await store.upsert_tasks("run-1", [
                task(f"t{i}", TaskStatus.SUCCESS, attempt=1, output={"i": i}),
                task(f"new{i}", TaskStatus.SKIPPED),
            ])
            await store.merge_context("run-1", {f"k{i}": i})
            if i % 10 == 0:  # status folds race with the task writers
                await store.set_status("run-1", RunStatus.RUNNING)

    async with trio.open_nursery() as nursery:
        for w in range(5):
            nursery.start_soon(write, w)
    await creator.set_status("run-1", RunStatus.SUCCESS)
    got = await creator.get_run("run-1")
    assert len(got.tasks) == 200
    assert all(got.tasks[f"t{i}"].output == {"i": i} for i in range(100))
    assert all(got.ctx[f"k{i}"] == i for i in range(100))
    assert (await creator.list_runs()).runs[0].task_count == 200
    for store in (creator, *writers):
        await store.aclose()


# ----------------------------------------------------------- ST-12 corruption
async def test_st_12_damaged_records_are_corruption_not_absence(redis_url, redis_client):
    store = await seeded(redis_url, ("run-1", T0), ("run-2", T1))
    redis_client.hset("ironflow:runs:run-1", "info", "{not json")
    with pytest.raises(StoreCorruptionError, match=r"^Failed to parse run 'run-1' stored in Redis"):
        await store.get_run("run-1")
    redis_client.hset("ironflow:runs:run-2", "info", json.dumps({"id": "someone-else"}))
    with pytest.raises(StoreCorruptionError, match="does not match the key"):
        await store.get_run("run-2")
    redis_client.set("ironflow:runs:run-3", "a string")
    with pytest.raises(StoreCorruptionError, match="holds the wrong kind of value"):
        await store.get_run("run-3")
    await store.aclose()


async def test_st_12_a_damaged_task_field_is_corruption_naming_the_task(redis_url, redis_client):
    store = await seeded(redis_url, ("run-1", T0))
    await store.upsert_tasks("run-1", [task(f"t{i}", TaskStatus.SUCCESS, attempt=1)
                                       for i in range(5)])
    record = await store.get_run("run-1")  # five task fields parsed together
    assert [record.tasks[f"t{i}"].status for i in range(5)] == [TaskStatus.SUCCESS] * 5
    for damage in ('{"name": "t3"', '1, 2', '{"name": "t3", "status": "nonsense"}'):
        redis_client.hset("ironflow:runs:run-1", "py:task:t3", damage)
        with pytest.raises(StoreCorruptionError,
                           match=r"^Failed to parse run 'run-1' stored in Redis: .*"
                                 + ("task 't3'" if "nonsense" in damage else "")):
            await store.get_run("run-1")
    await store.aclose()


# ------------------------------------------------------- ST-42/45/52 leases
def micros_now() -> int:
    return time.time_ns() // 1000


async def test_st_42_lease_lives_in_the_run_hash_and_the_expiry_zset(redis_url, redis_client):
    store = await seeded(redis_url, ("run-1", T0))
    before = micros_now()
    await store.acquire_lease("run-1", "owner-a", 90)
    fields = redis_client.hgetall("ironflow:runs:run-1")
    assert fields["lease_owner"] == "owner-a"
    expires = int(fields["lease_expires_micros"])
    assert before + 90_000_000 <= expires <= micros_now() + 90_000_000
    assert redis_client.zrange("ironflow:run_leases:v1:expiry", 0, -1, withscores=True) == [
        ("run-1", float(expires))
    ]
    await store.renew_lease("run-1", "owner-a", 90)
    assert int(redis_client.hget("ironflow:runs:run-1", "lease_expires_micros")) >= expires
    await store.release_lease("run-1", "owner-a")
    fields = redis_client.hgetall("ironflow:runs:run-1")
    assert "lease_owner" not in fields and "lease_expires_micros" not in fields
    assert redis_client.zcard("ironflow:run_leases:v1:expiry") == 0
    await store.aclose()


async def test_st_45_an_owned_run_outlives_its_lease_by_90_seconds(redis_url, redis_client):
    store = await seeded(redis_url, ("run-1", T0), ttl_seconds=10)
    key = "ironflow:runs:run-1"
    assert 0 < redis_client.ttl(key) <= 10
    await store.acquire_lease("run-1", "owner", 90)
    assert redis_client.ttl(key) >= 179
    # task and context writes slide the TTL but never below the lease's
    await store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING, attempt=1)])
    await store.merge_context("run-1", {"k": 1})
    await store.set_status("run-1", RunStatus.SUCCESS)
    assert redis_client.ttl(key) >= 179
    await store.release_lease("run-1", "owner")
    assert 0 < redis_client.ttl(key) <= 10
    await store.aclose()
    persistent = await seeded(redis_url, ("run-2", T0))
    await persistent.acquire_lease("run-2", "owner", 90)
    await persistent.upsert_tasks("run-2", [task("a", TaskStatus.RUNNING, attempt=1)])
    assert redis_client.ttl("ironflow:runs:run-2") == -1  # without REDIS_TTL: PERSIST
    await persistent.aclose()


async def test_st_52_a_lease_left_by_a_dead_upstream_process_is_reconciled(
    redis_url, redis_client
):
    """Another implementation wrote the lease (fields + ZSET entry) and died."""
    store = await seeded(redis_url, ("run-1", T0), ("run-2", T1))
    await store.set_status("run-1", RunStatus.RUNNING)
    await store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING, attempt=1)])
    expired = micros_now() - 1_000_000
    for run_id in ("run-1", "ghost"):
        redis_client.zadd("ironflow:run_leases:v1:expiry", {run_id: expired})
    redis_client.hset("ironflow:runs:run-1", mapping={
        "lease_owner": "upstream", "lease_expires_micros": str(expired)
    })
    assert await store.reconcile_expired(micros_now()) == ["run-1"]
    got = await store.get_run("run-1")
    assert got.status is RunStatus.STALLED
    assert (got.tasks["a"].status, got.tasks["a"].error) == (
        TaskStatus.FAILED, "task stopped after execution-owner lease expired")
    fields = redis_client.hgetall("ironflow:runs:run-1")
    assert "lease_owner" not in fields
    assert json.loads(fields["summary"])["status"] == "stalled"  # upstream sees it too
    assert json.loads(fields["info"])["tasks"]["a"]["status"] == "failed"
    assert redis_client.zcard("ironflow:run_leases:v1:expiry") == 0  # the ghost went too
    assert redis_client.zrange("ironflow:run_catalog:v1:status:stalled", 0, -1) == [
        f"1:{(1767225600000000 ^ (1 << 63)):016x}:run-1"
    ]
    assert (await store.get_run("run-2")).status is RunStatus.PENDING
    await store.aclose()
