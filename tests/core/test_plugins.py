"""Plugin discovery as users meet it: real entry points, the real ``ironflow`` script.

Broken and conflicting plugins are real distributions: a ``.dist-info`` folder
with ``METADATA`` and ``entry_points.txt`` beside the plugin module, put on
``PYTHONPATH`` of an ``ironflow`` subprocess — exactly what ``pip install``
leaves in site-packages, minus the files importlib never reads.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ironflow_core.errors import PluginConflictError
from ironflow_core.hookspecs import hookimpl
from ironflow_core.specs import NodeSpec
from ironflow_core.testing import make_registry

IRONFLOW = str(Path(sys.executable).parent / "ironflow")
SIBLINGS = {
    "nodes-http": "ironflow-nodes-http",
    "nodes-shell": "ironflow-nodes-shell",
    "nodes-fs": "ironflow-nodes-fs",
    "store-redis": "ironflow-store-redis",
}
HOOK = "from ironflow_core import NodeSpec, hookimpl\n"


def install_fake_dist(site: Path, dist: str, version: str, plugin: str, module: str,
                      source: str) -> None:
    """Write what an installed distribution with one ``ironflow`` entry point looks like."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[ironflow]\n{plugin} = {module}\n", encoding="utf-8")
    (site / f"{module}.py").write_text(source, encoding="utf-8")


def shout_plugin(marker: str) -> str:
    return HOOK + (
        "async def run(ctx, config):\n"
        f"    return {{'shouted': {marker!r}}}\n"
        "@hookimpl\n"
        "def ironflow_register_nodes():\n"
        "    return [NodeSpec(name='shout', run=run, summary='Shout')]\n"
    )


@pytest.fixture
def broken_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    install_fake_dist(site, "ironflow-nodes-broken-import", "0.3.0", "broken-import",
                      "broken_import_plugin",
                      "raise RuntimeError('cannot import: missing credentials file')\n")
    install_fake_dist(site, "ironflow-nodes-broken-hook", "1.2.0", "broken-hook",
                      "broken_hook_plugin",
                      HOOK + "@hookimpl\ndef ironflow_register_nodes():\n"
                      "    raise ValueError('hook exploded')\n")
    return site


@pytest.fixture
def conflict_site(tmp_path: Path) -> Path:
    site = tmp_path / "conflict"
    install_fake_dist(site, "ironflow-nodes-dupe-a", "1.0", "dupe-a", "dupe_a_plugin",
                      shout_plugin("a"))
    install_fake_dist(site, "ironflow-nodes-dupe-b", "2.0", "dupe-b", "dupe_b_plugin",
                      shout_plugin("b"))
    return site


