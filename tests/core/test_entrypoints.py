"""The entry-point reader finds what ``importlib.metadata`` finds, without importing it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ironflow_core import entrypoints
from ironflow_core.entrypoints import Distribution, EntryPoint, entry_points


def _write_dist(site: Path, folder: str, name: str, version: str, entries: str | None) -> None:
    info = site / folder
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                   "\nName: not-a-header\n", encoding="utf-8")
    if entries is not None:
        (info / "entry_points.txt").write_text(entries, encoding="utf-8")


def _as_tuples(eps: list) -> list[tuple[str, str, str, str | None, str | None]]:
    return sorted((ep.name, ep.value, ep.group, ep.dist.name if ep.dist else None,
                   ep.dist.version if ep.dist else None) for ep in eps)


def test_the_installed_plugins_match_importlib_metadata():
    from importlib.metadata import entry_points as reference

    assert _as_tuples(entry_points("ironflow")) == _as_tuples(
        list(reference(group="ironflow")))
    assert _as_tuples(entry_points("console_scripts")) == _as_tuples(
        list(reference(group="console_scripts")))


def test_first_distribution_of_a_name_on_the_path_wins(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    _write_dist(first, "Acme_Plugin-1.0.dist-info", "acme-plugin", "1.0",
                "# a comment\n[ironflow]\nacme = acme_mod:plugin\n\n[other]\nx = y\n")
    _write_dist(second, "acme.plugin-2.0.dist-info", "acme.plugin", "2.0",
                "[ironflow]\nacme = acme_old\n")
    _write_dist(second, "quiet-1.0.dist-info", "quiet", "1.0", None)
    monkeypatch.setattr(sys, "path", [str(first), str(tmp_path / "missing"), str(second)])
    found = entry_points("ironflow")
    assert found == [EntryPoint("acme", "acme_mod:plugin", "ironflow",
                                Distribution("acme-plugin", "1.0"))]
    from importlib.metadata import entry_points as reference

    assert _as_tuples(found) == _as_tuples(list(reference(group="ironflow")))


def test_load_imports_the_module_and_follows_the_attribute_path(tmp_path, monkeypatch):
    (tmp_path / "ep_target_mod.py").write_text("class Holder:\n    value = 42\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert EntryPoint("x", "ep_target_mod:Holder.value", "g", None).load() == 42
    assert EntryPoint("x", "ep_target_mod", "g", None).load().Holder.value == 42
    with pytest.raises(ValueError, match="invalid entry point"):
        EntryPoint("x", "not a value!", "g", None).load()


def test_a_zip_on_the_path_hands_the_lookup_to_importlib(tmp_path, monkeypatch):
    archive = tmp_path / "bundle.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip archive
    monkeypatch.setattr(sys, "path", [str(archive), *sys.path])
    used: list[str] = []
    monkeypatch.setattr(entrypoints, "_from_importlib",
                        lambda group: used.append(group) or [])
    assert entry_points("ironflow") == []
    assert used == ["ironflow"]


def test_the_ironflow_command_never_imports_importlib_metadata(tmp_path):
    script = (
        "import sys\n"
        "from ironflow_core.plugins import load_plugins\n"
        "pm, records = load_plugins({})\n"
        "assert any(r.distribution == 'ironflow-nodes-http' for r in records), records\n"
        "print(sorted(m for m in sys.modules if m.startswith(('importlib.metadata', 'email'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    assert out.strip() == "[]"
