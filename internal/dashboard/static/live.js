// cutover dashboard: live parts over Server-Sent Events. A [data-live]
// element is made to match the HTML fragments its stream sends (rendered and
// escaped by the server), changing only the nodes that differ; [data-log]
// gets log lines appended as text.
"use strict";
(function () {
  // The session's action key: the login puts it in the fragment of the
  // page it goes to (a fragment is never sent), this keeps it in the
  // origin's storage, which no other port of the host can read, and fills
  // it into each form as the form is sent. The cookie alone, which a
  // browser sends to every port of a host, acts on nothing.
  var store = "cutover-action-key";
  var m = /^#key=([A-Z2-7]+)$/.exec(location.hash);
  if (m) {
    try { localStorage.setItem(store, m[1]); } catch (e) {}
    history.replaceState(null, "", location.pathname + location.search);
  }
  document.addEventListener("submit", function (e) {
    var f = e.target;
    var k = f.querySelector && f.querySelector('input[name="key"]');
    if (!k) return;
    try {
      k.value = localStorage.getItem(store) || "";
      if (new URL(f.action, location.href).pathname === "/logout") localStorage.removeItem(store);
    } catch (err) {
      k.value = "";
    }
  }, true);
  function follow(url, handlers) {
    var es = new EventSource(url);
    Object.keys(handlers).forEach(function (k) { es.addEventListener(k, handlers[k]); });
    es.addEventListener("end", function () { es.close(); });
    window.addEventListener("pagehide", function () { es.close(); });
    return es;
  }
  // key names a node among its siblings: rows and cards carry data-key (a
  // deployment's, revision's or environment's ID), other elements their id.
  function key(n) {
    return n.nodeType === 1 ? n.getAttribute("data-key") || n.id || "" : "";
  }
  function same(a, b) {
    return a.nodeType === b.nodeType && a.nodeName === b.nodeName && key(a) === key(b);
  }
  // morph makes el's children those of next, keeping every node that is
  // still there: a button under the pointer stays the same node while the
  // page around it updates, so a click that straddles an update is not lost,
  // and a keyed row keeps its own button when a new row comes in above it
  // (Redeploy on a row always means that row's revision).
  function morph(el, next) {
    var old = Array.prototype.slice.call(el.childNodes);
    var want = Array.prototype.slice.call(next.childNodes);
    want.forEach(function (w, i) {
      var m = null;
      for (var j = 0; j < old.length; j++) {
        if (old[j] && same(old[j], w)) {
          m = old[j];
          old[j] = null;
          break;
        }
      }
      var at = el.childNodes[i] || null;
      if (!m) {
        el.insertBefore(w, at);
        return;
      }
      if (m !== at) el.insertBefore(m, at);
      if (m.nodeType !== 1) {
        if (m.nodeValue !== w.nodeValue) m.nodeValue = w.nodeValue;
        return;
      }
      Array.prototype.slice.call(m.attributes).forEach(function (a) {
        if (!w.hasAttribute(a.name)) m.removeAttribute(a.name);
      });
      Array.prototype.slice.call(w.attributes).forEach(function (a) {
        if (m.getAttribute(a.name) !== a.value) m.setAttribute(a.name, a.value);
      });
      morph(m, w);
    });
    while (el.childNodes.length > want.length) el.removeChild(el.lastChild);
  }
  window.cutoverMorph = morph;
  document.querySelectorAll("[data-live]").forEach(function (el) {
    follow(el.dataset.live, {
      html: function (e) {
        // Keep what the user is doing: a live part never holds a text field.
        var next = document.createElement(el.nodeName);
        next.innerHTML = e.data;
        morph(el, next);
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
