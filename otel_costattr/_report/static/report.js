/* otel-costattr HTML report: sortable and filterable tables, spend over time per dimension, vendor share.
 *
 * Runs inline (allowed by its hash in the page's Content-Security-Policy) after Chart.js. It reads the page's
 * data from <script type="application/json" id="costattr-data">, never from the network. Money stays exact:
 * amounts are decimal strings, added up here as BigInt units of 1e-18 (the ledger's scale); floats are used only
 * for chart geometry. Text from telemetry is only ever set with textContent, never parsed as HTML.
 */
(function () {
  "use strict";
  var dataEl = document.getElementById("costattr-data");
  if (!dataEl) return;
  var D = JSON.parse(dataEl.textContent);
  var api = { data: D, charts: {} };
  window.costattr = api;

  // ---------------------------------------------------------------------------------------- exact money
  var SCALE = 18, ONE = BigInt("1" + "0".repeat(SCALE));

  function units(text) {
    // "-12.5" -> -12500000000000000000n; anything that is not a plain decimal -> null
    var m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(text));
    if (!m) return null;
    var frac = (m[3] || "").slice(0, SCALE);
    var v = BigInt(m[2]) * ONE + BigInt((frac + "0".repeat(SCALE)).slice(0, SCALE) || "0");
    return m[1] ? -v : v;
  }

  function groupThousands(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  function exactText(u) {
    // the exact amount, trailing zeros trimmed to at least 2 decimals: "$0.28718275"
    var neg = u < 0n, a = neg ? -u : u;
    var whole = (a / ONE).toString(), frac = (a % ONE).toString().padStart(SCALE, "0").replace(/0+$/, "");
    while (frac.length < 2) frac += "0";
    return (neg ? "-" : "") + D.sign + groupThousands(whole) + "." + frac;
  }

  function fixedText(u, places) {
    // the view's fixed precision, rounded half up; a non-zero amount never shows as zero
    var neg = u < 0n, a = neg ? -u : u;
    var step = BigInt("1" + "0".repeat(SCALE - places));
    var r = (a + step / 2n) / step;
    if (r === 0n && a !== 0n) return (neg ? ">-" : "<") + D.sign + "0." + "0".repeat(places - 1) + "1";
    var s = r.toString().padStart(places + 1, "0");
    var whole = s.slice(0, s.length - places), frac = s.slice(s.length - places);
    return (neg ? "-" : "") + D.sign + groupThousands(whole) + "." + frac;
  }

  function toFloat(u) {
    return Number(u) / 1e18;
  }

  api.units = units;
  api.fixedText = fixedText;
  api.exactText = exactText;

  // ---------------------------------------------------------------------------------------------- tables
  function cellValue(row, col) {
    var cell = row.cells[col];
    if (!cell) return null;
    var v = cell.getAttribute("data-v");
    if (v === null) v = cell.textContent.trim();
    return v === "" ? null : v;
  }

  function compare(x, y, numeric) {
    if (numeric) {
      var a = units(x), b = units(y);
      if (a !== null && b !== null) return a < b ? -1 : a > b ? 1 : 0;
    }
    return x < y ? -1 : x > y ? 1 : 0;
  }

  function sortTable(table, col, dir) {
    var head = table.tHead.rows[0].cells;
    for (var i = 0; i < head.length; i++) head[i].removeAttribute("aria-sort");
    head[col].setAttribute("aria-sort", dir);
    var numeric = head[col].getAttribute("data-sort") === "num";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var pinned = rows.filter(function (r) { return r.classList.contains("pinned"); });
    var rest = rows.filter(function (r) { return !r.classList.contains("pinned"); });
    rest.sort(function (ra, rb) {
      var x = cellValue(ra, col), y = cellValue(rb, col);
      if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1; // unknown/missing always last
      var c = compare(x, y, numeric);
      return dir === "ascending" ? c : -c;
    });
    rest.concat(pinned).forEach(function (r) { body.appendChild(r); });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var head = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(head, function (th, col) {
      var button = th.querySelector("button.sort");
      if (!button) return;
      button.addEventListener("click", function () {
        var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
        sortTable(table, col, dir);
      });
    });
  });

  function filterTable(table, query, counter) {
    var q = query.trim().toLowerCase();
    var exact = q.length > 1 && q[0] === '"' && q[q.length - 1] === '"' ? q.slice(1, -1) : null;
    var shown = 0, all = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
      if (r.classList.contains("pinned")) { r.hidden = q !== ""; return; }
      all++;
      var keys = (r.getAttribute("data-keys") || "").toLowerCase().split("\u001f");
      var hit = q === "" || (exact !== null ? keys.indexOf(exact) >= 0
                                            : r.textContent.toLowerCase().indexOf(q) >= 0);
      r.hidden = !hit;
      if (hit) shown++;
    });
    if (counter) counter.textContent = q === "" ? "" : shown + " of " + all + " rows";
  }

  Array.prototype.forEach.call(document.querySelectorAll("input.table-filter"), function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    var counter = document.getElementById(input.getAttribute("data-table") + "-count");
    if (!table) return;
    input.addEventListener("input", function () { filterTable(table, input.value, counter); });
  });

  // ------------------------------------------------------------------------------------- spend over time
  var PALETTE = ["#34568b", "#3f9b8f", "#8c6bb1", "#d9b84a", "#6b8e23", "#c9637a", "#7f7f7f", "#9fc5e8",
                 "#a0522d", "#5f4b8b"];
  var OTHER = "#b7b7b7", MISSING = "#c2410c";

  function colour(entry, i) {
    if (entry.other) return OTHER;
    if (entry.key === null) return MISSING;
    return PALETTE[i % PALETTE.length];
  }

  function weekOf(day) {
    var d = new Date(day + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7)); // ISO weeks start on Monday
    return d.toISOString().slice(0, 10);
  }

  function bucketed(s, step) {
    var labels = [], index = [];
    s.periods.forEach(function (p) {
      var b = step === "week" ? weekOf(p) : p;
      if (labels[labels.length - 1] !== b) labels.push(b);
      index.push(labels.length - 1);
    });
    var sets = s.entries.map(function (e, n) {
      var sums = labels.map(function () { return 0n; }), unknown = labels.map(function () { return false; });
      e.costs.forEach(function (c, i) {
        if (c === null) unknown[index[i]] = true;
        else sums[index[i]] += units(c);
      });
      return { entry: e, colour: colour(e, n), sums: sums, unknown: unknown };
    });
    return { labels: labels, sets: sets };
  }

  function changeRows(series) {
    // last period against the one before, per entry: what grew and what shrank
    var n = series.labels.length;
    var body = document.getElementById("pop-body");
    var head = document.getElementById("pop-head");
    if (!body || !head) return;
    while (body.firstChild) body.removeChild(body.firstChild);
    if (n < 2) {
      head.textContent = "One period only: nothing to compare yet.";
      return;
    }
    head.textContent = series.labels[n - 1] + " against " + series.labels[n - 2] +
      (selStep.value === "week" ? " (weeks starting on those days; the last may be incomplete)" : "");
    var rows = series.sets.map(function (s) {
      return { s: s, prev: s.sums[n - 2], last: s.sums[n - 1], d: s.sums[n - 1] - s.sums[n - 2] };
    });
    rows.sort(function (a, b) { return a.d > b.d ? -1 : a.d < b.d ? 1 : 0; });
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      function td(text, cls, exact) {
        var c = document.createElement("td");
        c.textContent = text;
        if (cls) c.className = cls;
        if (exact) c.title = exact;
        tr.appendChild(c);
      }
      td(r.s.entry.label, r.s.entry.key === null || r.s.entry.other ? "key flag" : "key");
      var unknownPrev = r.s.unknown[n - 2], unknownLast = r.s.unknown[n - 1];
      td(fixedText(r.prev, D.places) + (unknownPrev ? " + unpriced" : ""), "num", exactText(r.prev));
      td(fixedText(r.last, D.places) + (unknownLast ? " + unpriced" : ""), "num", exactText(r.last));
      td((r.d > 0n ? "+" : "") + fixedText(r.d, D.places), "num " + (r.d > 0n ? "up" : r.d < 0n ? "down" : ""),
         exactText(r.d));
      var pct = r.prev === 0n ? (r.last === 0n ? "0%" : "new") :
        ((Number(r.d * 10000n / r.prev) / 100).toFixed(2) + "%");
      td((r.d > 0n && pct !== "new" ? "+" : "") + pct, "num");
      body.appendChild(tr);
    });
  }

  var canvas = document.getElementById("series-canvas");
  var selDim = document.getElementById("series-dim");
  var selMode = document.getElementById("series-mode");
  var selStep = document.getElementById("series-step");

  function drawSeries() {
    var dim = selDim.value, mode = selMode.value, step = selStep.value;
    var s = D.series[dim];
    if (!s) return;
    var b = bucketed(s, step);
    var stacked = mode === "stacked";
    if (api.charts.series) api.charts.series.destroy();
    api.charts.series = new window.Chart(canvas, {
      type: stacked ? "bar" : "line",
      data: {
        labels: b.labels,
        datasets: b.sets.map(function (set) {
          return { label: set.entry.label, data: set.sums.map(toFloat), exact: set.sums.map(exactText),
                   unknown: set.unknown, backgroundColor: set.colour, borderColor: set.colour,
                   borderWidth: stacked ? 0 : 2, pointRadius: stacked ? 0 : 2, tension: 0.15, fill: false };
        })
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: stacked, grid: { display: false } },
          y: { stacked: stacked, beginAtZero: true,
               ticks: { callback: function (v) { return D.sign + Number(v).toLocaleString("en-US"); } } }
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: { callbacks: { label: function (ctx) {
            var ds = ctx.dataset;
            return ds.label + ": " + ds.exact[ctx.dataIndex] + (ds.unknown[ctx.dataIndex] ? " + unpriced calls" : "");
          } } }
        }
      }
    });
    changeRows(b);
    Array.prototype.forEach.call(document.querySelectorAll("[data-growth-dim]"), function (el) {
      el.hidden = el.getAttribute("data-growth-dim") !== dim;
    });
    api.series = { dim: dim, mode: mode, step: step, labels: b.labels.slice(),
                   datasets: b.sets.map(function (set) { return set.entry.label; }),
                   exact: b.sets.map(function (set) { return set.sums.map(function (u) {
                     return exactText(u); }); }) };
  }

  if (canvas && selDim && window.Chart) {
    [selDim, selMode, selStep].forEach(function (sel) { sel.addEventListener("change", drawSeries); });
    drawSeries();
  }

  // ------------------------------------------------------------------------------------------ vendor share
  var vcanvas = document.getElementById("vendor-canvas");
  var V = D.vendor_share;
  if (vcanvas && V && window.Chart) {
    api.charts.vendors = new window.Chart(vcanvas, {
      type: "bar",
      data: {
        labels: V.workloads,
        datasets: V.providers.map(function (p, i) {
          return { label: p, data: V.shares[i], exact: V.costs[i], backgroundColor: PALETTE[i % PALETTE.length] };
        })
      },
      options: {
        indexAxis: "y", animation: false, responsive: true, maintainAspectRatio: false,
        scales: { x: { stacked: true, max: 100, ticks: { callback: function (v) { return v + "%"; } } },
                  y: { stacked: true } },
        plugins: {
          legend: { position: "bottom" },
          tooltip: { callbacks: { label: function (ctx) {
            var c = ctx.dataset.exact[ctx.dataIndex];
            return ctx.dataset.label + ": " + ctx.parsed.x.toFixed(2) + "% (" +
              (c === null ? "unpriced" : exactText(units(c))) + ")";
          } } }
        }
      }
    });
  }
})();
