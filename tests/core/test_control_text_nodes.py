"""Node-level tests for if_node, switch_node (semantics.md#control-nodes) and template_render, log, delay (semantics.md#text-nodes)."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
import trio

from ironflow_core.configs import ConfigFieldError, structure_config
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.testing import make_registry, node_context

REGISTRY = make_registry()


def make_ctx(data: dict[str, Any], step: str, node_type: str, raw: dict[str, Any]) -> NodeContext:
    return node_context(data, registry=REGISTRY, step_name=step, node_type=node_type,
                        raw_config=raw)


async def run_node(
    node_type: str, raw: dict[str, Any], data: dict[str, Any] | None = None, step: str = "s"
) -> dict[str, Any]:
    """Structure the config as the loader does, then call the node's run."""
    spec = REGISTRY.nodes[node_type]
    raw = {**raw, "_step_name": step}
    config = structure_config(spec.config, raw)
    return dict(await spec.run(make_ctx(data or {}, step, node_type, raw), config))


def test_appendix_b_summaries() -> None:
    summaries = {name: REGISTRY.nodes[name].summary for name in REGISTRY.nodes}
    assert summaries["if_node"] == "Evaluate a condition and set a route"
    assert summaries["switch_node"] == "Multi-case routing based on a value"
    assert summaries["template_render"] == (
        "Render a string template with context variable interpolation"
    )
    assert summaries["log"] == "Write a message to the workflow log"
    assert summaries["delay"] == "Pause execution for a specified duration"


# -- if_node ------------------------------------------------------------------


async def test_if_1_true_condition_uses_default_route() -> None:
    out = await run_node("if_node", {"condition": "ctx.amount > 100"}, {"amount": 200}, "check")
    assert out == {"_route_check": "true", "_condition_result_check": True}


async def test_if_1_false_condition_does_not_fail() -> None:
    out = await run_node("if_node", {"condition": "ctx.amount > 100"}, {"amount": 50}, "check")
    assert out == {"_route_check": "false", "_condition_result_check": False}


async def test_if_1_custom_routes() -> None:
    raw = {"condition": "ctx.amount > 100", "true_route": "high", "false_route": "low"}
    assert (await run_node("if_node", raw, {"amount": 200}))["_route_s"] == "high"
    assert (await run_node("if_node", raw, {"amount": 5}))["_route_s"] == "low"


@pytest.mark.parametrize(
    ("node_type", "raw", "field"),
    [
        ("if_node", {"condition": 5}, "condition"),
        ("if_node", {"condition": "ctx.ok", "true_route": 1}, "true_route"),
        ("if_node", {"condition": "ctx.ok", "false_route": ["x"]}, "false_route"),
        ("switch_node", {"value": 1, "cases": {}}, "value"),
        ("switch_node", {"value": "v", "cases": ["gold"]}, "cases"),
        ("switch_node", {"value": "v", "cases": {}, "default": 3}, "default"),
        ("template_render", {"template": 5, "output_key": "k"}, "template"),
        ("template_render", {"template": "x", "output_key": True}, "output_key"),
    ],
)
def test_wrongly_typed_fields_are_load_errors(node_type: str, raw: dict, field: str) -> None:
    """docs/compatibility.md: configs are type-checked when the flow loads."""
    with pytest.raises(ConfigFieldError) as info:
        structure_config(REGISTRY.nodes[node_type].config, raw)
    assert info.value.problems[0].endswith(f"@ $.{field}")


async def test_if_1_string_equality_and_exists() -> None:
    out = await run_node("if_node", {"condition": 'ctx.name == "Alice"'}, {"name": "Alice"})
    assert out["_condition_result_s"] is True
    out = await run_node("if_node", {"condition": "ctx.x exists"}, {"x": None})
    assert out["_condition_result_s"] is True
    out = await run_node("if_node", {"condition": "ctx.x exists"}, {})
    assert out == {"_route_s": "false", "_condition_result_s": False}


