// geoblob console: confirm bulk actions with their dry-run count, and
// refresh a running bulk operation's progress. No framework.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const dialog = document.getElementById("confirm");
  for (const button of document.querySelectorAll("button[data-bulk]")) {
    button.addEventListener("click", async (ev) => {
      ev.preventDefault();
      const form = button.form;
      const data = new FormData(form);
      const filter = {};
      for (const [k, v] of data.entries()) {
        if (k === "action" || k === "scope" || k === "sort" || k === "order" || k === "limit") continue;
        filter[k] = (v === "true") ? true : v;
      }
      const body = { action: data.get("action"), scope: data.get("scope"), filter: filter, dry_run: true };
      const text = document.getElementById("confirm-text");
      try {
        const resp = await fetch("/api/v1/bulk", {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        });
        const out = await resp.json();
        if (!resp.ok) throw new Error(out.error || resp.statusText);
        text.textContent = `${button.textContent.trim()}: ${out.rows.toLocaleString()} rows will change. Continue?`;
        text.dataset.rows = out.rows;
      } catch (err) {
        text.textContent = "Dry run failed: " + err.message;
        text.dataset.rows = "";
      }
      dialog.returnValue = "";
      dialog.onclose = () => { if (dialog.returnValue === "ok" && text.dataset.rows !== "") form.submit(); };
      dialog.showModal();
    });
  }
  const refresh = document.querySelector("[data-refresh]");
  if (refresh) setTimeout(() => location.reload(), Number(refresh.dataset.refresh));
});
