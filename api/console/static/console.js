/* The console's behaviour: animations over slots / leads, cell selection on the item map, keyboard shortcuts,
   uPlot charts. Page data comes from <script type="application/json"> blocks; no inline script (CSP). */
(function () {
  "use strict";

  function readJSON(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "INPUT" || el.tagName === "SELECT" || el.isContentEditable);
  }
  function fmt(v) { return v === null || v === undefined ? "–" : (Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(3)); }
  function isoOf(s) { return new Date(s * 1000).toISOString().replace(".000Z", "Z"); }

  /* An animation over frames: an <img>, a slider, a play button. */
  function Animation(img, slider, playBtn, frames, onShow) {
    var self = this, timer = null, cache = {};
    this.k = +slider.value;
    function preload(k) {
      if (!cache[k]) { cache[k] = new Image(); cache[k].src = frames[k].url; }
    }
    this.show = function (k) {
      k = (k + frames.length) % frames.length;
      self.k = k;
      slider.value = k;
      img.src = frames[k].url;
      preload((k + 1) % frames.length);
      if (onShow) onShow(k);
    };
    this.toggle = function () {
      if (timer) { clearInterval(timer); timer = null; playBtn.textContent = "Play"; playBtn.setAttribute("aria-pressed", "false"); return; }
      frames.forEach(function (_, k) { preload(k); });
      playBtn.textContent = "Pause"; playBtn.setAttribute("aria-pressed", "true");
      timer = setInterval(function () { self.show(self.k + 1); }, 600);
    };
    slider.addEventListener("input", function () { self.show(+slider.value); });
    playBtn.addEventListener("click", self.toggle);
  }

  /* Markers coloured by flag on a uPlot chart: flags[seriesIdx] = array of codes (or null). */
  function flagMarkers(flags, colours, size) {
    return function (u) {
      var ctx = u.ctx;
      ctx.save();
      flags.forEach(function (codes, si) {
        if (!codes || !u.series[si].show) return;
        var xs = u.data[0], ys = u.data[si];
        for (var i = 0; i < xs.length; i++) {
          if (ys[i] === null || ys[i] === undefined || codes[i] === null || codes[i] === undefined) continue;
          var c = colours[String(codes[i])];
          if (!c) continue;
          var x = Math.round(u.valToPos(xs[i], "x", true)), y = Math.round(u.valToPos(ys[i], u.series[si].scale, true));
          var s = (si === 1 ? size + 2 : size) * devicePixelRatio;
          ctx.fillStyle = "#000";
          ctx.fillRect(x - s / 2 - 1, y - s / 2 - 1, s + 2, s + 2);
          ctx.fillStyle = c;
          ctx.fillRect(x - s / 2, y - s / 2, s, s);
        }
      });
      ctx.restore();
    };
  }

  /* Charts in UTC, as every time on the console. */
  function utc(ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); }
  function chartWidth(el) { return Math.max(320, Math.min(el.clientWidth || 640, 900)); }

  /* ---------------------------------------------------------------- item page */
  function itemPage(data) {
    var img = document.getElementById("frame"), canvas = document.getElementById("overlay");
    var form = document.getElementById("decide");
    var selected = {};  // "t,iy,ix" -> true
    var anim = null, w = data.window;
    function cellsIn(k) { return data.flagged[k] || []; }
    function selCount() { return Object.keys(selected).length; }
    function updateCount() {
      var n = selCount();
      ["sel-count", "sel-count-form"].forEach(function (id) { var e = document.getElementById(id); if (e) e.textContent = n; });
      var cells = document.getElementById("cells");
      if (cells) cells.value = Object.keys(selected).join(";");
      var sc = document.getElementById("scope-selected");
      if (sc && n > 0 && !sc.dataset.touched) sc.checked = true;
    }
    function draw() {
      if (!canvas || !anim) return;
      var ctx = canvas.getContext("2d"), s = w.scale, k = anim.k, t = data.frames[k].time;
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.lineWidth = Math.max(1, Math.floor(s / 4));
      cellsIn(k).forEach(function (c) {
        var key = t + "," + c[0] + "," + c[1];
        if (!selected[key]) return;
        var x = (c[1] - w.ix0) * s, y = (c[0] - w.iy0) * s;
        ctx.fillStyle = "rgba(9,105,218,0.6)";
        ctx.fillRect(x, y, s, s);
        ctx.lineWidth = 2;
        ctx.strokeStyle = "#fff";
        ctx.strokeRect(x + 1, y + 1, s - 2, s - 2);
      });
      if (k === w.peak_frame && data.series && data.series.cells.length) {  // the peak cell: a white cross
        var p = data.series.cells[0], px = (p.ix - w.ix0 + 0.5) * s, py = (p.iy - w.iy0 + 0.5) * s, r = Math.max(4, s);
        ctx.strokeStyle = "#000"; ctx.lineWidth = 3;
        ctx.beginPath(); ctx.moveTo(px - r, py); ctx.lineTo(px + r, py); ctx.moveTo(px, py - r); ctx.lineTo(px, py + r); ctx.stroke();
        ctx.strokeStyle = "#fff"; ctx.lineWidth = 1;
        ctx.beginPath(); ctx.moveTo(px - r, py); ctx.lineTo(px + r, py); ctx.moveTo(px, py - r); ctx.lineTo(px, py + r); ctx.stroke();
      }
    }
    function cellAt(ev) {
      var r = canvas.getBoundingClientRect();
      var fx = (ev.clientX - r.left) * (canvas.width / r.width), fy = (ev.clientY - r.top) * (canvas.height / r.height);
      return [w.iy0 + Math.floor(fy / w.scale), w.ix0 + Math.floor(fx / w.scale)];
    }
    function findCell(k, iy, ix) {
      var list = cellsIn(k);
      for (var i = 0; i < list.length; i++) if (list[i][0] === iy && list[i][1] === ix) return list[i];
      return null;
    }
    if (img && canvas && data.frames.length) {
      anim = new Animation(img, document.getElementById("frame-slider"), document.getElementById("play"), data.frames,
        function (k) {
          var f = data.frames[k];
          document.getElementById("frame-label").textContent = f.iso;
          document.getElementById("frame-info").textContent = " · " + f.n_item + " item cell(s), " + f.n_suspect +
            " SUSPECT, " + f.n_fail + " FAIL · revision " + f.revision;
          draw();
        });
      anim.show(anim.k);
      document.getElementById("prev-frame").addEventListener("click", function () { anim.show(anim.k - 1); });
      document.getElementById("next-frame").addEventListener("click", function () { anim.show(anim.k + 1); });
      var tip = document.getElementById("tooltip"), dragFrom = null;
      canvas.addEventListener("mousemove", function (ev) {
        var c = cellAt(ev), f = findCell(anim.k, c[0], c[1]);
        var text = "iy " + c[0] + ", ix " + c[1];
        if (f) {
          text += ": " + fmt(f[4]) + " " + data.units + ", " + (data.flag_names[String(f[2])] || f[2]);
          var tests = [];
          [[2, "physical_range"], [4, "climatology"], [8, "spike"], [16, "rate_of_change"], [32, "flat_line"],
           [64, "spatial"], [128, "cross_variable"], [65536, "reviewed: accepted"], [131072, "reviewed: rejected"]]
            .forEach(function (b) { if (f[3] & b[0]) tests.push(b[1]); });
          if (tests.length) text += " (" + tests.join(", ") + ")";
          if (f[5]) text += " · item cell";
        }
        tip.textContent = text;
      });
      canvas.addEventListener("mousedown", function (ev) { dragFrom = cellAt(ev); ev.preventDefault(); });
      canvas.addEventListener("mouseup", function (ev) {
        if (!dragFrom || data.state === "decided") { dragFrom = null; return; }
        var to = cellAt(ev), k = anim.k, t = data.frames[k].time;
        var y0 = Math.min(dragFrom[0], to[0]), y1 = Math.max(dragFrom[0], to[0]);
        var x0 = Math.min(dragFrom[1], to[1]), x1 = Math.max(dragFrom[1], to[1]);
        var single = y0 === y1 && x0 === x1;
        cellsIn(k).forEach(function (c) {
          if (!c[5] || c[0] < y0 || c[0] > y1 || c[1] < x0 || c[1] > x1) return;
          var key = t + "," + c[0] + "," + c[1];
          if (single && selected[key]) delete selected[key]; else selected[key] = true;
        });
        dragFrom = null;
        updateCount(); draw();
      });
      var clear = document.getElementById("clear-sel");
      if (clear) clear.addEventListener("click", function () { selected = {}; updateCount(); draw(); });
    }
    var scopeSel = document.getElementById("scope-selected"), scopeAll = document.getElementById("scope-all");
    [scopeSel, scopeAll].forEach(function (e) { if (e) e.addEventListener("change", function () { scopeSel.dataset.touched = "1"; }); });
    if (form) {
      form.addEventListener("submit", function () { updateCount(); });
      var prior = document.getElementById("cells");
      if (prior && prior.value) prior.value.split(";").forEach(function (k) { if (k) selected[k] = true; });
      updateCount(); draw();
    }
    // the time series: peak (thick, black) and its neighbours, markers coloured by flag
    var el = document.getElementById("ts-chart");
    if (el && data.series && window.uPlot) {
      var cells = data.series.cells, series = [{}], rows = [data.series.times], flags = [null];
      cells.forEach(function (c) {
        series.push({label: c.label, stroke: c.peak ? "#000" : "#8c959f", width: c.peak ? 2.5 : 1,
                     points: {show: false}, value: function (u, v) { return fmt(v); }});
        rows.push(c.values); flags.push(c.flags);
      });
      new uPlot({width: chartWidth(el), height: 260, tzDate: utc, series: series, scales: {x: {time: true}},
                 axes: [{}, {label: data.units}], legend: {live: true},
                 hooks: {draw: [flagMarkers(flags, data.flag_colours, 6)]}}, rows, el);
    }
    // keyboard
    document.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      var t = ev.target;
      if (typing(t)) { if (ev.key === "Escape") t.blur(); return; }
      var help = document.getElementById("help");
      switch (ev.key) {
        case "n": case "j": { var nx = document.getElementById("next-item"); if (nx) { ev.preventDefault(); location.href = nx.href; } break; }
        case "a": case "r": {
          if (!form) break;
          ev.preventDefault();
          updateCount();
          form.requestSubmit(document.getElementById(ev.key === "a" ? "accept" : "reject"));
          break;
        }
        case "c": { var cm = document.getElementById("comment"); if (cm) { ev.preventDefault(); cm.focus(); } break; }
        case ",": if (anim) anim.show(anim.k - 1); break;
        case ".": if (anim) anim.show(anim.k + 1); break;
        case " ": if (anim && t.tagName !== "BUTTON" && t.tagName !== "A") { ev.preventDefault(); anim.toggle(); } break;
        case "?": if (help) help.hidden = !help.hidden; break;
        case "Escape": if (help) help.hidden = true; break;
      }
    });
  }

  /* ------------------------------------------------------------ forecast page */
  function forecastPage(data) {
    var img = document.getElementById("fframe"), canvas = document.getElementById("foverlay"), point = null;
    var anim = new Animation(img, document.getElementById("flead"), document.getElementById("fplay"), data.frames, function (k) {
      var f = data.frames[k];
      document.getElementById("fframe-label").textContent = f.lead + " (valid " + f.valid + ")";
      var m = f.marks, parts = [];
      Object.keys(m).forEach(function (name) { if (m[name]) parts.push(m[name] + " " + name); });
      document.getElementById("fframe-marks").textContent = parts.length ? " · " + parts.join(", ") : " · no marks";
    });
    anim.show(0);
    function drawPoint() {
      var ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      if (!point) return;
      var s = data.scale, x = (point[1] + 0.5) * s, y = (point[0] + 0.5) * s, r = Math.max(5, 2 * s);
      ctx.lineWidth = 3; ctx.strokeStyle = "#000"; ctx.strokeRect(x - r, y - r, 2 * r, 2 * r);
      ctx.lineWidth = 1; ctx.strokeStyle = "#fff"; ctx.strokeRect(x - r, y - r, 2 * r, 2 * r);
    }
    canvas.addEventListener("click", function (ev) {
      var r = canvas.getBoundingClientRect();
      var iy = Math.floor((ev.clientY - r.top) * (canvas.height / r.height) / data.scale);
      var ix = Math.floor((ev.clientX - r.left) * (canvas.width / r.width) / data.scale);
      point = [iy, ix];
      drawPoint();
      var url = "/console/forecasts/" + encodeURIComponent(data.dataset) + "/series?run=" + encodeURIComponent(data.run) +
        "&init=" + data.init + "&variable=" + encodeURIComponent(data.variable) + "&iy=" + iy + "&ix=" + ix;
      htmx.ajax("GET", url, {target: "#series", swap: "innerHTML"});
    });
  }

  function seriesChart() {
    var d = readJSON("series-data"), el = document.getElementById("series-chart");
    if (!d || !el || !window.uPlot) return;
    new uPlot({width: chartWidth(el), height: 240, tzDate: utc, scales: {x: {time: true}}, axes: [{}, {label: d.units}],
               series: [{}, {label: "forecast", stroke: "#0550ae", width: 2, value: function (u, v) { return fmt(v); }},
                        {label: "observed", stroke: "transparent", points: {show: false}, value: function (u, v) { return fmt(v); }}],
               hooks: {draw: [flagMarkers([null, null, d.flags], d.flag_colours, 7)]}},
              [d.times, d.fcst, d.obs], el);
  }

  /* ------------------------------------------------------------- monitor page */
  function monitorPage(data) {
    if (!window.uPlot) return;
    var el = document.getElementById("lead-chart"), lc = data.lead_chart;
    if (el && lc && lc.leads.length) {
      new uPlot({width: chartWidth(el), height: 240, scales: {x: {time: false}},
                 axes: [{label: "lead (min)"}, {label: "skill vs persistence"}],
                 series: [{label: "lead", value: function (u, v) { return v === null ? "–" : "+" + v + " min"; }},
                          {label: "short window", stroke: "#0550ae", width: 2, value: function (u, v) { return fmt(v); }},
                          {label: "long window", stroke: "#b04a00", width: 2, dash: [6, 4], value: function (u, v) { return fmt(v); }}]},
                [lc.leads, lc.short, lc.long], el);
    }
    var tl = document.getElementById("time-chart"), s = data.series;
    if (tl && s && s.times.length) {
      new uPlot({width: chartWidth(tl), height: 260, tzDate: utc, scales: {x: {time: true}, rmse: {}},
                 axes: [{}, {label: "per-init skill"}, {side: 1, scale: "rmse", label: "RMSE +" + s.lead_minutes + " min", grid: {show: false}}],
                 series: [{}, {label: "skill", stroke: "#1f2328", width: 2, value: function (u, v) { return fmt(v); }},
                          {label: "RMSE model", scale: "rmse", stroke: "#0550ae", value: function (u, v) { return fmt(v); }},
                          {label: "RMSE persistence", scale: "rmse", stroke: "#b04a00", dash: [4, 3], value: function (u, v) { return fmt(v); }}]},
                [s.times, s.skill, s.rmse_model, s.rmse_persistence], tl);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var data = readJSON("page-data");
    var page = document.body.dataset.page;
    if (page === "monitor" && data && data.lead_chart) monitorPage(data);
    if (page === "review" && data && data.item) itemPage(data);
    if (page === "forecasts" && data && data.frames) forecastPage(data);
  });
  document.addEventListener("htmx:afterSwap", function (ev) {
    if (ev.detail && ev.detail.target && ev.detail.target.id === "series") seriesChart();
  });
  window.consoleIso = isoOf;
})();
