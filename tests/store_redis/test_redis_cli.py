"""``IRONFLOW_STORE=redis``: the plugin, and ``ironflow run/list/inspect`` as subprocesses (CLI-13)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ironflow_core.errors import ConfigError
from ironflow_core.model import RunStatus
from ironflow_core.registry import build_registry
from ironflow_core.store_conformance import record, task
from ironflow_core.stores.select import open_store
from ironflow_store_redis.address import parse_redis_url
from ironflow_store_redis.store import RedisStore

from .conftest import free_port

IRONFLOW = str(Path(sys.executable).with_name("ironflow"))


def cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("IRONFLOW_", "REDIS_"))}
    environment.update({"IRONFLOW_STORE": "redis", **env})
    return subprocess.run([IRONFLOW, *args], cwd=tmp_path, env=environment, text=True,
                          capture_output=True, timeout=60)


# ---------------------------------------------------------------- the plugin
def test_plugin_import_does_not_import_a_redis_client():
    code = ("import sys, ironflow_store_redis.plugin as p; p.ironflow_register_stores(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('redis', 'ironflow_store_redis')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['ironflow_store_redis', 'ironflow_store_redis.plugin']"


def test_cli_13_ironflow_store_redis_opens_the_store_from_the_environment():
    # otel registers an observer once an earlier test installed a tracer provider, and
    # with any observer the store comes wrapped (store_failed events): keep it out
    registry = build_registry({"IRONFLOW_DISABLED_PLUGINS": "otel"})
    assert "redis" in registry.stores
    env = {"IRONFLOW_STORE": "redis", "REDIS_URL": "redis://h:7000/2",
           "REDIS_PREFIX": "p:", "REDIS_TTL": "60"}
    store = open_store(registry, env)
    assert isinstance(store, RedisStore)
    assert (store.address.display, store.keys.prefix, store.ttl_seconds) == (
        "redis://h:7000/2", "p:", 60
    )
    default = open_store(registry, {"IRONFLOW_STORE": "redis"})
    assert (default.address.display, default.keys.prefix, default.ttl_seconds) == (
        "redis://127.0.0.1:6379/0", "ironflow:", None
    )
    yaml_config = {"store_backend": "redis", "redis_url": "redis://y:1/1", "redis_prefix": ""}
    from_yaml = open_store(registry, {}, config=yaml_config)
    assert (from_yaml.address.display, from_yaml.keys.prefix) == ("redis://y:1/1", "")
    with pytest.raises(ConfigError, match=r"^Invalid REDIS_URL 'http://h/'"):
        open_store(registry, {"IRONFLOW_STORE": "redis", "REDIS_URL": "http://u:pw@h/"})


# ------------------------------------------------------------ list / inspect
async def test_cli_53_list_pages_101_runs_from_redis(tmp_path, redis_url):
    store = RedisStore(parse_redis_url(redis_url), prefix="cli:")
    for i in range(101):
        await store.create_run(record(f"run-{i:03d}",
                                      started=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z"))
    await store.set_status("run-100", RunStatus.SUCCESS)
    await store.aclose()
    env = {"REDIS_URL": redis_url, "REDIS_PREFIX": "cli:"}
    first = cli(tmp_path, "list", "--format", "json", **env)
    assert first.returncode == 0, first.stderr
    page = json.loads(first.stdout)
    assert (page["limit"], page["returned"], page["has_more"]) == (100, 100, True)
    assert page["runs"][0]["id"] == "run-100" and page["runs"][0]["status"] == "success"
    second = json.loads(cli(tmp_path, "list", "--format", "json", "--after",
                            page["next_cursor"], **env).stdout)
    assert (second["returned"], second["has_more"], second["runs"][0]["id"]) == (
        1, False, "run-000"
    )
    table = cli(tmp_path, "list", "--status", "pending", "--limit", "2", **env)
    assert table.returncode == 0
    assert "run-099" in table.stdout and "Continue with --status pending --after" in table.stdout


async def test_cli_60_inspect_reads_a_run_from_redis(tmp_path, redis_url):
    store = RedisStore(parse_redis_url(redis_url))
    run = record("run-1", ctx={"x": 1.5}, tasks={"a": task("a")})
    await store.create_run(run)
    await store.aclose()
    out = cli(tmp_path, "inspect", "run-1", REDIS_URL=redis_url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == run.to_json()
    missing = cli(tmp_path, "inspect", "nope", REDIS_URL=redis_url)
    assert (missing.returncode, missing.stderr) == (1, "Error: Run 'nope' not found\n")


def test_st_40_cli_against_a_redis_that_is_down(tmp_path):
    port = free_port()
    out = cli(tmp_path, "list", REDIS_URL=f"redis://admin:hunter2@127.0.0.1:{port}/0")
    assert out.returncode == 1
    assert out.stderr == (
        f"Error: cannot reach Redis at redis://127.0.0.1:{port}/0: Connection refused\n"
    )
    bad_ttl = cli(tmp_path, "list", REDIS_TTL="soon")
    assert (bad_ttl.returncode, bad_ttl.stderr) == (
        1, "Error: Invalid value 'soon' for REDIS_TTL (environment): expected a positive integer\n")


# ------------------------------------------------------------------- run
@pytest.mark.skipif(importlib.util.find_spec("ironflow_core.loading") is None,
                    reason="the Lua flow loader (ironflow_core.loading) has not landed yet")
async def test_cli_20_run_stores_the_run_in_redis(tmp_path, redis_url):
    flow = tmp_path / "hello.lua"
    flow.write_text(
        'local flow = Flow.new("hello")\n'
        'flow:step("greet", nodes.log({ message = "hi" }))\n'
        'flow:step("wait", nodes.delay({ seconds = 0 })):depends_on("greet")\n'
        "return flow\n"
    )
    env = {"REDIS_URL": redis_url, "REDIS_PREFIX": "run:"}
    ran = cli(tmp_path, "run", str(flow), "--format", "json", **env)
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["id"]
    listed = json.loads(cli(tmp_path, "list", "--format", "json", **env).stdout)
    assert [(r["id"], r["status"], r["task_count"]) for r in listed["runs"]] == [
        (run_id, "success", 2)
    ]
    inspected = json.loads(cli(tmp_path, "inspect", run_id, **env).stdout)
    assert inspected["status"] == "success" and sorted(inspected["tasks"]) == ["greet", "wait"]
