// The timeline: one row per started step, one bar per attempt (start, duration, retries),
// scaled to the run's span. Rows are virtualized like the step list.

import { h, duration } from "./util.js";
import { VirtualList } from "./virtual.js";

export class Timeline {
  constructor(box, state, onSelect) {
    this.state = state;
    this.order = [];
    this.axis = h("div", { class: "axis", "aria-hidden": "true" });
    this.list = h("div", { class: "vlist timeline", id: "timeline-list" });
    box.replaceChildren(this.axis, this.list);
    this.view = new VirtualList(this.list, {
      label: "Timeline: one bar per attempt",
      count: () => this.order.length,
      renderRow: (i, el) => this.row(i, el),
      onOpen: (i) => onSelect(this.order[i]),
    });
    this.update();
  }

  span() {
    const s = this.state;
    const start = s.runStart ?? Math.min(...this.order.map((n) => s.attempts.get(n)[0].start));
    const end = s.runEnd ?? Date.now();
    return [start, Math.max(end, start + 1)];
  }

  update() {
    const attempts = this.state.attempts;
    if (this.order.length !== attempts.size) {
      this.order = [...attempts.keys()].sort((a, b) => attempts.get(a)[0].start - attempts.get(b)[0].start);
    }
    const [start, end] = this.order.length ? this.span() : [0, 1];
    this.scale = [start, end];
    this.axis.replaceChildren(h("span", {}, "0"), h("span", {}, duration((end - start) / 2)),
      h("span", {}, duration(end - start)));
    this.view.refresh();
  }

  row(i, el) {
    const name = this.order[i];
    const tries = this.state.attempts.get(name);
    const [start, end] = this.scale;
    const total = end - start;
    const now = Date.now();
    const bars = tries.map((t) => {
      const b = h("span", {
        class: `bar ${t.status}`,
        title: `${name} attempt ${t.attempt}: ${t.status}, ${duration((t.end ?? now) - t.start)}`,
      });
      b.style.left = `${((t.start - start) / total) * 100}%`;
      b.style.width = `${(((t.end ?? now) - t.start) / total) * 100}%`;
      return b;
    });
    const label = `${name}${tries.length > 1 ? ` (${tries.length} attempts)` : ""}`;
    el.replaceChildren(h("span", { class: "label", title: label }, label), h("span", { class: "track" }, bars));
    el.setAttribute("aria-label", `${label}: ${tries.map((t) => `attempt ${t.attempt} ${t.status}`).join(", ")}`);
  }
}
