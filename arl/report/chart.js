"use strict";
// arl report: everything here is drawn from the JSON in #arl-data. Agent text (notes, diffs, transcripts) only
// ever reaches the page through textContent or SVG text nodes, never as markup.
(function () {
  const DATA = JSON.parse(document.getElementById("arl-data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const COLOURS = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"];
  const HOLDOUT = "#ff7f0e";
  const W = 1000, H = 430, M = { l: 64, r: 18, t: 16, b: 36 };
  const COLS = [["id", "#", 1], ["run", "run", 1], ["slot", "slot", 1], ["time", "time", 0], ["outcome", "outcome", 0],
    ["score", "agent score", 1], ["verified_score", "verified", 1], ["holdout_score", "holdout", 1],
    ["best", "best", 1], ["cost_usd", "cost $", 1], ["notes", "notes", 0]];
  const state = { lab: 0, sort: "id", dir: "asc", outcome: "", slot: "", run: "", q: "", exp: null, x0: null, x1: null };
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function sv(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function eff(r) { return r.verified_score !== null && r.verified_score !== undefined ? r.verified_score : r.score; }
  function fmt(v) {
    if (v === null || v === undefined || v === "") return "";
    if (typeof v !== "number") return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a >= 1e6 || a < 1e-4) ? v.toExponential(3) : String(+v.toPrecision(6));
  }
  function firstLine(s, n) {
    const line = String(s || "").trim().split("\n")[0] || "";
    return line.length > n ? line.slice(0, n - 1) + "\u2026" : line;
  }
  function reasons(r) {  // arl's own words about an outcome: the "[arl] ..." lines of the notes
    return String(r.notes || "").split("\n").filter((l) => l.startsWith("[arl]")).map((l) => l.slice(5).trim());
  }
  function slotOf(r) { return r.slot === null || r.slot === undefined ? 0 : r.slot; }
  function colourOfSlot(k) { return COLOURS[k % COLOURS.length]; }
  function kept(r) { return r.outcome === "keep" || r.outcome === "baseline"; }
  function better(a, b, max) { return b === null || (max ? a > b : a < b); }
  function bestLine(lab) {
    const pts = []; let best = null;
    for (const r of lab.rows) {
      const s = eff(r);
      if (kept(r) && s !== null && s !== undefined && better(s, best, lab.maximize)) best = s;
      if (best !== null && r.id !== null) pts.push([r.id, best]);
    }
    return pts;
  }
  function seconds(iso) { const t = Date.parse(iso); return isNaN(t) ? null : t / 1000; }
  function duration(s) {
    if (s === null || !isFinite(s)) return "";
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? `${h} h ${m} min` : m ? `${m} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`;
  }

  // ---- the URL fragment holds the view (sort, filters, selection, zoom), so a view can be linked or reloaded
  function readHash() {
    const h = location.hash.replace(/^#/, "");
    for (const part of h ? h.split("&") : []) {
      const i = part.indexOf("="), k = decodeURIComponent(i < 0 ? part : part.slice(0, i));
      const v = i < 0 ? "" : decodeURIComponent(part.slice(i + 1));
      if (k in state) state[k] = ["lab", "exp", "x0", "x1"].includes(k) ? (v === "" ? null : Number(v)) : v;
    }
    if (!(state.lab >= 0 && state.lab < DATA.labs.length)) state.lab = 0;
  }
  function writeHash() {
    const parts = [];
    for (const k in state) {
      const d = { lab: 0, sort: "id", dir: "asc" }[k];
      if (state[k] !== null && state[k] !== "" && state[k] !== d) parts.push(k + "=" + encodeURIComponent(state[k]));
    }
    try { history.replaceState(null, "", parts.length ? "#" + parts.join("&") : location.pathname); } catch (e) { /* */ }
  }

  // ---- scales and axes
  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const step0 = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }
  function scales(x0, x1, ys, logY) {
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (!isFinite(y0)) { y0 = 0; y1 = 1; }
    if (logY) { y0 = Math.log10(y0); y1 = Math.log10(y1); }
    if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
    const pad = (y1 - y0) * 0.06; y0 -= pad; y1 += pad;
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    const fx = (x) => M.l + ((x - x0) / (x1 - x0)) * (W - M.l - M.r);
    const fy = (y) => H - M.b - (((logY ? Math.log10(y) : y) - y0) / (y1 - y0)) * (H - M.t - M.b);
    return { fx, fy, x0, x1, y0, y1, logY, inv: (px) => x0 + ((px - M.l) / (W - M.l - M.r)) * (x1 - x0) };
  }
  function axes(svg, sc, ylabel) {
    const g = sv("g", { class: "axis" }), grid = sv("g", { class: "grid" });
    for (const x of ticks(sc.x0, sc.x1, 10).filter((x) => Number.isInteger(x))) {
      g.appendChild(sv("text", { x: sc.fx(x), y: H - M.b + 16, "text-anchor": "middle" }, x));
    }
    const yt = sc.logY ? ticks(sc.y0, sc.y1, 6).map((v) => Math.pow(10, v)) : ticks(sc.y0, sc.y1, 7);
    for (const y of yt) {
      grid.appendChild(sv("line", { x1: M.l, x2: W - M.r, y1: sc.fy(y), y2: sc.fy(y) }));
      g.appendChild(sv("text", { x: M.l - 6, y: sc.fy(y) + 4, "text-anchor": "end" }, fmt(y)));
    }
    g.appendChild(sv("path", { d: `M${M.l},${M.t}V${H - M.b}H${W - M.r}`, fill: "none" }));
    g.appendChild(sv("text", { x: (M.l + W - M.r) / 2, y: H - 4, "text-anchor": "middle" }, "experiment"));
    g.appendChild(sv("text", { x: 12, y: (M.t + H - M.b) / 2, transform: `rotate(-90 12 ${(M.t + H - M.b) / 2})`,
      "text-anchor": "middle" }, ylabel));
    svg.appendChild(grid); svg.appendChild(g);
  }
  function stepPath(pts, sc) {
    let d = "";
    pts.forEach(([x, y], i) => { d += i ? `H${sc.fx(x)}V${sc.fy(y)}` : `M${sc.fx(x)},${sc.fy(y)}`; });
    return d + (pts.length ? `H${sc.fx(sc.x1)}` : "");
  }
  function domain(labs) {
    const ids = [], ys = [];
    for (const lab of labs) for (const r of lab.rows) {
      if (r.id === null) continue;
      ids.push(r.id);
      const inX = (state.x0 === null || r.id >= state.x0) && (state.x1 === null || r.id <= state.x1);
      for (const v of [eff(r), r.holdout_score]) if (inX && typeof v === "number") ys.push(v);
    }
    const lo = ids.length ? Math.min(...ids) : 0, hi = ids.length ? Math.max(...ids) : 1;
    const x0 = state.x0 === null ? lo : state.x0, x1 = state.x1 === null ? hi : state.x1;
    const logY = ys.length > 0 && Math.min(...ys) > 0 && Math.max(...ys) / Math.min(...ys) > 100;
    return scales(x0 - 0.5, x1 + 0.5, ys, logY);
  }
  function clip(svg) {
    const defs = sv("defs"), cp = sv("clipPath", { id: "plotclip" });
    cp.appendChild(sv("rect", { x: M.l, y: 0, width: W - M.l - M.r, height: H - M.b }));
    defs.appendChild(cp); svg.appendChild(defs);
    const g = sv("g", { "clip-path": "url(#plotclip)" }); svg.appendChild(g);
    return g;
  }
  function zoomable(svg, sc, redraw) {  // drag to zoom into experiments, wheel to zoom, double-click to reset
    let start = null, brush = null;
    const px = (ev) => { const b = svg.getBoundingClientRect(); return ((ev.clientX - b.left) / b.width) * W; };
    svg.addEventListener("mousedown", (ev) => {
      if (ev.target.classList.contains("pt")) return;
      start = px(ev); brush = sv("rect", { class: "brush", x: start, y: M.t, width: 0, height: H - M.t - M.b });
      svg.appendChild(brush);
    });
    svg.addEventListener("mousemove", (ev) => {
      if (start === null) return;
      const x = px(ev); brush.setAttribute("x", Math.min(x, start)); brush.setAttribute("width", Math.abs(x - start));
    });
    window.addEventListener("mouseup", (ev) => {
      if (start === null) return;
      const a = sc.inv(Math.min(start, px(ev))), b = sc.inv(Math.max(start, px(ev)));
      start = null; brush.remove();
      if (b - a >= 1) { state.x0 = Math.ceil(a); state.x1 = Math.floor(b); redraw(); }
    });
    svg.addEventListener("dblclick", () => { state.x0 = state.x1 = null; redraw(); });
    svg.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const at = sc.inv(px(ev)), f = ev.deltaY > 0 ? 1.25 : 0.8;
      state.x0 = Math.round(at - (at - sc.x0) * f); state.x1 = Math.round(at + (sc.x1 - at) * f);
      if (state.x1 - state.x0 < 2) state.x1 = state.x0 + 2;
      redraw();
    }, { passive: false });
  }
  function legend(box, items) {
    const lg = el("div", { class: "legend" });
    for (const [colour, text] of items) {
      const s = el("span"); const i = el("i"); i.style.background = colour; s.appendChild(i);
      s.appendChild(document.createTextNode(text)); lg.appendChild(s);
    }
    box.appendChild(lg);
  }

  // ---- the progress chart of one lab: every experiment a point in its slot's colour (kept: solid, labelled
  // with its notes; the others hollow), the agent's claim beside the host's score, the holdout, the running best,
  // the runs' boundaries; crashes (no score) as marks on the axis
  function drawChart(lab) {
    const box = $("chart"); box.textContent = "";
    const svg = sv("svg", { viewBox: `0 0 ${W} ${H}`, id: "chart-svg", role: "img" });
    box.appendChild(svg);
    const sc = domain([lab]);
    axes(svg, sc, "score (" + (lab.maximize ? "higher" : "lower") + " is better)");
    const g = clip(svg);
    let prevRun = null;
    for (const r of lab.rows) {
      if (r.id === null) continue;
      if (prevRun !== null && r.run !== prevRun) {
        const x = sc.fx(r.id - 0.5);
        g.appendChild(sv("line", { class: "runline", x1: x, x2: x, y1: M.t, y2: H - M.b }));
        g.appendChild(sv("text", { class: "runlabel", x: x + 3, y: M.t + 10 }, "run " + r.run));
      }
      prevRun = r.run;
    }
    const best = bestLine(lab);
    g.appendChild(sv("path", { d: stepPath(best, sc), fill: "none", stroke: "#1d2330", "stroke-width": 1.6,
      id: "best-line" }));
    const hold = lab.rows.filter((r) => r.id !== null && typeof r.holdout_score === "number");
    if (hold.length) {
      g.appendChild(sv("path", { d: hold.map((r, i) => (i ? "L" : "M") + sc.fx(r.id) + "," + sc.fy(r.holdout_score)).join(""),
        fill: "none", stroke: HOLDOUT, "stroke-dasharray": "5 3", "stroke-width": 1.2 }));
      for (const r of hold) {
        const x = sc.fx(r.id), y = sc.fy(r.holdout_score);
        g.appendChild(sv("path", { d: `M${x - 4},${y - 4}L${x + 4},${y + 4}M${x - 4},${y + 4}L${x + 4},${y - 4}`,
          stroke: HOLDOUT, "stroke-width": 1.5, class: "holdout" }));
      }
    }
    const pts = sv("g"), labels = sv("g"), hollow = new Map(), many = lab.rows.length > 2000;
    const keeps = lab.rows.filter((r) => r.outcome === "keep" && typeof eff(r) === "number"
      && (state.x0 === null || r.id >= state.x0) && (state.x1 === null || r.id <= state.x1));
    const labelled = new Set(keeps.slice(-30).map((r) => r.id)), wanted = [];
    for (const r of lab.rows) {
      if (r.id === null) continue;
      const s = eff(r), c = r.outcome === "baseline" ? "#1d2330" : colourOfSlot(slotOf(r));
      let p;
      if (typeof s !== "number") {  // no score (a crash): a mark on the axis, still one point per experiment
        const x = sc.fx(r.id), y = H - M.b - 5;
        p = sv("path", { d: `M${x - 4},${y - 4}L${x + 4},${y + 4}M${x - 4},${y + 4}L${x + 4},${y - 4}`,
          stroke: "#c62828", "stroke-width": 2, class: "pt crash" });
      } else {
        if (typeof r.score === "number" && typeof r.verified_score === "number" && r.score !== r.verified_score) {
          pts.appendChild(sv("line", { x1: sc.fx(r.id), x2: sc.fx(r.id), y1: sc.fy(r.score), y2: sc.fy(s),
            stroke: c, "stroke-opacity": 0.5, "stroke-dasharray": "2 2" }));
          pts.appendChild(sv("rect", { x: sc.fx(r.id) - 3, y: sc.fy(r.score) - 3, width: 6, height: 6, fill: "none",
            stroke: c, "stroke-opacity": 0.7, class: "claim", transform: `rotate(45 ${sc.fx(r.id)} ${sc.fy(r.score)})` }));
        }
        const solid = kept(r);
        if (many && !solid && state.exp !== r.id) {  // a long history: the hollow points as one path per colour
          const x = sc.fx(r.id), y = sc.fy(s);
          hollow.set(c, (hollow.get(c) || "") + `M${x - 3},${y}a3,3 0 1,0 6,0a3,3 0 1,0 -6,0`);
          continue;
        }
        p = sv("circle", { cx: sc.fx(r.id), cy: sc.fy(s), r: solid ? 5 : 3.5, fill: solid ? c : "#fff", stroke: c,
          "stroke-width": 1.5, "fill-opacity": solid ? 1 : 0.9, "stroke-opacity": solid ? 1 : 0.7,
          class: "pt o-" + r.outcome });
        if (labelled.has(r.id)) wanted.push([r, sc.fx(r.id), sc.fy(s), c]);
      }
      p.setAttribute("data-id", r.id);
      if (state.exp === r.id) p.classList.add("sel");
      if (!many || kept(r)) p.appendChild(sv("title", {}, `#${r.id} ${r.outcome} ${fmt(s)} (slot ${slotOf(r)}, run ${r.run})`
        + (r.notes ? "\n" + firstLine(r.notes, 120) : "")));
      pts.appendChild(p);
    }
    for (const [c, d] of hollow) {
      pts.insertBefore(sv("path", { d, fill: "#fff", stroke: c, "stroke-opacity": 0.6, class: "many" }), pts.firstChild);
    }
    placeLabels(labels, wanted);
    g.appendChild(labels); g.appendChild(pts);  // the points over the labels' halos
    pts.addEventListener("click", (ev) => {
      const id = ev.target.getAttribute("data-id");
      if (id !== null) select(+id);
      else if (ev.target.classList.contains("many")) {  // the nearest experiment to the click
        const b = svg.getBoundingClientRect(), at = Math.round(sc.inv(((ev.clientX - b.left) / b.width) * W));
        if (lab.rows.some((r) => r.id === at)) select(at);
      }
    });
    zoomable(svg, sc, () => { writeHash(); drawChart(lab); });
    const slotsSeen = [...new Set(lab.rows.filter((r) => r.outcome !== "baseline").map(slotOf))].sort((a, b) => a - b);
    const items = [["#1d2330", "best so far / baseline"]].concat(slotsSeen.map((k) => [colourOfSlot(k), "slot " + k]));
    if (hold.length) items.push([HOLDOUT, "holdout"]);
    items.push(["#fff", "solid: kept \u00b7 hollow: not kept \u00b7 \u25c7 the agent's own score \u00b7 \u00d7 crash"
      + " \u00b7 drag to zoom, double-click to reset"]);
    legend(box, items);
  }

  // Each kept point gets its notes where they fit (beside it, above or below, without covering another label),
  // else its number; the whole notes are in the point's tooltip and the detail.
  function placeLabels(layer, wanted) {
    const boxes = [], free = (b) => b[0] >= M.l && b[2] <= W - M.r && b[1] >= M.t && b[3] <= H - M.b
      && boxes.every((o) => b[2] < o[0] || b[0] > o[2] || b[3] < o[1] || b[1] > o[3]);
    for (const [r, x, y, c] of wanted) {
      const text = firstLine(r.notes, 34) || "#" + r.id, w = text.length * 6 + 4;
      const tries = [[x + 7, y - 7, "start"], [x + 7, y + 15, "start"], [x - 7, y - 7, "end"], [x - 7, y + 15, "end"]]
        .concat([24, 40, 56, 72].map((d) => [x + 4, y - d, "start"]));
      let put = null;
      for (const [tx, ty, anchor] of tries) {
        const b = anchor === "start" ? [tx, ty - 11, tx + w, ty + 3] : [tx - w, ty - 11, tx, ty + 3];
        if (free(b)) { put = [tx, ty, anchor, text, b]; break; }
      }
      if (!put) { const t = "#" + r.id; put = [x + 6, y - 6, "start", t, [x + 6, y - 17, x + 12 + t.length * 6, y - 3]]; }
      boxes.push(put[4]);
      if (Math.abs(put[1] - y) > 16) {  // placed higher up: a leader line says whose it is
        layer.appendChild(sv("line", { x1: x, y1: y - 5, x2: put[0], y2: put[1] + 2, stroke: c, "stroke-opacity": 0.5 }));
      }
      layer.appendChild(sv("text", { x: put[0], y: put[1], "text-anchor": put[2], class: "klabel", fill: c,
        "data-id": r.id }, put[3]));
    }
  }

  // ---- several labs on one chart: each lab's running best and its experiments, in the lab's colour
  function drawCompare() {
    const sec = $("compare");
    if (DATA.labs.length < 2) { sec.hidden = true; return; }
    sec.hidden = false;
    const box = $("compare-chart"); box.textContent = "";
    const svg = sv("svg", { viewBox: `0 0 ${W} ${H}`, id: "compare-svg" }); box.appendChild(svg);
    const saved = [state.x0, state.x1]; state.x0 = state.x1 = null;
    const sc = domain(DATA.labs); [state.x0, state.x1] = saved;
    const dirs = new Set(DATA.labs.map((l) => l.maximize));
    axes(svg, sc, dirs.size > 1 ? "score" : "score (" + (DATA.labs[0].maximize ? "higher" : "lower") + " is better)");
    const g = clip(svg);
    DATA.labs.forEach((lab, i) => {
      const c = COLOURS[i % COLOURS.length];
      for (const r of lab.rows) {
        const s = eff(r);
        if (r.id === null || typeof s !== "number") continue;
        g.appendChild(sv("circle", { cx: sc.fx(r.id), cy: sc.fy(s), r: kept(r) ? 4 : 3, fill: kept(r) ? c : "none",
          stroke: c, "stroke-opacity": kept(r) ? 1 : 0.45, class: "cpt" }));
      }
      g.appendChild(sv("path", { d: stepPath(bestLine(lab), sc), fill: "none", stroke: c, "stroke-width": 1.8 }));
    });
    legend(box, DATA.labs.map((lab, i) => [COLOURS[i % COLOURS.length], `${lab.name} (${lab.rows.filter((r) =>
      r.outcome !== "baseline").length} experiments, ${lab.rows.filter((r) => r.outcome === "keep").length} kept)`]));
  }

  window.ARL = { DATA, state, el, sv, eff, fmt, firstLine, reasons, slotOf, colourOfSlot, kept, bestLine, seconds,
    duration, readHash, writeHash, drawChart, drawCompare, legend, COLS, COLOURS, W, M };
  function select(id) { window.ARL.select(id); }
})();