async def test_if_1_condition_is_not_interpolated() -> None:
    out = await run_node("if_node", {"condition": "ctx.a == ${ctx.b}"}, {"a": "x", "b": "x"})
    assert out["_condition_result_s"] is False
    out = await run_node("if_node", {"condition": "ctx.a == ${ctx.b}"}, {"a": "${ctx.b}"})
    assert out["_condition_result_s"] is True


@pytest.mark.parametrize("raw", [{}, {"condition": None}])
async def test_if_1_requires_condition(raw: dict[str, Any]) -> None:
    with pytest.raises(NodeError, match=r"^if_node requires 'condition' parameter$"):
        await run_node("if_node", raw)


# -- switch_node --------------------------------------------------------------


CASES = {"gold": "vip", "1": "one", "true": "yes", "null": "nothing", "bad": 7}


async def test_sw_1_match() -> None:
    out = await run_node(
        "switch_node", {"value": "ctx.tier", "cases": CASES}, {"tier": "gold"}, "r"
    )
    assert out == {"_route_r": "vip", "_switch_value_r": "gold"}


async def test_sw_1_default_and_custom_default() -> None:
    out = await run_node("switch_node", {"value": "ctx.tier", "cases": CASES}, {"tier": "iron"})
    assert out == {"_route_s": "default", "_switch_value_s": "iron"}
    raw = {"value": "tier", "cases": CASES, "default": "basic"}
    assert (await run_node("switch_node", raw, {"tier": "iron"}))["_route_s"] == "basic"


async def test_cnd_20_non_string_values_match_their_json_text() -> None:
    raw = {"value": "ctx.v", "cases": CASES}
    assert (await run_node("switch_node", raw, {"v": 1}))["_route_s"] == "one"
    assert (await run_node("switch_node", raw, {"v": True}))["_route_s"] == "yes"
    out = await run_node("switch_node", raw, {"v": None})
    assert out == {"_route_s": "nothing", "_switch_value_s": "null"}


async def test_cnd_20_missing_path_is_empty_text() -> None:
    out = await run_node("switch_node", {"value": "ctx.v", "cases": {"": "empty"}}, {})
    assert out == {"_route_s": "empty", "_switch_value_s": ""}


async def test_cnd_20_non_string_case_value_falls_to_default() -> None:
    out = await run_node("switch_node", {"value": "ctx.v", "cases": CASES}, {"v": "bad"})
    assert out == {"_route_s": "default", "_switch_value_s": "bad"}


