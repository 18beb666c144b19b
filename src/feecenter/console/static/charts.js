/* Fee Center console: draws the overview's charts with the vendored ECharts.
   Each chart is a <div data-chart='{"kind": "bar"|"pie", "series", "labels", "values"}'>
   rendered by the server (amounts in integer fen); no inline script (CSP). */
(function () {
  "use strict";

  function yuan(fen) {
    var sign = fen < 0 ? "-" : "", abs = Math.abs(fen);
    var whole = Math.floor(abs / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return sign + "¥" + whole + "." + String(abs % 100).padStart(2, "0");
  }

  function option(data) {
    var common = {
      aria: { enabled: true },
      textStyle: { fontFamily: getComputedStyle(document.body).fontFamily },
      tooltip: { trigger: data.kind === "pie" ? "item" : "axis", valueFormatter: yuan, renderMode: "richText" }
    };
    if (data.kind === "pie") {
      return Object.assign(common, {
        series: [{ type: "pie", name: data.series, radius: ["35%", "65%"],
                   label: { formatter: "{b}" },
                   data: data.labels.map(function (name, i) { return { name: name, value: data.values[i] }; }) }]
      });
    }
    return Object.assign(common, {
      grid: { left: 64, right: 16, top: 16, bottom: 32 },
      xAxis: { type: "category", data: data.labels },
      yAxis: { type: "value", axisLabel: { formatter: function (fen) { return yuan(fen); } } },
      series: [{ type: "bar", name: data.series, data: data.values, itemStyle: { color: "#0052cc" } }]
    });
  }

  function draw() {
    if (!window.echarts) { return; }
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var chart = window.echarts.init(el, null, { renderer: "canvas" });
      chart.setOption(option(JSON.parse(el.getAttribute("data-chart"))));
      el.setAttribute("data-chart-drawn", "");
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
