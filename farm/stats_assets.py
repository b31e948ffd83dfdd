"""The stats page's stylesheet and script (farm/stats_page.py inlines them:
the page loads nothing from anywhere else).

They are Python strings so that they install with the code (the Debian
package ships farm/*.py). The script reads what the page's HTML gives it:
body data-uri (the stats uri) and data-refresh (seconds, 0 for none);
sections `section.px` with data-kind (fe|be), data-name and data-mode;
server rows `tr.srv` with data-name and data-state (farm/stats_page.py's
ROW_STATES); per section a `.graphs` div with data-key "fe/NAME" or
"be/NAME", which it fills from {uri};history (history_json there).
"""

CSS = """
*{box-sizing:border-box}[hidden]{display:none!important}
body{font:12.5px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f3f5f8}
header{background:#1d2b45;color:#fff;padding:8px 10px;display:flex;flex-wrap:wrap;gap:4px 24px;align-items:baseline}
header h1{font-size:17px;margin:0 8px 0 0}header span{opacity:.92}header b{font-weight:600}
nav{position:sticky;top:0;z-index:5;display:flex;flex-wrap:wrap;gap:6px 16px;align-items:center;padding:6px 10px;background:#e3e8f1;border-bottom:1px solid #cdd5e1}
nav a{color:#1d4ed8;margin-right:10px}nav label{white-space:nowrap;cursor:pointer}
.ctl{display:flex;flex-wrap:wrap;gap:6px 12px;align-items:center}
.ctl input[type=search]{width:160px;padding:2px 6px;font:inherit;border:1px solid #aeb8c8;border-radius:3px}
select,button{font:inherit;font-size:12px}
.legend{display:flex;flex-wrap:wrap;gap:3px}.legend span{padding:0 5px;border-radius:3px;border:1px solid #0000001a}
.nojs .js,.nojs .graphs{display:none}
main{padding:4px 10px 24px}
.msg{margin:10px 0;padding:7px 12px;border-radius:4px}.msg.ok{background:#d7f5dd}.msg.warn{background:#ffe7c2}.msg.err{background:#fbd3d0}
section{margin:12px 0;background:#fff;border:1px solid #d3d9e3;border-radius:6px}
section form{margin:0}
h2{display:flex;flex-wrap:wrap;align-items:center;gap:4px 12px;font-size:14px;margin:0;padding:5px 10px;background:#eef1f7;border-bottom:1px solid #d3d9e3;border-radius:6px 6px 0 0}
h2 small{font-weight:normal;color:#5b6577;font-size:12px}
.bulk{margin-left:auto;display:flex;align-items:center;gap:6px;font-weight:normal}
.bulk .count{color:#5b6577;font-size:12px}
.bulk button{padding:1px 12px;border:1px solid #8d99ad;border-radius:3px;background:#fff;cursor:pointer}
.bulk button:disabled{cursor:default;color:#9aa3b2;border-color:#cfd5df}
.graphs{display:flex;flex-wrap:wrap;gap:6px 18px;padding:6px 10px 4px}
.nographs .graphs{display:none}
.chart{flex:1 1 260px;min-width:220px;max-width:560px;position:relative}
.chart svg{display:block;width:100%;background:#fafbfd;border:1px solid #e2e6ed;border-radius:3px}
.chart .ymax{position:absolute;left:4px;top:16px;font-size:10px;color:#7a8394;pointer-events:none}
.cap{display:flex;justify-content:space-between;gap:6px;font-size:11px;color:#4a5466;white-space:nowrap;overflow:hidden}
.cap b{font-weight:600;color:#1d2330}.cap .v i{font-style:normal;font-weight:600}
.tbl{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:12px;font-variant-numeric:tabular-nums}
th,td{padding:2px 4px;border-bottom:1px solid #0000000f;text-align:right;white-space:nowrap}
th{background:#f6f7fa;font-weight:600;font-size:11px;color:#4a5466}
th.g{text-align:center;border-left:1px solid #dde2ea}th.s,td.s{border-left:1px solid #00000012}
td.l,th.l{text-align:left}
th.name,td.name{position:sticky;left:0;z-index:1;padding-left:6px}
th.name{background:#f6f7fa}td.name label{cursor:pointer}td.name input{margin:0 5px 0 0;vertical-align:-2px}
tr.total td{font-weight:600;border-top:1px solid #c8cfda}
tbody tr:hover td{box-shadow:inset 0 0 0 999px #00000008}
.r-up td,.legend .r-up{background:#d3f2d8}
.r-going-down td,.legend .r-going-down{background:#fbf0a0}
.r-going-up td,.legend .r-going-up{background:#fdd29a}
.r-down td,.legend .r-down{background:#f6b6b0}
.r-drain td,.legend .r-drain{background:#c3d8fa}
.r-maint td,.legend .r-maint{background:#dfc7a6}
.r-nocheck td,.legend .r-nocheck{background:#e8ebef}
.certs td.acme-failed{background:#f5a03c;font-weight:600;white-space:normal;min-width:22em}
.st{display:inline-block;min-width:50px;text-align:center;padding:0 6px;border-radius:3px;font-weight:600;font-size:11px;color:#fff}
.st.up,.st.open{background:#23843a}.st.down{background:#c2362b}.st.going{background:#b86e00}
.st.maint{background:#77502a}.st.drain{background:#2a5fc0}.st.nocheck{background:#687284}
.tag{font-size:10px;color:#5b6577;border:1px solid #0000002a;border-radius:3px;padding:0 3px}
.err{color:#b42318;font-weight:600}.dim{color:#6f7889}
"""

