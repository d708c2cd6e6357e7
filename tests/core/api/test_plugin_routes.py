"""``ironflow_register_routes``, ``GET /plugins``, ``POST /runs/{id}/cancel`` and ``depends_on``.

The route hook is exercised twice: on the registry (what a plugin may return)
and end to end, with a plugin installed as a real distribution on the
``PYTHONPATH`` of a real ``ironflow serve``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from ironflow_core.hookspecs import hookimpl
from ironflow_core.specs import RouteSpec
from ironflow_core.testing import make_registry

from ..test_plugins import install_fake_dist
from .server_process import API_KEY, ServerProcess, assert_error, clean_env

ROUTES_PLUGIN = '''
from pathlib import Path
from ironflow_core import RouteSpec, hookimpl

async def hello(request):
    from starlette.responses import PlainTextResponse
    return PlainTextResponse("hello from a plugin")

async def impostor(request):
    from starlette.responses import PlainTextResponse
    return PlainTextResponse("not the real endpoint")

@hookimpl
def ironflow_register_routes():
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
    files = StaticFiles(directory=str(Path(__file__).with_name("pub_files")))
    return [
        Route("/hello", hello),
        Route("/nodes", impostor),
        RouteSpec(routes=(Mount("/pub", app=files), Route("/runs", impostor)), public=True),
    ]
'''

SLOW = """
local flow = Flow.new("slow")
flow:step("wait", nodes.delay({ seconds = 60 }))
flow:step("after", nodes.log({ message = "late" })):depends_on("wait")
return flow
"""


# ------------------------------------------------------------ the registry
async def _ok(_request):
    return PlainTextResponse("ok")


class RoutesPlugin:
    @hookimpl
    def ironflow_register_routes(self):
        return [Route("/a", _ok), RouteSpec(routes=(Mount("/static", app=_ok),), public=True)]


class JunkRoutes:
    @hookimpl
    def ironflow_register_routes(self):
        return ["/not-a-route"]


def test_bare_routes_are_protected_specs_and_public_ones_stay_public():
    registry = make_registry(("routes", RoutesPlugin()))
    assert [(spec.public, [r.path for r in spec.routes]) for spec in registry.routes] == [
        (False, ["/a"]), (True, ["/static"])]
    record = next(r for r in registry.plugins if r.name == "routes")
    assert record.provides == ["route:/a", "route:/static"]


def test_a_hook_returning_something_else_fails_only_its_plugin():
    registry = make_registry(("junk", JunkRoutes()), ("routes", RoutesPlugin()), strict=False)
    junk = next(r for r in registry.plugins if r.name == "junk")
    assert junk.status == "failed"
    assert "expected Starlette routes or RouteSpec, got str" in junk.error
    assert len(registry.routes) == 2


# ----------------------------------------------------------- a real server
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("routes")
    site = root / "site"
    install_fake_dist(site, "ironflow-routes-demo", "0.2.0", "routes-demo",
                      "routes_demo_plugin", ROUTES_PLUGIN)
    (site / "pub_files").mkdir()
    (site / "pub_files" / "page.html").write_text("<p>public page</p>")
    flows = root / "flows"
    flows.mkdir()
    (flows / "slow.lua").write_text(SLOW)
    pythonpath = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    proc = ServerProcess(root, env=clean_env(IRONFLOW_API_KEY=API_KEY, PYTHONPATH=pythonpath),
                         args=["--flows-dir", str(flows)])
    proc.start()
    yield proc
    proc.stop()


def test_plugin_routes_are_behind_the_key_unless_public(server: ServerProcess):
    with server.client(auth=False) as anonymous, server.client() as client:
        assert anonymous.get("/hello").status_code == 401
        assert client.get("/hello").text == "hello from a plugin"
        assert anonymous.get("/pub/page.html").text == "<p>public page</p>"
        # public means static GETs only: anything else still needs the key
        assert anonymous.post("/pub/page.html").status_code == 401


def test_built_in_routes_win_over_plugin_routes(server: ServerProcess):
    with server.client(auth=False) as anonymous, server.client() as client:
        assert anonymous.get("/runs").status_code == 401  # the public impostor never answers
        assert "runs" in client.get("/runs").json()
        assert "nodes" in client.get("/nodes").json()


def test_get_plugins_lists_each_plugin_with_what_it_provides(server: ServerProcess):
    with server.client() as client:
        body = client.get("/plugins").json()
    by_name = {p["name"]: p for p in body["plugins"]}
    assert body["total"] == len(body["plugins"])
    demo = by_name["routes-demo"]
    assert (demo["distribution"], demo["version"], demo["status"]) == (
        "ironflow-routes-demo", "0.2.0", "active")
    assert demo["provides"] == ["route:/hello", "route:/nodes", "route:/pub", "route:/runs"]
    assert "node:delay" in by_name["core.nodes"]["provides"]
    assert by_name["ui"]["provides"] == ["route:/ui"]


def test_openapi_documents_the_new_endpoints(server: ServerProcess):
    with server.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    assert "202" in paths["/runs/{run_id}/cancel"]["post"]["responses"]
    assert "200" in paths["/plugins"]["get"]["responses"]
    assert "/hello" not in paths  # plugin routes are the plugin's to document


def _running(client, flow: str) -> str:
    for _ in range(400):
        runs = client.get("/runs", params={"status": "running"}).json()["runs"]
        found = [r["id"] for r in runs if r["flow_name"] == flow]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no running run of {flow}")


def test_cancel_stops_a_running_run_and_its_record_says_cancelled(server: ServerProcess):
    replies: list[dict] = []

    def run() -> None:
        with server.client(timeout=120) as c:
            replies.append(c.post("/flows/run", json={"file": "slow.lua"}).json())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    with server.client() as client:
        run_id = _running(client, "slow")
        response = client.post(f"/runs/{run_id}/cancel")
        assert response.status_code == 202
        assert response.json() == {"run_id": run_id, "status": "cancelling"}
        thread.join(30)
        assert replies == [{"run_id": run_id, "flow_name": "slow", "status": "cancelled"}]
        record = client.get(f"/runs/{run_id}").json()
        assert record["status"] == "cancelled"
        assert record["tasks"]["wait"]["status"] == "cancelled"
        # the graph travels with the record: depends_on, omitted when empty
        assert record["tasks"]["after"]["depends_on"] == ["wait"]
        assert "depends_on" not in record["tasks"]["wait"]
        assert_error(client.post(f"/runs/{run_id}/cancel"), 409, "conflict",
                     f"Run '{run_id}' already finished (cancelled)")
        assert_error(client.post("/runs/nope/cancel"), 404, "not_found")
        assert_error(client.post("/runs/bad.id/cancel"), 400, "bad_request")
        assert client.get(f"/runs/{run_id}/cancel").status_code in (400, 405)


def test_without_the_ui_plugin_ui_is_404_and_never_imported(tmp_path: Path):
    code = (
        "import sys\n"
        "from ironflow_core.registry import build_registry\n"
        "from ironflow_core.api.app import build_app\n"
        "from ironflow_core.api.settings import resolve_settings\n"
        "from ironflow_core.stores.memory import MemoryStore\n"
        "env = {'IRONFLOW_DISABLED_PLUGINS': 'ui'}\n"
        "registry = build_registry(env)\n"
        "build_app(resolve_settings({'IRONFLOW_API_KEY': 'k' * 20}, {}), store=MemoryStore(),\n"
        "          registry=registry, env=env)\n"
        "assert registry.routes == (), registry.routes\n"
        "assert not [m for m in sys.modules if m.startswith('ironflow_ui')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, timeout=60)
    server = ServerProcess(tmp_path, env=clean_env(IRONFLOW_API_KEY=API_KEY,
                                                   IRONFLOW_DISABLED_PLUGINS="ui")).start()
    try:
        with server.client() as client:
            assert_error(client.get("/ui/"), 404, "not_found")
            assert client.get("/ui/js/app.js").status_code == 404
    finally:
        server.stop()
