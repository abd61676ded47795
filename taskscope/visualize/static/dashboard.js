// taskscope dashboard: draws the figures embedded in the page, opens a task when one of its
// marks is clicked, and refreshes a live page's sections and figures from ?format=json.
(function () {
  "use strict";
  var body = document.body;
  var config = { responsive: true, displaylogo: false, showLink: false, showSendToCloud: false,
                 modeBarButtonsToRemove: ["sendDataToCloud"] };
  var figures = {};
  document.querySelectorAll('script[type="application/json"][data-figure]').forEach(function (el) {
    figures[el.getAttribute("data-figure")] = JSON.parse(el.textContent);
  });

  function draw(name) {
    var div = document.querySelector('[data-plot="' + name + '"]');
    var figure = figures[name];
    if (!div || !figure || typeof Plotly === "undefined") return;
    var fresh = !div.classList.contains("js-plotly-plot");
    Plotly.react(div, figure.data, figure.layout, config).then(function () {
      if (fresh || !div.dataset.clickBound) {
        div.dataset.clickBound = "1";
        div.on("plotly_click", function (event) {
          var point = event.points && event.points[0];
          if (point && typeof point.customdata === "string") {
            window.location.href = point.customdata;
          }
        });
      }
      div.dataset.drawn = "1";
    });
  }
  function drawAll() { Object.keys(figures).forEach(draw); }
  drawAll();

  // Freshness: how long ago this page's data was read.
  var readAt = Date.now();
  var ageEl = document.getElementById("fresh-age");
  function showAge() {
    if (!ageEl) return;
    var s = Math.round((Date.now() - readAt) / 1000);
    ageEl.textContent = s < 2 ? "just now" : s < 120 ? s + " s ago" : Math.round(s / 60) + " min ago";
  }
  setInterval(showAge, 1000);

  if (body.dataset.live !== "1") return;
  var every = (parseInt(body.dataset.refresh, 10) || 5) * 1000;
  var freshness = document.getElementById("freshness");
  function refresh() {
    var url = new URL(window.location.href);
    url.searchParams.set("format", "json");
    fetch(url.toString(), { headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (data) {
        Object.keys(data.sections || {}).forEach(function (name) {
          var el = document.querySelector('[data-section="' + name + '"]');
          if (el) el.innerHTML = data.sections[name];
        });
        figures = data.figures || {};
        drawAll();
        readAt = Date.now();
        showAge();
        if (freshness) freshness.classList.remove("stale");
        if (!data.live) {
          body.dataset.live = "0";
          var pulse = freshness && freshness.querySelector(".pulse");
          if (pulse) pulse.remove();
          return;
        }
        setTimeout(refresh, every);
      })
      .catch(function () {
        if (freshness) freshness.classList.add("stale");
        setTimeout(refresh, every * 2);
      });
  }
  setTimeout(refresh, every);
})();
