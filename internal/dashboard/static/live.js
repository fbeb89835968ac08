// cutover dashboard: live parts over Server-Sent Events. A [data-live]
// element is replaced by the HTML fragments its stream sends (rendered and
// escaped by the server); [data-log] gets log lines appended as text.
"use strict";
(function () {
  function follow(url, handlers) {
    var es = new EventSource(url);
    Object.keys(handlers).forEach(function (k) { es.addEventListener(k, handlers[k]); });
    es.addEventListener("end", function () { es.close(); });
    window.addEventListener("pagehide", function () { es.close(); });
    return es;
  }
  document.querySelectorAll("[data-live]").forEach(function (el) {
    follow(el.dataset.live, {
      html: function (e) {
        // Keep what the user is doing: a live part never holds a text field.
        el.innerHTML = e.data;
        el.dataset.updated = String(Date.now());
      },
    });
  });
  document.querySelectorAll("[data-log]").forEach(function (el) {
    follow(el.dataset.log, {
      log: function (e) {
        var l = JSON.parse(e.data);
        var atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
        var row = document.createElement("div");
        row.className = "line";
        var t = document.createElement("span");
        t.className = "t";
        t.textContent = l.time;
        var a = document.createElement("span");
        a.className = "a";
        a.textContent = l.action;
        row.append(t, a, document.createTextNode(l.line));
        el.append(row);
        if (atEnd) el.scrollTop = el.scrollHeight;
      },
      end: function (e) {
        var row = document.createElement("div");
        row.className = "line end";
        row.textContent = "— " + e.data + " —";
        el.append(row);
        el.dataset.ended = e.data;
      },
    });
  });
})();
