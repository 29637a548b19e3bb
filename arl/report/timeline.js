"use strict";
// arl report: one run's slots over time. Each slot's lane shows what its agent was doing, from the transitions the
// loop recorded (.arl/runs/<run>/events.jsonl): thinking, waiting for a decision, frozen (its decision, its keep
// verified, the budget spent), ended and relaunched, waiting for the API. Its experiments are ticks on the lane.
// A run recorded before these transitions has one bar per experiment instead (from its previous decision).
(function () {
  const A = window.ARL, sv = A.sv;
  const KINDS = {  // state -> [what the legend says, colour]
    think: ["thinking", null], wait: ["waiting for a decision", "#f2b705"], decide: ["frozen: being decided", "#475467"],
    verify: ["frozen: its keep verified", "#7a5af8"], budget: ["frozen: budget spent", "#98a2b3"],
    down: ["ended, relaunching", "#d0d5dd"], api: ["waiting for the API", "#c62828"], backoff: ["backing off", "#f59e9e"],
  };
  const AFTER = { launch: "think", thaw: "think", verdict: "wait", freeze: "decide", verify: "verify", budget: "budget",
    end: "down", "api-wait": "api", backoff: "backoff" };
  const OUTCOME = { keep: "#1a7f37", baseline: "#1d2330", discard: "#8a8f98", vetoed: "#b35900", crash: "#c62828",
    interrupted: "#6f42c1" };

  // The slot's intervals [state, from, to] up to t1, and the times it was relaunched (a launch after its first).
  function intervals(evs, k, t1) {
    const out = [], relaunches = []; let cur = null, since = 0, launched = false;
    for (const [t, s, what] of evs) {
      if (s !== k || !(what in AFTER)) continue;
      if (what === "verdict" && cur !== "think" && cur !== null) continue;  // seen again when its verification ends
      if (what === "launch") { if (launched) relaunches.push(t); launched = true; }
      if (cur !== null && t > since) out.push([cur, since, t]);
      cur = AFTER[what]; since = Math.max(since, t);
    }
    if (cur !== null && t1 > since) out.push([cur, since, t1]);
    return { out, relaunches };
  }

  function bar(svg, x, y, w, fill, opacity, cls, title) {
    const r = sv("rect", { x, y, width: Math.max(w, 1), height: 18, fill, "fill-opacity": opacity, class: cls });
    r.appendChild(sv("title", {}, title)); svg.appendChild(r); return r;
  }

  A.drawTimeline = function (L, pick, select) {
    const box = document.getElementById("timeline"); box.textContent = "";
    if (!pick || pick.start === null || pick.end === null) return;
    const evs = ((L.events || {})[String(pick.n)] || []);
    const lanes = [...new Set(pick.rs.map(A.slotOf).concat(evs.map((e) => e[1])))].sort((a, b) => a - b);
    const spent = pick.rs.reduce((a, r) => a + (r.cost_usd || 0), 0);  // no cost (a command agent): no cost chart
    const w = 1000, h = 40 + 26 * lanes.length + 24 + (spent > 0 ? 120 : 0);
    const svg = sv("svg", { viewBox: `0 0 ${w} ${h}`, id: "timeline-svg" }); box.appendChild(svg);
    const t0 = pick.start, t1 = Math.max(pick.end, t0 + 1), fx = (t) => 70 + ((Math.min(Math.max(t, t0), t1) - t0) / (t1 - t0)) * (w - 90);
    svg.appendChild(sv("text", { x: 4, y: 14, class: "runlabel" }, `run ${pick.n}: what each slot's agent did over ${A.duration(t1 - t0)}` +
      (evs.length ? " (ticks: its experiments; a black line: relaunched)" : " (a bar: from its previous decision to this one; a black tick: relaunched)")));
    const seen = new Set();
    lanes.forEach((k, li) => {
      const y = 26 + li * 26, c = A.colourOfSlot(k);
      svg.appendChild(sv("text", { x: 4, y: y + 13, class: "runlabel" }, "slot " + k));
      const mine = pick.rs.filter((q) => A.slotOf(q) === k && q.outcome !== "baseline");
      if (evs.length) {
        const { out, relaunches } = intervals(evs, k, t1);
        for (const [what, a, b] of out) {
          seen.add(what);
          const [words, colour] = KINDS[what];
          bar(svg, fx(a), y, fx(b) - fx(a), colour || c, colour ? 0.85 : 0.35, "span span-" + what,
            `slot ${k}: ${words}, ${A.duration(b - a)}`).setAttribute("data-what", what);
        }
        for (const t of relaunches) {
          const p = sv("path", { d: `M${fx(t)},${y - 3}v24`, stroke: "#1d2330", "stroke-width": 2, class: "relaunch" });
          p.appendChild(sv("title", {}, `slot ${k} relaunched`)); svg.appendChild(p);
        }
        for (const r of mine) {
          const t = A.seconds(r.time); if (t === null) continue;
          const tick = sv("rect", { x: fx(t) - 1.5, y: y + 12, width: 3, height: 8, fill: OUTCOME[r.outcome] || "#1d2330",
            class: "pt tick", "data-id": r.id });
          tick.appendChild(sv("title", {}, `#${r.id} ${r.outcome}`)); tick.addEventListener("click", () => select(r.id));
          svg.appendChild(tick);
        }
        return;
      }
      let prev = t0, container = null;  // no transitions recorded: a bar per experiment
      for (const r of mine) {
        const t = A.seconds(r.time); if (t === null) continue;
        const d = L._details.get(r.id), now = d ? d.container : null;
        if (container !== null && now && now !== container) {  // a new container since its last decision: relaunched
          const p = sv("path", { d: `M${fx(prev)},${y - 3}v24`, stroke: "#1d2330", "stroke-width": 2, class: "relaunch" });
          p.appendChild(sv("title", {}, `slot ${k} relaunched (container ${now})`)); svg.appendChild(p);
        }
        container = now || container;
        const b = bar(svg, fx(prev), y, fx(t) - fx(prev), c, r.outcome === "keep" ? 0.9 : 0.3, "pt",
          `#${r.id} ${r.outcome}, ${A.duration(t - prev)}`);
        b.setAttribute("stroke", "#fff"); b.setAttribute("data-id", r.id); b.addEventListener("click", () => select(r.id));
        prev = t;
      }
    });
    let top = 40 + 26 * lanes.length;
    if (seen.size) {  // the legend: the states this run's lanes show
      let x = 70;
      for (const what of Object.keys(KINDS).filter((q) => seen.has(q))) {
        const [words, colour] = KINDS[what];
        svg.appendChild(sv("rect", { x, y: top - 6, width: 10, height: 10, fill: colour || A.colourOfSlot(lanes[0]),
          "fill-opacity": colour ? 0.85 : 0.35, class: "key" }));
        svg.appendChild(sv("text", { x: x + 14, y: top + 3, class: "runlabel" }, words)); x += 24 + 6.2 * words.length;
      }
    }
    top += 24;
    if (!(spent > 0)) return;
    const ch = 90;  // cumulative cost over the run
    let sum = 0; const pts = [[t0, 0]];
    for (const r of pick.rs) { const t = A.seconds(r.time); if (t !== null) { sum += r.cost_usd || 0; pts.push([t, sum]); } }
    const fy = (v) => top + ch - (sum > 0 ? (v / sum) * ch : 0);
    svg.appendChild(sv("path", { d: pts.map(([t, v], i) => (i ? "L" : "M") + fx(t) + "," + fy(v)).join(""),
      fill: "none", stroke: "#b35900", "stroke-width": 1.5, id: "cost-line" }));
    svg.appendChild(sv("text", { x: 4, y: top + 10, class: "runlabel" }, `cost $${sum.toFixed(4)}`));
    svg.appendChild(sv("line", { x1: 70, x2: w - 20, y1: top + ch, y2: top + ch, stroke: "#c9ced6" }));
  };
})();
