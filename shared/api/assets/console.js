// geoblob console: confirm bulk actions and held-delete actions with their
// dry-run count, and refresh a running bulk operation's progress. No
// framework.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const dialog = document.getElementById("confirm");
  const text = document.getElementById("confirm-text");

  // confirmDryRun POSTs body (a dry run) to url, states the count it
  // answers with through describe(rows), and submits the button's form
  // when the operator confirms.
  const confirmDryRun = async (button, url, body, describe) => {
    try {
      const resp = await fetch(url, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      const out = await resp.json();
      if (!resp.ok) throw new Error(out.error || resp.statusText);
      text.textContent = `${button.textContent.trim()}: ${describe(out.rows.toLocaleString())}. Continue?`;
      text.dataset.rows = out.rows;
    } catch (err) {
      text.textContent = "Dry run failed: " + err.message;
      text.dataset.rows = "";
    }
    dialog.returnValue = "";
    dialog.onclose = () => { if (dialog.returnValue === "ok" && text.dataset.rows !== "") button.form.submit(); };
    dialog.showModal();
  };

  for (const button of document.querySelectorAll("button[data-bulk]")) {
    button.addEventListener("click", (ev) => {
      ev.preventDefault();
      const data = new FormData(button.form);
      const filter = {};
      for (const [k, v] of data.entries()) {
        if (k === "action" || k === "scope" || k === "sort" || k === "order" || k === "limit") continue;
        filter[k] = (v === "true") ? true : v;
      }
      const body = { action: data.get("action"), scope: data.get("scope"), filter: filter, dry_run: true };
      confirmDryRun(button, "/api/v1/bulk", body, (n) => `${n} rows will change`);
    });
  }

  // Release / Discard of held deletes (the form holds the page's filter).
  for (const button of document.querySelectorAll("button[data-hold]")) {
    button.addEventListener("click", (ev) => {
      ev.preventDefault();
      const data = new FormData(button.form);
      const action = button.dataset.hold;
      const body = { data_type: data.get("data_type") || "", prefix: data.get("prefix") || "", dry_run: true };
      const what = action === "release"
        ? "released (their secondary copies are deleted)"
        : "discarded (the secondary keeps the objects)";
      confirmDryRun(button, "/api/v1/delete-brake/" + encodeURIComponent(action), body,
        (n) => `${n} held deletes will be ${what}`);
    });
  }

  const refresh = document.querySelector("[data-refresh]");
  if (refresh) setTimeout(() => location.reload(), Number(refresh.dataset.refresh));
});
