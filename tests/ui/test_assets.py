"""The dashboard's files as shipped: self-contained (no outside URL), every reference resolves."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

STATIC = Path(str(files("ironflow_ui") / "static"))
OUTSIDE = re.compile(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def shipped() -> list[Path]:
    return sorted(p for p in STATIC.rglob("*") if p.is_file())


def test_no_asset_loads_anything_from_outside_the_server():
    for path in shipped():
        text = path.read_text(encoding="utf-8").replace(SVG_NAMESPACE, "")
        assert not OUTSIDE.search(text), f"{path.name} refers to {OUTSIDE.search(text)[0]}"


def test_every_file_index_html_and_the_modules_name_exists():
    index = (STATIC / "index.html").read_text(encoding="utf-8")
    for ref in re.findall(r'(?:src|href)="([^"#][^"]*)"', index):
        assert (STATIC / ref).is_file(), ref
    for module in (STATIC / "js").glob("*.js"):
        for ref in re.findall(r'from "(\./[^"]+)"', module.read_text(encoding="utf-8")):
            assert (module.parent / ref).is_file(), f"{module.name} imports {ref}"


def test_the_plugin_module_imports_nothing_heavy():
    import ironflow_ui.plugin  # noqa: F401  (the entry point itself)

    source = (STATIC.parent / "plugin.py").read_text(encoding="utf-8")
    assert "import starlette" not in source.split("def ironflow_register_routes")[0]
