// The dashboard shell: asks for the API key once per tab, then routes #/runs,
// #/runs/<id>, #/nodes and #/plugins to their pages.

import { auth, probe } from "./api.js";
import { nodesPage, pluginsPage } from "./catalog.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";
import { h, notify } from "./util.js";

const main = document.getElementById("main");
const signout = document.getElementById("signout");
let leave = null;
let needsKey = true;

function loginPage(message) {
  const key = h("input", { type: "password", id: "api-key", autocomplete: "off", required: true,
    "aria-describedby": "key-help" });
  const error = h("p", { class: "error-text", id: "login-error", role: "alert", hidden: !message }, message || "");
  const form = h("form", {},
    h("label", { for: "api-key" }, "API key"),
    key,
    h("p", { id: "key-help", class: "muted" },
      "The key of this server (IRONFLOW_API_KEY). It is kept in this tab only, until you close it."),
    h("button", { type: "submit" }, "Sign in"),
    error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      if (await probe(key.value)) {
        auth.set(key.value);
        route();
      } else {
        error.textContent = "That key was refused by the server.";
        error.hidden = false;
        key.select();
      }
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  });
  main.replaceChildren(h("section", { class: "login panel" }, h("h1", {}, "Sign in to IronFlow"), form));
  key.focus();
}

auth.onUnauthorized = () => {
  auth.forget();
  leave?.();
  leave = null;
  loginPage("The server refused the key; enter it again.");
};

async function route() {
  leave?.();
  leave = null;
  notify("");
  if (!auth.key && needsKey) {
    try { needsKey = !(await probe(null)); } catch (error) { notify(error.message); }
    if (needsKey) { signout.hidden = true; loginPage(); return; }
  }
  signout.hidden = !auth.key;
  const path = location.hash.replace(/^#/, "") || "/runs";
  const [, section, id] = path.split("/");
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (section === "runs" && id) {
    document.title = `Run ${decodeURIComponent(id)} · IronFlow`;
    leave = runPage(main, decodeURIComponent(id));
  } else if (section === "nodes") {
    document.title = "Nodes · IronFlow";
    leave = await nodesPage(main);
  } else if (section === "plugins") {
    document.title = "Plugins · IronFlow";
    leave = await pluginsPage(main);
  } else {
    document.title = "Runs · IronFlow";
    leave = runsPage(main);
  }
}

signout.addEventListener("click", () => { auth.forget(); needsKey = true; route(); });
window.addEventListener("hashchange", () => { route(); main.focus({ preventScroll: true }); });
route();
