// sakuga studio: live updates and the take compare. No framework beyond htmx, nothing from elsewhere.
(function () {
  "use strict";

  // Live updates: the farm's events (GET /api/events, server-sent) become one "farm-event" on <body>,
  // at most every 300 ms, on which the page's live parts (hx-trigger="farm-event from:body") reload.
  function follow() {
    if (document.body.dataset.live !== "on" || !window.EventSource) return;
    var pending = null;
    var source = new EventSource("/api/events");
    source.onmessage = function (e) {
      window.sakugaEvents = (window.sakugaEvents || 0) + 1;
      if (pending) return;
      pending = setTimeout(function () {
        pending = null;
        htmx.trigger(document.body, "farm-event", {});
      }, 300);
    };
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // Compare: two takes side by side; play, pause and seek on either (or the shared controls) mirrored.
  function compare(root) {
    var section = root.querySelector(".compare");
    if (!section || section.dataset.ready) return;
    section.dataset.ready = "1";
    var videos = Array.prototype.slice.call(section.querySelectorAll(".compare-video"));
    var seek = section.querySelector(".compare-seek");
    var syncing = false;
    function others(v) { return videos.filter(function (o) { return o !== v; }); }
    section.querySelectorAll(".compare-pick").forEach(function (pick) {
      var video = section.querySelector('.compare-video[data-side="' + pick.dataset.side + '"]');
      video.src = pick.value;
      pick.addEventListener("change", function () { video.src = pick.value; video.currentTime = videos[0].currentTime || 0; });
    });
    videos.forEach(function (v) {
      v.addEventListener("play", function () { if (!syncing) others(v).forEach(function (o) { o.currentTime = v.currentTime; o.play(); }); });
      v.addEventListener("pause", function () { if (!syncing) others(v).forEach(function (o) { o.pause(); }); });
      v.addEventListener("seeked", function () {
        if (syncing) return;
        syncing = true;
        others(v).forEach(function (o) { if (Math.abs(o.currentTime - v.currentTime) > 0.02) o.currentTime = v.currentTime; });
        setTimeout(function () { syncing = false; }, 50);
      });
      v.addEventListener("timeupdate", function () { if (v === videos[0] && v.duration) seek.value = Math.round(1000 * v.currentTime / v.duration); });
    });
    section.querySelector(".compare-play").addEventListener("click", function () {
      if (videos[0].paused) { videos.forEach(function (v) { v.play(); }); } else { videos.forEach(function (v) { v.pause(); }); }
    });
    seek.addEventListener("input", function () {
      var d = videos[0].duration || 0;
      videos.forEach(function (v) { v.currentTime = d * seek.value / 1000; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { follow(); compare(document); });
  document.addEventListener("htmx:afterSettle", function (e) { compare(e.target); });
})();
