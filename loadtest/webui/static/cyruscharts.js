/* cyruscharts.js: a small time-series line chart on <canvas> for the Cyrus server tab.
 * Written for cyrus-loadtest (MIT); no dependencies, nothing fetched from the network.
 *
 *   const chart = new CyrusChart(containerElement, {title, unit, axis, log, integer});
 *   chart.draw({lines: [{label, color, points: [[t, v|null], ...]}],
 *               bands: [{t0, t1, kind, label}], tmin, tmax, origin});
 *
 * Times are unix seconds; the time axis reads in seconds since ``origin`` (the run's start).
 * ``log``: a logarithmic value axis (latencies); ``integer``: whole-number ticks (counts);
 * ``axis``: the value axis' title. A null value breaks the line (a gap the collectors recorded).
 * The container gets data-points="N" (points drawn) so tests can tell an empty chart.
 */
(function (global) {
  "use strict";

  // Event bands: the edge (and label) colour, and the fill's opacity.
  const BANDS = {
    stall: { rgb: "220, 38, 38", alpha: 0.22 },
    heartbeat_gap: { rgb: "234, 88, 12", alpha: 0.22 },
    fault: { rgb: "147, 51, 234", alpha: 0.25 },
    collector_gap: { rgb: "120, 120, 120", alpha: 0.18 },
  };
  const HEIGHT = 200; // CSS pixels
  const MARGIN = { left: 70, right: 22, top: 32, bottom: 24 };
  const ROW_PHASE = 3, ROW_EVENT = 17; // label rows above the plot: phases, then events

  function niceStep(range, ticks) {
    const raw = range / Math.max(1, ticks);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const norm = raw / mag;
    const nice = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
    return nice * mag;
  }

  function formatValue(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 10000) return (v / 1000).toFixed(0) + "k";
    if (a >= 100) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    if (a >= 1) return v.toFixed(2);
    if (a === 0) return "0";
    return v.toPrecision(2);
  }

  function formatRelative(seconds) {
    return (seconds < 0 ? "-" : "+") + Math.round(Math.abs(seconds)) + " s";
  }

  // A label that fits between x and limit (truncated with an ellipsis), or null.
  function fitLabel(ctx, text, room) {
    if (room < 14) return null;
    if (ctx.measureText(text).width <= room) return text;
    let cut = text;
    while (cut.length > 1 && ctx.measureText(cut + "…").width > room) cut = cut.slice(0, -1);
    return cut.length > 1 ? cut + "…" : null;
  }

  function timeStep(span) {
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
    for (const s of steps) if (span / s <= 8) return s;
    return 14400;
  }

  class CyrusChart {
    constructor(container, options) {
      this.container = container;
      this.options = options || {};
      container.classList.add("cyrus-chart");
      const head = document.createElement("div");
      head.className = "cyrus-chart-head";
      const title = document.createElement("div");
      title.className = "cyrus-chart-title";
      title.textContent = this.options.title || "";
      this.legend = document.createElement("div");
      this.legend.className = "cyrus-chart-legend";
      head.appendChild(title);
      head.appendChild(this.legend);
      this.canvas = document.createElement("canvas");
      this.canvas.height = HEIGHT;
      container.appendChild(head);
      container.appendChild(this.canvas);
      container.dataset.points = "0";
    }

    colors() {
      const style = getComputedStyle(this.container);
      return {
        text: style.getPropertyValue("--chart-text").trim() || "#444",
        grid: style.getPropertyValue("--chart-grid").trim() || "rgba(0,0,0,0.08)",
        axis: style.getPropertyValue("--chart-axis").trim() || "rgba(0,0,0,0.3)",
      };
    }

    draw(data) {
      const canvas = this.canvas;
      const dpr = global.devicePixelRatio || 1;
      const width = Math.max(200, this.container.clientWidth - 2);
      const height = HEIGHT;
      if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
        canvas.width = Math.round(width * dpr);
        canvas.height = Math.round(height * dpr);
        canvas.style.width = width + "px";
        canvas.style.height = height + "px";
      }
      const ctx = canvas.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, width, height);
      const c = this.colors();
      const plotW = width - MARGIN.left - MARGIN.right;
      const plotH = height - MARGIN.top - MARGIN.bottom;
      const tmin = data.tmin, tmax = Math.max(data.tmax, data.tmin + 1);
      const x = (t) => MARGIN.left + ((t - tmin) / (tmax - tmin)) * plotW;

      // Visible range of values: charts here are counts, rates and latencies, all >= 0.
      let vmax = 0, vminPos = Infinity, drawn = 0;
      for (const line of data.lines) {
        for (const [t, v] of line.points) {
          if (t < tmin || t > tmax || v === null) continue;
          drawn++;
          if (v > vmax) vmax = v;
          if (v > 0 && v < vminPos) vminPos = v;
        }
      }
      this.container.dataset.points = String(drawn);
      const log = !!this.options.log && vmax > 0;
      let ticks = [], y, top;
      if (log) {
        // Decades from below the smallest value to above the largest: 2 ms and 1.1 s both show.
        const lo = Math.floor(Math.log10(Math.min(vminPos, vmax)));
        const hi = Math.max(lo + 1, Math.ceil(Math.log10(vmax * 1.0001)));
        for (let e = lo; e <= hi; e++) ticks.push(Math.pow(10, e));
        top = Math.pow(10, hi);
        const bottom = Math.pow(10, lo);
        y = (v) => MARGIN.top + plotH - ((Math.log10(Math.max(v, bottom)) - lo) / (hi - lo)) * plotH;
      } else {
        let step = niceStep(vmax > 0 ? vmax * 1.1 : 1, 4);
        if (this.options.integer) step = Math.max(1, Math.round(step));
        top = Math.max(step, Math.ceil((vmax * 1.05) / step) * step);
        for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
        y = (v) => MARGIN.top + plotH - (v / top) * plotH;
      }
      this.top = top;

      ctx.font = "12px system-ui, sans-serif";
      ctx.lineWidth = 1;
      // Grid and value axis.
      ctx.fillStyle = c.text;
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      for (const v of ticks) {
        ctx.strokeStyle = c.grid;
        ctx.beginPath();
        ctx.moveTo(MARGIN.left, Math.round(y(v)) + 0.5);
        ctx.lineTo(MARGIN.left + plotW, Math.round(y(v)) + 0.5);
        ctx.stroke();
        ctx.fillText(this.options.integer ? String(Math.round(v)) : formatValue(v), MARGIN.left - 6, y(v));
      }
      if (this.options.axis || this.options.unit) {
        ctx.save();
        ctx.translate(12, MARGIN.top + plotH / 2);
        ctx.rotate(-Math.PI / 2);
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.fillText(this.options.axis || this.options.unit, 0, 0);
        ctx.restore();
      }
      // Time axis.
      const span = tmax - tmin;
      const ts = timeStep(span);
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      const origin = data.origin === undefined || data.origin === null ? tmin : data.origin;
      for (let r = Math.ceil((tmin - origin) / ts) * ts; origin + r <= tmax; r += ts) {
        const t = origin + r;
        ctx.strokeStyle = c.grid;
        ctx.beginPath();
        ctx.moveTo(Math.round(x(t)) + 0.5, MARGIN.top);
        ctx.lineTo(Math.round(x(t)) + 0.5, MARGIN.top + plotH);
        ctx.stroke();
        ctx.fillText(formatRelative(r), x(t), MARGIN.top + plotH + 5);
      }
      ctx.strokeStyle = c.axis;
      ctx.strokeRect(MARGIN.left + 0.5, MARGIN.top + 0.5, plotW, plotH);

      // Event bands under the lines: stalls, heartbeat gaps, faults, collector gaps; phases
      // as a dashed line. Labels go in two rows above the plot (phases, then events), each cut
      // to the room before the next label of its row, so none is drawn over another.
      const bands = (data.bands || []).filter((b) => {
        const t1 = b.t1 === null || b.t1 === undefined ? tmax : b.t1;
        return !(t1 < tmin || b.t0 > tmax);
      }).sort((a, b) => a.t0 - b.t0);
      const labels = [];
      ctx.save();
      ctx.beginPath();
      ctx.rect(MARGIN.left, MARGIN.top, plotW, plotH);
      ctx.clip();
      for (const band of bands) {
        const t1 = band.t1 === null || band.t1 === undefined ? tmax : band.t1;
        const x0 = x(Math.max(band.t0, tmin)), x1 = x(Math.min(t1, tmax));
        if (band.kind === "phase") {
          ctx.strokeStyle = c.axis;
          ctx.setLineDash([4, 3]);
          ctx.beginPath();
          ctx.moveTo(Math.round(x0) + 0.5, MARGIN.top);
          ctx.lineTo(Math.round(x0) + 0.5, MARGIN.top + plotH);
          ctx.stroke();
          ctx.setLineDash([]);
          labels.push({ row: ROW_PHASE, x: x0, text: band.label || "phase", color: c.text });
          continue;
        }
        const look = BANDS[band.kind] || BANDS.collector_gap;
        const edge = "rgb(" + look.rgb + ")";
        ctx.fillStyle = "rgba(" + look.rgb + ", " + look.alpha + ")";
        ctx.fillRect(x0, MARGIN.top, Math.max(2, x1 - x0), plotH);
        ctx.strokeStyle = edge;
        ctx.beginPath();
        ctx.moveTo(Math.round(x0) + 0.5, MARGIN.top);
        ctx.lineTo(Math.round(x0) + 0.5, MARGIN.top + plotH);
        ctx.stroke();
        if (band.kind !== "collector_gap") {
          labels.push({ row: ROW_EVENT, x: x0, text: band.label || band.kind, color: edge });
        }
      }
      ctx.restore();
      ctx.font = "11px system-ui, sans-serif";
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      for (const row of [ROW_PHASE, ROW_EVENT]) {
        const mine = labels.filter((l) => l.row === row);
        let free = MARGIN.left;
        mine.forEach((label, i) => {
          const start = Math.max(label.x + 3, free);
          const next = i + 1 < mine.length ? mine[i + 1].x : MARGIN.left + plotW;
          const text = fitLabel(ctx, label.text, Math.min(next, MARGIN.left + plotW) - start - 4);
          if (text === null) return;
          ctx.fillStyle = label.color;
          ctx.fillText(text, start, row);
          free = start + ctx.measureText(text).width + 6;
        });
      }
      ctx.save();
      ctx.beginPath();
      ctx.rect(MARGIN.left, 0, plotW, height);
      ctx.clip();

      // Lines; a null point breaks the line. Dots when few enough to see.
      for (const line of data.lines) {
        ctx.strokeStyle = line.color;
        ctx.fillStyle = line.color;
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        let pen = false, visible = 0;
        for (const [t, v] of line.points) {
          if (t < tmin - span || t > tmax) continue;
          if (v === null) { pen = false; continue; }
          const px = x(t), py = y(Math.min(v, top));  // clipped at the top of the axis
          if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
          pen = true;
          if (t >= tmin) visible++;
        }
        ctx.stroke();
        if (visible <= plotW / 6) {
          for (const [t, v] of line.points) {
            if (t < tmin || t > tmax || v === null) continue;
            ctx.beginPath();
            ctx.arc(x(t), y(Math.min(v, top)), 1.8, 0, 2 * Math.PI);
            ctx.fill();
          }
        }
      }
      ctx.restore();
      if (drawn === 0) {
        ctx.fillStyle = c.text;
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.fillText("waiting for data…", MARGIN.left + plotW / 2, MARGIN.top + plotH / 2);
      }
      this.drawLegend(data.lines);
    }

    drawLegend(lines) {
      const parts = [];
      for (const line of lines) {
        let last = null;
        for (let i = line.points.length - 1; i >= 0; i--) {
          if (line.points[i][1] !== null) { last = line.points[i][1]; break; }
        }
        const shown = this.options.integer && last !== null ? String(Math.round(last)) : formatValue(last);
        parts.push({ color: line.color, label: line.label,
                     value: shown + (this.options.unit && last !== null ? " " + this.options.unit : "") });
      }
      const key = JSON.stringify(parts);
      if (key === this._legendKey) return;
      this._legendKey = key;
      this.legend.textContent = "";
      for (const p of parts) {
        const item = document.createElement("span");
        item.className = "cyrus-legend-item";
        const swatch = document.createElement("span");
        swatch.className = "cyrus-legend-swatch";
        swatch.style.background = p.color;
        item.appendChild(swatch);
        item.appendChild(document.createTextNode(p.label + ": " + p.value));
        this.legend.appendChild(item);
      }
    }
  }

  global.CyrusChart = CyrusChart;
})(window);
