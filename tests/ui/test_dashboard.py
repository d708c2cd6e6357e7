"""The dashboard in a real browser against a real ``ironflow serve`` on loopback.

Each test drives the page as an operator would (sign in with the key, open a
run, click a step, press Cancel) and checks what the page shows against what
the API says. Screenshots of every page are saved (see conftest ``shots``).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.core.api.server_process import API_KEY, ServerProcess

from .conftest import start_ui_server

HELLO = """
local flow = Flow.new("hello")
flow:step("greet", nodes.template_render({ template = "Hello, ${ctx.name}!", output_key = "greeting" }))
flow:step("note", nodes.log({ message = "greeted ${ctx.name}" })):depends_on("greet")
return flow
"""

# "publish" waits long enough that the page is surely open before it turns green.
LIVE = """
local flow = Flow.new("live")
flow:step("fetch", nodes.delay({ seconds = 0.3 }))
flow:step("parse", nodes.delay({ seconds = 0.5 })):depends_on("fetch")
flow:step("score", nodes.delay({ seconds = 0.5 })):depends_on("fetch")
flow:step("index", nodes.delay({ seconds = 0.5 })):depends_on("fetch")
flow:step("publish", nodes.delay({ seconds = 8 })):depends_on("parse", "score", "index")
return flow
"""

FAILING = """
local flow = Flow.new("failing")
flow:step("load", nodes.template_render({ template = "{}", output_key = "raw" }))
flow:step("parse", nodes.json_parse({ source_key = "missing", output_key = "parsed" }))
  :depends_on("load"):retries(1, 0.05)
