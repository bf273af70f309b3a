/* Live status of a landing batch in the admin (explore.admin_ingest).
 *
 * Fills each .atlas-batch-status box from the JSON at its data-status-url, and asks
 * again every two seconds until the batch is loaded or failed and, where the dataset
 * promotes by itself, its records are promoted.
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
      // Physical lines and records apart: a quoted value can span lines.
      const lines = status.lines_total && status.lines_total !== status.rows_total
        ? number(status.lines_total) + " lines, " : "";
      text += ": " + lines + number(status.rows_total) + " records, " +
        number(status.rows_parsed) + " read, " + number(status.rows_failed) +
        " could not be read";
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

    renderPromotion(box.querySelector(".atlas-batch-promotion"), status.promotion);
    renderRow(status);

    // The admin's .errornote style would show even an empty box: add it only with an error.
    error.hidden = !status.error;
    error.classList.toggle("errornote", Boolean(status.error));
    error.textContent = status.error || "";
  }

  // The batch's row in the page's Recent batches table moves with it.
  function renderRow(status) {
    const row = document.querySelector('tr[data-batch="' + status.id + '"]');
    if (!row) {
      return;
    }
    const cells = {
      status: status.status_label + (status.error ? ": " + status.error.slice(0, 120) : ""),
      lines_total: String(status.lines_total),
      rows_total: String(status.rows_total),
      rows_parsed: String(status.rows_parsed),
      rows_failed: String(status.rows_failed),
    };
    for (const [column, text] of Object.entries(cells)) {
      const cell = row.querySelector('[data-column="' + column + '"]');
      if (cell) {
        cell.textContent = text;
      }
    }
  }

  // After the load, the promotion: waiting, promoting, then what reached chart and what
  // went to quarantine, with links (a run that quarantined most records says so).
  function renderPromotion(line, promotion) {
    if (!line) {
      return;
    }
    line.replaceChildren();
    line.hidden = !promotion;
    if (!promotion) {
      return;
    }
    line.classList.toggle("errornote", Boolean(promotion.mostly_quarantined));
    if (promotion.state === "waiting") {
      line.textContent = promotion.automatic
        ? "Waiting for its promotion to chart."
        : "Not promoted automatically: use Promote now on the dataset's page.";
      return;
    }
    if (promotion.state === "promoting") {
      line.textContent = "Being promoted to chart: about " +
        Math.round(100 * (promotion.fraction || 0)) + "% of its records so far.";
      return;
    }
    line.append(
      (promotion.mostly_quarantined ? "Promoted, but most records were held back: " : "Promoted: ") +
      number(promotion.promoted) + " records in chart, " +
      number(promotion.quarantined) + " in quarantine"
    );
    if (promotion.quarantine_url) {
      const link = document.createElement("a");
      link.href = promotion.quarantine_url;
      link.textContent = "review the quarantine";
      line.append(" (", link, ")");
    }
    if (promotion.run_url) {
      const link = document.createElement("a");
      link.href = promotion.run_url;
      link.textContent = "run " + promotion.run_id;
      line.append(", by ", link);
    }
    line.append(".");
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
