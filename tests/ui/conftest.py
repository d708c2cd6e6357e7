"""A real ``ironflow serve`` (with ironflow-ui installed) and Debian's Chromium driven by Playwright.

One server and one browser per module keep the browser tests to seconds.
Without a ``chromium`` executable (or Playwright) the tests skip, saying so.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core.api.server_process import API_KEY, ServerProcess, clean_env

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SKIP_NO_CHROMIUM = ("browser tests need Debian's Chromium: apt-get install -y chromium "
                    "(.ci/run installs it)")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = chromium_path()
    if executable is None:
        pytest.skip(SKIP_NO_CHROMIUM)
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is in the workspace's dev dependencies")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def start_ui_server(root: Path, flows: dict[str, str], **env: str) -> ServerProcess:
    flows_dir = root / "flows"
    flows_dir.mkdir(parents=True, exist_ok=True)
    for name, text in flows.items():
        (flows_dir / name).write_text(text)
    proc = ServerProcess(root, env=clean_env(IRONFLOW_API_KEY=API_KEY, **env),
                         args=["--flows-dir", str(flows_dir)])
    return proc.start()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $IRONFLOW_UI_SCREENSHOTS (docs/ui to refresh the docs) or a tmp dir."""
    target = os.environ.get("IRONFLOW_UI_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
