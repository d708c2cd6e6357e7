"""The dashboard with a 2,000-step run: time to first render and frame times while it updates.

Starts a real ``ironflow serve`` (with ironflow-ui) on loopback, runs a flow of
40 phases x 50 ``delay`` steps (each step depends on its twin in the previous
phase), opens the run page in Debian's Chromium (headless, via Playwright)
while the run goes on, and reports:

* first render: ms from navigation start until the page has drawn the run
  (record fetched, graph laid out and drawn);
* frames while the run updates live: intervals between animation frames
  (median, p95, max, frames over 50 ms) and the cost of applying a batch of
  events and redrawing (mean and max per frame);
* frames while scrolling the graph across all 40 phases;
* first render again once the run finished, and when its replayed events
  (about 4,000) were applied.

    uv run python bench/ui_2000.py [--phases 40 --width 50 --delay 0.05] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.core.api.server_process import API_KEY, ServerProcess, clean_env  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

FLOW = """
local flow = Flow.new("big")
for p = 1, {phases} do
  for i = 1, {width} do
    local step = flow:step("p" .. p .. "_s" .. i, nodes.delay({{ seconds = {delay} }}))
    if p > 1 then step:depends_on("p" .. (p - 1) .. "_s" .. i) end
  end
end
return flow
"""

RECORD_FRAMES = """(seconds) => new Promise((resolve) => {
  const gaps = []; let last = performance.now(); const end = last + seconds * 1000;
  const tick = (now) => { gaps.push(now - last); last = now;
    if (now < end) requestAnimationFrame(tick); else resolve(gaps); };
  requestAnimationFrame(tick);
})"""

SCROLL_FRAMES = """() => new Promise((resolve) => {
  const box = document.getElementById('graph'); const gaps = []; let last = performance.now();
  const tick = (now) => { gaps.push(now - last); last = now; box.scrollLeft += 120;
    box.scrollTop = (box.scrollTop + 40) % 400;
    if (box.scrollLeft + box.clientWidth < box.scrollWidth - 1) requestAnimationFrame(tick);
    else resolve(gaps); };
  requestAnimationFrame(tick);
})"""


def frame_stats(gaps: list[float]) -> dict[str, float]:
    gaps = sorted(gaps[1:]) or [0.0]
    return {"frames": len(gaps), "median_ms": round(statistics.median(gaps), 1),
            "p95_ms": round(gaps[int(0.95 * (len(gaps) - 1))], 1), "max_ms": round(gaps[-1], 1),
            "over_50ms": sum(1 for g in gaps if g > 50)}


def metrics(page) -> dict[str, float]:
    m = page.evaluate("window.__ironflowRun.metrics")
    return {"first_render_ms": round(m["firstRender"], 1), "events": m["eventsApplied"],
            "flushes": m["flushes"],
            "flush_mean_ms": round(m["flushMs"] / max(1, m["flushes"]), 2),
            "flush_max_ms": round(m["maxFlushMs"], 1),
            "graph_draw_mean_ms": round(m["graphDrawMs"] / max(1, m["graphDraws"]), 2),
            "svg_elements": page.evaluate("document.querySelectorAll('#graph svg *').length")}


def open_run(browser, url: str, run_id: str):
    # bypass_csp: wait_for_function evaluates strings, which the page's CSP forbids
    page = browser.new_context(viewport={"width": 1280, "height": 800},
                               bypass_csp=True).new_page()
    page.add_init_script(f"sessionStorage.setItem('ironflow.apiKey', {API_KEY!r})")
    page.goto(f"{url}/ui/#/runs/{run_id}")
    page.wait_for_function("window.__ironflowRun && window.__ironflowRun.metrics.firstRender",
                           timeout=60_000)
    return page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=int, default=40)
    parser.add_argument("--width", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="how long to record frames while the run updates")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's Chromium: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    steps = args.phases * args.width
    root = Path(tempfile.mkdtemp(prefix="ui2000-"))
    (root / "flows").mkdir()
    (root / "flows" / "big.lua").write_text(
        FLOW.format(phases=args.phases, width=args.width, delay=args.delay))
    server = ServerProcess(root, env=clean_env(IRONFLOW_API_KEY=API_KEY),
                           args=["--flows-dir", str(root / "flows")]).start()
    result: dict[str, object] = {"steps": steps}
    try:
        done: list[dict] = []
        started = time.monotonic()

        def run() -> None:
            with server.client(timeout=600) as client:
                done.append(client.post("/flows/run", json={"file": "big.lua"}).json())

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        with server.client() as client:
            run_id = None
            while run_id is None:
                runs = client.get("/runs", params={"status": "running"}).json()["runs"]
                run_id = runs[0]["id"] if runs else None
                time.sleep(0.05)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = open_run(browser, server.url, run_id)
            live = frame_stats(page.evaluate(RECORD_FRAMES, args.seconds))
            result["live"] = {**metrics(page), **live,
                              "done_steps_after": page.evaluate(
                                  "Object.values(window.__ironflowRun.tasks)"
                                  ".filter(t => t.status === 'success').length")}
            thread.join(600)
            result["run_seconds"] = round(time.monotonic() - started, 1)
            result["run_status"] = done[0]["status"] if done else "?"
            page.wait_for_function("window.__ironflowRun.status === 'success'", timeout=120_000)
            result["scroll"] = frame_stats(page.evaluate(SCROLL_FRAMES))
            page.close()
            page = open_run(browser, server.url, run_id)
            page.wait_for_function("window.__ironflowRun.metrics.runFinishedApplied",
                                   timeout=120_000)
            result["finished_run"] = {
                **metrics(page),
                "replayed_ms": round(page.evaluate(
                    "window.__ironflowRun.metrics.runFinishedApplied"), 1)}
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
