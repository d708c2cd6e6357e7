// A virtualized, keyboard-navigable list: only the rows in view exist in the DOM,
// so a 2,000-step run costs a few dozen elements. Arrow keys, Home/End, PageUp/PageDown
// move the selection; Enter opens it.

import { frameBatcher } from "./util.js";

export class VirtualList {
  /**
   * @param {HTMLElement} container  scrolling element (class "vlist")
   * @param {{rowHeight:number, count:()=>number, renderRow:(i:number, el:HTMLElement)=>void,
   *          onOpen:(i:number)=>void, label:string}} options
   */
  constructor(container, { rowHeight = 30, count, renderRow, onOpen, label }) {
    this.box = container;
    this.rowHeight = rowHeight;
    this.count = count;
    this.renderRow = renderRow;
    this.onOpen = onOpen;
    this.selected = -1;
    this.box.tabIndex = 0;
    this.box.setAttribute("role", "listbox");
    this.box.setAttribute("aria-label", label);
    this.spacer = document.createElement("div");
    this.box.append(this.spacer);
    this.rows = new Map();
    this.refresh = frameBatcher(() => this.render(true));
    this.box.addEventListener("scroll", frameBatcher(() => this.render(false)), { passive: true });
    this.box.addEventListener("keydown", (e) => this.key(e));
    this.box.addEventListener("click", (e) => {
      const row = e.target.closest(".vrow");
      if (row) { this.select(Number(row.dataset.index)); this.onOpen(this.selected); }
    });
    this.render(true);
  }

  key(e) {
    const n = this.count();
    if (!n) return;
    const page = Math.max(1, Math.floor(this.box.clientHeight / this.rowHeight) - 1);
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page };
    let next = null;
    if (e.key in moves) next = Math.min(n - 1, Math.max(0, (this.selected < 0 ? -1 : this.selected) + moves[e.key]));
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = n - 1;
    else if ((e.key === "Enter" || e.key === " ") && this.selected >= 0) {
      e.preventDefault();
      this.onOpen(this.selected);
      return;
    }
    if (next === null) return;
    e.preventDefault();
    this.select(next);
    this.onOpen(next);
  }

  select(i) {
    this.selected = i;
    const top = i * this.rowHeight;
    if (top < this.box.scrollTop) this.box.scrollTop = top;
    else if (top + this.rowHeight > this.box.scrollTop + this.box.clientHeight) {
      this.box.scrollTop = top + this.rowHeight - this.box.clientHeight;
    }
    this.render(true);
  }

  /** Draw the rows in view; `all` redraws rows already shown (their data changed). */
  render(all) {
    const n = this.count();
    this.spacer.style.height = `${n * this.rowHeight}px`;
    const first = Math.max(0, Math.floor(this.box.scrollTop / this.rowHeight) - 5);
    const last = Math.min(n - 1, Math.ceil((this.box.scrollTop + this.box.clientHeight) / this.rowHeight) + 5);
    for (const [i, el] of this.rows) {
      if (i < first || i > last) { el.remove(); this.rows.delete(i); }
    }
    for (let i = first; i <= last; i++) {
      let el = this.rows.get(i);
      const fresh = !el;
      if (fresh) {
        el = document.createElement("div");
        el.className = "vrow";
        el.setAttribute("role", "option");
        el.dataset.index = String(i);
        el.style.top = `${i * this.rowHeight}px`;
        this.rows.set(i, el);
        this.box.append(el);
      }
      if (fresh || all) {
        el.setAttribute("aria-selected", String(i === this.selected));
        if (i === this.selected) el.id = `${this.box.id}-sel`;
        else el.removeAttribute("id");
        this.renderRow(i, el);
      }
    }
    if (this.selected >= 0) this.box.setAttribute("aria-activedescendant", `${this.box.id}-sel`);
  }
}
