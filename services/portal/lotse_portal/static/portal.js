// Small enhancements; every page works without them.
// 1. A form marked data-once sends once: its button is disabled after the first submit
//    (the services are idempotent as well, so a double click never acts twice). Listened
//    for on the document, so forms swapped in by 3. count too.
document.addEventListener("submit", function (e) {
  var form = e.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-once")) { return; }
  form.querySelectorAll("button[type=submit]").forEach(function (b) {
    window.setTimeout(function () { b.disabled = true; }, 0);
  });
});
// 2. Live: the notifications service's server-sent events ("<unread>|<newest>"), through
//    the portal. Every page's badge shows the unread count.
// 3. On the inbox page, a change fetches the same page again and swaps its list and
//    counts in (#inbox-live), so a new alert shows without a click.
(function () {
  var badge = document.getElementById("unread-badge");
  if (!badge || !window.EventSource) { return; }
  var live = document.getElementById("inbox-live");
  var rendered = live ? live.getAttribute("data-unread") : null;
  var last = null;
  var busy = false;
  var again = false;

  function refresh(more) {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("inbox-live");
        var current = document.getElementById("inbox-live");
        if (!fresh || !current) { return; }  // signed out meanwhile: the next click signs in
        current.replaceWith(document.importNode(fresh, true));
        var notice = document.getElementById("live-notice");
        if (notice && more) { notice.hidden = false; }
      })
      .catch(function () { /* the page as it is stays usable */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(more); }
      });
  }

  var source = new EventSource("/inbox/events");
  source.addEventListener("inbox", function (e) {
    var unread = String(e.data).split("|")[0];
    badge.textContent = unread === "0" ? "" : unread;
    var state = document.getElementById("live-state");
    if (state) { state.textContent = unread + " " + state.textContent.replace(/^\d+\s*/, ""); }
    // the first event says how things are now: a change since the page was rendered?
    var before = last === null ? rendered : last.split("|")[0];
    var changed = last === null ? rendered !== null && unread !== rendered : e.data !== last;
    last = e.data;
    if (live && changed) { refresh(Number(unread) > Number(before)); }
  });
})();
