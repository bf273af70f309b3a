// Draws every <canvas data-chart="ID"> from the JSON in <script id="ID"> (Django's
// json_script), with the vendored Chart.js. A file, never inline script: the pages run
// under a strict Content Security Policy.
"use strict";
{
    const PALETTE = [
        "#264b73", "#d1495b", "#edae49", "#00798c", "#66a182",
        "#8d6a9f", "#30638e", "#c16200", "#5b6875", "#a4243b",
    ];

    function colour(index) {
        return PALETTE[index % PALETTE.length];
    }

    function config(spec) {
        const doughnut = spec.type === "doughnut";
        const datasets = spec.datasets.map((series, index) => {
            const base = {label: series.label, data: series.data};
            if (doughnut) {
                return {...base, backgroundColor: series.data.map((_, n) => colour(n))};
            }
            return {
                ...base,
                borderColor: colour(index),
                backgroundColor: colour(index),
                borderWidth: spec.type === "line" ? 2 : 1,
                pointRadius: spec.type === "line" ? 2 : undefined,
                tension: 0.2,
                spanGaps: true,
            };
        });
        if (typeof spec.threshold === "number") {
            datasets.push({
                type: "line",  // a dashed line across bars too
                label: "threshold",
                data: spec.labels.map(() => spec.threshold),
                borderColor: "#b3261e",
                borderDash: [6, 4],
                borderWidth: 1.5,
                pointRadius: 0,
                fill: false,
            });
        }
        const options = {
            responsive: true,
            maintainAspectRatio: false,
            animation: false,
            plugins: {legend: {display: spec.legend !== false, position: "bottom"}},
        };
        if (!doughnut) {
            const value = spec.horizontal ? "x" : "y";
            const category = spec.horizontal ? "y" : "x";
            options.indexAxis = spec.horizontal ? "y" : "x";
            options.scales = {
                [category]: {stacked: Boolean(spec.stacked), ticks: {autoSkip: true, maxRotation: 60}},
                [value]: {stacked: Boolean(spec.stacked), beginAtZero: true},
            };
            if (typeof spec.min === "number") {
                options.scales[value].min = spec.min;
            }
            if (typeof spec.max === "number") {
                options.scales[value].max = spec.max;
            }
        }
        return {type: spec.type, data: {labels: spec.labels, datasets}, options};
    }

    function draw() {
        for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
            const source = document.getElementById(canvas.dataset.chart);
            if (!source) {
                continue;
            }
            const spec = JSON.parse(source.textContent);
            new window.Chart(canvas, config(spec));
            canvas.dataset.rendered = "true";
        }
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", draw);
    } else {
        draw();
    }
}