JS = r"""
"use strict";
(function () {
  var doc = document, body = doc.body;
  var URI = body.dataset.uri, REFRESH = +body.dataset.refresh || 0;
  var POLL_MS = 2000, W = 300, H = 54, GAP_MS = 3500;
  var CLASSES = [["other", "#9aa3b2"], ["1xx", "#9aa3b2"], ["2xx", "#2e9e44"], ["3xx", "#2b8ac9"],
                 ["4xx", "#e08a00"], ["5xx", "#d23b2f"]];
  body.classList.remove("nojs");

  function $(sel, root) { return (root || doc).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || doc).querySelectorAll(sel)); }
  function load(key, dflt) {
    try { var v = localStorage.getItem("farm.stats." + key); return v === null ? dflt : v; }
    catch (e) { return dflt; }
  }
  function save(key, v) { try { localStorage.setItem("farm.stats." + key, v); } catch (e) { /* private mode */ } }

  // -- filter, hide DOWN, bulk selection ---------------------------------------------

  var filter = $("#filter"), hideDown = $("#hidedown"), showGraphs = $("#showgraphs"), span = $("#span");
  filter.value = load("filter", "");
  hideDown.checked = load("hidedown", "0") === "1";
  showGraphs.checked = load("graphs", "1") === "1";
  span.value = load("span", span.value);

  function applyView() {
    var q = filter.value.trim().toLowerCase(), hide = hideDown.checked;
    $$("section.px").forEach(function (sec) {
      var all = !q || sec.dataset.name.toLowerCase().indexOf(q) >= 0, shown = 0;
      $$("tr.srv", sec).forEach(function (tr) {
        var st = tr.dataset.state;
        var vis = (all || tr.dataset.name.toLowerCase().indexOf(q) >= 0) &&
                  !(hide && (st === "down" || st === "maint"));
        tr.hidden = !vis;
        if (vis) { shown++; } else { var box = $("input.sel", tr); if (box) { box.checked = false; } }
      });
      sec.hidden = !all && shown === 0;
      updateBulk(sec);
    });
    body.classList.toggle("nographs", !showGraphs.checked);
  }

  function updateBulk(sec) {
    var bulk = $(".bulk", sec);
    if (!bulk) { return; }
    var boxes = $$("tr.srv:not([hidden]) input.sel", sec);
    var n = boxes.filter(function (b) { return b.checked; }).length;
    $(".count", bulk).textContent = n ? n + " selected" : "";
    $("button", bulk).disabled = !n || !$("select", bulk).value;
    var all = $("input.all", sec);
    if (all) { all.checked = n > 0 && n === boxes.length; all.indeterminate = n > 0 && n < boxes.length; }
  }

  doc.addEventListener("change", function (ev) {
    var t = ev.target, sec = t.closest("section.px");
    if (t.matches("input.all")) {
      $$("tr.srv:not([hidden]) input.sel", sec).forEach(function (b) { b.checked = t.checked; });
    }
    if (t === hideDown) { save("hidedown", hideDown.checked ? "1" : "0"); applyView(); }
    if (t === showGraphs) { save("graphs", showGraphs.checked ? "1" : "0"); applyView(); draw(); }
    if (t === span) { save("span", span.value); draw(); }
    if (sec) { updateBulk(sec); }
  });
  filter.addEventListener("input", function () { save("filter", filter.value); applyView(); });

  // -- tables refreshed in place -----------------------------------------------------

  function sectionIds(d) { return $$("section.px", d).map(function (s) { return s.id; }).join(" "); }

  function refreshTables() {
    if (doc.hidden) { return Promise.resolve(); }
    return fetch(URI + ";norefresh", {cache: "no-store"}).then(function (r) {
      if (!r.ok) { throw new Error("status " + r.status); }
      return r.text();
    }).then(function (text) {
      var fresh = new DOMParser().parseFromString(text, "text/html");
      if (sectionIds(fresh) !== sectionIds(doc)) { location.replace(URI); return; }  // reloaded config
      $("header").replaceWith(doc.importNode($("header", fresh), true));
      $$("section.px", fresh).forEach(function (ns) {
        var sec = doc.getElementById(ns.id), checked = {}, old = $(".tbl", sec);
        var tbl = doc.importNode($(".tbl", ns), true);
        $$("input.sel:checked", sec).forEach(function (b) { checked[b.value] = true; });
        old.replaceWith(tbl);
        tbl.scrollLeft = old.scrollLeft;                 // a narrow screen keeps its place
        $("h2 small", sec).replaceWith(doc.importNode($("h2 small", ns), true));
        $$("input.sel", sec).forEach(function (b) { b.checked = !!checked[b.value]; });
      });
      var certs = $("section.certs", fresh), shown = $("section.certs");
      if (certs && shown) { $(".tbl", shown).replaceWith(doc.importNode($(".tbl", certs), true)); }
      applyView();
    }).catch(function () { /* keep the last tables; try again next time */ });
  }

  function every(ms, job) {
    function next() { job().then(function () { setTimeout(next, ms); }); }
    setTimeout(next, ms);
  }

  // -- graphs ------------------------------------------------------------------------

  var hist = {seq: 0, t: [], rows: {}, scale: 100};

  function zeros(n) { var a = new Array(n); for (var i = 0; i < n; i++) { a[i] = 0; } return a; }

  function merge(d) {
    if (d.seq < hist.seq) { hist = {seq: 0, t: [], rows: {}, scale: 100}; return false; }  // a new farm
    var before = hist.t.length, added = d.t.length;
    hist.t = hist.t.concat(d.t);
    var seen = {};
    ["fe", "be"].forEach(function (kind) {
      Object.keys(d[kind]).forEach(function (name) {
        var key = kind + "/" + name, row = hist.rows[key] || (hist.rows[key] = {});
        seen[key] = true;
        d.fields.forEach(function (f) { row[f] = (row[f] || zeros(before)).concat(d[kind][name][f]); });
      });
    });
    Object.keys(hist.rows).forEach(function (key) {      // gone from the config: keep aligned
      if (!seen[key]) {
        var row = hist.rows[key];
        d.fields.forEach(function (f) { row[f] = row[f].concat(zeros(added)); });
      }
    });
    var extra = hist.t.length - d.slots;
    if (extra > 0) {
      hist.t = hist.t.slice(extra);
      Object.keys(hist.rows).forEach(function (key) {
        var row = hist.rows[key];
        d.fields.forEach(function (f) { row[f] = row[f].slice(extra); });
      });
    }
    hist.seq = d.seq;
    hist.scale = d.rate_scale;
    return true;
  }

  function pollHistory() {
    if (doc.hidden) { return Promise.resolve(); }      // a background tab catches up later
    return fetch(URI + ";history" + (hist.seq ? ";since=" + hist.seq : ""), {cache: "no-store"})
      .then(function (r) { if (!r.ok) { throw new Error("status " + r.status); } return r.json(); })
      .then(function (d) { if (merge(d)) { draw(); } })
      .catch(function () { /* the next poll tries again */ });
  }

  // The scale of a graph: 1, 2 or 5 x 10^k, with room above the highest value.
  function niceMax(v) {
    if (!(v > 0)) { return 1; }
    v *= 1.1;
    var p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function fmt(v) {
    if (v === null || v === undefined || isNaN(v)) { return "-"; }
    return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : String(+v.toFixed(2));
  }
  function pct(part, whole) { return whole ? Math.round(100 * part / whole) + "%" : "-"; }

  // A chart: its caption, and an svg of W x H units stretched to the
  // chart's width (strokes keep their width: non-scaling-stroke).
  function chart(kind, title) {
    return '<div class="chart" data-c="' + kind + '"><div class="cap"><b>' + title +
      '</b><span class="v"></span></div><span class="ymax"></span><svg height="' + H +
      '" viewBox="0 0 ' + W + " " + H + '" preserveAspectRatio="none" role="img">' +
      '<g class="areas"></g><g class="lines"></g></svg></div>';
  }

  function build(g) {
    var http = g.dataset.mode === "http", fe = g.dataset.key.slice(0, 3) === "fe/";
    g.innerHTML = chart("rate", http ? "requests/s" : "sessions/s") +
      chart("time", http ? (fe ? "total time (Ta) ms" : "response time ms") : "session time ms") +
      (http ? chart("codes", "responses/s by class") : "");
  }

  // The window shown: indices of the samples in the last `span` seconds,
  // and x positions from the latest sample's time (the server's clock).
  function view() {
    var t = hist.t, n = t.length, spanMs = (+span.value || 300) * 1000;
    var end = t[n - 1], start = end - spanMs, i0 = n;
    while (i0 > 0 && t[i0 - 1] > start) { i0--; }
    return {i0: i0, n: n, x: function (i) { return ((t[i] - start) / spanMs * W).toFixed(1); }};
  }

  function y(v, max) { return (H - 2 - (H - 4) * v / max).toFixed(1); }

  // A line through values (null: no value, the line breaks), breaking also
  // where samples are missing (farm stopped, a gap in the sampling).
  function linePath(v, vals, max) {
    var d = "", pen = false, prev = 0, t = hist.t;
    for (var i = v.i0; i < v.n; i++) {
      var val = vals[i];
      if (val === null || (pen && t[i] - prev > GAP_MS)) { pen = false; }
      if (val === null) { continue; }
      d += (pen ? "L" : "M") + v.x(i) + "," + y(val, max);
      pen = true;
      prev = t[i];
    }
    return d;
  }

  // The band between two cumulative series, as one closed path.
  function bandPath(v, lower, upper, max) {
    if (v.n - v.i0 < 1) { return ""; }
    var d = "", i;
    for (i = v.i0; i < v.n; i++) { d += (i === v.i0 ? "M" : "L") + v.x(i) + "," + y(upper[i], max); }
    for (i = v.n - 1; i >= v.i0; i--) { d += "L" + v.x(i) + "," + y(lower[i], max); }
    return d + "Z";
  }

  function series(row, f) { var s = hist.scale; return row[f].map(function (x) { return x / s; }); }
  function averages(row, f) {
    return row[f].map(function (sum, i) { var n = row.timed[i]; return n ? sum / n : null; });
  }
  function maxOf(vals, v) {
    var m = 0;
    for (var i = v.i0; i < v.n; i++) { if (vals[i] !== null && vals[i] > m) { m = vals[i]; } }
    return m;
  }
  function total(vals, v) { var s = 0; for (var i = v.i0; i < v.n; i++) { s += vals[i] || 0; } return s; }

  function drawLines(c, lines, max, caption) {
    $(".lines", c).innerHTML = lines.map(function (l) {
      return '<path class="s" fill="none" stroke="' + l[1] + '" stroke-width="1.5" ' +
        'vector-effect="non-scaling-stroke" d="' + l[0] + '"/>';
    }).join("");
    $(".ymax", c).textContent = String(+max.toPrecision(2));
    $(".v", c).innerHTML = caption;
  }

  function drawRow(g, row, v) {
    var http = g.dataset.mode === "http", fe = g.dataset.key.slice(0, 3) === "fe/";
    // rate: a line over a light area
    var rate = series(row, http ? "req" : "sess"), c = $('[data-c="rate"]', g);
    var max = niceMax(maxOf(rate, v)), line = linePath(v, rate, max);
    $(".areas", c).innerHTML = line ? '<path fill="#2a5fc022" d="' + line +
      "L" + v.x(v.n - 1) + "," + H + "L" + v.x(v.i0) + "," + H + 'Z"/>' : "";
    drawLines(c, [[line, "#2a5fc0"]], max,
              "<i>" + fmt(rate[v.n - 1]) + "</i>/s, peak " + fmt(maxOf(rate, v)));
    // times: averages per sample, and over the window in the caption
    c = $('[data-c="time"]', g);
    var timed = total(row.timed, v), ta = averages(row, "ttime");
    if (http && !fe) {
      var tr = averages(row, "rtime");
      max = niceMax(Math.max(maxOf(tr, v), maxOf(ta, v)));
      drawLines(c, [[linePath(v, ta, max), "#9aa3b2"], [linePath(v, tr, max), "#7b3fc4"]], max,
                "Tr <i>" + fmt(timed ? total(row.rtime, v) / timed : null) + "</i> Ta " +
                fmt(timed ? total(row.ttime, v) / timed : null));
    } else {
      max = niceMax(maxOf(ta, v));
      drawLines(c, [[linePath(v, ta, max), "#7b3fc4"]], max,
                "avg <i>" + fmt(timed ? total(row.ttime, v) / timed : null) + "</i>");
    }
    if (!http) { return; }
    // responses by class: stacked bands, the share of each in the caption
    c = $('[data-c="codes"]', g);
    var cum = zeros(v.n), bands = [], sums = {}, all = 0;
    CLASSES.forEach(function (k) {
      var vals = series(row, k[0]), next = cum.map(function (x, i) { return x + vals[i]; });
      bands.push([cum, next, k[1]]);
      sums[k[0]] = total(vals, v);
      all += sums[k[0]];
      cum = next;
    });
    var top = niceMax(maxOf(cum, v));
    $(".areas", c).innerHTML = bands.map(function (b) {
      return '<path class="band" fill="' + b[2] + '" fill-opacity=".8" d="' +
        bandPath(v, b[0], b[1], top) + '"/>';
    }).join("");
    var shares = ["2xx", "3xx", "4xx", "5xx"].filter(function (k) { return sums[k] > 0; }).map(function (k) {
      return (k === "5xx" ? '<span class="err">' : "<span>") + k + " " + pct(sums[k], all) + "</span>";
    });
    drawLines(c, [], top, all ? shares.join(" ") : "none");
  }

  function draw() {
    if (!showGraphs.checked || !hist.t.length) { return; }
    var v = view();
    $$(".graphs").forEach(function (g) {
      var row = hist.rows[g.dataset.key];
      if (!row || g.closest("[hidden]")) { return; }
      if (!g.firstChild) { build(g); }
      drawRow(g, row, v);
    });
  }

  // -- start -------------------------------------------------------------------------

  if (location.href.indexOf(";st=") >= 0 && history.replaceState) {
    history.replaceState(null, "", URI);       // a reload does not repeat the banner
  }
  applyView();
  filter.addEventListener("input", draw);       // sections shown again get drawn
  hideDown.addEventListener("change", draw);
  pollHistory().then(function () { every(POLL_MS, pollHistory); });
  if (REFRESH > 0) { every(REFRESH * 1000, refreshTables); }
})();
"""
