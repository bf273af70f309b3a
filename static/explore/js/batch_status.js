/* Live status of a landing batch in the admin (explore.admin_ingest).
 *
 * Fills each .atlas-batch-status box from the JSON at its data-status-url, and asks
 * again every two seconds until the batch is loaded or failed.
 */
"use strict";
(function () {
  const POLL_MS = 2000;

  function number(value) {
    return Number(value || 0).toLocaleString();
  }

  function render(box, status) {
    const summary = box.querySelector(".atlas-batch-summary");
    const bar = box.querySelector(".atlas-batch-progress");
    const detail = box.querySelector(".atlas-batch-detail");
    const warnings = box.querySelector(".atlas-batch-warnings");
    const error = box.querySelector(".atlas-batch-error");
    box.dataset.status = status.status;

    let text = status.status_label;
    if (status.status === "loaded") {
      text += ": " + number(status.rows_total) + " lines, " + number(status.rows_parsed) +
        " read, " + number(status.rows_failed) + " could not be read";
    } else if (status.status === "loading" && status.progress) {
      // Lines read move with the file (blank ones too); rows reach COPY in steps.
      const progress = status.progress;
      const lines = Math.max(progress.lines_read || 0, progress.rows || 0);
      text += ": " + number(lines) + " lines so far";
      if (progress.content_bytes) {
        text += ", " + number(progress.content_bytes) + " bytes of content read";
      }
    }
    summary.textContent = text;

    const fraction = status.progress && status.progress.fraction;
    if (status.status === "loading" && fraction !== null && fraction !== undefined) {
      bar.hidden = false;
      bar.value = fraction;
    } else {
      bar.hidden = true;
    }

    const parts = [status.format.toUpperCase() + (status.compression === "gzip" ? " (gzip)" : ""),
      number(status.size_bytes) + " bytes", "sha256 " + status.sha256];
    if (status.status === "loaded" && status.run && status.run.seconds !== null) {
      const seconds = status.run.seconds;
      parts.push("loaded in " + (seconds < 0.1 ? "under 0.1" : seconds.toFixed(1)) + " s");
    }
    if (status.run && status.run.blank_lines) {
      parts.push(number(status.run.blank_lines) + " blank lines");
    }
    detail.textContent = parts.join(" \u00b7 ");

    warnings.replaceChildren();
    for (const warning of (status.run && status.run.warnings) || []) {
      const item = document.createElement("li");
      item.textContent = warning;
      warnings.appendChild(item);
    }

    // The admin's .errornote style would show even an empty box: add it only with an error.
    error.hidden = !status.error;
    error.classList.toggle("errornote", Boolean(status.error));
    error.textContent = status.error || "";
  }

  function poll(box) {
    fetch(box.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (status) {
        render(box, status);
        if (!status.done) {
          window.setTimeout(function () { poll(box); }, POLL_MS);
        }
      })
      .catch(function () {
        // A network hiccup: try again a little later.
        window.setTimeout(function () { poll(box); }, POLL_MS * 3);
      });
  }

  function start() {
    for (const box of document.querySelectorAll(".atlas-batch-status[data-status-url]")) {
      if (!box.dataset.polling) {
        box.dataset.polling = "yes";
        poll(box);
      }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
