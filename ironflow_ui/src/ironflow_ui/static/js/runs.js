// The runs page: newest first, filtered by status (by the API) and flow name (in the
// browser, as the API filters runs by status only), cursor paging, refreshed every 2 s.

import { api } from "./api.js";
import { RUN_STATUSES, TERMINAL_RUN, badge, duration, h, notify, span, time } from "./util.js";

const PAGE = 50;
const REFRESH_MS = 2000;
const MAX_SCAN_REQUESTS = 20;
// Kept across visits, so coming back from a run returns to the same page and filters.
const view = { status: "", flow: "", cursors: [null] };

async function loadPage(after, signal) {
  const query = (cursor, limit) => {
    const q = new URLSearchParams({ limit: String(limit) });
    if (view.status) q.set("status", view.status);
    if (cursor) q.set("after", cursor);
    return `/runs?${q}`;
  };
  if (!view.flow) {
    const page = await api(query(after, PAGE), { signal });
    return { runs: page.runs, next: page.has_more ? page.next_cursor : null };
  }
  // Flow-name filter: read whole API pages until one screenful matched (or the end).
  const needle = view.flow.toLowerCase();
  const runs = [];
  let cursor = after;
  for (let i = 0; i < MAX_SCAN_REQUESTS; i++) {
    const page = await api(query(cursor, 100), { signal });
    runs.push(...page.runs.filter((r) => r.flow_name.toLowerCase().includes(needle)));
    cursor = page.has_more ? page.next_cursor : null;
    if (!cursor || runs.length >= PAGE) break;
  }
  return { runs, next: cursor };
}

export function runsPage(main) {
  const controller = new AbortController();
  let timer = null;
  let shown = "";
  let next = null;

  const status = h("select", { id: "filter-status" },
    h("option", { value: "" }, "any status"),
    RUN_STATUSES.map((s) => h("option", { value: s, selected: s === view.status }, s)));
  const flow = h("input", { type: "search", id: "filter-flow", value: view.flow,
    placeholder: "flow name contains…", autocomplete: "off" });
  const tbody = h("tbody", {});
  const pageInfo = h("span", { class: "muted", id: "page-info", "aria-live": "polite" });
  const prev = h("button", { type: "button", class: "quiet", id: "prev-page" }, "← Newer");
  const nextButton = h("button", { type: "button", class: "quiet", id: "next-page" }, "Older →");
  const live = h("span", { class: "muted" }, "");

  main.replaceChildren(
    h("h1", {}, "Runs"),
    h("div", { class: "toolbar" },
      h("label", {}, "Status", status),
      h("label", { class: "grow" }, "Flow", flow),
      live),
    h("table", { "aria-label": "Runs, newest first" },
      h("thead", {}, h("tr", {}, ["Status", "Flow", "Run", "Started", "Duration", "Steps"].map((t) =>
        h("th", { scope: "col" }, t)))),
      tbody),
    h("div", { class: "pager" }, prev, nextButton, pageInfo),
  );

  function row(run) {
    const ms = span(run.started, run.finished);
    return h("tr", { "data-run": run.id },
      h("td", {}, badge(run.status)),
      h("td", {}, run.flow_name),
      h("td", { class: "mono" }, h("a", { href: `#/runs/${encodeURIComponent(run.id)}` }, run.id)),
      h("td", {}, time(run.started)),
      h("td", {}, TERMINAL_RUN.has(run.status) ? duration(ms) : `${duration(ms)} …`),
      h("td", {}, String(run.task_count)));
  }

  async function refresh() {
    clearTimeout(timer);
    const after = view.cursors[view.cursors.length - 1];
    try {
      const page = await loadPage(after, controller.signal);
      next = page.next;
      const key = JSON.stringify(page.runs) + (page.runs.some((r) => !TERMINAL_RUN.has(r.status)) ? Date.now() : "");
      if (key !== shown) {
        shown = key;
        const focused = document.activeElement?.closest?.("tr")?.dataset.run;
        tbody.replaceChildren(...page.runs.map(row));
        if (!page.runs.length) {
          tbody.append(h("tr", {}, h("td", { colspan: "6", class: "muted" }, "No runs match.")));
        }
        if (focused) tbody.querySelector(`tr[data-run="${CSS.escape(focused)}"] a`)?.focus();
      }
      const number = view.cursors.length;
      pageInfo.textContent = `Page ${number} · ${page.runs.length} run${page.runs.length === 1 ? "" : "s"}`;
      prev.disabled = number === 1;
      nextButton.disabled = !next;
      live.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (controller.signal.aborted) return;
      notify(error.message);
    }
    if (!controller.signal.aborted) timer = setTimeout(refresh, REFRESH_MS);
  }

  function restart() { shown = ""; view.cursors = [null]; refresh(); }
  status.addEventListener("change", () => { view.status = status.value; restart(); });
  let typing = null;
  flow.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { view.flow = flow.value.trim(); restart(); }, 250);
  });
  nextButton.addEventListener("click", () => { if (next) { view.cursors.push(next); shown = ""; refresh(); } });
  prev.addEventListener("click", () => {
    if (view.cursors.length > 1) { view.cursors.pop(); shown = ""; refresh(); }
  });
  refresh();
  return () => { controller.abort(); clearTimeout(timer); clearTimeout(typing); };
}
