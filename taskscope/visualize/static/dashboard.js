// taskscope dashboard: draws the figures embedded in the page, opens a task when one of its
// marks is clicked, loads the page's deferred parts (slow statistics, ?part=NAME) after the
// page itself, and refreshes a live page's sections and figures from ?format=json.
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
      if (WINDOW_PLOTS[name] && !div.dataset.windowBound) {
        div.dataset.windowBound = "1";
        div.on("plotly_relayout", function (change) { chooseWindow(change); });
      }
      div.dataset.drawn = "1";
    });
  }
  // Zooming the task stream or the run's timeline asks the server for that window (exact
  // bars, or the tasks of the window), since the whole run is only drawn aggregated.
  var WINDOW_PLOTS = { stream: true, timeline: true };
  function chooseWindow(change) {
    var lo = change["xaxis.range[0]"], hi = change["xaxis.range[1]"];
    if (lo === undefined && change["xaxis.range"]) { lo = change["xaxis.range"][0]; hi = change["xaxis.range"][1]; }
    var url = new URL(window.location.href);
    if (change["xaxis.autorange"]) { url.searchParams.delete("from"); url.searchParams.delete("to"); }
    else if (lo !== undefined && hi !== undefined) {
      url.searchParams.set("from", Math.max(0, Number(lo)).toFixed(3));
      url.searchParams.set("to", Math.max(0, Number(hi)).toFixed(3));
    } else return;
    window.location.assign(url.toString());
  }
  function drawAll() { Object.keys(figures).forEach(draw); }
  drawAll();

  function jsonUrl(part) {
    var url = new URL(window.location.href);
    url.searchParams.set("format", "json");
    if (part) url.searchParams.set("part", part);
    return url.toString();
  }
  function getJson(url) {
    return fetch(url, { headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); });
  }
  // Replaces sections; a loaded part inside a refreshed section keeps showing its last content
  // (instead of "Loading…") until loadParts brings the new one.
  function applySections(sections) {
    Object.keys(sections || {}).forEach(function (name) {
      var el = document.querySelector('[data-section="' + name + '"]');
      if (!el) return;
      var kept = {};
      el.querySelectorAll('[data-part][data-loaded="1"]').forEach(function (part) {
        kept[part.getAttribute("data-part")] = part.innerHTML;
      });
      el.innerHTML = sections[name];
      el.querySelectorAll("[data-part]").forEach(function (part) {
        var old = kept[part.getAttribute("data-part")];
        if (old !== undefined) part.innerHTML = old;
      });
    });
  }

  // Deferred parts: each is fetched on its own, so a slow one does not hold up the others.
  function loadPart(el) {
    var name = el.getAttribute("data-part");
    return getJson(jsonUrl(name))
      .then(function (data) {
        applySections(data.sections);
        Object.keys(data.figures || {}).forEach(function (key) {
          figures[key] = data.figures[key];
          draw(key);
        });
        el.dataset.loaded = "1";
        // Still being computed on the server (a big run's analysis): ask again.
        if (data.retry_after) {
          setTimeout(function () {
            var again = document.querySelector('[data-part="' + name + '"]');
            if (again) loadPart(again);
          }, data.retry_after * 1000);
        }
      })
      .catch(function () {
        el.innerHTML = '<p class="hint bad">This part could not be loaded; reload the page to try again.</p>';
        el.dataset.loaded = "error";
      });
  }
  function loadParts() {
    // Looked up each time: a refreshed section (run details) brings its placeholders back.
    var parts = document.querySelectorAll("[data-part]");
    return Promise.all(Array.prototype.map.call(parts, loadPart));
  }
  loadParts();

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
    getJson(jsonUrl(null))
      .then(function (data) {
        applySections(data.sections);
        Object.keys(data.figures || {}).forEach(function (key) { figures[key] = data.figures[key]; });
        drawAll();
        loadParts();
        readAt = Date.now();
        showAge();
        var latest = document.getElementById("latest-event");
        if (latest && data.last_activity) {
          latest.textContent = "· latest event " + String(data.last_activity).slice(0, 19);
        }
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
