// What the admin's preview scripts share (compliance/js/try_pattern.js,
// compliance/js/pattern_impact.js, quality/js/weights_preview.js): making elements
// whose text is always text, and posting a form to a JSON view whose answer, or why
// there is none, goes to one function. Include it before them; it defines window.atlas.
// Loaded as a file (no inline script) so the admin can run under a strict CSP.
"use strict";
window.atlas = window.atlas || {};
{
    // An element with `text` as its text (never as HTML) and `className`, both optional.
    function element(tag, text, className) {
        const node = document.createElement(tag);
        if (text !== undefined && text !== null) {
            node.textContent = text;
        }
        if (className) {
            node.className = className;
        }
        return node;
    }

    // POST `body` to `url` and hand `show` the JSON answer, or {error} saying why not:
    // `forbidden` when the server answers 403, `failed` and the reason when the request
    // or the drawing fails.
    async function postForJson(url, {body, headers, forbidden, failed}, show) {
        try {
            const response = await fetch(url, {
                method: "POST",
                body: body,
                headers: headers,
                credentials: "same-origin",
            });
            if (response.status === 403) {
                show({error: forbidden});
                return;
            }
            show(await response.json());
        } catch (error) {
            show({error: `${failed}: ${error}`});
        }
    }

    window.atlas.element = element;
    window.atlas.postForJson = postForJson;
}
