"""The lazy node registry: names cost no import, a node's module loads on first use.

``ironflow run`` of a small flow imports only the modules of the nodes it uses
(issue 17's start-up target); the name lists that make this possible are
checked here against each module's real ``NODES`` so they cannot drift.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ironflow_core.errors import PluginError
from ironflow_core.hookspecs import hookimpl
from ironflow_core.specs import NodeRef, NodeSpec
from ironflow_core.testing import make_registry

ROOT = Path(__file__).resolve().parents[2]
IRONFLOW = str(Path(sys.executable).parent / "ironflow")


@pytest.mark.parametrize("plugin", ["ironflow_core.nodes.plugin", "ironflow_nodes_http.plugin"])
def test_each_listed_name_is_exactly_its_modules_nodes(plugin: str):
    index = importlib.import_module(plugin).NODE_MODULES
    for module, names in index.items():
        assert sorted(names) == sorted(spec.name for spec in importlib.import_module(module).NODES)


def test_fs_names_are_exactly_its_specs():
    from ironflow_nodes_fs import plugin

    assert sorted(plugin.NODE_NAMES) == sorted(spec.name for spec in plugin._specs())


def test_example_plugin_names_are_exactly_its_nodes():
    pytest.importorskip("ironflow_nodes_example")
    from ironflow_nodes_example import nodes, plugin

    assert sorted(plugin.NODE_NAMES) == sorted(spec.name for spec in nodes.NODES)


def test_every_ref_resolves_to_the_spec_of_its_name():
    registry = make_registry("ironflow_nodes_http.plugin", "ironflow_nodes_fs.plugin",
                             "ironflow_nodes_shell.plugin")
    for name in registry.nodes:
        spec = registry.nodes[name]
        assert isinstance(spec, NodeSpec) and spec.name == name
        assert registry.node(name) is spec  # resolved once, then kept


async def _noop(ctx, config):
    return {}


class BadRefs:
    @hookimpl
    def ironflow_register_nodes(self):
        def boom():
            raise ImportError("no module named 'missing_driver'")

        return [NodeRef(name="boom", load=boom),
                NodeRef(name="liar", load=lambda: NodeSpec(name="other", run=_noop))]


def test_a_ref_that_cannot_load_is_a_plugin_error_naming_the_node():
    registry = make_registry(("bad-refs", BadRefs()), builtins=False)
    assert sorted(registry.nodes) == ["boom", "liar"]  # names listed without loading
    with pytest.raises(PluginError, match=r"Node 'boom' could not be loaded: ImportError: "
                                          r"no module named 'missing_driver'"):
        registry.nodes["boom"]
    with pytest.raises(PluginError, match=r"Node 'liar' could not be loaded: .*NodeSpec\("
                                          r"name='liar'"):
        registry.node("liar")


def _modules_after(args: list[str], tmp_path: Path, pythonpath: str = "") -> set[str]:
    code = (
        "import json, sys\n"
        "from ironflow_core.cli.app import main\n"
        f"sys.argv = ['ironflow', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath,
                                                       "IRONFLOW_STORE": "memory"})
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_run_imports_only_the_node_modules_the_flow_uses(tmp_path: Path):
    modules = _modules_after(["run", str(ROOT / "examples" / "hello.lua"),
                              "--context", '{"user_name": "Ada"}'], tmp_path)
    nodes = {m for m in modules if m.startswith("ironflow_core.nodes.")}
    assert nodes == {"ironflow_core.nodes.plugin", "ironflow_core.nodes.text"}
    assert not {m for m in modules if m.startswith(("ironflow_nodes_http.", "ironflow_nodes_fs.",
                                                    "ironflow_nodes_shell."))} - {
        "ironflow_nodes_http.plugin", "ironflow_nodes_fs.plugin", "ironflow_nodes_shell.plugin"}
    assert "starlette" not in modules  # routes are collected for `serve` only


WATCHED = (
    "from pathlib import Path\n"
    "from ironflow_core import hookimpl\n"
    "MARK = Path(__file__).parent / 'called'\n"
    "def _note(hook):\n"
    "    with MARK.open('a') as f: f.write(hook + '\\n')\n"
    "    return []\n"
    "@hookimpl\n"
    "def ironflow_register_nodes(): return _note('nodes')\n"
    "@hookimpl\n"
    "def ironflow_register_stores(): return _note('stores')\n"
    "@hookimpl\n"
    "def ironflow_register_routes(): return _note('routes')\n"
    "@hookimpl\n"
    "def ironflow_register_commands(): return _note('commands')\n"
)


def test_help_calls_only_the_commands_hook(tmp_path: Path):
    from tests.core.test_plugins import install_fake_dist

    site = tmp_path / "site"
    install_fake_dist(site, "ironflow-watched", "1.0", "watched", "watched_plugin", WATCHED)
    modules = _modules_after(["--help"], tmp_path, str(site))
    assert (site / "called").read_text().split() == ["commands"]
    assert "ironflow_core.cli.plugin" in modules
    for heavy in ("ironflow_core.engine", "ironflow_core.nodes.text", "trio", "lupa",
                  "starlette"):
        assert heavy not in modules


def test_broken_plugin_discovery_keeps_the_built_in_commands(monkeypatch):
    from click.testing import CliRunner

    from ironflow_core import plugins
    from ironflow_core.cli.app import cli

    def broken(*_args, **_kwargs):
        raise RuntimeError("corrupt entry-point metadata")

    monkeypatch.setattr(plugins, "load_plugins", broken)
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ("run", "validate", "serve", "worker"):
        assert re.search(rf"^\s+{name}\s", result.output, re.M), result.output