async def test_sw_1_value_is_a_path_not_a_template() -> None:
    raw = {"value": "${ctx.tier}", "cases": CASES}
    out = await run_node("switch_node", raw, {"tier": "gold"})
    assert out == {"_route_s": "default", "_switch_value_s": ""}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"cases": CASES}, "switch_node requires 'value' parameter"),
        ({"value": "ctx.v"}, "switch_node requires 'cases' object"),
        ({"value": "ctx.v", "cases": None}, "switch_node requires 'cases' object"),
    ],
)
async def test_sw_1_required_parameters(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(NodeError) as info:
        await run_node("switch_node", raw)
    assert str(info.value) == message


# -- template_render ----------------------------------------------------------


async def test_tr_1_renders_into_output_key() -> None:
    raw = {"template": "Hello, ${ctx.name}! ${ctx.n} ${HOME}", "output_key": "greeting"}
    out = await run_node("template_render", raw, {"name": "World", "n": [1]})
    assert out == {"greeting": "Hello, World! [1] ${HOME}"}


async def test_tr_1_missing_values_render_empty() -> None:
    out = await run_node("template_render", {"template": "[${ctx.x}]", "output_key": "k"})
    assert out == {"k": "[]"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"output_key": "k"}, "template_render requires 'template'"),
        ({"template": "x"}, "template_render requires 'output_key'"),
    ],
)
async def test_tr_1_required_parameters(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(NodeError) as info:
        await run_node("template_render", raw)
    assert str(info.value) == message


async def test_int_6_invalid_template_renders_unchanged() -> None:
    raw = {"template": "${ctx.name or 'x'} ${ctx.name}", "output_key": "k"}
    out = await run_node("template_render", raw, {"name": "A"})
    assert out == {"k": "${ctx.name or 'x'} ${ctx.name}"}


# -- log ----------------------------------------------------------------------


async def test_lg_1_logs_the_rendered_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ironflow.node")
    out = await run_node("log", {"message": "order ${ctx.id}"}, {"id": 7}, "announce")
    assert out == {"log_message": "order 7"}
    [record] = [r for r in caplog.records if r.name == "ironflow.node"]
    assert record.getMessage() == "order 7"
    assert record.levelno == logging.INFO
    assert record.step == "announce"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("debug", logging.DEBUG),
        ("info", logging.INFO),
        ("warn", logging.WARNING),
        ("error", logging.ERROR),
        ("trace", logging.INFO),
        ("WARN", logging.INFO),
        ("warning", logging.INFO),
        (3, logging.INFO),
    ],
)
async def test_lg_1_level_mapping(
    level: Any, expected: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ironflow.node")
    await run_node("log", {"message": "m", "level": level})
    assert [r.levelno for r in caplog.records if r.name == "ironflow.node"] == [expected]


@pytest.mark.parametrize("raw", [{}, {"message": 5}, {"message": {"a": 1}}])
async def test_lg_1_missing_or_non_string_message_is_empty(raw: dict[str, Any]) -> None:
    assert await run_node("log", raw) == {"log_message": ""}


# -- delay --------------------------------------------------------------------


async def test_dl_1_sleeps_and_outputs_a_float(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    out = await run_node("delay", {"seconds": 2})
    assert trio.current_time() - start == pytest.approx(2.0)
    assert out == {"delay_seconds": 2.0}
    assert type(out["delay_seconds"]) is float


async def test_dl_1_default_is_one_second(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    assert await run_node("delay", {}) == {"delay_seconds": 1.0}
    assert trio.current_time() - start == pytest.approx(1.0)


async def test_dl_1_fractions_and_zero(autojump_clock: trio.testing.MockClock) -> None:
    assert await run_node("delay", {"seconds": 0.02}) == {"delay_seconds": 0.02}
    assert await run_node("delay", {"seconds": 0}) == {"delay_seconds": 0.0}


async def test_dl_1_interpolated_string(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    out = await run_node("delay", {"seconds": " ${ctx.wait} "}, {"wait": 0.5})
    assert out == {"delay_seconds": 0.5}
    assert trio.current_time() - start == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("seconds", "message"),
    [
        (-1, "delay seconds must be a finite, non-negative number of seconds"),
        ("-0.5", "delay seconds must be a finite, non-negative number of seconds"),
        ("NaN", "'seconds' must be a finite number"),
        ("inf", "'seconds' must be a finite number"),
        (math.inf, "'seconds' must be a finite number"),
        ("soon", "'seconds' must be a finite number"),
        (True, "'seconds' must be a finite number"),
        (1e300, "delay seconds is too large to represent as a duration"),
    ],
)
async def test_dl_1_rejects_invalid_durations(seconds: Any, message: str) -> None:
    with pytest.raises(NodeError) as info:
        await run_node("delay", {"seconds": seconds})
    assert str(info.value) == message


async def test_dl_1_explicit_null_is_not_the_default() -> None:
    with pytest.raises(NodeError, match=r"^'seconds' must be a finite number$"):
        await run_node("delay", {"seconds": None})


async def test_dl_1_sleep_is_cancellable(autojump_clock: trio.testing.MockClock) -> None:
    with trio.move_on_after(0.1) as scope:
        await run_node("delay", {"seconds": 10})
    assert scope.cancelled_caught