flow:step("publish", nodes.log({ message = "never" })):depends_on("parse")
return flow
"""

LONG = """
local flow = Flow.new("long")
flow:step("wait", nodes.delay({ seconds = 60 }))
flow:step("after", nodes.log({ message = "late" })):depends_on("wait")
return flow
"""

PAGED_RUNS = 120
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ui")
    proc = start_ui_server(root, {"hello.lua": HELLO, "live.lua": LIVE, "failing.lua": FAILING,
                                  "long.lua": LONG})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def api(server: ServerProcess):
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def context(browser):
    # bypass_csp: wait_for_function evaluates strings, which the page's CSP rightly forbids
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context, server: ServerProcess):
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{server.url}/ui/")
    page.fill("#api-key", API_KEY)
    page.click("button[type=submit]")
    page.wait_for_selector("table[aria-label^='Runs']")
    yield page
    page.close()
    # Refused requests the page handles (a 405 for resume) are logged by Chromium as
    # "Failed to load resource"; any other console error or exception is a bug.
    assert [e for e in errors if not e.startswith("Failed to load resource")] == []


def start_run(server: ServerProcess, flow: str, context: dict | None = None) -> threading.Thread:
    """POST /flows/run waits for the run: start it on a thread and return that thread."""
    def go() -> None:
        with server.client(timeout=120) as client:
            client.post("/flows/run", json={"file": flow, "context": context or {}})

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def newest_run(api: httpx.Client, flow: str, status: str | None = None) -> dict:
    for _ in range(200):
        runs = [r for r in api.get("/runs", params={"limit": 20}).json()["runs"]
                if r["flow_name"] == flow and (status is None or r["status"] == status)]
        if runs:
            return runs[0]
        threading.Event().wait(0.05)
    raise AssertionError(f"no {status or ''} run of {flow} appeared")


def test_without_the_key_the_page_asks_for_it_and_refuses_a_wrong_one(browser, server, shots):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{server.url}/ui/")
    page.wait_for_selector("#api-key")
    page.screenshot(path=str(shots / "login.png"))
    page.fill("#api-key", "wrong-key")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-error:not([hidden])")
    assert "refused" in page.inner_text("#login-error")
    page.fill("#api-key", API_KEY)
    page.click("button[type=submit]")
    page.wait_for_selector("table[aria-label^='Runs']")
    assert page.evaluate("sessionStorage.getItem('ironflow.apiKey')") == API_KEY
    page.close()


def test_static_files_are_public_but_every_api_call_needs_the_key(server):
    with server.client(auth=False) as anonymous:
        index = anonymous.get("/ui/")
        assert index.status_code == 200 and "<title>IronFlow</title>" in index.text
        assert "script-src 'self'" in index.headers["content-security-policy"]
        assert anonymous.get("/ui", follow_redirects=False).headers["location"] == "/ui/"
        assert anonymous.get("/ui/js/app.js").headers["content-type"].startswith("text/javascript")
        assert anonymous.get("/runs").status_code == 401
        assert anonymous.get("/plugins").status_code == 401


def test_a_new_run_appears_in_the_list_and_its_steps_turn_green_live(page, server, api, shots):
    thread = start_run(server, "live.lua")
    run = newest_run(api, "live")
    page.wait_for_selector(f"tr[data-run='{run['id']}']")  # appears without reloading
    page.click(f"tr[data-run='{run['id']}'] a")
    # the page opened while "publish" still runs; it turns green live, without a reload
    page.wait_for_selector("#graph .node.n-running[data-name='publish']")
    assert page.get_attribute("#graph .node[data-name='publish']", "aria-label") == (
        "publish: running")
    page.wait_for_selector("#graph .node.n-success[data-name='publish']", timeout=30_000)
    page.wait_for_selector(".runhead .st-success")
    assert page.locator("#graph .node.n-success").count() == 5
    assert page.get_attribute("#graph .node[data-name='publish']", "aria-label") == (
        "publish: success")
    assert page.evaluate("window.__ironflowRun.metrics.eventsApplied") > 0  # via the stream
    # the graph has an edge per dependency: fetch->3, 3->publish
    assert page.locator("#graph path.edge").count() == 6
    page.screenshot(path=str(shots / "run-graph.png"))
    page.click("#tab-timeline")
    page.wait_for_selector(".timeline .bar.success")
    assert page.locator(".timeline .vrow").count() == 5
    page.screenshot(path=str(shots / "run-timeline.png"))
    thread.join(30)


def test_a_replayed_history_moves_no_finished_step_backwards(page, server, api):
    """The page reads the run record, then the stream replays the run's events from the
    start. Cut the replay off after the failed step's first start: the step must still
    read failed on its second attempt, and the run failed, until the stream resumes."""
    start_run(server, "failing.lua").join(30)
    run = newest_run(api, "failing")
    frames = api.get(f"/runs/{run['id']}/events").text.split("\n\n")
    cut = next(i for i, f in enumerate(frames)
               if '"task_started"' in f and '"step":"parse"' in f.replace(" ", ""))
    replayed = frames[: cut + 1]
    held_back = ('event: stream_error\ndata: {"error": "held back by the test", '
                 '"code": "event_stream_error", "retryable": true}')
    served: list[str] = []

    def events(route):
        if served:  # the reconnect after the test's check gets the real stream
            route.continue_()
            return
        served.append(route.request.url)
        route.fulfill(status=200, headers={"content-type": "text/event-stream"},
                      body="\n\n".join([*replayed, held_back]) + "\n\n")

    page.route(f"**/runs/{run['id']}/events", events)
    page.goto(f"{server.url}/ui/#/runs/{run['id']}")
    page.wait_for_function(f"(window.__ironflowRun?.metrics.eventsApplied ?? 0) >= {len(replayed)}")
    shown = page.evaluate("({run: window.__ironflowRun.status, "
                          "parse: {...window.__ironflowRun.tasks.parse}})")
    assert shown["run"] == "failed"
    assert (shown["parse"]["status"], shown["parse"]["attempt"]) == ("failed", 2)
    assert page.locator(".runhead .st-failed").count() == 1
    # the replayed start still draws its attempt on the timeline
    assert page.evaluate("window.__ironflowRun.attempts.get('parse').length") == 1


def test_open_a_failed_step_and_read_its_error(page, server, api, shots):
    start_run(server, "failing.lua").join(30)
    run = newest_run(api, "failing")
    record = api.get(f"/runs/{run['id']}").json()
    error = record["tasks"]["parse"]["error"]
    page.goto(f"{server.url}/ui/#/runs/{run['id']}")
    page.wait_for_selector(".runhead .st-failed")
    page.click("#graph .node[data-name='parse']")
    assert page.inner_text("#step-error") == error
    detail = page.inner_text("aside.detail")
    assert "json_parse" in detail and "Attempts\n2" in detail.replace("\t", "\n")
    page.screenshot(path=str(shots / "run-failed-step.png"))
    # keyboard on the graph: from the focused step, ArrowRight goes to the next phase
    page.focus("#graph .node[data-name='load']")
    page.keyboard.press("Enter")
    assert page.inner_text("#detail-title").endswith("load")
    page.keyboard.press("ArrowRight")
    assert page.inner_text("#detail-title").endswith("parse")
    assert page.evaluate("document.activeElement.dataset.name") == "parse"
    # the timeline has one bar per attempt: the retried step shows two failed bars
    page.click("#tab-timeline")
    page.wait_for_selector(".timeline .bar")
    assert page.locator(".timeline .vrow:has-text('parse') .bar.failed").count() == 2
    # keyboard: the steps list opens a step with the arrow keys
    page.click("#tab-steps")
    page.focus("#steps-list")
    page.keyboard.press("Home")
    assert page.inner_text("#detail-title").endswith("load")
    page.keyboard.press("ArrowDown")
    assert page.inner_text("#detail-title").endswith("parse")
    page.click("#tab-context")
    page.wait_for_selector(".jt summary")
    assert "raw" in page.inner_text("#panel-context")


def test_cancel_a_running_run_after_confirming(page, server, api):
    thread = start_run(server, "long.lua")
    run = newest_run(api, "long", status="running")
    page.goto(f"{server.url}/ui/#/runs/{run['id']}")
    page.wait_for_selector("#graph .node.n-running")
    page.click("button:text('Cancel')")
    page.click("#confirm button.quiet")  # "Keep it": nothing happens
    assert api.get(f"/runs/{run['id']}").json()["status"] == "running"
    page.click("button:text('Cancel')")
    page.click("#confirm-ok")
    page.wait_for_selector(".runhead .st-cancelled")
    assert api.get(f"/runs/{run['id']}").json()["status"] == "cancelled"
    page.wait_for_selector("#graph .node.n-cancelled[data-name='wait']")
    thread.join(30)
    # Resume continues the same run in place, and the page follows it live.
    page.click("button:text('Resume')")
    page.click("#confirm-ok")
    # (the notice still shows "Cancelling the run…" until the resume answers)
    page.wait_for_selector(f"#notice:has-text('Resumed as run {run['id']}')")
    page.wait_for_selector("#graph .node.n-running[data-name='wait']")
    assert api.get(f"/runs/{run['id']}").json()["status"] == "running"
    # End it: cancel again, then delete (each confirmed).
    page.click("button:text('Cancel')")
    page.click("#confirm-ok")
    page.wait_for_selector(".runhead .st-cancelled")
    page.click("button:text('Delete')")
    page.click("#confirm-ok")
    page.wait_for_url("**/ui/#/runs")


def test_page_through_120_runs_and_filter(page, server, api, shots):
    def one(i: int) -> None:
        with server.client() as client:
            assert client.post("/flows/run", json={"file": "hello.lua",
                                                   "context": {"name": f"n{i}"}}).status_code == 200

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(one, range(PAGED_RUNS)))
    everything = []
    cursor = None
    while True:
        body = api.get("/runs", params={"limit": 100, **({"after": cursor} if cursor else {})}).json()
        everything += [r["id"] for r in body["runs"]]
        if not body["has_more"]:
            break
        cursor = body["next_cursor"]
    page.reload()
    page.wait_for_selector("tr[data-run]")
    seen = []
    while True:
        page.wait_for_function("document.querySelectorAll('tr[data-run]').length > 0")
        seen += page.eval_on_selector_all("tr[data-run]", "rows => rows.map(r => r.dataset.run)")
        if page.is_disabled("#next-page"):
            break
        first = page.get_attribute("tr[data-run]", "data-run")
        page.click("#next-page")
        page.wait_for_function(
            f"document.querySelector('tr[data-run]')?.dataset.run !== {first!r}")
    assert seen == everything and len(seen) >= PAGED_RUNS
    page.click("#prev-page")
    page.wait_for_selector("#page-info:text('Page 2')")
    # filters: status by the API, flow name in the page
    page.select_option("#filter-status", "failed")
    page.wait_for_function(
        "[...document.querySelectorAll('tr[data-run] .st')].every(s => s.textContent === 'failed')")
    page.select_option("#filter-status", "")
    page.fill("#filter-flow", "live")
    page.wait_for_function("document.querySelectorAll('tr[data-run]').length === 1")
    page.fill("#filter-flow", "")
    page.wait_for_function("document.querySelectorAll('tr[data-run]').length === 50")
    page.screenshot(path=str(shots / "runs.png"))
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=str(shots / "runs-dark.png"))
    page.emulate_media(color_scheme="light")


def test_nodes_and_plugins_pages_show_what_is_installed(page, api, shots):
    page.click("a[data-nav='nodes']")
    page.wait_for_selector("tr[data-node='delay']")
    assert page.locator("tr[data-node]").count() == api.get("/nodes").json()["total"]
    page.fill("#filter-nodes", "json_p")
    assert page.locator("tr[data-node]:visible").count() == 1
    page.fill("#filter-nodes", "")
    page.screenshot(path=str(shots / "nodes.png"))
    page.click("a[data-nav='plugins']")
    page.wait_for_selector("tr[data-plugin='ui']")
    assert "routes: /ui" in page.inner_text("tr[data-plugin='ui']")
    assert page.locator("tr[data-plugin]").count() == api.get("/plugins").json()["total"]
    page.screenshot(path=str(shots / "plugins.png"))


def test_screenshots_were_saved(browser, shots: Path):
    names = {p.name for p in shots.glob("*.png")}
    assert {"login.png", "runs.png", "run-graph.png", "nodes.png", "plugins.png"} <= names
