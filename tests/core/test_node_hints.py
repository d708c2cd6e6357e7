"""The hint after ``Unknown node type ...`` (issue 18): install, typo, or plugin state."""

from __future__ import annotations

import attrs
import pytest

from ironflow_core.engine import plan_flow
from ironflow_core.errors import FlowValidationError
from ironflow_core.loading import load_flow
from ironflow_core.node_hints import FIRST_PARTY_NODES, unknown_node_message
from ironflow_core.plugins import PluginRecord
from ironflow_core.registry import build_registry
from ironflow_core.specs import FlowSource


@pytest.fixture(scope="module")
def core_only():
    """Only ironflow-core's built-ins: what a minimal install without siblings sees."""
    return build_registry({}, entry_points=False)


def test_first_party_node_not_installed_names_the_distribution(core_only):
    assert unknown_node_message(core_only, "http_get", path="flow.lua", line=2,
                                step="fetch") == (
        "Unknown node type 'http_get' at flow.lua:2 (step 'fetch'); it is provided by "
        "ironflow-nodes-http: pip install ironflow-nodes-http")
    assert unknown_node_message(core_only, "zip_create").endswith(
        "pip install ironflow-nodes-fs")


def test_near_name_is_suggested(core_only):
    assert unknown_node_message(core_only, "templte_render", line=3, step="s") == (
        "Unknown node type 'templte_render' at line 3 (step 's'); "
        "did you mean 'template_render'?")


def test_failed_and_disabled_plugins_are_named(core_only):
    failed = PluginRecord(name="nodes-http", distribution="ironflow-nodes-http",
                          version="0.1.0", status="failed",
                          error="ImportError: No module named 'httpx'")
    registry = attrs.evolve(core_only, plugins=(*core_only.plugins, failed))
    assert unknown_node_message(registry, "http_post").endswith(
        "; plugin 'nodes-http' (ironflow-nodes-http) failed to load: "
        "ImportError: No module named 'httpx'")
    other = PluginRecord(name="acme", distribution="ironflow-nodes-acme", version="1.0",
                         status="disabled")
    registry = attrs.evolve(core_only, plugins=(*core_only.plugins, other))
    assert unknown_node_message(registry, "acme_fetch").endswith(
        "; it may come from a plugin that is not active: plugin 'acme' "
        "(ironflow-nodes-acme) is disabled by IRONFLOW_DISABLED_PLUGINS")


def test_nothing_close_points_at_the_node_list(core_only):
    assert unknown_node_message(core_only, "qqqq").endswith(
        "; run 'ironflow nodes' to list the installed node types")


def test_first_party_table_matches_the_installed_siblings():
    registry = build_registry({})
    by_distribution: dict[str, set[str]] = {}
    records = {r.name: r for r in registry.plugins}
    for node, plugin in registry.node_providers.items():
        by_distribution.setdefault(records[plugin].distribution, set()).add(node)
    for distribution, names in FIRST_PARTY_NODES.items():
        assert set(names) == by_distribution[distribution], distribution


def test_planner_reports_an_unknown_node_with_step_and_line(core_only):
    source = ('local flow = Flow.new("x")\nflow:step("a", nodes.log{})\n'
              'flow:step("fetch",\n  nodes.http_get{ url = "u" })\nreturn flow\n')
    definition = load_flow(FlowSource(text=source), registry=core_only, env={})
    with pytest.raises(FlowValidationError) as info:
        plan_flow(definition, core_only)
    assert str(info.value).startswith("Unknown node type 'http_get' at line 3 (step 'fetch')")
    assert (info.value.step, info.value.line) == ("fetch", 3)
