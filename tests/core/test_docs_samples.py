"""The docs' code samples run as written, so they stay true.

Fenced blocks opt in through their info string:

- ```` ```<lang> file=<path> ```` is written to ``<path>`` in a fresh project
  directory, one per document (TOML files must also parse);
- ```` ```python runnable ```` is executed in that directory;
- ```` ```lua runnable ```` must load as a flow;
- ```` ```text output="<ironflow arguments>" ```` must be exactly what
  ``ironflow <arguments>`` prints (stdout, then stderr) there.

A document whose ``pyproject.toml`` declares ``ironflow`` entry points is a
plugin: it is made importable with its entry points (what ``pip install -e``
does) and its ``tests/`` must pass under pytest.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([*ROOT.glob("docs/**/*.md"), ROOT / "README.md"])
IRONFLOW = str(Path(sys.executable).parent / "ironflow")
_FENCE = re.compile(r"^```(\w+)[ \t]*([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
_ATTR = re.compile(r'(\w+)(?:=("[^"]*"|\S+))?')


@attrs.frozen
class Block:
    doc: Path
    line: int
    lang: str
    attrs: dict[str, str]
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    text = doc.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        options = {key: value.strip('"') for key, value in _ATTR.findall(match.group(2))}
        if not {"file", "runnable", "output"} & set(options):
            continue
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(doc, line, match.group(1), options, match.group(3)))
    return found


SAMPLED = [doc for doc in DOCS if blocks(doc)]


def _env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRONFLOW_")}
    env["IRONFLOW_PROGRESS"] = "off"
    src = project / "src"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
    return env


def _install_entry_points(project: Path, pyproject: dict) -> None:
    """What an editable install does for discovery: a dist-info on sys.path."""
    meta = pyproject["project"]
    dist = project / "src" / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    lines = ["[ironflow]"] + [f"{name} = {target}" for name, target in
                              meta["entry-points"]["ironflow"].items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")


def test_the_docs_have_samples():
    names = {doc.name for doc in SAMPLED}
    assert {"plugins.md", "cli.md"} <= names


@pytest.mark.parametrize("doc", SAMPLED, ids=lambda d: str(d.relative_to(ROOT)))
def test_doc_samples_run_as_written(doc: Path, tmp_path: Path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    samples = blocks(doc)
    for block in samples:
        if "file" in block.attrs:
            target = project / block.attrs["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text, encoding="utf-8")
            if block.lang == "toml":
                tomllib.loads(block.text)
    monkeypatch.chdir(project)
    for block in samples:
        if "runnable" in block.attrs and block.lang == "python":
            exec(compile(block.text, block.where, "exec"), {"__name__": "__doc_sample__"})
        elif "runnable" in block.attrs and block.lang == "lua":
            from ironflow_core.loading import load_flow
            from ironflow_core.registry import default_registry
            from ironflow_core.specs import FlowSource

            load_flow(FlowSource(text=block.text), registry=default_registry(), env={})
        elif "output" in block.attrs:
            proc = subprocess.run([IRONFLOW, *shlex.split(block.attrs["output"])], cwd=project,
                                  env=_env(project), capture_output=True, text=True, timeout=120)
            assert proc.stdout + proc.stderr == block.text, block.where
    pyproject = project / "pyproject.toml"
    if pyproject.exists():
        data = tomllib.loads(pyproject.read_text())
        if "ironflow" in data.get("project", {}).get("entry-points", {}):
            _install_entry_points(project, data)
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                   "tests"], cwd=project, env=_env(project), capture_output=True,
                                  text=True, timeout=300)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            count = sum(path.read_text().count("\ndef test_") + path.read_text().count(
                "\nasync def test_") for path in (project / "tests").glob("test_*.py"))
            assert count and f"\n{count} passed" in proc.stdout, proc.stdout
