// The run's step graph in SVG: steps in columns by phase, dependency edges between them.
// Only what intersects the scrolled viewport is drawn (viewport culling), so a
// 2,000-step flow keeps a few hundred SVG elements; redraws are batched per frame.

import { esc, frameBatcher } from "./util.js";

const SVG = "http://www.w3.org/2000/svg";
const COL = 230, ROW = 44, W = 184, NH = 30, PAD = 24, TOP = 30, MARGIN = 200;
export const ICONS = { success: "✓", failed: "✕", running: "▶", pending: "○", skipped: "↷", cancelled: "⊘" };

/** Phases by Kahn's rounds over depends_on (the engine's own order); cycles go last. */
export function layout(tasks) {
  const names = Object.keys(tasks);
  const known = new Set(names);
  const indegree = new Map(names.map((n) => [n, 0]));
  const next = new Map(names.map((n) => [n, []]));
  const edges = [];
  for (const n of names) {
    for (const d of tasks[n].depends_on || []) {
      if (!known.has(d)) continue;
      edges.push([d, n]);
      next.get(d).push(n);
      indegree.set(n, indegree.get(n) + 1);
    }
  }
  const phases = [];
  let ready = names.filter((n) => indegree.get(n) === 0);
  const placed = new Set();
  while (ready.length) {
    phases.push(ready);
    ready.forEach((n) => placed.add(n));
    const following = [];
    for (const n of ready) {
      for (const m of next.get(n)) {
        indegree.set(m, indegree.get(m) - 1);
        if (indegree.get(m) === 0) following.push(m);
      }
    }
    ready = following;
  }
  const rest = names.filter((n) => !placed.has(n));
  if (rest.length) phases.push(rest);
  const pos = new Map();
  phases.forEach((members, p) => members.forEach((n, r) => pos.set(n, { phase: p, row: r,
    x: PAD + p * COL, y: TOP + r * ROW })));
  const tallest = Math.max(1, ...phases.map((m) => m.length));
  return { phases, pos, edges, width: PAD * 2 + Math.max(1, phases.length) * COL - (COL - W),
    height: TOP + tallest * ROW + PAD };
}

export class Graph {
  constructor(box, state, onSelect) {
    this.box = box;
    this.state = state;
    this.onSelect = onSelect;
    this.selected = null;
    this.box.innerHTML = "";
    this.svg = document.createElementNS(SVG, "svg");
    this.svg.setAttribute("class", "graph");
    this.svg.setAttribute("role", "group");
    this.svg.setAttribute("aria-label", "Step graph; arrow keys move between steps, Enter opens one");
    this.box.append(this.svg);
    this.relayout();
    this.refresh = frameBatcher(() => this.draw());
    this.box.addEventListener("scroll", this.refresh, { passive: true });
    this.svg.addEventListener("click", (e) => {
      const g = e.target.closest(".node");
      if (g) this.pick(g.dataset.name, false);
    });
    this.svg.addEventListener("keydown", (e) => this.key(e));
    this.draw();
  }

  relayout() {
    this.layout = layout(this.state.tasks);
    this.svg.setAttribute("width", this.layout.width);
    this.svg.setAttribute("height", this.layout.height);
  }

  pick(name, focus) {
    this.selected = name;
    this.onSelect(name);
    if (focus) this.reveal(name);
    this.draw();
    if (focus) this.svg.querySelector(`.node[data-name="${CSS.escape(name)}"]`)?.focus();
  }

  reveal(name) {
    const p = this.layout.pos.get(name);
    if (!p) return;
    const b = this.box;
    if (p.x < b.scrollLeft || p.x + W > b.scrollLeft + b.clientWidth) b.scrollLeft = p.x - PAD;
    if (p.y < b.scrollTop || p.y + NH > b.scrollTop + b.clientHeight) b.scrollTop = p.y - b.clientHeight / 2;
  }

