"use strict";
// arl report: the history table, one experiment's detail, the runs, and the wiring. Agent text only ever goes
// through textContent (el(..., text)), never through markup.
(function () {
  const A = window.ARL, DATA = A.DATA, state = A.state, el = A.el, sv = A.sv, fmt = A.fmt;
  const $ = (id) => document.getElementById(id);
  const lab = () => DATA.labs[state.lab];
  let detailIndex = null;

  function byId(L) {  // the last row of each id (a keep replaced by its veto keeps the later one), and the details
    if (!L._byId) {
      L._byId = new Map(); L._details = new Map();
      for (const r of L.rows) if (r.id !== null) L._byId.set(r.id, r);
      for (const d of L.details) L._details.set(d.id, d);
    }
    return L._byId;
  }

  // ---- summary
  function header() {
    const L = lab(), rows = L.rows, exps = rows.filter((r) => r.outcome !== "baseline");
    $("title").textContent = DATA.labs.length > 1 ? "arl report: " + DATA.labs.map((l) => l.name).join(", ")
      : "arl report: " + L.name;
    document.title = $("title").textContent;
    const best = A.bestLine(L), base = rows.find((r) => r.outcome === "baseline");
    const bestRow = rows.filter((r) => A.kept(r) && typeof A.eff(r) === "number")
      .reduce((b, r) => (b === null || (L.maximize ? A.eff(r) > A.eff(b) : A.eff(r) < A.eff(b)) ? r : b), null);
    const cost = rows.reduce((s, r) => s + (r.cost_usd || 0), 0);
    const cards = [
      [exps.length, "experiments"], [rows.filter((r) => r.outcome === "keep").length, "kept"],
      [best.length ? fmt(best[best.length - 1][1]) : "-", bestRow ? `best (#${bestRow.id})` : "best"],
      [base ? fmt(A.eff(base)) : "-", "baseline"],
      [base && bestRow && A.eff(base) ? ((100 * (A.eff(bestRow) - A.eff(base))) / Math.abs(A.eff(base))).toFixed(1)
        + " %" : "-", "change from baseline"],
      ["$" + cost.toFixed(2), "agent cost"], [new Set(rows.map((r) => r.run)).size, "runs"],
    ];
    const box = $("cards"); box.textContent = "";
    for (const [v, k] of cards) { const c = el("div", { class: "card" }); c.appendChild(el("b", {}, v)); c.appendChild(el("span", {}, k)); box.appendChild(c); }
    const meta = $("meta");
    meta.textContent = `${L.path} \u00b7 ${L.maximize ? "higher" : "lower"} is better \u00b7 written ${DATA.generated}`;
    $("live").hidden = !DATA.active;
    const pick = $("labpick"); pick.hidden = DATA.labs.length < 2;
    if (!pick.hidden && !pick.options.length) {
      DATA.labs.forEach((l, i) => pick.appendChild(el("option", { value: i }, l.name)));
    }
    pick.value = String(state.lab);
  }

  // ---- the table: filter, sort, then one DocumentFragment
  function options(select, values, all) {
    const cur = state[select.id.replace("f-", "")];
    select.textContent = ""; select.appendChild(el("option", { value: "" }, all));
    for (const v of values) select.appendChild(el("option", { value: v }, v));
    select.value = cur;
  }
  function filtered() {
    const q = state.q.toLowerCase();
    return lab().rows.filter((r) => (!state.outcome || r.outcome === state.outcome)
      && (!state.slot || String(A.slotOf(r)) === state.slot) && (!state.run || String(r.run) === state.run)
      && (!q || String(r.notes || "").toLowerCase().includes(q)));
  }
  function sorted(rows) {
    const k = state.sort, sign = state.dir === "desc" ? -1 : 1;
    const val = (r) => (k === "slot" ? A.slotOf(r) : r[k]);
    return rows.map((r, i) => [r, i]).sort((a, b) => {
      const x = val(a[0]), y = val(b[0]);
      if (x === y) return a[1] - b[1];
      if (x === null || x === undefined) return 1;  // empty cells last, either way
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sign;
    }).map((p) => p[0]);
  }
  function table() {
    const t0 = performance.now(), L = lab();
    options($("f-outcome"), [...new Set(L.rows.map((r) => r.outcome))].sort(), "every outcome");
    options($("f-slot"), [...new Set(L.rows.map(A.slotOf))].sort((a, b) => a - b).map(String), "every slot");
    options($("f-run"), [...new Set(L.rows.map((r) => r.run))].sort((a, b) => a - b).map(String), "every run");
    $("f-q").value = state.q;
    const head = $("thead"); head.textContent = "";
    const tr = el("tr");
    for (const [k, name] of A.COLS) {
      const th = el("th", { "data-key": k }, name);
      if (state.sort === k) th.className = "sorted" + (state.dir === "desc" ? " desc" : "");
      tr.appendChild(th);
    }
    head.appendChild(tr);
    shown = sorted(filtered());
    $("tablewrap").scrollTop = 0;
    rowsInView(true);
    $("count").textContent = `${shown.length} of ${L.rows.length} experiments`;
    document.body.setAttribute("data-table-ms", Math.round(performance.now() - t0));
  }
  // A long history is drawn a window at a time (what is in view and a margin): laying out 10,000 table rows
  // takes seconds; up to ALL_ROWS rows are all in the document.
  const ALL_ROWS = 600, MARGIN = 60;
  let ROW_H = 25;
  let shown = [], windowAt = -1;
  function rowsInView(force) {
    const wrap = $("tablewrap"), all = shown.length <= ALL_ROWS;
    const first = all ? 0 : Math.max(0, Math.floor(wrap.scrollTop / ROW_H) - MARGIN);
    if (!force && (all || Math.abs(first - windowAt) < MARGIN / 2)) return;
    windowAt = first;
    const last = all ? shown.length : Math.min(shown.length, first + Math.ceil(wrap.clientHeight / ROW_H) + 2 * MARGIN);
    const frag = document.createDocumentFragment(), pad = (n) => {
      const tr = el("tr", { class: "pad" }), td = el("td", { colspan: A.COLS.length });
      td.style.height = n * ROW_H + "px"; tr.appendChild(td); return tr;
    };
    if (first) frag.appendChild(pad(first));
    for (const r of shown.slice(first, last)) {
      const row = document.createElement("tr");
      row.setAttribute("data-id", r.id);
      if (r.id === state.exp) row.className = "sel";
      for (const [k, , num] of A.COLS) {
        const v = k === "notes" ? A.firstLine(r.notes, 140) : k === "slot" ? A.slotOf(r) : k === "time"
          ? String(r.time || "").slice(5, 19).replace("T", " ") : num ? fmt(r[k]) : r[k];
        row.appendChild(el("td", { class: k === "notes" ? "notes" : k === "outcome" ? "o o-" + r.outcome : num ? "num" : "" }, v));
      }
      frag.appendChild(row);
    }
    if (last < shown.length) frag.appendChild(pad(shown.length - last));
    const body = $("tbody"); body.textContent = ""; body.appendChild(frag);
    const one = body.querySelector("tr[data-id]");
    if (!all && one && Math.abs(one.getBoundingClientRect().height - ROW_H) > 0.5) {
      ROW_H = one.getBoundingClientRect().height; rowsInView(true);
    }
  }

  // ---- one experiment
  function parentOf(L, id) {  // the best it was judged against: the last keep (or the baseline) before it
    let p = null;
    for (const r of L.rows) { if (r.id !== null && r.id >= id) break; if (A.kept(r) && r.id !== null) p = r.id; }
    return p;
  }
  function link(id, text) {
    const a = el("a", { "data-id": id }, text);
    a.addEventListener("click", () => select(id));
    return a;
  }
  function diffPre(text) {
    const pre = el("pre", { class: "diff", id: "detail-diff" });
    for (const line of text.split("\n")) {
      const cls = line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ") ? "file"
        : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : "";
      pre.appendChild(cls ? el("span", { class: cls }, line + "\n") : document.createTextNode(line + "\n"));
    }
    return pre;
  }
  function detail() {
    const box = $("detail"), L = lab();
    box.textContent = "";
    const r = state.exp === null ? null : byId(L).get(state.exp);
    if (!r) { box.appendChild(el("p", { class: "muted" }, "Click a point or a row to see one experiment.")); return; }
    const d = L._details.get(r.id);
    const h = el("h2", { id: "detail-title" }, `Experiment ${r.id}: `);
    h.appendChild(el("span", { class: "o o-" + r.outcome }, r.outcome));
    box.appendChild(h);
    for (const why of A.reasons(r)) box.appendChild(el("div", { class: "reason" }, why));
    const dl = el("dl");
    const put = (k, v) => { if (v !== null && v !== undefined && v !== "") { dl.appendChild(el("dt", {}, k)); dl.appendChild(el("dd", {}, v)); } };
    put("agent's score", fmt(r.score)); put("verified score", fmt(r.verified_score));
    put("holdout score", fmt(r.holdout_score)); put("best when decided", fmt(r.best));
    put("cost", r.cost_usd === null ? "" : "$" + r.cost_usd.toFixed(4)); put("slot", A.slotOf(r)); put("run", r.run);
    put("time", r.time); put("agent", r.agent); put("commit", r.commit);
    const metrics = Object.entries(r.metrics || {}).map(([k, v]) => `${k}=${typeof v === "number" ? fmt(v) : v}`);
    put("metrics", metrics.join("  "));
    box.appendChild(dl);
    const chain = []; let p = parentOf(L, r.id);
    while (p !== null && chain.length < 50) { chain.unshift(p); p = parentOf(L, p); }
    const lin = el("div", { class: "lineage", id: "detail-lineage" }, "lineage: ");
    chain.forEach((id) => { lin.appendChild(link(id, "#" + id)); lin.appendChild(document.createTextNode(" \u2192 ")); });
    lin.appendChild(el("b", {}, "#" + r.id));
    box.appendChild(lin);
    box.appendChild(el("h3", {}, "notes"));
    box.appendChild(el("pre", { id: "detail-notes" }, r.notes || "(none)"));
    box.appendChild(el("h3", {}, "diff against its parent" + (r.commit ? " (" + r.commit.slice(0, 10) + "^.." + r.commit.slice(0, 10) + ")" : "")));
    if (!d || d.diff === null) box.appendChild(el("p", { class: "muted" }, "(its commit is not in this repository)"));
    else box.appendChild(d.diff ? diffPre(d.diff) : el("p", { class: "muted" }, "(no change to the pipeline)"));
    if (d && d.transcript) {
      box.appendChild(el("h3", {}, "transcript (excerpt)"));
      box.appendChild(el("pre", { id: "detail-transcript" }, d.transcript));
    }
  }
  function select(id) {
    state.exp = id; A.writeHash(); detail(); A.drawChart(lab());
    for (const tr of document.querySelectorAll("#tbody tr.sel")) tr.classList.remove("sel");
    const at = shown.findIndex((r) => r.id === id);
    if (at >= 0 && shown.length > ALL_ROWS) { $("tablewrap").scrollTop = Math.max(at - 5, 0) * ROW_H; rowsInView(true); }
    const tr = document.querySelector(`#tbody tr[data-id="${Number(id)}"]`);
    if (tr) tr.classList.add("sel");
    $("detail").scrollIntoView({ block: "nearest" });
  }
  A.select = select;

  // ---- runs: one line each, the cost over time, and each slot's experiments along the run
  function runRows(L) {
    const by = new Map();
    for (const r of L.rows) { if (!by.has(r.run)) by.set(r.run, []); by.get(r.run).push(r); }
    const info = new Map(L.runs.map((x) => [x.run, x]));
    return [...new Set([...by.keys(), ...info.keys()])].sort((a, b) => a - b).map((n) => {
      const rs = by.get(n) || [], i = info.get(n) || {}, times = rs.map((r) => A.seconds(r.time)).filter((t) => t !== null);
      const start = i.started || (times.length ? Math.min(...times) : null);
      const running = DATA.active && n === Math.max(...by.keys(), ...info.keys());
      const end = i.ended || (running ? Date.now() / 1000 : times.length ? Math.max(...times) : null);
      const exps = rs.filter((r) => r.outcome !== "baseline");
      const secs = start !== null && end !== null ? end - start : null;
      return { n, rs, start, end, secs, exps, running, reason: i.reason || (running ? "(running)" : ""),
        agent: i.agent || (rs[rs.length - 1] || {}).agent || "", agents: i.agents || new Set(rs.map(A.slotOf)).size,
        cost: rs.reduce((s, r) => s + (r.cost_usd || 0), 0) };
    });
  }
  function runs() {
    const L = lab(), body = $("runs-body"); body.textContent = "";
    const all = runRows(L);
    for (const x of all) {
      const tr = el("tr");
      const perHour = x.secs > 0 ? (x.exps.length / (x.secs / 3600)).toFixed(1) : "";
      for (const v of [x.n, x.start ? new Date(x.start * 1000).toISOString().replace("T", " ").slice(0, 19) : "",
        A.duration(x.secs), x.exps.length, x.exps.filter((r) => r.outcome === "keep").length, perHour,
        "$" + x.cost.toFixed(4), x.agent + (x.agents > 1 ? " \u00d7" + x.agents : ""), x.reason]) tr.appendChild(el("td", {}, v));
      body.appendChild(tr);
    }
    timeCharts(L, all);
  }
  function timeCharts(L, all) {  // the chosen run's (else the last run's) slots over time: timeline.js
    A.drawTimeline(L, state.run ? all.find((x) => String(x.n) === state.run) : all[all.length - 1], select);
  }

  function render() {
    header(); A.drawCompare(); A.drawChart(lab()); table(); byId(lab()); detail(); runs();
  }
  function wire() {
    $("thead").addEventListener("click", (ev) => {
      const k = ev.target.getAttribute && ev.target.getAttribute("data-key");
      if (!k) return;
      state.dir = state.sort === k && state.dir === "asc" ? "desc" : "asc"; state.sort = k;
      A.writeHash(); table();
    });
    $("tbody").addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr"); if (tr) select(Number(tr.getAttribute("data-id")));
    });
    for (const k of ["outcome", "slot", "run"]) {
      $("f-" + k).addEventListener("change", (ev) => { state[k] = ev.target.value; A.writeHash(); table(); runs(); });
    }
    let typing = null;
    $("f-q").addEventListener("input", (ev) => {
      clearTimeout(typing);
      typing = setTimeout(() => { state.q = ev.target.value; A.writeHash(); table(); }, 120);
    });
    $("labpick").addEventListener("change", (ev) => {
      state.lab = Number(ev.target.value); state.exp = null; state.x0 = state.x1 = null;
      state.outcome = state.slot = state.run = ""; A.writeHash(); render();
    });
    let pending = false;
    $("tablewrap").addEventListener("scroll", () => {
      if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; rowsInView(false); }); }
    });
    $("zoom-reset").addEventListener("click", () => { state.x0 = state.x1 = null; A.writeHash(); A.drawChart(lab()); });
    window.addEventListener("hashchange", () => { A.readHash(); render(); });
  }

  const t0 = performance.now();
  A.readHash(); wire(); render();
  document.body.setAttribute("data-render-ms", Math.round(performance.now() - t0));
  document.body.setAttribute("data-ready", "1");
  // Live: the loop rewrites the page after each experiment. A run that died leaves it marked active: once the same
  // page has been seen for STALE seconds, it stops reloading and says so.
  const STALE = 3600;
  if (DATA.active) {
    let first = Date.now();
    try {
      const seen = JSON.parse(sessionStorage.getItem("arl-seen") || "{}");
      if (seen.generated === DATA.generated) first = seen.first; else sessionStorage.setItem("arl-seen", JSON.stringify({ generated: DATA.generated, first }));
    } catch (e) { /* no storage for this page: reload as long as it is open */ }
    if ((Date.now() - first) / 1000 < STALE) setTimeout(() => location.reload(), 5000);
    else $("live").textContent = `marked live, but not rewritten for ${A.duration((Date.now() - first) / 1000)}: has the run died? (arl status)`;
  }
})();
