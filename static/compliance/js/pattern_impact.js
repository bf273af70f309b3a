// Previews what the PII pattern being edited would match in recent records, before it
// is saved: counts per dataset and field, values gained and lost, masked excerpts.
// Loaded as a file (no inline script) so the admin can run under a strict CSP; needs
// atlas/js/admin_fetch.js before it.
"use strict";
{
    const element = window.atlas.element;

    function row(cells, cellTag) {
        const tr = element("tr");
        for (const [text, className] of cells) {
            tr.append(element(cellTag, text, className));
        }
        return tr;
    }

    function signed(count, className) {
        return count ? [`${className === "lost" ? "-" : "+"}${count}`, `number ${className}`] : ["0", "number"];
    }

    function table(rows) {
        const result = element("table");
        const head = element("thead");
        head.append(row([
            ["Source"], ["Dataset"], ["Field"], ["Saved", "number"], ["Edited", "number"],
            ["Gained", "number"], ["Lost", "number"], ["Examples (masked)"],
        ], "th"));
        const body = element("tbody");
        for (const item of rows) {
            const tr = row([
                [item.source], [item.dataset], [item.field],
                [String(item.before), "number"], [String(item.after), "number"],
                signed(item.gained, "gained"), signed(item.lost, "lost"),
            ], "td");
            const examples = element("td");
            const list = element("ul", undefined, "excerpts");
            for (const example of item.examples) {
                const line = element("li", example.excerpt, example.change);
                line.title = example.change;
                list.append(line);
            }
            examples.append(list);
            tr.append(examples);
            body.append(tr);
        }
        result.append(head, body);
        return result;
    }

    function show(container, data) {
        container.replaceChildren();
        if (data.error) {
            container.append(element("p", data.error, "errornote"));
            return;
        }
        const sample = data.sample;
        const totals = data.totals;
        container.append(element("p",
            `Sample: the newest ${sample.chart_records} chart and ${sample.quarantined_records} ` +
            `quarantined records (${sample.values_scanned} values).`));
        if (!data.pattern.enabled) {
            container.append(element("p", "This pattern is disabled: once saved it matches nothing.", "lost"));
        }
        const summary = element("p", undefined, "impact-summary");
        summary.append(
            `Values matched: ${totals.before} saved → ${totals.after} edited; `,
            element("span", `${totals.gained} gained`, "gained"), ", ",
            element("span", `${totals.lost} lost`, "lost"), ".",
        );
        container.append(summary);
        if (data.rows.length) {
            container.append(table(data.rows));
        }
    }

    async function preview(fieldset, container) {
        const form = fieldset.closest("form");
        const body = new FormData(form);
        body.set("pattern_id", fieldset.dataset.patternId || "");
        container.replaceChildren(element("p", "Scanning recent records…"));
        await window.atlas.postForJson(fieldset.dataset.impactUrl, {
            body: body,
            forbidden: "You may not preview PII patterns.",
            failed: "The impact could not be previewed",
        }, (data) => show(container, data));
    }

    window.addEventListener("load", function() {
        const fieldset = document.getElementById("pattern-impact");
        const button = document.getElementById("pattern-impact-button");
        const container = document.getElementById("pattern-impact-result");
        if (!fieldset || !button || !container) {
            return;
        }
        button.addEventListener("click", () => preview(fieldset, container));
    });
}
