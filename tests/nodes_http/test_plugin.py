"""The distribution registers its seven nodes and imports light (semantics.md#plugin-api)."""

from __future__ import annotations

import subprocess
import sys

from ironflow_core.testing import assert_plugin_installed

NODES = {
    "http_request",
    "http_get",
    "http_post",
    "http_put",
    "http_delete",
    "if_http_status",
    "if_body_contains",
}


def test_plugin_registers_the_http_nodes(registry):
    assert_plugin_installed("nodes-http", nodes=NODES)
    from ironflow_nodes_http.plugin import ironflow_register_nodes

    # NodeRefs: the names cost no import; each resolves to its NodeSpec on first use
    specs = {ref.name: ref.resolve() for ref in ironflow_register_nodes()}
    assert set(specs) == NODES
    assert specs["http_get"].summary == "HTTP GET request"
    assert specs["http_request"].summary == "Generic HTTP request with configurable method"
    assert specs["if_body_contains"].summary == (
        "Route execution based on whether context content contains a pattern"
    )
    for name in NODES:
        assert registry.node(name) is not None


def test_importing_and_registering_does_not_import_httpx():
    code = (
        "import sys\n"
        "from ironflow_nodes_http.plugin import ironflow_register_nodes\n"
        "ironflow_register_nodes()\n"
        "print('httpx' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


def test_only_the_transport_module_imports_httpx():
    from pathlib import Path

    import ironflow_nodes_http

    package = Path(ironflow_nodes_http.__file__).parent
    importers = sorted(
        path.name for path in package.glob("*.py") if "import httpx" in path.read_text()
    )
    assert importers == ["transport.py"]
