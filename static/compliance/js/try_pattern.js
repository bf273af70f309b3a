// Tries the PII pattern being edited against sample text, before it is saved.
// Loaded as a file (no inline script) so the admin can run under a strict CSP; needs
// atlas/js/admin_fetch.js before it.
"use strict";
{
    function field(id) {
        const element = document.getElementById(id);
        return element ? element.value : "";
    }

    function message(container, text, className) {
        container.append(window.atlas.element("p", text, className));
    }

    // The sample with each match marked; text is inserted as text, never as HTML.
    // Offsets count characters (code points), as Python does, hence Array.from.
    function highlighted(sample, matches) {
        const characters = Array.from(sample);
        const slice = (start, end) => characters.slice(start, end).join("");
        const block = document.createElement("pre");
        let position = 0;
        for (const match of matches) {
            block.append(slice(position, match.start));
            const mark = document.createElement("mark");
            const text = slice(match.start, match.end);
            if (match.valid === false) {
                // Struck through: the regex matched, the validator said it is not PII.
                const struck = document.createElement("s");
                struck.textContent = text;
                mark.title = "Rejected by the validator";
                mark.append(struck);
            } else {
                mark.textContent = text;
            }
            block.append(mark);
            position = match.end;
        }
        block.append(slice(position));
        return block;
    }

    function matchList(matches) {
        const list = document.createElement("ul");
        for (const match of matches) {
            const item = document.createElement("li");
            let verdict = "";
            if (match.valid === true) {
                verdict = " — confirmed by the validator";
            } else if (match.valid === false) {
                verdict = " — rejected by the validator";
            }
            item.textContent = `${match.start}–${match.end}: "${match.text}"${verdict}`;
            list.append(item);
        }
        return list;
    }

    function show(container, sample, data) {
        container.replaceChildren();
        if (data.error) {
            message(container, data.error, "errornote");
            return;
        }
        const matches = data.matches || [];
        const valid = matches.filter((match) => match.valid !== false).length;
        let summary = `${matches.length} match(es).`;
        if (data.validator_applied) {
            summary = `${matches.length} match(es), ${valid} confirmed by the validator.`;
        } else if (data.validator && data.validator !== "none") {
            summary += ` The "${data.validator}" validator is not available here yet: regex matches only.`;
        }
        message(container, summary);
        if (matches.length) {
            container.append(highlighted(sample, matches), matchList(matches));
        }
    }

    async function tryPattern(fieldset, container) {
        const sample = field("try-pattern-sample");
        // URL-encoded, not multipart: multipart would turn each newline into CRLF
        // and shift every offset after it.
        const body = new URLSearchParams({
            regex: field("id_regex"),
            validator: field("id_validator") || "none",
            sample_text: sample,
        });
        container.replaceChildren();
        message(container, "Trying…");
        await window.atlas.postForJson(fieldset.dataset.tryUrl, {
            body: body,
            headers: {"X-CSRFToken": document.querySelector("[name=csrfmiddlewaretoken]").value},
            forbidden: "You may not try patterns.",
            failed: "The pattern could not be tried",
        }, (data) => show(container, sample, data));
    }

    window.addEventListener("load", function() {
        const fieldset = document.getElementById("try-pattern");
        const button = document.getElementById("try-pattern-button");
        const container = document.getElementById("try-pattern-result");
        if (!fieldset || !button || !container) {
            return;
        }
        button.addEventListener("click", () => tryPattern(fieldset, container));
    });
}
