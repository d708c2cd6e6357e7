"""Choosing a run queue (issue 16): the hook, the inline default, refused combinations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ironflow_core import hookimpl
from ironflow_core.errors import ConfigError, PluginConflictError
from ironflow_core.queues.select import open_queue, queue_name
from ironflow_core.registry import build_registry
from ironflow_core.specs import QueueSettings, QueueSpec

IRONFLOW = str(Path(sys.executable).with_name("ironflow"))


class _Recording:
    name = "recording"
    shared = True

    def __init__(self, settings: QueueSettings) -> None:
        self.settings = settings

    async def aclose(self) -> None:
        return None


class _QueuePlugin:
    @hookimpl
    def ironflow_register_queues(self):  # type: ignore[no-untyped-def]
        return [QueueSpec(name="recording", open=_Recording, summary="test queue")]


def _registry(*plugins: object):  # type: ignore[no-untyped-def]
    return build_registry({}, entry_points=False,
                          extra=[(f"q{i}", p) for i, p in enumerate(plugins)])


def test_inline_is_registered_by_the_core_and_is_the_default():
    registry = _registry()
    assert "inline" in registry.queues
    queue = open_queue(registry, {})
    assert queue.name == "inline" and queue.shared is False
    assert queue_name({}, {"queue_backend": "redis"}) == "redis"
    assert queue_name({"IRONFLOW_QUEUE": "inline"}, {"queue_backend": "redis"}) == "inline"


def test_a_plugin_queue_is_opened_with_the_store_and_redis_settings():
    registry = _registry(_QueuePlugin())
    assert "queue:recording" in next(p for p in registry.plugins if p.name == "q0").provides
    env = {"IRONFLOW_QUEUE": "recording", "IRONFLOW_STORE": "redis",
           "REDIS_URL": "redis://10.0.0.1:6390/2", "REDIS_PREFIX": "x:"}
    queue = open_queue(registry, env)
    assert isinstance(queue, _Recording)
    assert queue.settings.store_backend == "redis"
    assert queue.settings.option("REDIS_URL", "redis_url") == "redis://10.0.0.1:6390/2"
    assert queue.settings.option("REDIS_PREFIX", "redis_prefix") == "x:"


@pytest.mark.parametrize(("store", "where"), [("json", "local files"), ("memory", "this process")])
def test_a_shared_queue_with_a_local_store_is_refused_at_start_up(store, where):
    registry = _registry(_QueuePlugin())
    with pytest.raises(ConfigError) as caught:
        open_queue(registry, {"IRONFLOW_QUEUE": "recording", "IRONFLOW_STORE": store})
    message = str(caught.value)
    assert f"'{store}' state store" in message and where in message
    assert "IRONFLOW_STORE=redis" in message


def test_unknown_queue_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"Unknown queue 'kafka'.*inline"):
        open_queue(_registry(), {"IRONFLOW_QUEUE": "kafka"})


def test_two_plugins_claiming_one_queue_name_is_an_error_naming_both():
    with pytest.raises(PluginConflictError, match=r"Queue 'recording'.*'q0'.*'q1'"):
        _registry(_QueuePlugin(), _QueuePlugin())


def test_worker_and_submit_refuse_the_inline_queue_with_a_clear_error(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "IRONFLOW_LOG": "warn"}
    flow = tmp_path / "f.lua"
    flow.write_text('local flow = Flow.new("f")\nflow:step("a", nodes.log({message="x"}))\n'
                    "return flow\n")
    for args in (["worker"], ["workers"], ["submit", str(flow)]):
        done = subprocess.run([IRONFLOW, *args], cwd=tmp_path, env=env, text=True,
                              capture_output=True, timeout=60)
        assert done.returncode == 1, done.stderr
        assert "needs a shared queue: set IRONFLOW_QUEUE=redis" in done.stderr
        assert "Traceback" not in done.stderr
    done = subprocess.run([IRONFLOW, "worker"], cwd=tmp_path, text=True, capture_output=True,
                          env={**env, "IRONFLOW_QUEUE": "redis"}, timeout=60)
    assert done.returncode == 1
    assert "cannot reach the 'json' state store" in done.stderr
