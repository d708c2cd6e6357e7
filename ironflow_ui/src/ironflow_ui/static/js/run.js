// The run page: live graph, step list, timeline, step detail, context and actions.
// State comes from GET /runs/{id}; the SSE stream replays the run's events and then
// follows it live. Events are queued and applied once per animation frame.

import { api, streamEvents } from "./api.js";
import { Graph, ICONS } from "./graph.js";
import { jsonTree } from "./jsontree.js";
import { Timeline } from "./timeline.js";
import {
  TASK_STATUSES, TERMINAL_RUN, badge, confirmAction, duration, h, notify, span, time,
} from "./util.js";
import { VirtualList } from "./virtual.js";

const RANK = { pending: 0, running: 1, success: 2, failed: 2, skipped: 2, cancelled: 2 };
const POLL_MS = 2000;

function taskState(t) {
  return { name: t.name, status: t.status, attempt: t.attempt, node_type: t.node_type,
    depends_on: t.depends_on || [], error: t.error, output: t.output, started: t.started,
    finished: t.finished };
}

/** Is `b` at least as recent as `a`? (a later attempt, or a later stage of the same one) */
function fresher(a, b) {
  const [was, now] = [a.attempt ?? 0, b.attempt ?? 0];
  if (now !== was) return now > was;
  return RANK[b.status] >= RANK[a.status];
}

