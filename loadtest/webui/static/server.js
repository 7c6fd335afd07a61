/* The Cyrus server tab: polls ./series (every second) and ./gate (every 3 s), draws the charts
 * and the gate table. URLs are relative to the page ({base}/cyrus/), so --web-base-path and
 * reverse proxies work unchanged. */
(function () {
  "use strict";

  const SERIES_EVERY_MS = 1000;
  const GATE_EVERY_MS = 3000;
  const MAX_POINTS_PER_LINE = 20000;
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

  const params = new URLSearchParams(location.search);
  if (params.get("embed")) document.body.classList.add("embed");
  if (params.get("theme") === "dark") document.documentElement.classList.add("dark");
  if (params.get("theme") === "light") document.documentElement.classList.add("light");

  const state = {
    run: null, cursor: 0, series: {}, events: [], chartSpecs: null, charts: {},
    skew: 0, windowS: Number(localStorage.getItem("cyrusWindowS") || 300),
    firstT: null, window: { state: "waiting", start: null, end: null },
  };
  const pad = (n) => String(n).padStart(2, "0");
  // The one wall-clock format of the tab (24 h); everything else is seconds since the start.
  const clock = (t) => { const d = new Date(t * 1000); return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()); };
  const plural = (n, word) => n + " " + word + (n === 1 ? "" : word.endsWith("s") ? "es" : "s");

  const $ = (id) => document.getElementById(id);
  const windowSelect = $("window");
  windowSelect.value = String(state.windowS);
  if (windowSelect.value !== String(state.windowS)) { state.windowS = 300; windowSelect.value = "300"; }
  windowSelect.addEventListener("change", () => {
    state.windowS = Number(windowSelect.value);
    localStorage.setItem("cyrusWindowS", String(state.windowS));
    redraw();
  });

  function setStatus(text, bad) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("bad", !!bad);
  }

  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    const type = response.headers.get("content-type") || "";
    if (!type.includes("application/json")) {
      // Locust's login redirects to an HTML page: the session has expired.
      throw new Error(response.redirected ? "not logged in (reload the page)" : "HTTP " + response.status);
    }
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
    return data;
  }

  function buildCharts(specs) {
    const grid = $("charts");
    grid.textContent = "";
    state.charts = {};
    for (const spec of specs) {
      const box = document.createElement("div");
      box.id = "chart-" + spec.key;
      grid.appendChild(box);
      state.charts[spec.key] = new CyrusChart(box, { title: spec.title, unit: spec.unit, axis: spec.axis,
                                                      log: spec.log, integer: spec.integer });
    }
    state.chartSpecs = specs;
  }

  function addPoints(points) {
    for (const [key, list] of Object.entries(points)) {
      const mine = state.series[key] || (state.series[key] = []);
      for (const point of list) {
        const last = mine[mine.length - 1];
        if (last && last[0] === point[0]) {
          // Same instant from the next poll (another service or family): sum, like the server.
          if (point[1] !== null) last[1] = (last[1] === null ? 0 : last[1]) + point[1];
        } else if (last && point[0] < last[0]) {
          // A probe finishing late reports its scheduled time: keep the line in time order.
          let i = mine.length - 1;
          while (i > 0 && mine[i - 1][0] > point[0]) i--;
          mine.splice(i, 0, point);
        } else {
          mine.push(point);
        }
        if (state.firstT === null || point[0] < state.firstT) state.firstT = point[0];
      }
      if (mine.length > MAX_POINTS_PER_LINE) mine.splice(0, mine.length - MAX_POINTS_PER_LINE);
    }
  }

  function linesFor(spec) {
    const lines = [];
    let color = 0;
    for (const line of spec.lines) {
      const keys = Object.keys(state.series).filter((k) => k === line.signal || k.startsWith(line.signal + "@")).sort();
      if (keys.length === 0) keys.push(line.signal);
      for (const key of keys) {
        const at = key.indexOf("@");
        lines.push({
          label: at < 0 ? line.label : line.label + " [" + key.slice(at + 1) + "]",
          color: PALETTE[color++ % PALETTE.length],
          points: state.series[key] || [],
        });
      }
    }
    return lines;
  }

  function redraw() {
    if (!state.chartSpecs) return;
    const now = Date.now() / 1000 + state.skew;
    const win = state.window;
    const first = win.start || (state.firstT === null ? now : state.firstT);
    let tmin, tmax;
    if (win.state === "finished" && win.end) {
      // The run is over: freeze on its whole window instead of following the clock.
      tmin = first;
      tmax = Math.max(win.end, tmin + 10);
    } else {
      // A run younger than the window grows from the left edge; the axis spans at least a minute.
      tmin = state.windowS > 0 ? Math.max(now - state.windowS, first) : first;
      tmax = Math.max(now, tmin + 60);
    }
    const bands = state.events.map((e) => ({ t0: e.t, t1: e.end, kind: e.kind, label: e.label }));
    for (const spec of state.chartSpecs) {
      state.charts[spec.key].draw({ lines: linesFor(spec), bands: bands, tmin: tmin, tmax: tmax, origin: first });
    }
    const marks = {};
    for (const e of state.events) marks[e.kind] = (marks[e.kind] || 0) + 1;
    const words = { phase: "phase", stall: "stall", heartbeat_gap: "heartbeat gap", fault: "fault",
                    collector_gap: "collector gap" };
    $("marks").textContent = Object.keys(marks).length
      ? Object.entries(marks).map(([k, n]) => plural(n, words[k] || k)).join(" · ")
      : "no stalls, heartbeat gaps or faults so far";
  }

  function statusText(total) {
    const win = state.window;
    const now = Date.now() / 1000 + state.skew;
    if (win.state === "finished" && win.end) {
      return "finished · load ran " + Math.round(win.end - win.start) + " s from " + clock(win.start) +
        " · " + total + " points";
    }
    if (win.state === "running" && win.start) {
      return "running · +" + Math.round(now - win.start) + " s since " + clock(win.start) + " · " + total + " points";
    }
    return "waiting for a test to start (collectors run during a test)";
  }

  async function pollSeries() {
    try {
      const data = await getJSON("series?cursor=" + state.cursor);
      if (!state.chartSpecs) buildCharts(data.charts);
      if (data.run !== state.run || data.reset) {
        state.series = {};
        state.firstT = null;
        state.run = data.run;
      }
      state.cursor = data.cursor;
      state.skew = data.now - Date.now() / 1000;
      addPoints(data.points);
      state.events = data.events;
      if (data.window) state.window = data.window;
      const total = Object.values(state.series).reduce((n, l) => n + l.length, 0);
      setStatus(statusText(total));
      $("window").disabled = state.window.state === "finished";
      redraw();
    } catch (err) {
      setStatus("cannot reach the Locust master: " + err.message, true);
    } finally {
      setTimeout(pollSeries, SERIES_EVERY_MS);
    }
  }

  function renderGateHead(columns) {
    const head = $("gate-head");
    if (head.dataset.keys === columns.map((c) => c.key).join()) return;
    head.textContent = "";
    for (const column of columns) {
      const th = document.createElement("th");
      th.textContent = column.title;
      head.appendChild(th);
    }
    head.dataset.keys = columns.map((c) => c.key).join();
  }

  function renderGate(gate) {
    renderGateHead(gate.columns);
    const body = $("gate-rows");
    body.textContent = "";
    $("gate-summary").textContent = gate.message
      ? gate.message
      : (gate.overall || gate.status) +
        (gate.rules_file ? " · rules from " + gate.rules_file : "") +
        (gate.steps_known ? "" : " · no step statistics yet: step rules show no data");
    $("gate-summary").className = "gate-summary status-" + gate.status;
    showOverall(gate);
    for (const row of gate.rows) {
      const tr = document.createElement("tr");
      tr.className = "status-" + row.status;
      for (const { key } of gate.columns) {
        const td = document.createElement("td");
        td.textContent = String(row[key]);
        if (key === "status") td.className = "badge";
        if (key === "since" && row[key]) td.className = "since";
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  function showOverall(gate) {
    const el = $("overall");
    el.textContent = gate.message || gate.overall || "";
    el.className = "overall status-" + gate.status;
  }

  async function pollGate() {
    try {
      const gate = await getJSON("gate");
      // Embedded in Locust's tab, Locust's own table below the frame lists the rules.
      if (document.body.classList.contains("embed")) showOverall(gate); else renderGate(gate);
    } catch (err) {
      $("gate-summary").textContent = "gate status unavailable: " + err.message;
    } finally {
      setTimeout(pollGate, GATE_EVERY_MS);
    }
  }

  window.addEventListener("resize", redraw);
  pollSeries();
  pollGate();
})();
