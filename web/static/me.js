// The member's standing over time (web/templates/me.html): a line of scores by period,
// with the tier ladder's thresholds as dashed lines. The table under the chart holds
// the same figures, so the page reads the same without JavaScript.
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("me-history-data");
    var canvas = document.getElementById("me-history-chart");
    if (!source || !canvas || typeof window.Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    var labels = data.history.map(function (row) { return row.period; });
    var datasets = [{
      label: "Score",
      data: data.history.map(function (row) { return row.total; }),
      borderColor: "#1f5fbf",
      backgroundColor: "#1f5fbf",
      tension: 0.2,
      spanGaps: true
    }];
    data.rungs.forEach(function (rung) {
      datasets.push({
        label: rung.name + " (" + rung.threshold + ")",
        data: labels.map(function () { return rung.threshold; }),
        borderColor: "#98a2b3",
        borderDash: [6, 4],
        borderWidth: 1,
        pointRadius: 0
      });
    });
    new window.Chart(canvas, {
      type: "line",
      data: { labels: labels, datasets: datasets },
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: { y: { beginAtZero: true, title: { display: true, text: "points" } } }
      }
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
