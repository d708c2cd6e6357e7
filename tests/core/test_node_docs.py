"""Every node page (docs/nodes/<type>.md) lists exactly the fields of the node's config class."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from ironflow_core.node_hints import FIRST_PARTY_NODES
from ironflow_core.registry import build_registry

DOCS = Path(__file__).resolve().parents[2] / "docs" / "nodes"
REGISTRY = build_registry()  # the installed workspace: core and the first-party node plugins
IGNORED = {
    **{name: {"method"} for name in ("http_get", "http_post", "http_put", "http_delete")},
    "zip_list": {"max_depth"},
}
"""Fields of a config class shared with another node that this node does not read."""
FIRST_PARTY = {name for names in FIRST_PARTY_NODES.values() for name in names}
_ROW = re.compile(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \|", re.M)


def documented_parameters(page: str) -> set[str]:
    """The names in the first column of the first table under "## Parameters"."""
    match = re.search(r"^## Parameters\n.*?(^\|.*?)(?=^[^|]|\Z)", page, re.M | re.S)
    return set(_ROW.findall(match.group(1))) if match else set()


def lua_name(field: attrs.Attribute) -> str:  # type: ignore[type-arg]
    """The parameter as a flow writes it: a function ``x`` arrives as ``x_bytecode_b64``."""
    name = field.alias or field.name
    return name.removesuffix("_bytecode_b64") or name


def documented_nodes() -> list[str]:
    return sorted(p.stem for p in DOCS.glob("*.md") if p.stem in REGISTRY.nodes)


@pytest.mark.parametrize("node_type", documented_nodes())
def test_node_page_matches_config_class(node_type: str) -> None:
    config = REGISTRY.nodes[node_type].config
    assert config is not None and attrs.has(config)
    declared = {lua_name(f) for f in attrs.fields(config)} - IGNORED.get(node_type, set())
    page = (DOCS / f"{node_type}.md").read_text(encoding="utf-8")
    documented = documented_parameters(page)
    assert documented - declared == set(), "documented but not in the config class"
    assert declared - documented == set(), "in the config class but not documented"


def test_every_first_party_node_has_a_page() -> None:
    shipped = {name for name, spec in REGISTRY.nodes.items()
               if name in FIRST_PARTY or spec.run.__module__.startswith("ironflow_core.")}
    assert shipped - set(documented_nodes()) == set()
