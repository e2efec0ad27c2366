// Job detail: the latency histogram (SVG, from the job's own all_inference_times), the sortable per-op table,
// and a reload when an unfinished job changes state.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function fmt(us) { return us >= 1000 ? (us / 1000).toFixed(2) + " ms" : us.toFixed(1) + " µs"; }

  function histogram(container, times) {
    if (!times.length) { container.textContent = "no timed inferences"; return; }
    var lo = Math.min.apply(null, times), hi = Math.max.apply(null, times);
    var bins = Math.max(1, Math.min(40, Math.ceil(Math.sqrt(times.length))));
    var width = (hi - lo) / bins || 1;
    var counts = new Array(bins).fill(0);
    times.forEach(function (t) { counts[Math.min(bins - 1, Math.floor((t - lo) / width))] += 1; });
    var W = Math.max(360, Math.min(960, container.clientWidth || 720)), H = 220, left = 48, right = 12, top = 12, bottom = 40;
    var plotW = W - left - right, plotH = H - top - bottom, peak = Math.max.apply(null, counts);
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img", "class": "histogram",
                          "data-count": times.length, "data-bins": bins });
    svg.appendChild(el("line", { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, "class": "axis" }));
    svg.appendChild(el("line", { x1: left, y1: top, x2: left, y2: top + plotH, "class": "axis" }));
    counts.forEach(function (n, i) {
      var h = peak ? plotH * n / peak : 0, x = left + plotW * i / bins;
      var bar = el("rect", { x: x + 1, y: top + plotH - h, width: Math.max(1, plotW / bins - 2), height: h,
                             "class": "bin", "data-count": n });
      bar.appendChild(el("title", {}, fmt(lo + i * width) + " – " + fmt(lo + (i + 1) * width) + ": " + n));
      svg.appendChild(bar);
    });
    [0, 0.5, 1].forEach(function (f) {
      var x = left + plotW * f;
      svg.appendChild(el("text", { x: x, y: H - 20, "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle",
                                   "class": "tick" }, fmt(lo + (hi - lo) * f)));
    });
    svg.appendChild(el("text", { x: left - 6, y: top + 10, "text-anchor": "end", "class": "tick" }, String(peak)));
    svg.appendChild(el("text", { x: left - 6, y: top + plotH, "text-anchor": "end", "class": "tick" }, "0"));
    svg.appendChild(el("text", { x: left + plotW / 2, y: H - 4, "text-anchor": "middle", "class": "axis-label" },
                       "inference time (count per bin)"));
    var median = document.querySelector('[data-stat="median"]');
    if (median && hi > lo) {
      var m = parseFloat(median.dataset.us), mx = left + plotW * (m - lo) / (hi - lo);
      svg.appendChild(el("line", { x1: mx, y1: top, x2: mx, y2: top + plotH, "class": "median" }));
      svg.appendChild(el("text", { x: mx + 4, y: top + 10, "class": "tick" }, "median"));
    }
    container.appendChild(svg);
  }

  function sortable(table) {
    var heads = table.querySelectorAll("th[data-sort]");
    heads.forEach(function (th, column) {
      th.addEventListener("click", function () {
        var desc = !th.classList.contains("sorted-desc");
        heads.forEach(function (h) { h.classList.remove("sorted-desc", "sorted-asc"); });
        th.classList.add(desc ? "sorted-desc" : "sorted-asc");
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[column], y = b.cells[column], r;
          if (th.dataset.sort === "num") {
            r = parseFloat(x.dataset.value) - parseFloat(y.dataset.value);
          } else {
            r = x.textContent.localeCompare(y.textContent);
          }
          return desc ? -r : r;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  }

  function watchState(badge) {
    if (badge.dataset.finished === "yes") { return; }
    var seen = badge.dataset.state + "/" + badge.dataset.events;
    function poll() {
      fetch("/dashboard/fragments/jobs/" + badge.dataset.jobId + "/state", { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (r.status === 401) { window.location = "/login?next=" + encodeURIComponent(location.pathname); }
          return r.json();
        })
        .then(function (s) {
          var key = s.state + "/" + s.events;
          if (key !== seen) { window.location.reload(); return; }
          setTimeout(poll, 1000);
        })
        .catch(function () { setTimeout(poll, 2000); });
    }
    poll();
  }

  var data = document.getElementById("profile-data");
  var plot = document.getElementById("histogram");
  if (data && plot) { histogram(plot, JSON.parse(data.textContent)); }
  document.querySelectorAll("table.sortable").forEach(sortable);
  var badge = document.getElementById("job-state");
  if (badge) { watchState(badge); }
})();
