// Record browser for report.html. Reads the JSON data block, never writes HTML from
// record text (textContent only), fetches nothing. Its sha256 is pinned in the page's CSP.
(function () {
  "use strict";
  var block = document.getElementById("browse-data");
  if (!block) return;
  var data = JSON.parse(block.textContent);
  var rows = data.rows, traces = data.traces || {};
  var status = document.getElementById("f-status");
  var reason = document.getElementById("f-reason");
  var query = document.getElementById("f-q");
  var list = document.getElementById("b-list");
  var count = document.getElementById("b-count");
  var detail = document.getElementById("b-detail");
  var LIMIT = 200;
  var reasons = {};
  rows.forEach(function (r) { if (r[2] !== null) reasons[r[2]] = (reasons[r[2]] || 0) + 1; });
  Object.keys(reasons).sort().forEach(function (k) {
    var o = document.createElement("option");
    o.value = k; o.textContent = k + " (" + reasons[k] + ")";
    reason.appendChild(o);
  });
  var search = rows.map(function (r) { return JSON.stringify(r[4]).toLowerCase(); });

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function open(i) {
    var r = rows[i];
    detail.replaceChildren();
    var head = el("h3", "", "record " + r[0] + " · " + (r[1] ? "kept" : "rejected: " + r[2]));
    detail.appendChild(head);
    detail.appendChild(el("pre", "b-json", JSON.stringify(r[4], null, 2)));
    var calls = ((r[4].meta || {}).llm_calls || []).filter(function (c) { return c && c.trace !== undefined; });
    if (calls.length) {
      detail.appendChild(el("h3", "", "model calls (traces.jsonl)"));
      calls.forEach(function (c) {
        var t = traces[String(c.trace)];
        detail.appendChild(t ? el("pre", "b-trace", JSON.stringify(t, null, 2))
                             : el("p", "muted", "trace " + c.trace + " is not in traces.jsonl"));
      });
    }
    Array.prototype.forEach.call(list.children, function (li) {
      li.classList.toggle("sel", li.dataset.i === String(i));
    });
  }

  function apply() {
    var s = status.value, why = reason.value, q = query.value.trim().toLowerCase();
    if (why) { s = "rejected"; status.value = "rejected"; }
    list.replaceChildren();
    var shown = 0, matched = 0;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (s === "kept" && !r[1]) continue;
      if (s === "rejected" && r[1]) continue;
      if (why && r[2] !== why) continue;
      if (q && search[i].indexOf(q) < 0) continue;
      matched++;
      if (shown >= LIMIT) continue;
      shown++;
      var li = el("li", r[1] ? "kept" : "rejected");
      li.dataset.i = String(i);
      li.appendChild(el("code", "", r[0]));
      li.appendChild(el("span", r[1] ? "pill ok" : "pill fail", r[1] ? "kept" : r[2]));
      li.appendChild(el("span", "headline", r[3]));
      list.appendChild(li);
    }
    count.textContent = matched + " of " + rows.length + " embedded records match" +
      (matched > shown ? " (first " + shown + " listed; narrow the search)" : "");
  }

  list.addEventListener("click", function (ev) {
    var li = ev.target.closest("li");
    if (li) open(Number(li.dataset.i));
  });
  status.addEventListener("change", function () { if (status.value !== "rejected") reason.value = ""; apply(); });
  reason.addEventListener("change", apply);
  query.addEventListener("input", apply);
  document.querySelectorAll("[data-reason]").forEach(function (a) {
    a.addEventListener("click", function () { reason.value = a.dataset.reason; apply(); });
  });
  document.getElementById("browse-js").hidden = false;
  apply();
})();
