"""``ironflow_core.testing``: isolated registries, runs, results and recorded events."""

from __future__ import annotations

import types

import pytest
import trio

from ironflow_core.errors import NodeError
from ironflow_core.hookspecs import hookimpl
from ironflow_core.model import FlowDefinition, RunStatus, StepSpec
from ironflow_core.specs import NodeSpec
from ironflow_core.stores.memory import MemoryStore
from ironflow_core.testing import (
    RunRecorder,
    arun_flow,
    assert_plugin_installed,
    clean_env,
    make_registry,
    run_flow,
)

pytest_plugins = ["pytester"]


async def _flaky(ctx, config):
    seen = ctx.services.scratch.setdefault("calls", 0) + 1
    ctx.services.scratch["calls"] = seen
    if seen <= config.get("fail_times", 0):
        raise NodeError(f"attempt {seen} failed")
    return {"attempts": seen, "env_seen": ctx.services.env.get("PROBE")}


flaky_plugin = types.SimpleNamespace(
    ironflow_register_nodes=hookimpl(
        lambda: [NodeSpec(name="flaky", run=_flaky, summary="fails N times")]
    )
)


def flow(*steps: StepSpec) -> FlowDefinition:
    return FlowDefinition(name="t", steps=steps)


def flaky(name: str, fail_times: int = 0, **kw) -> StepSpec:
    return StepSpec(name=name, node_type="flaky",
                    config={"fail_times": fail_times, "_step_name": name}, **kw)


def test_make_registry_holds_builtins_and_named_plugins_but_no_entry_points():
    registry = make_registry(("flaky-plugin", flaky_plugin))
    assert registry.node_providers["flaky"] == "flaky-plugin"
    assert "log" in registry.nodes  # built-ins stay
    assert "slugify" not in registry.nodes  # installed, but entry points are off
    assert "log" not in make_registry(builtins=False).nodes


def test_make_registry_accepts_module_names():
    registry = make_registry("ironflow_nodes_example.plugin")
    assert registry.node_providers["slugify"] == "ironflow_nodes_example.plugin"


def test_make_registry_fails_fast_on_a_broken_plugin():
    broken = types.SimpleNamespace(
        ironflow_register_nodes=hookimpl(lambda: 1 / 0)
    )
    with pytest.raises(AssertionError, match="'broken': ironflow_register_nodes: "
                                             "ZeroDivisionError"):
        make_registry(("broken", broken))


def test_run_flow_runs_a_programmatic_flow_with_retries_on_a_mock_clock():
    result = run_flow(flow(flaky("a", 2, max_retries=2, backoff_s=30.0)),
                      plugins=[flaky_plugin], autojump=True)
    result.assert_succeeded()
    assert result.ctx["attempts"] == 3
    assert result.events.types("a") == [
        "task_started", "task_failed", "task_retrying",
        "task_started", "task_failed", "task_retrying",
        "task_started", "task_succeeded",
    ]
    assert result.events.types()[0] == "run_started"
    assert [e.attempt for e in result.events.of_type("task_started")] == [1, 2, 3]


def test_assert_succeeded_lists_each_failed_step_with_its_error():
    result = run_flow(flow(flaky("a", 1), flaky("b", 0, dependencies=("a",))),
                      plugins=[flaky_plugin])
    assert result.status is RunStatus.FAILED
    assert result.failed_steps == ["a"]
    assert result.skipped_steps == ["b"]
    with pytest.raises(AssertionError) as caught:
        result.assert_succeeded()
    assert str(caught.value) == (
        "run 't' finished with status failed\n  step 'a' failed: attempt 1 failed"
    )
    result.assert_failed("a")
    with pytest.raises(AssertionError, match="expected step"):
        result.assert_failed("b")


def test_env_defaults_to_process_env_without_ironflow_settings(monkeypatch):
    monkeypatch.setenv("PROBE", "visible")
    monkeypatch.setenv("IRONFLOW_MAX_CONCURRENT_TASKS", "not-a-number")
    assert "IRONFLOW_MAX_CONCURRENT_TASKS" not in clean_env()
    result = run_flow(flow(flaky("a")), plugins=[flaky_plugin])
    assert result.ctx["env_seen"] == "visible"
    isolated = run_flow(flow(flaky("a")), plugins=[flaky_plugin], env={})
    assert isolated.ctx["env_seen"] is None


def test_run_flow_uses_the_given_store_and_keeps_the_record():
    store = MemoryStore()
    result = run_flow(flow(flaky("a")), plugins=[flaky_plugin], store=store,
                      context={"given": 1})
    stored = trio.run(store.get_run, result.run_id)
    assert stored.to_json() == result.record.to_json()
    assert result.ctx == {"given": 1, "attempts": 1, "env_seen": None}
    assert result.output("a")["attempts"] == 1
    with pytest.raises(KeyError, match="no step named 'zzz'"):
        result.output("zzz")


