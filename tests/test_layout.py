"""Every imported ``ironflow_*`` module must come from an installed ``src/`` tree.

The distribution folders are named like their packages (``ironflow_core/``); a
stray import from the repository root would load one as an empty namespace
package, which this test catches.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

PACKAGES = [
    "ironflow_core",
    "ironflow_nodes_http",
    "ironflow_nodes_shell",
    "ironflow_nodes_fs",
    "ironflow_store_redis",
    "ironflow_nodes_example",
    "ironflow_ui",
    "ironflow_otel",
]


def test_ironflow_packages_import_from_src_trees():
    for name in PACKAGES:
        module = importlib.import_module(name)
        assert module.__file__ is not None, f"{name} imported as a namespace package"
        parts = os.path.normpath(module.__file__).split(os.sep)
        assert "src" in parts, f"{name} imported from {module.__file__}"
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in PACKAGES:
            assert getattr(module, "__file__", None), f"{name} is a namespace package"


def test_packages_import_from_src_even_when_run_from_repo_root():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        "import importlib, sys\n"
        f"for n in {PACKAGES!r}:\n"
        "    m = importlib.import_module(n)\n"
        "    assert m.__file__ and '/src/' in m.__file__, (n, m.__file__)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
