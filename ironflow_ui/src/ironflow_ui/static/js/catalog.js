// The nodes and plugins pages: what this server has installed (GET /nodes, GET /plugins).

import { api } from "./api.js";
import { badge, h } from "./util.js";

function table(label, headings, rows) {
  return h("table", { "aria-label": label },
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows));
}

async function load(main, path, render) {
  const controller = new AbortController();
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  api(path, { signal: controller.signal }).then((data) => render(data), (error) => {
    if (!controller.signal.aborted) main.replaceChildren(h("p", { class: "error-text" }, error.message));
  });
  return () => controller.abort();
}

export function nodesPage(main) {
  return load(main, "/nodes", ({ nodes, total }) => {
    const filter = h("input", { type: "search", id: "filter-nodes", placeholder: "filter…",
      "aria-label": "Filter nodes" });
    const rows = nodes.map((n) => h("tr", { "data-node": n.node_type },
      h("td", { class: "mono" }, n.node_type), h("td", { class: "wrap" }, n.description)));
    filter.addEventListener("input", () => {
      const q = filter.value.toLowerCase();
      for (const r of rows) r.hidden = !r.textContent.toLowerCase().includes(q);
    });
    main.replaceChildren(h("h1", {}, `Nodes (${total})`), h("div", { class: "toolbar" }, filter),
      table("Installed node types", ["Node type", "Description"], rows));
  });
}

export function pluginsPage(main) {
  return load(main, "/plugins", ({ plugins, total }) => {
    const rows = plugins.map((p) => h("tr", { "data-plugin": p.name },
      h("td", { class: "mono" }, p.name),
      h("td", {}, badge(p.status)),
      h("td", {}, `${p.distribution} ${p.version}`),
      h("td", { class: "wrap" }, p.error ? h("span", { class: "error-text" }, p.error)
        : `${p.provides.length} item${p.provides.length === 1 ? "" : "s"}: ${summary(p.provides)}`)));
    main.replaceChildren(h("h1", {}, `Plugins (${total})`),
      table("Installed plugins", ["Plugin", "Status", "Distribution", "Provides"], rows));
  });
}

function summary(provides) {
  const kinds = {};
  for (const item of provides) {
    const [kind, name] = item.split(":");
    (kinds[kind] ||= []).push(name);
  }
  return Object.entries(kinds).map(([k, names]) =>
    `${k}s: ${names.slice(0, 8).join(", ")}${names.length > 8 ? `, … (${names.length})` : ""}`).join("; ");
}
