/* Charts of the dashboard and the member pages, drawn with the vendored Chart.js.
 *
 * Each <canvas data-chart="kind" data-source="id"> reads its data from the
 * <script type="application/json" id="id"> block beside it. The page carries
 * the same data as a table, so nothing is lost without this script.
 */
(function () {
  "use strict";

  var PALETTE = ["#1f5fbf", "#18794e", "#b54708", "#7a5af8", "#c11574", "#0e9384", "#5b6475"];

  function colour(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function read(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function numbers(values) {
    return values.map(function (v) { return v === null ? null : Number(v); });
  }

  var builders = {
    monthly: function (d) {
      return {
        type: "bar",
        data: {
          labels: d.labels,
          datasets: [
            { type: "bar", label: "Referrals sent", data: d.referrals, yAxisID: "count",
              backgroundColor: colour("--accent", "#1f5fbf"), order: 2 },
            { type: "line", label: "Converted value (" + d.currency + ")",
              data: numbers(d.converted_value), yAxisID: "value", order: 1,
              borderColor: colour("--ok", "#18794e"), backgroundColor: colour("--ok", "#18794e"),
              tension: 0.2 }
          ]
        },
        options: {
          scales: {
            count: { position: "left", beginAtZero: true, ticks: { precision: 0 },
                     title: { display: true, text: "Referrals" } },
            value: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
                     title: { display: true, text: d.currency } }
          }
        }
      };
    },
    funnel: function (d) {
      return {
        type: "bar",
        data: { labels: d.labels, datasets: [{ label: "Referrals", data: d.values,
          backgroundColor: [PALETTE[0], PALETTE[5], PALETTE[1]] }] },
        options: { indexAxis: "y", plugins: { legend: { display: false } },
                   scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } }
      };
    },
    tiers: function (d) {
      return {
        type: "bar",
        data: {
          labels: d.labels,
          datasets: d.datasets.map(function (set, i) {
            return { label: set.label, data: set.data,
                     backgroundColor: set.label === "no tier" ? "#c0c6d0" : PALETTE[i % PALETTE.length] };
          })
        },
        options: { scales: { x: { stacked: true },
                             y: { stacked: true, beginAtZero: true, ticks: { precision: 0 },
                                  title: { display: true, text: "Members" } } } }
      };
    },
    history: function (d) {
      return {
        type: "line",
        data: { labels: d.labels, datasets: [{ label: "Score", data: numbers(d.scores),
          borderColor: colour("--accent", "#1f5fbf"), backgroundColor: colour("--accent", "#1f5fbf"),
          spanGaps: true, tension: 0.2 }] },
        options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } }
      };
    }
  };

  function draw(canvas) {
    var build = builders[canvas.dataset.chart];
    var data = read(canvas.dataset.source);
    canvas.dataset.drawn = "true";
    if (!build || !data) { return; }
    var config = build(data);
    var quiet = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false,
                                     animation: quiet ? false : undefined }, config.options);
    new window.Chart(canvas, config);
  }

  function drawAll(root) {
    if (typeof window.Chart === "undefined" || !root.querySelectorAll) { return; }
    root.querySelectorAll("canvas[data-chart]:not([data-drawn])").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  } else {
    drawAll(document);
  }
  document.addEventListener("htmx:load", function (event) { drawAll(event.target); });
})();
