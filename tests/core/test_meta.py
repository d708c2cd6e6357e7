"""Meta-tests: the documentation and the examples keep up with the code.

As in datasette: every hook is documented with its exact signature and
exercised by a test; every node the project ships has its reference page;
every example flow validates with ``ironflow validate`` and, unless it needs
the network, runs to success with ``ironflow run``.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pluggy
import pytest

import ironflow_core.hookspecs as hookspecs
from ironflow_core.registry import build_registry

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
IRONFLOW = str(Path(sys.executable).parent / "ironflow")
PROJECT_DISTRIBUTIONS = {
    "ironflow-core",
    "ironflow-nodes-http",
    "ironflow-nodes-shell",
    "ironflow-nodes-fs",
    "ironflow-store-redis",
}
NODE_PAGE_SECTIONS = ("## Parameters", "## Outputs", "## Errors", "## Example")
EXAMPLE_FLOWS = sorted([*ROOT.glob("examples/*.lua"), *ROOT.glob("examples/plugin/flows/*.lua")])


def hook_specs() -> dict[str, object]:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return {name: getattr(hookspecs, name) for name in dir(pm.hook)
            if name.startswith("ironflow_")}


def signature_text(name: str, func: object) -> str:
    """``def name(arg: T, ...) -> R`` with annotations as written in hookspecs.py."""
    sig = inspect.signature(func)  # type: ignore[arg-type]
    params = []
    for param in sig.parameters.values():
        text = param.name
        if param.annotation is not inspect.Parameter.empty:
            text += f": {param.annotation}"
        params.append(text)
    return f"def {name}({', '.join(params)}) -> {sig.return_annotation}"


# -------------------------------------------------------------------- hooks
def test_every_hookspec_is_documented_with_its_exact_signature():
    guide = (DOCS / "plugins.md").read_text(encoding="utf-8")
    specs = hook_specs()
    assert specs, "no hookspecs found"
    for name, func in specs.items():
        assert f"### `{name}`" in guide, f"docs/plugins.md has no section for {name}"
        signature = signature_text(name, func)
        assert signature in guide, f"docs/plugins.md does not show `{signature}`"


def test_every_documented_hook_exists():
    guide = (DOCS / "plugins.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^### `(ironflow_\w+)`", guide, flags=re.MULTILINE))
    assert documented == set(hook_specs())


def test_every_hook_is_exercised_by_a_test():
    tests = [p for p in (ROOT / "tests").rglob("test_*.py") if p.name != "test_meta.py"]
    text = "\n".join(p.read_text(encoding="utf-8") for p in tests)
    untested = [name for name in hook_specs() if name not in text]
    assert not untested, f"hooks no test implements: {', '.join(untested)}"


# -------------------------------------------------------------------- nodes
def test_every_shipped_node_has_a_reference_page():
    registry = build_registry({}, entry_points=True)
    dist_of = {r.name: r.distribution for r in registry.plugins}
    shipped = sorted(name for name, plugin in registry.node_providers.items()
                     if dist_of.get(plugin) in PROJECT_DISTRIBUTIONS)
    missing = [n for n in shipped if not (DOCS / "nodes" / f"{n}.md").is_file()]
    assert not missing, f"nodes without docs/nodes/<name>.md: {', '.join(missing)}"
    incomplete = []
    for name in shipped:
        page = (DOCS / "nodes" / f"{name}.md").read_text(encoding="utf-8")
        lacking = [s for s in NODE_PAGE_SECTIONS if s not in page]
        if not page.startswith(f"# `{name}`") or "```lua" not in page or lacking:
            incomplete.append(f"{name} ({', '.join(lacking) or 'title or lua example'})")
    assert not incomplete, f"incomplete node pages: {'; '.join(incomplete)}"


def test_every_node_page_belongs_to_a_registered_node():
    registry = build_registry({}, entry_points=True)
    orphans = [p.stem for p in (DOCS / "nodes").glob("*.md") if p.stem not in registry.nodes]
    assert not orphans, f"pages for nodes nobody registers: {', '.join(orphans)}"


def test_example_plugin_documents_each_of_its_nodes():
    registry = build_registry({}, entry_points=True)
    readme = (ROOT / "examples" / "plugin" / "README.md").read_text(encoding="utf-8")
    ours = [n for n, p in registry.node_providers.items() if p == "nodes-example"]
    assert sorted(ours) == ["slugify", "word_count"]
    for name in ours:
        assert f"`{name}`" in readme


# ----------------------------------------------------------------- examples
def _cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("IRONFLOW_")}


def _header_context(source: str) -> str | None:
    """The ``--context '...'`` of the run command an example's header comment shows."""
    for line in source.splitlines():
        if not line.startswith("--"):
            break
        if "ironflow run" in line and "--context" in line:
            args = shlex.split(line.lstrip("-").strip())
            return args[args.index("--context") + 1]
    return None


def _needs_network(source: str) -> bool:
    return "nodes.http_" in source or re.search(r"^--.*needs: network", source, re.M) is not None


def test_there_are_example_flows():
    assert (ROOT / "examples" / "hello.lua") in EXAMPLE_FLOWS


@pytest.mark.parametrize("flow", EXAMPLE_FLOWS, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_flow_validates_and_runs(flow: Path, tmp_path: Path):
    validated = subprocess.run([IRONFLOW, "validate", str(flow)], cwd=tmp_path,
                               env=_cli_env(), capture_output=True, text=True, timeout=60)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "Validation: OK" in validated.stdout
    source = flow.read_text(encoding="utf-8")
    if _needs_network(source):
        return
    args = [IRONFLOW, "run", str(flow), "--format", "json", "--store-dir", str(tmp_path / "runs")]
    context = _header_context(source)
    if context is not None:
        args += ["--context", context]
    ran = subprocess.run(args, cwd=tmp_path, env=_cli_env(), capture_output=True, text=True,
                         timeout=60)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert json.loads(ran.stdout)["status"] == "success"


def _complete_flows(markdown: str) -> list[str]:
    blocks = re.findall(r"```lua\n(.*?)```", markdown, flags=re.DOTALL)
    return [b for b in blocks if "Flow.new" in b and re.search(r"^return \w+", b, re.M)]


def test_every_complete_flow_in_the_docs_validates():
    from ironflow_core.engine import plan_flow
    from ironflow_core.loading import load_flow
    from ironflow_core.specs import FlowSource

    registry = build_registry({}, entry_points=True)
    pages = [*DOCS.glob("*.md"), *(DOCS / "nodes").glob("*.md")]
    failures = []
    checked = 0
    for page in sorted(pages):
        for block in _complete_flows(page.read_text(encoding="utf-8")):
            checked += 1
            try:
                flow = load_flow(FlowSource(text=block), registry=registry, env={})
                plan_flow(flow, registry)
            except Exception as exc:
                failures.append(f"{page.relative_to(ROOT)}: {exc}")
    assert checked >= 10
    assert not failures, "\n".join(failures)


def test_relative_links_in_the_docs_resolve():
    pages = [*DOCS.rglob("*.md"), ROOT / "README.md", ROOT / "examples" / "plugin" / "README.md"]
    broken = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, "broken links: " + ", ".join(broken)
