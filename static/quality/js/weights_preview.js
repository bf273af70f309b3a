// Shows how each dataset's latest overall score would move under the weights being
// typed on the quality dimensions changelist, before they are saved.
// Loaded as a file (no inline script) so the admin can run under a strict CSP; needs
// atlas/js/admin_fetch.js before it.
"use strict";
{
    const element = window.atlas.element;

    function direction(change) {
        if (change === null || Number(change) === 0) {
            return "";
        }
        return Number(change) > 0 ? "up" : "down";
    }

    function table(datasets) {
        const result = element("table");
        const head = element("tr");
        for (const title of ["Dataset", "Latest run", "Now", "With these weights", "Change", "Threshold"]) {
            head.append(element("th", title, ["Dataset", "Latest run"].includes(title) ? "" : "number"));
        }
        const thead = element("thead");
        thead.append(head);
        const body = element("tbody");
        for (const item of datasets) {
            const tr = element("tr");
            tr.dataset.dataset = item.dataset;
            const change = item.change === null ? "—" : (Number(item.change) > 0 ? "+" : "") + item.change;
            tr.append(
                element("td", `${item.name} (${item.dataset})`),
                element("td", `run ${item.run}`),
                element("td", item.current ?? "—", `number current${item.below_now ? " below" : ""}`),
                element("td", item.proposed ?? "—", `number proposed${item.below_then ? " below" : ""}`),
                element("td", change, `number change ${direction(item.change)}`),
                element("td", item.threshold, "number"),
            );
            body.append(tr);
        }
        result.append(thead, body);
        return result;
    }

    function show(container, data) {
        container.replaceChildren();
        if (data.error) {
            container.append(element("p", data.error, "errornote"));
            return;
        }
        if (!data.datasets.length) {
            container.append(element("p", "No dataset has a quality score yet."));
            return;
        }
        const crossing = data.datasets.filter((item) => item.below_now !== item.below_then).length;
        container.append(element("p",
            `${data.datasets.length} dataset(s) scored; ${crossing} would cross its quality threshold.`));
        container.append(table(data.datasets));
    }

    async function preview(box, container) {
        const form = document.getElementById("changelist-form");
        const body = new FormData(form);
        body.delete("_save");
        container.replaceChildren(element("p", "Rescoring…"));
        await window.atlas.postForJson(box.dataset.previewUrl, {
            body: body,
            forbidden: "You may not change the weights.",
            failed: "The scores could not be previewed",
        }, (data) => show(container, data));
    }

    window.addEventListener("load", function() {
        const box = document.getElementById("weights-preview");
        const button = document.getElementById("weights-preview-button");
        const container = document.getElementById("weights-preview-result");
        const form = document.getElementById("changelist-form");
        if (!box || !button || !container || !form) {
            return;
        }
        button.addEventListener("click", () => preview(box, container));
        // Preview as the steward types, once typing pauses.
        let timer = null;
        form.addEventListener("input", function(event) {
            if (!event.target.name || !event.target.name.endsWith("-weight")) {
                return;
            }
            clearTimeout(timer);
            timer = setTimeout(() => preview(box, container), 400);
        });
    });
}
