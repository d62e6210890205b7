// burnguard's UI script: the theme, the tab's API token, buttons that call the API, the SLO
// list's polling, and loading a page with the token when reads are protected. Pages read
// without it; only actions and live updates need it.
"use strict";
(function () {
  const TOKEN = "burnguard-token";
  const notice = (text, error) => {
    const el = document.getElementById("notice");
    if (!el) return;
    el.textContent = text;
    el.className = error ? "error" : "";
  };
  const token = () => sessionStorage.getItem(TOKEN);
  const headers = () => {
    const h = { "Accept": "application/json" };
    if (token()) h["Authorization"] = "Bearer " + token();
    return h;
  };

  // Asks for a token in the page's dialog; resolves with it, or null when cancelled.
  function askToken() {
    const dialog = document.getElementById("token-dialog");
    const input = document.getElementById("token-input");
    return new Promise((resolve) => {
      input.value = "";
      dialog.addEventListener("close", function done() {
        dialog.removeEventListener("close", done);
        if (dialog.returnValue === "ok" && input.value.trim()) {
          sessionStorage.setItem(TOKEN, input.value.trim());
          resolve(input.value.trim());
        } else {
          resolve(null);
        }
      });
      dialog.showModal();
      input.focus();
    });
  }

  // Theme: the system's unless chosen here (kept in this browser).
  const root = document.documentElement;
  const saved = localStorage.getItem("burnguard-theme");
  if (saved) root.dataset.theme = saved;
  document.addEventListener("DOMContentLoaded", () => {
    const theme = document.getElementById("theme");
    if (theme) theme.addEventListener("click", () => {
      const dark = root.dataset.theme ? root.dataset.theme === "dark"
        : window.matchMedia("(prefers-color-scheme: dark)").matches;
      root.dataset.theme = dark ? "light" : "dark";
      localStorage.setItem("burnguard-theme", root.dataset.theme);
    });
    const tokenButton = document.getElementById("token-button");
    if (tokenButton) tokenButton.addEventListener("click", askToken);
    const load = document.getElementById("token-load");
    if (load) load.addEventListener("click", loadWithToken);
    if (load && token()) loadWithToken();
    document.querySelectorAll("button.api").forEach((b) => b.addEventListener("click", () => act(b)));
    const table = document.getElementById("slo-table");
    if (table) setInterval(() => poll(table), 10000);
  });

  // The body an action sends: the note, or a freeze form's fields.
  function body(button) {
    const form = button.closest("form");
    if (!form) return null;
    if (button.hasAttribute("data-form-json")) {
      const out = {};
      for (const [k, v] of new FormData(form).entries()) {
        const text = String(v).trim();
        if (!text) continue;
        out[k] = k === "deployments" ? text.split(",").map((s) => s.trim()).filter(Boolean) : text;
      }
      return out;
    }
    const note = form.querySelector("textarea[name=note]");
    return note && note.value.trim() ? { note: note.value.trim() } : null;
  }

  async function act(button) {
    if (!token() && !(await askToken())) return;
    const payload = body(button);
    const init = { method: button.dataset.method, headers: headers() };
    if (payload) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    button.disabled = true;
    notice("Sending…");
    try {
      const response = await fetch(button.dataset.path, init);
      if (response.status === 401) {
        sessionStorage.removeItem(TOKEN);
        notice("The token was refused; give another and try again.", true);
        return;
      }
      if (!response.ok) {
        const answer = await response.json().catch(() => ({}));
        const message = answer.error ? answer.error.message : response.statusText;
        notice(button.textContent + " failed: " + message, true);
        return;
      }
      notice(button.textContent + ": done.");
      location.reload();
    } catch (e) {
      notice(button.textContent + " failed: " + e, true);
    } finally {
      button.disabled = false;
    }
  }

  // Fresh rows without a full reload.
  async function poll(table) {
    try {
      const response = await fetch(table.dataset.poll, { headers: headers() });
      if (!response.ok) return;
      document.getElementById("slo-rows").innerHTML = await response.text();
      const updated = document.getElementById("updated");
      if (updated) updated.textContent = "updated " + new Date().toLocaleTimeString();
    } catch (e) { /* the next poll tries again */ }
  }

  // Protected reads: fetch this page with the token and show it.
  async function loadWithToken() {
    if (!token() && !(await askToken())) return;
    const response = await fetch(location.href, { headers: headers() });
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN);
      notice("The token was refused.", true);
      return;
    }
    const text = await response.text();
    document.open();
    document.write(text);
    document.close();
  }
})();
