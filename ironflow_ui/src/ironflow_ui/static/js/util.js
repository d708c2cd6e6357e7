// Small DOM and formatting helpers shared by the pages.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);

export const TERMINAL_RUN = new Set(["success", "failed", "stalled", "cancelled"]);
export const RUN_STATUSES = ["pending", "running", "success", "failed", "stalled", "cancelled"];
export const TASK_STATUSES = ["pending", "running", "success", "failed", "skipped", "cancelled"];

export function badge(status) {
  return h("span", { class: `st st-${status}` }, status);
}

export function time(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? ts : d.toLocaleString();
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} m`;
}

export function span(started, finished, now = Date.now()) {
  if (!started) return null;
  const a = Date.parse(started);
  const b = finished ? Date.parse(finished) : now;
  return Number.isNaN(a) || Number.isNaN(b) ? null : Math.max(0, b - a);
}

/** Run `fn` at most once per animation frame, however often it is requested. */
export function frameBatcher(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; fn(); });
  };
}

/** Ask before acting, in an accessible modal dialog; resolves true when confirmed. */
export function confirmAction(title, text, okLabel) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
    }, { once: true });
    dialog.showModal();
    dialog.querySelector("button.quiet").focus();
  });
}

export function notify(message, kind = "error") {
  const box = document.getElementById("notice");
  if (!message) { box.hidden = true; box.textContent = ""; return; }
  box.className = kind === "info" ? "info" : "";
  box.textContent = message;
  box.hidden = false;
}
