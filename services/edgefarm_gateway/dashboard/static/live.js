// Keeps a server-rendered region fresh: polls its data-source for the same HTML fragment and swaps it in
// when it changed. A 401 means the session ended: go to the login page and come back here afterwards.
(function () {
  "use strict";
  var live = document.getElementById("live");
  document.querySelectorAll("[data-source]").forEach(function (region) {
    var interval = parseInt(region.dataset.interval || "1000", 10);
    var last = null;
    function poll() {
      fetch(region.dataset.source, { credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (response.status === 401) {
            window.location = "/login?next=" + encodeURIComponent(location.pathname + location.search);
            throw new Error("signed out");
          }
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.text();
        })
        .then(function (html) {
          if (html !== last) { region.innerHTML = html; last = html; }
          if (live) { live.classList.remove("stale"); live.title = "updated " + new Date().toLocaleTimeString(); }
        })
        .catch(function () { if (live) { live.classList.add("stale"); live.title = "cannot reach the gateway"; } })
        .finally(function () { setTimeout(poll, interval); });
    }
    setTimeout(poll, interval);
  });
})();
