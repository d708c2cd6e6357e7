// A collapsible JSON tree built from <details>/<summary> (keyboard operable by default).
// Children are built only when a node is opened, so a huge context costs nothing until read.

import { h } from "./util.js";

const PREVIEW_KEYS = 3;

function scalar(value) {
  if (value === null) return h("span", { class: "z" }, "null");
  switch (typeof value) {
    case "string": return h("span", { class: "s" }, JSON.stringify(value));
    case "number": return h("span", { class: "n" }, String(value));
    case "boolean": return h("span", { class: "b" }, String(value));
    default: return h("span", {}, String(value));
  }
}

function preview(value) {
  if (Array.isArray(value)) return `[${value.length} item${value.length === 1 ? "" : "s"}]`;
  const keys = Object.keys(value);
  const shown = keys.slice(0, PREVIEW_KEYS).join(", ");
  return `{${shown}${keys.length > PREVIEW_KEYS ? ", …" : ""}}`;
}

function node(label, value, open) {
  if (value === null || typeof value !== "object") {
    return h("div", { class: "row" }, label !== null ? [h("span", { class: "k" }, label), ": "] : [],
      scalar(value));
  }
  const details = h("details", {},
    h("summary", {}, label !== null ? [h("span", { class: "k" }, label), ": "] : [],
      h("span", { class: "muted" }, preview(value))));
  let built = false;
  const build = () => {
    if (built) return;
    built = true;
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    const frag = document.createDocumentFragment();
    for (const [k, v] of entries) frag.append(node(k, v, false));
    if (!entries.length) frag.append(h("div", { class: "row muted" }, "(empty)"));
    details.append(frag);
  };
  details.addEventListener("toggle", () => { if (details.open) build(); });
  if (open) { build(); details.open = true; }
  return details;
}

/** A tree for `value`, its top level open. */
export function jsonTree(value) {
  return h("div", { class: "jt" }, node(null, value, true));
}
