"""Node config classes as schemas: the converter, the field wrappers and what validate reports."""

from __future__ import annotations

import pytest

from ironflow_core import ABSENT, NodeError
from ironflow_core.configs import (
    ConfigFieldError,
    lenient_fallbacks,
    missing_required,
    structure_config,
)
from ironflow_core.nodes.encoding import Base64EncodeConfig, HashConfig
from ironflow_core.nodes.jsondata import JsonParseConfig
from ironflow_core.nodes.text import DelayConfig, TemplateRenderConfig
from ironflow_core.testing import call_node, load_test_flow, make_registry
from ironflow_core.validation import LENIENT_DEFAULT_USED, validate_definition

REGISTRY = make_registry()


def test_lenient_field_of_the_wrong_type_means_its_default() -> None:
    config = structure_config(HashConfig, {"output_key": 5, "algorithm": ["md5"], "input": {}})
    assert (config.output_key, config.algorithm, config.input) == ("hash", "sha256", None)
    assert structure_config(HashConfig, {"output_key": "h"}).output_key == "h"


def test_lenient_null_means_the_default_too() -> None:
    assert structure_config(HashConfig, {"output_key": None}).output_key == "hash"


def test_lenient_required_field_of_the_wrong_type_counts_as_missing() -> None:
    raw = {"source_key": 7, "output_key": "out"}
    assert structure_config(JsonParseConfig, raw).source_key is None
    assert missing_required(JsonParseConfig, raw) == ["source_key"]
    assert lenient_fallbacks(JsonParseConfig, raw) == []


def test_strict_field_reports_its_path() -> None:
    with pytest.raises(ConfigFieldError) as info:
        structure_config(TemplateRenderConfig, {"template": 5, "output_key": "o"})
    assert info.value.problems == ["expected a string, got an integer @ $.template"]


def test_absent_and_null_differ() -> None:
    assert structure_config(DelayConfig, {}).seconds is ABSENT
    assert structure_config(DelayConfig, {"seconds": None}).seconds is None
    given = structure_config(Base64EncodeConfig, {"input": None})
    assert given.input is None and given.source_key is ABSENT


async def test_wrong_typed_lenient_output_key_runs_with_the_default() -> None:
    out = await call_node("hash", {"input": "a", "output_key": True}, registry=REGISTRY)
    assert set(out) == {"hash", "hash_algorithm"}


async def test_wrong_typed_required_key_fails_the_step_with_upstreams_wording() -> None:
    with pytest.raises(NodeError, match=r"^json_parse requires 'source_key'$"):
        await call_node("json_parse", {"source_key": 1, "output_key": "o"}, registry=REGISTRY)


def test_validate_warns_when_a_lenient_default_is_used() -> None:
    flow = load_test_flow(
        'local flow = Flow.new("demo")\n'
        'flow:step("h", nodes.hash{ input = "x", output_key = 5, algorithm = "md5" })\n'
        "return flow\n",
        registry=REGISTRY, env={},
    )
    report = validate_definition(flow, REGISTRY)
    assert report.errors == ()
    assert [(w.code, w.step, w.message) for w in report.warnings] == [(
        LENIENT_DEFAULT_USED, "h",
        "Step 'h' (hash): config key 'output_key' has the wrong type; the node uses its "
        'default "hash"',
    )]
    assert report.failed(strict=True) and not report.failed(strict=False)


def test_structuring_is_prebuilt_per_class() -> None:
    from ironflow_core.configs import converter

    hook = converter.get_structure_hook(HashConfig)
    assert converter.get_structure_hook(HashConfig) is hook