  key(e) {
    const g = e.target.closest?.(".node");
    if (!g) return;
    const name = g.dataset.name;
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.pick(name, true); return; }
    const p = this.layout.pos.get(name);
    const phases = this.layout.phases;
    let target = null;
    if (e.key === "ArrowDown") target = phases[p.phase][p.row + 1];
    else if (e.key === "ArrowUp") target = phases[p.phase][p.row - 1];
    else if (e.key === "ArrowRight" && phases[p.phase + 1]) {
      const col = phases[p.phase + 1];
      target = col[Math.min(p.row, col.length - 1)];
    } else if (e.key === "ArrowLeft" && p.phase > 0) {
      const col = phases[p.phase - 1];
      target = col[Math.min(p.row, col.length - 1)];
    }
    if (target) { e.preventDefault(); this.pick(target, true); }
  }

  /**
   * Draw the nodes and edges that intersect the viewport (plus a margin). Elements are
   * kept by key between draws: scrolling only adds what came into view and removes what
   * left it, and a status change rewrites only that step's element.
   */
  draw() {
    const t0 = performance.now();
    const { pos, edges, phases } = this.layout;
    const b = this.box;
    const x0 = b.scrollLeft - MARGIN, x1 = b.scrollLeft + b.clientWidth + MARGIN;
    const y0 = b.scrollTop - MARGIN, y1 = b.scrollTop + b.clientHeight + MARGIN;
    const sel = this.selected;
    const wanted = new Map();
    edges.forEach(([from, to], i) => {
      const a = pos.get(from), c = pos.get(to);
      const ax = a.x + W, ay = a.y + NH / 2, cx = c.x, cy = c.y + NH / 2;
      if (Math.max(ax, cx) < x0 || Math.min(ax, cx) > x1 || Math.max(ay, cy) < y0 || Math.min(ay, cy) > y1) return;
      const mid = (ax + cx) / 2;
      const hot = sel && (from === sel || to === sel) ? " hot" : "";
      wanted.set(`e${i}`, [`edge${hot}`, `M${ax} ${ay}C${mid} ${ay} ${mid} ${cy} ${cx} ${cy}`]);
    });
    const firstPhase = Math.max(0, Math.floor((x0 - PAD) / COL));
    const lastPhase = Math.min(phases.length - 1, Math.floor((x1 - PAD) / COL));
    const firstRow = Math.max(0, Math.floor((y0 - TOP) / ROW));
    const lastRow = Math.floor((y1 - TOP) / ROW);
    for (let p = firstPhase; p <= lastPhase; p++) {
      if (TOP - 12 > y0 && TOP - 12 < y1) wanted.set(`p${p}`, ["phase", p]);
      const col = phases[p];
      for (let r = firstRow; r <= Math.min(lastRow, col.length - 1); r++) {
        const name = col[r];
        const task = this.state.tasks[name];
        wanted.set(`n${name}`, ["node", name, `${task.status}|${task.attempt}|${name === sel}`]);
      }
    }
    this.sync(wanted);
    this.state.metrics.graphDraws += 1;
    this.state.metrics.graphDrawMs += performance.now() - t0;
  }

  /** Make the SVG hold exactly the `wanted` elements, touching only what changed. */
  sync(wanted) {
    const shown = this.shown || (this.shown = new Map());
    for (const [key, el] of shown) {
      if (!wanted.has(key)) { el.remove(); shown.delete(key); }
    }
    const edgeLayer = this.edgeLayer || (this.edgeLayer = this.layer());
    const nodeLayer = this.nodeLayer || (this.nodeLayer = this.layer());
    for (const [key, spec] of wanted) {
      let el = shown.get(key);
      const sig = spec.join("|");
      if (el && el.__sig === sig) continue;
      if (spec[0] === "node") {
        el = this.node(spec[1], el);
        if (!shown.has(key)) nodeLayer.append(el);
      } else if (spec[0] === "phase") {
        if (!el) {
          el = document.createElementNS(SVG, "text");
          el.setAttribute("class", "phase");
          el.setAttribute("x", PAD + spec[1] * COL);
          el.setAttribute("y", TOP - 12);
          el.textContent = `phase ${spec[1] + 1}`;
          nodeLayer.append(el);
        }
      } else {
        if (!el) { el = document.createElementNS(SVG, "path"); edgeLayer.append(el); }
        el.setAttribute("class", spec[0]);
        el.setAttribute("d", spec[1]);
      }
      el.__sig = sig;
      shown.set(key, el);
    }
  }

  layer() {
    const g = document.createElementNS(SVG, "g");
    this.svg.append(g);
    return g;
  }

  /** Create or rewrite one step's element (keeps it, and so the keyboard focus, in place). */
  node(name, el) {
    const task = this.state.tasks[name];
    const status = task.status;
    const { x, y } = this.layout.pos.get(name);
    if (!el) {
      el = document.createElementNS(SVG, "g");
      el.dataset.name = name;
      el.setAttribute("transform", `translate(${x},${y})`);
      el.setAttribute("tabindex", "0");
      el.setAttribute("role", "button");
    }
    const label = name.length > 22 ? `${name.slice(0, 21)}…` : name;
    const retry = task.attempt > 1 ? ` ×${task.attempt}` : "";
    el.setAttribute("class", `node n-${status}${name === this.selected ? " sel" : ""}`);
    el.setAttribute("aria-label", `${name}: ${status}${retry ? `, attempt ${task.attempt}` : ""}`);
    el.innerHTML = `<title>${esc(`${name} (${task.node_type}): ${status}`)}</title>` +
      `<rect width="${W}" height="${NH}"/><text class="icon" x="9" y="19.5">${ICONS[status] || "?"}</text>` +
      `<text x="26" y="19.5">${esc(label)}${retry}</text>`;
    return el;
  }
}
