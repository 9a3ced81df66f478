// streamnb live chart: an anywidget ES module drawing a line or bar chart on a <canvas>.
//
// The Python side sends only the *new* points, at most a few times a second, as custom
// messages {type: "points", x: [...], y: [...], s: [...], series: [...]}; a view that
// (re)renders asks for the bounded history with {type: "hello"} and gets {type: "reset"}.
// No external code, no CDN: it works offline in JupyterLab, Notebook 7, VS Code and Colab.

const COLOURS = ["#1565c0", "#ef6c00", "#2e7d32", "#c62828", "#6a1b9a", "#00838f",
  "#ad1457", "#4e342e", "#558b2f", "#283593"];

function pad(n) { return String(n).padStart(2, "0"); }

function fmtTime(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtNum(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
  return v.toPrecision(3);
}

function ticks(lo, hi, n) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

function render({ model, el }) {
  const state = { series: [], data: [], maxPoints: model.get("max_points"), dirty: true };
  const root = document.createElement("div");
  root.className = "streamnb-chart";
  root.style.cssText = "font: 12px sans-serif; color: #333; max-width: 100%;";
  const title = document.createElement("div");
  title.className = "streamnb-chart-title";
  title.style.cssText = "font-weight: 600; margin: 2px 0 4px 0;";
  const canvas = document.createElement("canvas");
  canvas.style.cssText =
    "display: block; width: 100%; box-sizing: border-box; border: 1px solid #e0e0e0;";
  const legend = document.createElement("div");
  legend.className = "streamnb-chart-legend";
  legend.style.cssText = "margin-top: 4px;";
  const status = document.createElement("div");
  status.className = "streamnb-chart-status";
  status.style.cssText = "color: #777; font-size: 11px;";
  root.append(title, canvas, legend, status);
  el.appendChild(root);

  const heightPx = () => model.get("height");

  function seriesIndex(name) {
    let i = state.series.indexOf(name);
    if (i < 0) {
      state.series.push(name);
      state.data.push({ x: [], y: [] });
      i = state.series.length - 1;
    }
    return i;
  }

  function addPoints(msg) {
    if (msg.series) msg.series.forEach((name) => seriesIndex(name));
    const xs = msg.x, ys = msg.y, ss = msg.s;
    for (let k = 0; k < xs.length; k++) {
      const d = state.data[ss[k]];
      if (!d) continue;
      d.x.push(xs[k]);
      d.y.push(ys[k]);
    }
    for (const d of state.data) {  // bounded client-side too
      const extra = d.x.length - state.maxPoints;
      if (extra > 0) { d.x.splice(0, extra); d.y.splice(0, extra); }
    }
    state.dirty = true;
    schedule();
  }

  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  }

  function draw() {
    // the canvas' own laid-out width (inside its border), so the picture is never cropped
    const width = Math.max(200, Math.floor(canvas.clientWidth || root.clientWidth || 600));
    const height = heightPx();
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.floor(width * ratio);
    canvas.height = Math.floor(height * ratio);
    canvas.style.height = height + "px";
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    title.textContent = model.get("title");

    let n = 0, xlo = Infinity, xhi = -Infinity, ylo = Infinity, yhi = -Infinity;
    for (const d of state.data) {
      n += d.x.length;
      for (let k = 0; k < d.x.length; k++) {
        const x = d.x[k], y = d.y[k];
        if (x < xlo) xlo = x;
        if (x > xhi) xhi = x;
        if (y < ylo) ylo = y;
        if (y > yhi) yhi = y;
      }
    }
    root.dataset.points = String(n);
    root.dataset.series = String(state.series.length);
    const hidden = model.get("hidden_series");
    status.textContent = `${n} points` + (hidden ? ` · ${hidden} more series not shown` : "");
    const kind = model.get("kind");
    if (kind === "bar") ylo = Math.min(0, ylo);
    const left = 52, right = 12, top = 8, bottom = 24;
    const pw = width - left - right, ph = height - top - bottom;
    ctx.strokeStyle = "#999";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(left, top);
    ctx.lineTo(left, top + ph);
    ctx.lineTo(left + pw, top + ph);
    ctx.stroke();
    if (!n) {
      ctx.fillStyle = "#999";
      ctx.fillText("waiting for data…", left + 8, top + 16);
      drawLegend();
      return;
    }
    if (xhi === xlo) { xlo -= 1; xhi += 1; }
    if (yhi === ylo) { ylo -= 1; yhi += 1; }
    const ypad = (yhi - ylo) * 0.05;
    yhi += ypad;
    if (kind !== "bar") ylo -= ypad;
    const barSlot = kind === "bar" ? estimateSlot() : 0;
    const x0 = xlo - barSlot / 2, x1 = xhi + barSlot / 2;
    const px = (x) => left + ((x - x0) / (x1 - x0)) * pw;
    const py = (y) => top + ph - ((y - ylo) / (yhi - ylo)) * ph;

    ctx.fillStyle = "#666";
    ctx.font = "11px sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of ticks(ylo, yhi, 4)) {
      const y = py(v);
      ctx.fillText(fmtNum(v), left - 4, y);
      ctx.strokeStyle = "#eee";
      ctx.beginPath();
      ctx.moveTo(left + 1, y);
      ctx.lineTo(left + pw, y);
      ctx.stroke();
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const isTime = model.get("time_axis");
    for (const v of ticks(x0, x1, Math.max(2, Math.floor(pw / 90)))) {
      const label = isTime ? fmtTime(v) : fmtNum(v);
      const half = ctx.measureText(label).width / 2;
      // a label near an edge is moved in, never cut off by the canvas
      const lx = Math.min(Math.max(px(v), half + 1), width - half - 1);
      ctx.fillText(label, lx, top + ph + 4);
    }

    state.data.forEach((d, i) => {
      const colour = COLOURS[i % COLOURS.length];
      if (kind === "bar") {
        const m = Math.max(1, state.series.length);
        const w = Math.max(1, ((barSlot / (x1 - x0)) * pw * 0.8) / m);
        ctx.fillStyle = colour;
        for (let k = 0; k < d.x.length; k++) {
          const cx = px(d.x[k]) - (w * m) / 2 + w * i;
          const y = py(d.y[k]), y0 = py(Math.max(ylo, 0));
          ctx.fillRect(cx, Math.min(y, y0), w, Math.abs(y0 - y));
        }
      } else {
        ctx.strokeStyle = colour;
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        for (let k = 0; k < d.x.length; k++) {
          const X = px(d.x[k]), Y = py(d.y[k]);
          if (k === 0) ctx.moveTo(X, Y); else ctx.lineTo(X, Y);
        }
        ctx.stroke();
        if (d.x.length < 60) {
          ctx.fillStyle = colour;
          for (let k = 0; k < d.x.length; k++) {
            ctx.beginPath();
            ctx.arc(px(d.x[k]), py(d.y[k]), 2, 0, 2 * Math.PI);
            ctx.fill();
          }
        }
      }
    });
    drawLegend();
  }

  function estimateSlot() {
    let best = Infinity;
    for (const d of state.data) {
      for (let k = 1; k < d.x.length; k++) {
        const gap = d.x[k] - d.x[k - 1];
        if (gap > 0 && gap < best) best = gap;
      }
    }
    return Number.isFinite(best) ? best : 1;
  }

  function drawLegend() {
    const names = state.series;
    const label = model.get("y_label");
    legend.replaceChildren();
    if (names.length <= 1 && (names[0] === null || names[0] === undefined)) {
      legend.textContent = label;
      return;
    }
    names.forEach((name, i) => {
      const item = document.createElement("span");
      item.style.cssText = "margin-right: 12px; white-space: nowrap;";
      const sw = document.createElement("span");
      sw.style.cssText = `display: inline-block; width: 10px; height: 10px; margin-right: 4px;` +
        `background: ${COLOURS[i % COLOURS.length]};`;
      item.append(sw, document.createTextNode(String(name)));
      legend.appendChild(item);
    });
  }

  function onMessage(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "reset") {
      state.series = [];
      state.data = [];
      addPoints(msg);
    } else if (msg.type === "points") {
      addPoints(msg);
    }
  }

  model.on("msg:custom", onMessage);
  model.on("change:kind", schedule);
  model.on("change:title", schedule);
  model.on("change:hidden_series", schedule);
  model.on("change:height", schedule);
  model.on("change:max_points", () => { state.maxPoints = model.get("max_points"); });
  const resize = typeof ResizeObserver === "function" ? new ResizeObserver(schedule) : null;
  if (resize) resize.observe(root);
  model.send({ type: "hello" });
  draw();
  return () => {
    model.off("msg:custom", onMessage);
    if (resize) resize.disconnect();
  };
}

export default { render };