export function runPage(main, runId) {
  const controller = new AbortController();
  const state = {
    runId, record: null, tasks: {}, order: [], attempts: new Map(), status: "pending",
    runStart: null, runEnd: null, queue: [], selected: null, tab: "graph", eventsGone: false,
    metrics: { firstRender: null, graphDraws: 0, graphDrawMs: 0, flushes: 0, flushMs: 0,
      eventsApplied: 0, maxFlushMs: 0, runFinishedApplied: null },
  };
  window.__ironflowRun = state; // read by the browser tests and the benchmark
  let views = null;
  let pollTimer = null;
  let refetching = null;
  let lastEventId = null;

  main.replaceChildren(h("p", { class: "muted" }, "Loading run…"));

  // ------------------------------------------------------------------ data
  function absorb(record, initial) {
    state.record = record;
    const rank = (st) => (TERMINAL_RUN.has(st) ? 2 : st === "running" ? 1 : 0);
    if (initial || rank(record.status) >= rank(state.status)) state.status = record.status;
    state.runStart = record.started ? Date.parse(record.started) : state.runStart;
    if (record.finished) state.runEnd = Date.parse(record.finished);
    for (const t of Object.values(record.tasks)) {
      const mine = state.tasks[t.name];
      const theirs = taskState(t);
      if (!mine) { state.tasks[t.name] = theirs; state.order.push(t.name); continue; }
      const keepStatus = !fresher(mine, theirs);
      Object.assign(mine, theirs, keepStatus ? { status: mine.status, attempt: mine.attempt } : {});
    }
  }

  function attemptsFromRecords() {
    for (const t of Object.values(state.tasks)) {
      if (!t.started || state.attempts.has(t.name)) continue;
      state.attempts.set(t.name, [{ attempt: t.attempt || 1, start: Date.parse(t.started),
        end: t.finished ? Date.parse(t.finished) : null, status: t.status }]);
    }
  }

  /**
   * Apply one event. The stream replays a run's history after the page has read its
   * record, so an event older than what the page shows moves no status backwards;
   * it still draws its attempt on the timeline.
   */
  function apply(ev) {
    const ts = Date.parse(ev.timestamp);
    const stale = state.runEnd !== null && ts < state.runEnd;
    if (ev.type === "run_started") {
      if (!(stale && TERMINAL_RUN.has(state.status))) state.status = "running";
      state.runStart ??= ts;
      return;
    }
    if (ev.type === "run_finished") {
      if (!stale) { state.status = ev.run_status; state.runEnd = ts; }
      return;
    }
    const task = ev.step && state.tasks[ev.step];
    if (!task) return;
    const tries = state.attempts.get(ev.step) || [];
    const open = tries.length ? tries[tries.length - 1] : null;
    const advance = (status) => {
      const next = { status, attempt: ev.attempt ?? task.attempt };
      if (!fresher(task, next)) return false;
      task.status = status;
      task.attempt = next.attempt;
      return true;
    };
    const close = (status) => {
      const moved = advance(status);
      if (open && open.end === null) {
        open.end = ev.duration_ms !== undefined ? open.start + ev.duration_ms : ts;
        open.status = status;
      }
      return moved;
    };
    switch (ev.type) {
      case "task_started":
        advance("running");
        tries.push({ attempt: ev.attempt ?? task.attempt, start: ts, end: null, status: "running" });
        state.attempts.set(ev.step, tries);
        break;
      case "task_succeeded": close("success"); break;
      case "task_failed": {
        const moved = close("failed");
        if (ev.error) { if (moved) task.error = ev.error; if (open) open.error = ev.error; }
        break;
      }
      case "task_cancelled": close("cancelled"); break;
      case "task_skipped": advance("skipped"); break;
      case "task_retrying": advance("running"); break;
      default: break;
    }
  }

  function flush() {
    if (controller.signal.aborted || !state.queue.length) return;
    const t0 = performance.now();
    const batch = state.queue;
    state.queue = [];
    let finished = false;
    for (const ev of batch) {
      apply(ev);
      if (ev.type === "run_finished") finished = true;
    }
    state.metrics.eventsApplied += batch.length;
    redraw();
    const ms = performance.now() - t0;
    state.metrics.flushes += 1;
    state.metrics.flushMs += ms;
    state.metrics.maxFlushMs = Math.max(state.metrics.maxFlushMs, ms);
    if (finished) { state.metrics.runFinishedApplied = performance.now(); refetch(); }
  }
  let flushQueued = false;
  function enqueue(ev) {
    state.queue.push(ev);
    if (!flushQueued) {
      flushQueued = true;
      requestAnimationFrame(() => { flushQueued = false; flush(); });
    }
  }

  async function refetch() {
    if (refetching) return refetching;
    refetching = (async () => {
      try {
        absorb(await api(`/runs/${encodeURIComponent(runId)}`, { signal: controller.signal }), false);
        if (state.eventsGone) attemptsFromRecords();
        redraw();
      } catch (error) {
        if (!controller.signal.aborted) notify(error.message);
      } finally { refetching = null; }
    })();
    return refetching;
  }

  function poll() {
    clearTimeout(pollTimer);
    if (controller.signal.aborted || TERMINAL_RUN.has(state.status)) return;
    pollTimer = setTimeout(async () => { await refetch(); poll(); }, POLL_MS);
  }

  // ------------------------------------------------------------------ view
  function counts() {
    const c = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0]));
    for (const name of state.order) c[state.tasks[name].status] += 1;
    return c;
  }

  function redraw() {
    if (!views) return;
    const c = counts();
    views.counts.replaceChildren(...TASK_STATUSES.filter((s) => c[s]).map((s) =>
      h("span", { class: `st st-${s}` }, `${c[s]} ${s}`)));
    views.status.replaceChildren(badge(state.status));
    const total = span(state.record.started, state.runEnd ? new Date(state.runEnd).toISOString() : null);
    views.duration.textContent = duration(total);
    views.finished.textContent = state.runEnd ? time(new Date(state.runEnd).toISOString()) : "—";
    const terminal = TERMINAL_RUN.has(state.status);
    views.cancel.disabled = terminal;
    views.resume.disabled = !terminal || state.status === "success";
    views.remove.disabled = !terminal;
    if (state.tab === "graph") views.graph.draw();
    if (state.tab === "steps") views.list.render(true);
    if (state.tab === "timeline") views.timeline.update();
    if (state.selected) detail(state.selected);
  }

  function detail(name) {
    const t = state.tasks[name];
    if (!t) return;
    const tries = state.attempts.get(name) || [];
    const ms = span(t.started, t.finished) ?? (tries.length && tries[tries.length - 1].end
      ? tries[tries.length - 1].end - tries[tries.length - 1].start : null);
    const rows = [
      ["Status", badge(t.status)],
      ["Node type", h("span", { class: "mono" }, t.node_type)],
      ["Attempts", String(t.attempt)],
      ["Duration", t.status === "running" ? "running…" : duration(ms)],
      ["Started", time(t.started)],
      ["Finished", time(t.finished)],
      ["Depends on", t.depends_on.length ? t.depends_on.flatMap((d, i) => [
        i ? ", " : "", h("a", { href: "#", onclick: (e) => { e.preventDefault(); select(d, true); } }, d)]) : "—"],
    ];
    const parts = [
      h("h2", { id: "detail-title" }, ICONS[t.status] || "", " ", name),
      h("dl", {}, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    ];
    if (tries.length > 1) {
      parts.push(h("h3", {}, "Attempts"), h("ol", {}, tries.map((a) =>
        h("li", {}, `${a.status}, ${a.end ? duration(a.end - a.start) : "running"}`,
          a.error ? `: ${a.error}` : ""))));
    }
    if (t.error) parts.push(h("h3", {}, "Error"), h("pre", { class: "error-text", id: "step-error" }, t.error));
    if (t.output !== undefined && t.output !== null) parts.push(h("h3", {}, "Output"), jsonTree(t.output));
    views.detail.replaceChildren(...parts);
  }

  function select(name, focusGraph) {
    state.selected = name;
    const i = state.order.indexOf(name);
    if (views.list.selected !== i) views.list.selected = i;
    if (focusGraph && state.tab === "graph") views.graph.pick(name, true);
    else views.graph.selected = name;
    detail(name);
    const t = state.tasks[name];
    if (!TERMINAL_RUN.has(state.status) || (t && t.status !== "pending" && t.output === undefined && !t.finished)) {
      refetch();
    }
  }

  async function act(kind) {
    const id = runId;
    const asks = {
      cancel: ["Cancel this run?", `Run ${id} will stop; steps still running are cancelled.`, "Cancel run"],
      resume: ["Resume this run?", `Steps of ${id} that did not succeed run again.`, "Resume run"],
      remove: ["Delete this run?", `Run ${id} and its events are removed for good.`, "Delete run"],
    };
    if (!(await confirmAction(...asks[kind]))) return;
    try {
      if (kind === "cancel") {
        await api(`/runs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
        notify("Cancelling the run…", "info");
        refetch();
      } else if (kind === "resume") {
        const reply = await api(`/runs/${encodeURIComponent(id)}/resume`, { method: "POST" });
        const next = reply.run_id || reply.id || id;
        notify(`Resumed as run ${next}`, "info");
        if (next !== id) location.hash = `#/runs/${encodeURIComponent(next)}`;
        else {
          // Resumed in place: follow it on from the last event this page saw.
          state.status = "running";
          state.runEnd = null;
          state.eventsGone = false;
          start(lastEventId);
        }
      } else {
        await api(`/runs/${encodeURIComponent(id)}`, { method: "DELETE" });
        notify(`Deleted run ${id}`, "info");
        location.hash = "#/runs";
      }
    } catch (error) {
      const verb = { cancel: "Cancel", resume: "Resume", remove: "Delete" }[kind];
      notify(`${verb} failed: ${error.message}`);
    }
  }

  function tabs() {
    const names = [["graph", "Graph"], ["steps", "Steps"], ["timeline", "Timeline"], ["context", "Context"]];
    const bar = h("div", { class: "tabs", role: "tablist", "aria-label": "Run views" });
    const buttons = names.map(([key, label]) => h("button", {
      type: "button", role: "tab", id: `tab-${key}`, "aria-controls": `panel-${key}`,
      "aria-selected": String(key === state.tab), tabindex: key === state.tab ? "0" : "-1",
      onclick: () => show(key),
    }, label));
    bar.append(...buttons);
    bar.addEventListener("keydown", (e) => {
      const i = names.findIndex(([k]) => k === state.tab);
      const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      const next = names[(i + step + names.length) % names.length][0];
      show(next);
      document.getElementById(`tab-${next}`).focus();
    });
    return bar;
  }

  function show(key) {
    state.tab = key;
    for (const k of ["graph", "steps", "timeline", "context"]) {
      const tab = document.getElementById(`tab-${k}`);
      tab.setAttribute("aria-selected", String(k === key));
      tab.tabIndex = k === key ? 0 : -1;
      document.getElementById(`panel-${k}`).hidden = k !== key;
    }
    if (key === "context") {
      const ctx = { ...(state.record.ctx || {}) };
      views.context.replaceChildren(jsonTree(ctx));
    }
    redraw();
  }

  function build(record) {
    const back = h("a", { href: "#/runs" }, "← Runs");
    const status = h("span", {});
    const cancel = h("button", { type: "button", class: "quiet", onclick: () => act("cancel") }, "Cancel");
    const resume = h("button", { type: "button", class: "quiet", onclick: () => act("resume") }, "Resume");
    const remove = h("button", { type: "button", class: "danger", onclick: () => act("remove") }, "Delete");
    const duration_ = h("b", {});
    const finished = h("b", {});
    const countsBox = h("div", { class: "counts", "aria-label": "Steps by status" });
    const graphBox = h("div", { class: "viewport", id: "graph" });
    const listBox = h("div", { class: "vlist", id: "steps-list" });
    const timelineBox = h("div", {});
    const contextBox = h("div", { class: "panel" });
    const detailBox = h("aside", { class: "panel detail", "aria-labelledby": "detail-title" },
      h("p", { id: "detail-title", class: "muted" }, "Select a step to see its detail."));
    main.replaceChildren(
      back,
      h("div", { class: "runhead" }, h("h1", {}, record.flow_name), status,
        h("span", { class: "mono muted" }, record.id),
        h("div", { class: "actions" }, cancel, resume, remove)),
      h("div", { class: "facts" },
        h("span", {}, "Started ", h("b", {}, time(record.started))),
        h("span", {}, "Finished ", finished),
        h("span", {}, "Duration ", duration_),
        h("span", {}, "Steps ", h("b", {}, String(state.order.length)))),
      countsBox,
      tabs(),
      h("div", { class: "split" },
        h("div", {},
          h("section", { id: "panel-graph", role: "tabpanel", "aria-labelledby": "tab-graph" }, graphBox),
          h("section", { id: "panel-steps", role: "tabpanel", "aria-labelledby": "tab-steps", hidden: true }, listBox),
          h("section", { id: "panel-timeline", role: "tabpanel", "aria-labelledby": "tab-timeline", hidden: true }, timelineBox),
          h("section", { id: "panel-context", role: "tabpanel", "aria-labelledby": "tab-context", hidden: true }, contextBox)),
        detailBox),
    );
    views = { status, cancel, resume, remove, duration: duration_, finished, counts: countsBox,
      detail: detailBox, context: contextBox };
    views.graph = new Graph(graphBox, state, (name) => select(name, false));
    views.list = new VirtualList(listBox, {
      label: "Steps; arrow keys move, Enter opens",
      count: () => state.order.length,
      onOpen: (i) => select(state.order[i], false),
      renderRow: (i, el) => {
        const t = state.tasks[state.order[i]];
        el.replaceChildren(badge(t.status), h("span", { class: "name" }, t.name),
          h("span", { class: "cell mono" }, t.node_type),
          h("span", { class: "cell" }, t.attempt > 1 ? `${t.attempt} attempts` : ""),
          h("span", { class: "cell" }, duration(span(t.started, t.finished))));
      },
    });
    views.timeline = new Timeline(timelineBox, state, (name) => select(name, false));
  }

  /** Follow the events; a run that goes on after run_finished (resumed in place) is followed on. */
  async function start(after = null) {
    const last = lastEventId = await streamEvents(runId, {
      signal: controller.signal,
      after,
      onEvent: enqueue,
      onGone: () => {
        state.eventsGone = true;
        attemptsFromRecords();
        refetch().then(poll);
      },
    });
    if (controller.signal.aborted || state.eventsGone) return;
    await refetch();
    if (state.record && !TERMINAL_RUN.has(state.record.status)) {
      state.status = state.record.status;
      start(last);
    }
  }

  (async () => {
    try {
      const record = await api(`/runs/${encodeURIComponent(runId)}`, { signal: controller.signal });
      absorb(record, true);
      build(record);
      redraw();
      state.metrics.firstRender = performance.now();
      start();
    } catch (error) {
      if (controller.signal.aborted) return;
      main.replaceChildren(h("a", { href: "#/runs" }, "← Runs"), h("h1", {}, "Run not available"),
        h("p", { class: "error-text" }, error.message));
    }
  })();

  return () => { controller.abort(); clearTimeout(pollTimer); };
}