def ironflow(cwd: Path, *args: str, site: Path | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``ironflow`` script with a clean IronFlow environment."""
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("IRONFLOW_")}
    if site is not None:
        run_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p
        )
    run_env.update(env or {})
    return subprocess.run([IRONFLOW, *args], cwd=cwd, env=run_env, capture_output=True,
                          text=True, timeout=60)


def plugins_json(cwd: Path, **kw: object) -> dict[str, dict]:
    proc = ironflow(cwd, "plugins", "--format", "json", **kw)  # type: ignore[arg-type]
    assert proc.returncode == 0, proc.stderr
    return {entry["name"]: entry for entry in json.loads(proc.stdout)}


# ----------------------------------------------------- the default install
def test_plugins_json_lists_every_sibling_distribution_as_active(tmp_path):
    entries = plugins_json(tmp_path)
    for name, dist in SIBLINGS.items():
        assert entries[name]["distribution"] == dist
        assert entries[name]["status"] == "active", entries[name]
        assert entries[name]["version"]
    assert entries["nodes-example"]["provides"] == ["node:slugify", "node:word_count"]
    assert "node:shell_command" in entries["nodes-shell"]["provides"]
    assert "store:json" in entries["core.stores"]["provides"]
    for entry in entries.values():
        assert set(entry) == {"name", "distribution", "version", "status", "provides"}


def test_nodes_json_is_a_sorted_list_of_name_plugin_description(tmp_path):
    proc = ironflow(tmp_path, "nodes", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    nodes = json.loads(proc.stdout)
    assert isinstance(nodes, list) and nodes
    names = [n["name"] for n in nodes]
    assert names == sorted(names) and len(set(names)) == len(names)
    for node in nodes:
        assert set(node) == {"name", "plugin", "description"}
        assert isinstance(node["description"], str) and node["description"]
    by_name = {n["name"]: n for n in nodes}
    assert by_name["log"]["plugin"] == "core.nodes"
    assert by_name["shell_command"]["plugin"] == "nodes-shell"
    assert by_name["slugify"] == {"name": "slugify", "plugin": "nodes-example",
                                  "description": "Turn text into a URL-safe slug"}


# ---------------------------------------------------------- broken plugins
def test_plugin_that_raises_on_import_or_in_its_hook_is_failed_not_fatal(tmp_path, broken_site):
    entries = plugins_json(tmp_path, site=broken_site)
    imp = entries["broken-import"]
    assert imp["status"] == "failed"
    assert imp["distribution"] == "ironflow-nodes-broken-import"
    assert imp["version"] == "0.3.0"
    assert imp["provides"] == []
    assert imp["error"] == "RuntimeError: cannot import: missing credentials file"
    hook = entries["broken-hook"]
    assert hook["status"] == "failed"
    assert hook["error"] == "ironflow_register_nodes: ValueError: hook exploded"
    for name in SIBLINGS:
        assert entries[name]["status"] == "active"


def test_broken_plugins_never_break_the_cli(tmp_path, broken_site):
    help_ = ironflow(tmp_path, "--help", site=broken_site)
    assert help_.returncode == 0 and "plugins" in help_.stdout
    text = ironflow(tmp_path, "plugins", site=broken_site)
    assert text.returncode == 0
    assert "broken-import" in text.stdout and "failed" in text.stdout
    assert "error: RuntimeError: cannot import: missing credentials file" in text.stdout
    nodes = ironflow(tmp_path, "nodes", "--format", "json", site=broken_site)
    assert nodes.returncode == 0
    assert "slugify" in {n["name"] for n in json.loads(nodes.stdout)}
    for proc in (help_, text, nodes):
        assert "Traceback" not in proc.stderr


def test_disabled_plugins_are_never_imported_and_show_as_disabled(tmp_path, broken_site):
    env = {"IRONFLOW_DISABLED_PLUGINS": " broken-import , nodes-http,"}
    entries = plugins_json(tmp_path, site=broken_site, env=env)
    assert entries["broken-import"]["status"] == "disabled"
    assert "error" not in entries["broken-import"]  # it was not even imported
    assert entries["nodes-http"]["status"] == "disabled"
    assert entries["nodes-http"]["provides"] == []
    proc = ironflow(tmp_path, "nodes", "--format", "json", site=broken_site, env=env)
    names = {n["name"] for n in json.loads(proc.stdout)}
    assert "http_get" not in names and "shell_command" in names


# ---------------------------------------------------------------- conflicts
def test_two_plugins_claiming_one_node_name_name_both_and_how_to_disable(tmp_path,
                                                                        conflict_site):
    proc = ironflow(tmp_path, "nodes", site=conflict_site)
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "Error: Node 'shout' is registered by two plugins: 'dupe-a' (ironflow-nodes-dupe-a 1.0)"
        " and 'dupe-b' (ironflow-nodes-dupe-b 2.0)."
    )
    assert "IRONFLOW_DISABLED_PLUGINS=dupe-b" in proc.stderr
    assert "Traceback" not in proc.stderr
    fixed = ironflow(tmp_path, "nodes", "--format", "json", site=conflict_site,
                     env={"IRONFLOW_DISABLED_PLUGINS": "dupe-b"})
    assert fixed.returncode == 0, fixed.stderr
    assert {"name": "shout", "plugin": "dupe-a", "description": "Shout"} in json.loads(
        fixed.stdout
    )


def test_conflict_with_a_core_node_names_the_core_plugin():
    async def run(ctx, config):
        return {}

    class Clash:
        @staticmethod
        @hookimpl
        def ironflow_register_nodes():
            return [NodeSpec(name="log", run=run)]

    with pytest.raises(PluginConflictError) as caught:
        make_registry(("clash", Clash()))
    assert str(caught.value) == (
        "Node 'log' is registered by two plugins: 'core.nodes' (ironflow-core 0.1.0) and "
        "'clash' ((in-process)). Uninstall one, or disable it with "
        "IRONFLOW_DISABLED_PLUGINS=clash"
    )


# ------------------------------------------------- malformed plugin modules
def test_plugin_with_a_misspelled_hook_is_failed_not_fatal():
    """pluggy's ``check_pending`` must be isolated per plugin like any other load error."""

    class Typo:
        @staticmethod
        @hookimpl
        def ironflow_register_node():  # missing "s"
            return []

    registry = make_registry(("typo", Typo()), strict=False)
    record = next(r for r in registry.plugins if r.name == "typo")
    assert record.status == "failed"
    assert "ironflow_register_node" in (record.error or "")
    assert "log" in registry.nodes


def test_hook_returning_something_other_than_specs_is_failed_not_fatal():
    class Wrong:
        @staticmethod
        @hookimpl
        def ironflow_register_nodes():
            return [{"name": "not-a-spec"}]

    registry = make_registry(("wrong", Wrong()), strict=False)
    record = next(r for r in registry.plugins if r.name == "wrong")
    assert record.status == "failed"
    assert "NodeSpec" in (record.error or "")
    assert "not-a-spec" not in registry.nodes


# ------------------------------------------------------- every hook, end to end
class EveryHook:
    """A plugin implementing each hook once, to see each reach the registry."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def ironflow_register_nodes(self):
        async def ping(ctx, config):
            return {"pong": ctx.step_name}

        return [NodeSpec(name="ping", run=ping, summary="Ping")]

    @hookimpl
    def ironflow_register_stores(self):
        from ironflow_core.specs import StoreSpec
        from ironflow_core.stores.memory import MemoryStore

        return [StoreSpec(name="scratch", open=lambda settings: MemoryStore())]

    @hookimpl
    def ironflow_register_loaders(self):
        from ironflow_core.specs import LoaderSpec

        return [LoaderSpec(name="never", suffixes=(".never",), load=lambda s, o: None)]

    @hookimpl
    def ironflow_register_observers(self):
        plugin = self

        class Seen:
            def on_event(self, event):
                if event.type == "task_succeeded":
                    plugin.seen.append(event.step)

        return [Seen()]

    @hookimpl
    def ironflow_register_commands(self):
        import click

        from ironflow_core.specs import CommandSpec

        @click.command()
        def hello():
            click.echo("hello from a plugin")

        return [CommandSpec(name="hello", command=hello)]


def test_each_hook_lands_in_the_registry_and_in_provides():
    plugin = EveryHook()
    registry = make_registry(("every-hook", plugin))
    record = next(r for r in registry.plugins if r.name == "every-hook")
    assert record.provides == ["node:ping", "store:scratch", "loader:never",
                               "observer:Seen", "command:hello"]
    assert registry.node_providers["ping"] == "every-hook"
    assert "scratch" in registry.stores
    assert registry.loader_for("flow.never").name == "never"
    # the core's own subcommands come through the same hook, registered first
    names = [c.name for c in registry.commands]
    assert names[-1] == "hello" and names.count("hello") == 1
    assert {"run", "validate", "serve"} <= set(names[:-1])


class OldStyleObserver:
    @hookimpl
    def ironflow_register_observers(self):
        class PerTypeMethods:
            def task_failed(self, event):
                pass

        return [PerTypeMethods()]


def test_an_observer_without_on_event_fails_its_plugin_with_a_clear_error():
    registry = make_registry(("old-style", OldStyleObserver()), strict=False)
    record = next(r for r in registry.plugins if r.name == "old-style")
    assert record.status == "failed"
    assert record.error == ("ironflow_register_observers: TypeError: returned PerTypeMethods, "
                            "expected RunObserver (an object with an on_event(event) method)")
    assert registry.observers == ()


def test_registered_observers_see_every_run():
    from ironflow_core.model import FlowDefinition, StepSpec
    from ironflow_core.testing import run_flow

    plugin = EveryHook()
    registry = make_registry(("every-hook", plugin))
    steps = (StepSpec(name="a", node_type="ping"), StepSpec(name="b", node_type="ping"))
    result = run_flow(FlowDefinition(name="t", steps=steps), registry=registry)
    result.assert_succeeded()
    assert sorted(plugin.seen) == ["a", "b"]
    assert result.ctx["pong"] == "b"


def test_a_plugin_command_is_an_ironflow_subcommand(tmp_path):
    site = tmp_path / "site"
    install_fake_dist(site, "ironflow-tools-hello", "0.1.0", "tools-hello", "tools_hello_plugin",
                      "import click\n"
                      "from ironflow_core import CommandSpec, hookimpl\n"
                      "@click.command()\n"
                      "@click.argument('who')\n"
                      "def hello(who):\n"
                      "    '''Say hello.'''\n"
                      "    click.echo(f'hello {who}')\n"
                      "@hookimpl\n"
                      "def ironflow_register_commands():\n"
                      "    return [CommandSpec(name='hello', command=hello)]\n")
    listed = ironflow(tmp_path, "--help", site=site)
    assert re.search(r"^\s+hello\s+Say hello\.", listed.stdout, re.M), listed.stdout
    ran = ironflow(tmp_path, "hello", "Ada", site=site)
    assert (ran.returncode, ran.stdout) == (0, "hello Ada\n")
