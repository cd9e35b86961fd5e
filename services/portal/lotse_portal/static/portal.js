// Small enhancements; every page works without them.
// 1. A form marked data-once sends once: its button is disabled after the first submit
//    (the services are idempotent as well, so a double click never acts twice).
document.querySelectorAll("form[data-once]").forEach(function (form) {
  form.addEventListener("submit", function () {
    form.querySelectorAll("button[type=submit]").forEach(function (b) {
      window.setTimeout(function () { b.disabled = true; }, 0);
    });
  });
});
// 2. The inbox is live: the notifications service's server-sent events, through the portal.
(function () {
  var badge = document.getElementById("unread-badge");
  if (!badge || !window.EventSource) { return; }
  var first = null;
  var source = new EventSource("/inbox/events");
  source.addEventListener("inbox", function (e) {
    var unread = String(e.data).split("|")[0];
    badge.textContent = unread === "0" ? "" : unread;
    var state = document.getElementById("live-state");
    if (state) { state.textContent = unread + " " + state.textContent.replace(/^\d+\s*/, ""); }
    if (first === null) { first = e.data; return; }
    var notice = document.getElementById("live-notice");
    if (notice && e.data !== first) { notice.hidden = false; }
  });
})();
