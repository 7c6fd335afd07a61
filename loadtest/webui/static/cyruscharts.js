/* cyruscharts.js: a small time-series line chart on <canvas> for the Cyrus server tab.
 * Written for cyrus-loadtest (MIT); no dependencies, nothing fetched from the network.
 *
 *   const chart = new CyrusChart(containerElement, {title, unit});
 *   chart.draw({lines: [{label, color, points: [[t, v|null], ...]}],
 *               bands: [{t0, t1, kind, label}], tmin, tmax});
 *
 * Times are unix seconds. A null value breaks the line (a gap the collectors recorded).
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
  const MARGIN = { left: 58, right: 14, top: 16, bottom: 24 };

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

  function formatClock(t, withSeconds) {
    const d = new Date(t * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + (withSeconds ? ":" + pad(d.getSeconds()) : "");
  }

  function timeStep(span) {
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
    for (const s of steps) if (span / s <= 7) return s;
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
      let vmax = 0, drawn = 0;
      for (const line of data.lines) {
        for (const [t, v] of line.points) {
          if (t < tmin || t > tmax || v === null) continue;
          drawn++;
          if (v > vmax) vmax = v;
        }
      }
      this.container.dataset.points = String(drawn);
      const step = niceStep(vmax > 0 ? vmax * 1.1 : 1, 4);
      const top = Math.max(step, Math.ceil((vmax * 1.05) / step) * step);
      const y = (v) => MARGIN.top + plotH - (v / top) * plotH;

      ctx.font = "11px system-ui, sans-serif";
      ctx.lineWidth = 1;
      // Grid and value axis.
      ctx.fillStyle = c.text;
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      for (let v = 0; v <= top + step / 2; v += step) {
        ctx.strokeStyle = c.grid;
        ctx.beginPath();
        ctx.moveTo(MARGIN.left, Math.round(y(v)) + 0.5);
        ctx.lineTo(MARGIN.left + plotW, Math.round(y(v)) + 0.5);
        ctx.stroke();
        ctx.fillText(formatValue(v) + (this.options.unit && v === top ? " " + this.options.unit : ""),
                     MARGIN.left - 6, y(v));
      }
      // Time axis.
      const span = tmax - tmin;
      const ts = timeStep(span);
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      for (let t = Math.ceil(tmin / ts) * ts; t <= tmax; t += ts) {
        ctx.strokeStyle = c.grid;
        ctx.beginPath();
        ctx.moveTo(Math.round(x(t)) + 0.5, MARGIN.top);
        ctx.lineTo(Math.round(x(t)) + 0.5, MARGIN.top + plotH);
        ctx.stroke();
        ctx.fillText(formatClock(t, ts < 60), x(t), MARGIN.top + plotH + 5);
      }
      ctx.strokeStyle = c.axis;
      ctx.strokeRect(MARGIN.left + 0.5, MARGIN.top + 0.5, plotW, plotH);

      // Event bands under the lines: stalls, heartbeat gaps, faults, collector gaps; phases
      // as a dashed line with their name.
      ctx.save();
      ctx.beginPath();
      ctx.rect(MARGIN.left, 0, plotW, height);
      ctx.clip();
      for (const band of data.bands || []) {
        const t1 = band.t1 === null || band.t1 === undefined ? tmax : band.t1;
        if (t1 < tmin || band.t0 > tmax) continue;
        const x0 = x(Math.max(band.t0, tmin)), x1 = x(Math.min(t1, tmax));
        if (band.kind === "phase") {
          ctx.strokeStyle = c.axis;
          ctx.setLineDash([4, 3]);
          ctx.beginPath();
          ctx.moveTo(Math.round(x0) + 0.5, MARGIN.top);
          ctx.lineTo(Math.round(x0) + 0.5, MARGIN.top + plotH);
          ctx.stroke();
          ctx.setLineDash([]);
          ctx.fillStyle = c.text;
          ctx.textAlign = "left";
          ctx.textBaseline = "top";
          ctx.fillText(band.label || "phase", x0 + 3, 2);
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
          ctx.fillStyle = edge;
          ctx.textAlign = "left";
          ctx.textBaseline = "top";
          // Near the right edge the label goes left of the band, not off the chart.
          const label = band.label || band.kind;
          const w = ctx.measureText(label).width;
          const lx = x0 + 3 + w > MARGIN.left + plotW ? Math.max(MARGIN.left + 2, x0 - w - 3) : x0 + 3;
          ctx.fillText(label, lx, MARGIN.top + 2);
        }
      }

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
          const px = x(t), py = y(Math.min(v, top));
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
        parts.push({ color: line.color, label: line.label,
                     value: formatValue(last) + (this.options.unit && last !== null ? " " + this.options.unit : "") });
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