async def test_run_flow_inside_trio_points_to_arun_flow():
    with pytest.raises(RuntimeError, match="await arun_flow"):
        run_flow(flow(flaky("a")), plugins=[flaky_plugin])
    result = await arun_flow(flow(flaky("a")), plugins=[flaky_plugin])
    result.assert_succeeded()


def test_recorder_is_a_plain_observer_usable_on_its_own():
    recorder = RunRecorder()
    run_flow(flow(flaky("a")), plugins=[flaky_plugin], observers=[recorder])
    assert recorder.types() == [
        "run_started", "task_started", "task_succeeded", "context_updated", "run_finished",
    ]
    assert len(recorder.for_step("a")) == 2
    recorder.clear()
    assert list(recorder) == []


def test_assert_plugin_installed_reports_unknown_names():
    assert assert_plugin_installed("nodes-shell", nodes=["shell_command"]).status == "active"
    with pytest.raises(AssertionError, match="no plugin named 'nodes-nope'"):
        assert_plugin_installed("nodes-nope")
    with pytest.raises(AssertionError, match="does not provide node"):
        assert_plugin_installed("nodes-shell", nodes=["http_get"])


def test_opt_in_from_a_conftest_with_an_overridden_plugin_list(pytester):
    """The pytester way: a plugin author's conftest, a test file, a real pytest run."""
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makeconftest("""
        import types
        import pytest
        from ironflow_core import NodeSpec, hookimpl

        pytest_plugins = ["ironflow_core.testing"]

        async def shout(ctx, config):
            return {"shout": config["text"].upper()}

        @pytest.fixture
        def ironflow_plugins():
            return [("shouter", types.SimpleNamespace(ironflow_register_nodes=hookimpl(
                lambda: [NodeSpec(name="shout", run=shout)])))]
    """)
    pytester.makepyfile("""
        import pytest
        from ironflow_core.errors import ConfigError
        from ironflow_core.model import FlowDefinition, StepSpec

        def steps(*pairs):
            return FlowDefinition(name="t", steps=tuple(
                StepSpec(name=name, node_type=node, config=config)
                for name, node, config in pairs))

        def test_sync_fixture_uses_the_fixture_registry(run_flow, ironflow_registry):
            assert ironflow_registry.node_providers["shout"] == "shouter"
            assert "slugify" not in ironflow_registry.nodes  # entry points stay off
            result = run_flow(steps(("s", "shout", {"text": "hi"})))
            result.assert_succeeded()
            assert result.ctx["shout"] == "HI"

        def test_extra_plugins_join_the_fixture_ones(run_flow):
            result = run_flow(steps(("s", "shout", {"text": "a b"}),
                                    ("g", "slugify", {"input": "A B"})),
                              plugins=["ironflow_nodes_example.plugin"])
            result.assert_succeeded()
            assert (result.ctx["shout"], result.ctx["slug"]) == ("A B", "a-b")

        async def test_async_fixture_sees_the_fixture_env(arun_flow, ironflow_env):
            ironflow_env["IRONFLOW_MAX_CONCURRENT_TASKS"] = "bogus"
            with pytest.raises(ConfigError, match="IRONFLOW_MAX_CONCURRENT_TASKS"):
                await arun_flow(steps(("s", "shout", {"text": "x"})))
    """)
    outcome = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    outcome.assert_outcomes(passed=3)


# -- issue 18: a mistyped path is a missing file; arun_flow(autojump=True) ------

def test_a_missing_lua_path_is_a_missing_file_not_lua_source(tmp_path):
    from ironflow_core.errors import FlowLoadError

    missing = str(tmp_path / "flows" / "greet.lua")
    with pytest.raises(FlowLoadError, match=r"^Flow file '.*greet\.lua' not found$"):
        run_flow(missing)


DELAYED = """
local flow = Flow.new("sleepy")
flow:step("wait", nodes.delay({ seconds = 3600 }))
return flow
"""


async def test_arun_flow_autojump_on_a_mock_clock(mock_clock):
    from ironflow_core.testing import arun_flow

    start = trio.current_time()
    result = await arun_flow(DELAYED, autojump=True)
    result.assert_succeeded()
    assert trio.current_time() - start >= 3600


async def test_arun_flow_autojump_needs_a_mock_clock():
    from ironflow_core.testing import arun_flow

    with pytest.raises(RuntimeError, match="autojump_clock"):
        await arun_flow(DELAYED, autojump=True)
