"""The inline style and script of the HTML trace report (see :mod:`logd.traces.html`).

Kept as plain strings so the page needs no file beside it; the CSP pins each by its
hash, so an edit here is picked up without touching anything else. The script reads
only the embedded JSON and writes only through ``textContent``/``setAttribute``.
"""

from __future__ import annotations

_BASE_CSS = """
:root{--bg:#ffffff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--panel:#f6f8fa;--accent:#0969da;
--err:#cf222e;--crit:#9a6700;--sel:#ddf4ff;
--k-agent:#8fb8f0;--k-generation:#b7a3f0;--k-response:#b7a3f0;--k-function:#8fd4a8;--k-handoff:#f0c27a;
--k-guardrail:#e8a0c8;--k-node:#a8d8e0;--k-strategy:#c8c8c8;--k-other:#c8ccd2}
@media (prefers-color-scheme: dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--panel:#151b23;
--accent:#4493f8;--err:#ff7b72;--crit:#e3b341;--sel:#1f3552;
--k-agent:#2f5d99;--k-generation:#5b4a9e;--k-response:#5b4a9e;--k-function:#2e7049;--k-handoff:#8a6420;
--k-guardrail:#8c3d68;--k-node:#2c6a75;--k-strategy:#555b63;--k-other:#4a5059}}
*{box-sizing:border-box}
body{margin:0;padding:1rem 1.5rem 3rem;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.6rem 0 .5rem;border-bottom:1px solid var(--line)}
h3{font-size:1rem;margin:.8rem 0 .3rem}
a{color:var(--accent)}
:focus-visible{outline:2px solid var(--accent);outline-offset:1px}
table.data{border-collapse:collapse;margin:.4rem 0 1rem;min-width:20rem}
table.data caption{text-align:left;font-weight:600;padding:.2rem 0}
table.data th,table.data td{border-bottom:1px solid var(--line);padding:.25rem .6rem;text-align:left;vertical-align:top}
table.data th{background:var(--panel);font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed td:first-child::after{content:" \\2717";color:var(--err)}
"""

INDEX_CSS = _BASE_CSS

REPORT_CSS = _BASE_CSS + """
.crumbs,.summary,.hint,.route{color:var(--muted);margin:.2rem 0}
#session-id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
.legend{display:flex;flex-wrap:wrap;gap:.8rem;margin:.3rem 0;color:var(--muted)}
.legend span{display:inline-flex;align-items:center;gap:.3rem}
.sw{display:inline-block;width:1rem;height:.7rem;border-radius:2px;border:1px solid var(--line)}
.timeline{border:1px solid var(--line);border-radius:6px;padding:.3rem .5rem .3rem 0;overflow-x:auto}
.axis,.lane{display:grid;grid-template-columns:11rem 1fr;gap:.5rem;min-width:40rem;width:calc(100% * var(--zoom, 1))}
.axis>div:first-child,.lane-label{position:sticky;left:0;z-index:3;background:var(--bg);padding-left:.5rem;box-shadow:.5rem 0 0 var(--bg)}
.axis .track{position:relative;height:1.3rem;border-bottom:1px solid var(--line)}
.tick{position:absolute;top:0;font-size:11px;color:var(--muted);transform:translateX(-50%);white-space:nowrap}
.tick:first-child{transform:none}
.controls{display:flex;flex-wrap:wrap;gap:.4rem 2rem;align-items:center;margin:.3rem 0;color:var(--muted)}
.controls input[type=range]{vertical-align:middle;width:12rem}
.lane{border-bottom:1px dashed var(--line);padding:3px 0}
.lane-label{font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;padding-top:2px}
.lane .track{position:relative}
.bar{position:absolute;height:18px;min-width:3px;border-radius:3px;background:var(--k-other);
font-size:11px;line-height:18px;padding:0 3px;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;
cursor:pointer;color:var(--fg);border:1px solid transparent}
.bar[data-kind=agent]{background:var(--k-agent)}.bar[data-kind=generation]{background:var(--k-generation)}
.bar[data-kind=response]{background:var(--k-response)}.bar[data-kind=function]{background:var(--k-function)}
.bar[data-kind=handoff]{background:var(--k-handoff)}.bar[data-kind=guardrail]{background:var(--k-guardrail)}
.bar[data-kind=node]{background:var(--k-node)}.bar[data-kind=strategy]{background:var(--k-strategy)}
.bar.crit{border:2px solid var(--crit);box-shadow:0 0 0 1px var(--bg)}
.bar.err{border:2px solid var(--err);background-image:repeating-linear-gradient(135deg,transparent 0 5px,rgba(207,34,46,.35) 5px 8px)}
.bar.unf{border-right:3px dotted var(--muted)}
.bar.sel{outline:3px solid var(--accent);z-index:2}
.timeline.dim .bar:not(.crit){opacity:.25}
.err-mark{position:absolute;top:-2px;width:2px;height:calc(100% + 4px);background:var(--err);pointer-events:none}
.flow{overflow-x:auto;border:1px solid var(--line);border-radius:6px;background:var(--panel)}
.flow svg{display:block}
.flow .node rect{fill:var(--bg);stroke:var(--accent);stroke-width:1.5}
.flow .node.end rect{stroke:var(--muted);stroke-dasharray:4 3}
.flow text{fill:var(--fg);font-size:12px}
.flow .edge path{fill:none;stroke:var(--muted);stroke-width:1.5}
.flow .edge text{fill:var(--accent);font-weight:600}
.flow marker path{fill:var(--muted)}
.grid{display:flex;flex-wrap:wrap;gap:0 2rem;align-items:flex-start}
.grid>div{min-width:18rem;flex:1}
ol.links{padding-left:2.6rem;margin:.2rem 0;max-height:20rem;overflow:auto}
ol.links button{vertical-align:top;font:inherit;color:var(--accent);background:none;border:0;padding:0;text-align:left;cursor:pointer}
ol.links button:hover{text-decoration:underline}
.filters{display:flex;flex-wrap:wrap;gap:.6rem 1.2rem;align-items:center;padding:.4rem 0}
.filters select,.filters input[type=search]{font:inherit;color:var(--fg);background:var(--bg);border:1px solid var(--line);border-radius:4px;padding:.15rem .3rem}
.filters output{color:var(--muted)}
table.events{width:100%}
table.events td:nth-child(6){font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
table.events tbody tr{cursor:pointer}
table.events tbody tr:hover,table.events tbody tr.sel{background:var(--sel)}
table.events tr.err td:nth-child(7){color:var(--err);font-weight:600}
button{font:inherit}
#more{color:var(--fg);background:var(--panel);border:1px solid var(--line);border-radius:4px;padding:.25rem .8rem;cursor:pointer}
dialog{max-width:min(60rem,94vw);max-height:88vh;width:100%;color:var(--fg);background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:1rem 1.2rem}
dialog::backdrop{background:rgba(0,0,0,.35)}
dialog form{display:flex;justify-content:space-between;align-items:center;gap:1rem}
dialog h2{margin:0;border:0;word-break:break-all}
dialog .close{color:var(--fg);background:var(--panel);border:1px solid var(--line);border-radius:4px;padding:.2rem .7rem;cursor:pointer}
dialog dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:.6rem 0}
dialog dt{color:var(--muted)}dialog dd{margin:0;word-break:break-all}
#details-json{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:.6rem;overflow:auto;max-height:55vh;
font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all}
"""

REPORT_JS = r"""
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("logd-data").textContent);
  const $ = (id) => document.getElementById(id);
  const AGENTS = D.agents, HOOKS = D.hooks, SPANS = D.spans, EVENTS = D.events;
  const PAGE = 500;

  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    for (const k in attrs || {}) {
      const v = attrs[k];
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") n.className = v;
      else if (k === "text") n.textContent = v;
      else n.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of kids) n.append(c);
    return n;
  }
  function svg(tag, attrs, ...kids) {
    const n = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const k in attrs || {}) n.setAttribute(k, String(attrs[k]));
    for (const c of kids) n.append(c);
    return n;
  }
  function fmt(ms) {
    const s = ms / 1000;
    if (s < 0.001) return (s * 1e6).toFixed(0) + "\u00b5s";
    if (s < 1) return (s * 1e3).toFixed(1) + "ms";
    if (s < 60) return s.toFixed(2) + "s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + "m" + (s - m * 60).toFixed(1).padStart(4, "0") + "s";
    return Math.floor(m / 60) + "h" + String(m % 60).padStart(2, "0") + "m";
  }
  const startMs = D.start ? Date.parse(D.start) : 0;
  function clock(offset) {
    return D.start ? new Date(startMs + offset).toISOString().slice(11, 23) : "-";
  }
  const agentName = (i) => AGENTS[i] || "";
  const spanLabel = (s) => (agentName(s[1]) && s[2] !== agentName(s[1]) ? agentName(s[1]) + ": " + s[2] : s[2]);

  // --- summary ---
  const errorCount = D.analysis.errors.length;
  const count = (n, word) => n + " " + word + (n === 1 ? "" : "s");
  $("summary").textContent = [count(EVENTS.length, "event"), count(SPANS.length, "span"),
    count(AGENTS.filter((a) => a).length, "agent"), fmt(D.duration_ms),
    D.start ? "from " + D.start : "no timestamps", errorCount ? count(errorCount, "error") : "no errors"].join(" \u00b7 ");

  // --- details dialog ---
  const dialog = $("details");
  let opener = null;
  // back to what opened it, unless the user has already moved on (close fires a task later)
  dialog.addEventListener("close", () => {
    const at = document.activeElement;
    if (opener && (!at || at === document.body || dialog.contains(at) || at === opener)) opener.focus();
  });
  function openDetails(title, facts, value, from) {
    $("details-title").textContent = title;
    const dl = $("details-facts");
    dl.replaceChildren();
    for (const [k, v] of facts) {
      if (v === null || v === undefined || v === "") continue;
      dl.append(el("dt", { text: k }), el("dd", { text: String(v) }));
    }
    $("details-json").textContent = JSON.stringify(value, null, 2);
    opener = from || document.activeElement;
    if (!dialog.open) dialog.showModal();
  }
  const spanRecord = {};
  EVENTS.forEach((e, i) => { if (e[5] >= 0 && !(e[5] in spanRecord)) spanRecord[e[5]] = i; });
  function showEvent(i, from) {
    const e = EVENTS[i];
    openDetails("Event #" + (i + 1) + ": " + HOOKS[e[2]], [["time", clock(e[0]) + " (+" + fmt(e[0]) + ")"],
      ["agent", agentName(e[1]) || "-"], ["kind", HOOKS[e[2]]], ["error", e[4]],
      ["span", e[5] >= 0 ? spanLabel(SPANS[e[5]]) : null]], D.records[i], from);
  }
  function showSpan(i, from) {
    const s = SPANS[i];
    const rec = i in spanRecord ? D.records[spanRecord[i]] : {id: s[0], agent: agentName(s[1]), name: s[2], kind: s[3],
      start_ms: s[4], duration_ms: s[5], parent: s[6] >= 0 ? SPANS[s[6]][0] : null, error: s[7]};
    openDetails("Span: " + spanLabel(s), [["kind", s[3]], ["agent", agentName(s[1]) || "-"],
      ["start", clock(s[4]) + " (+" + fmt(s[4]) + ")"], ["duration", fmt(s[5])],
      ["parent", s[6] >= 0 ? spanLabel(SPANS[s[6]]) : null], ["error", s[7]],
      ["unfinished", s[8] & 1 ? "yes: still open when the records end" : null],
      ["critical path", s[8] & 2 ? "yes" : null],
      ["guardrail", s[8] & 4 ? "tripped" : null]], rec, from);
  }

  // --- timeline ---
  const total = SPANS.reduce((m, s) => Math.max(m, s[4] + s[5]), Math.max(D.duration_ms, 0.001));
  const pct = (ms) => (ms / total * 100).toFixed(4) + "%";
  const timeline = $("timeline");
  const axis = el("div", { class: "axis", "aria-hidden": "true" }, el("div"), el("div", { class: "track" }));
  function ticks(zoom) {
    const raw = total / 8 / zoom, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw);
    axis.lastChild.replaceChildren();
    for (let n = 0; n * step <= total + 1e-9; n++) {
      const tick = el("span", { class: "tick", text: n ? fmt(n * step) : "0" });
      tick.style.left = pct(n * step);
      axis.lastChild.append(tick);
    }
  }
  ticks(1);
  timeline.append(axis);
  const lanes = new Map();
  SPANS.forEach((s, i) => { if (!lanes.has(s[1])) lanes.set(s[1], []); lanes.get(s[1]).push(i); });
  const errByAgent = new Map();
  for (const i of D.analysis.errors) {
    const a = EVENTS[i][1];
    if (!errByAgent.has(a)) errByAgent.set(a, []);
    errByAgent.get(a).push(i);
  }
  for (const a of errByAgent.keys()) if (!lanes.has(a)) lanes.set(a, []);
  const ROW = 22, bars = [];
  for (const [a, idx] of lanes) {
    const rowsEnd = [];
    const track = el("div", { class: "track" });
    for (const i of idx) {
      const s = SPANS[i];
      let r = rowsEnd.findIndex((end) => end <= s[4] + 1e-6);
      if (r < 0) { r = rowsEnd.length; rowsEnd.push(0); }
      rowsEnd[r] = s[4] + s[5];
      const desc = spanLabel(s) + " (" + s[3] + "), " + fmt(s[5]) + ", at +" + fmt(s[4])
        + (s[7] ? ", error: " + s[7] : "") + (s[8] & 2 ? ", on the critical path" : "") + (s[8] & 1 ? ", unfinished" : "") + (s[8] & 4 ? ", guardrail tripped" : "");
      const bar = el("div", { class: "bar" + (s[7] ? " err" : "") + (s[8] & 2 ? " crit" : "") + (s[8] & 1 ? " unf" : ""),
        role: "button", tabindex: "-1", "data-i": i, "data-kind": s[3], title: desc, "aria-label": desc,
        text: (s[7] ? "\u2717 " : "") + s[2] });
      bar.style.left = pct(s[4]);
      bar.style.width = pct(s[5]);
      bar.style.top = (r * ROW + 2) + "px";
      bars[i] = bar;
      track.append(bar);
    }
    for (const i of errByAgent.get(a) || []) {
      const mark = el("div", { class: "err-mark", "aria-hidden": "true", title: "error: " + EVENTS[i][4] });
      mark.style.left = pct(EVENTS[i][0]);
      track.append(mark);
    }
    track.style.height = (Math.max(1, rowsEnd.length) * ROW + 4) + "px";
    const label = agentName(a) || "(no agent)";
    timeline.append(el("div", { class: "lane", role: "group", "aria-label": "agent " + label },
      el("div", { class: "lane-label", title: label, text: label }), track));
  }
  if (!SPANS.length) timeline.append(el("p", { text: "No spans in this session." }));
  let current = 0;
  function focusBar(i) {
    if (!bars[i]) return;
    if (bars[current]) bars[current].tabIndex = -1;
    current = i;
    bars[i].tabIndex = 0;
    bars[i].focus();
    bars[i].scrollIntoView({ block: "nearest", inline: "nearest" });
  }
  if (bars[0]) bars[0].tabIndex = 0;
  timeline.addEventListener("click", (ev) => {
    const bar = ev.target.closest(".bar");
    if (bar) { focusBar(+bar.dataset.i); showSpan(+bar.dataset.i, bar); }
  });
  timeline.addEventListener("keydown", (ev) => {
    const bar = ev.target.closest(".bar");
    if (!bar) return;
    const i = +bar.dataset.i, keys = { ArrowRight: i + 1, ArrowDown: i + 1, ArrowLeft: i - 1, ArrowUp: i - 1,
      Home: 0, End: SPANS.length - 1 };
    if (ev.key in keys) { ev.preventDefault(); focusBar(Math.max(0, Math.min(SPANS.length - 1, keys[ev.key]))); }
    else if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); showSpan(i, bar); }
  });
  $("only-critical").addEventListener("change", (ev) => timeline.classList.toggle("dim", ev.target.checked));
  $("zoom").addEventListener("input", (ev) => { timeline.style.setProperty("--zoom", ev.target.value); ticks(+ev.target.value); });
  const kinds = [...new Set(SPANS.map((s) => s[3]))];
  const legend = $("legend");
  for (const k of kinds) {
    const sw = el("span", { class: "sw bar-like" });
    sw.style.background = getComputedStyle(document.documentElement).getPropertyValue("--k-" + k) || "var(--k-other)";
    legend.append(el("span", {}, sw, k));
  }
  const crit = el("span", { class: "sw" }); crit.style.border = "2px solid var(--crit)";
  const err = el("span", { class: "sw" }); err.style.border = "2px solid var(--err)";
  legend.append(el("span", {}, crit, "critical path"), el("span", {}, err, "error"));

  // --- flow graph ---
  const nodes = [];
  for (const [a, b] of D.flow.edges) for (const n of [a, b]) if (!nodes.includes(n)) nodes.push(n);
  const END = "(end)";
  if (nodes.includes(END)) { nodes.splice(nodes.indexOf(END), 1); nodes.push(END); }
  $("route").textContent = "Route: " + (D.flow.route.length ? D.flow.route.join(" \u2192 ") : "(no agents)");
  if (nodes.length) {
    const GAP = 180, W = 140, H = 34, maxSpan = Math.max(1, ...D.flow.edges.map(([a, b]) => Math.abs(nodes.indexOf(a) - nodes.indexOf(b))));
    const lift = (d) => 26 + 70 * d / maxSpan;
    const pos = (n) => nodes.indexOf(n);
    const reach = (up) => D.flow.edges.reduce((m, [a, b]) => (a === b ? (up ? Math.max(m, 48) : m)
      : (pos(b) > pos(a)) === up ? Math.max(m, lift(Math.abs(pos(b) - pos(a))) + 16) : m), 0);
    const width = nodes.length * GAP + 20, mid = 12 + reach(true) + H / 2, height = mid + H / 2 + reach(false) + 12;
    const x = (n) => 20 + nodes.indexOf(n) * GAP + W / 2;
    const desc = D.flow.edges.map(([a, b, n]) => a + " to " + b + " " + n + (n === 1 ? " time" : " times")).join("; ");
    const g = svg("svg", { width, height, viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": "Agent flow graph: " + desc },
      svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        svg("path", { d: "M0,0 L10,5 L0,10 z" }))));
    for (const [a, b, n] of D.flow.edges) {
      const x1 = x(a), x2 = x(b), d = Math.abs(nodes.indexOf(a) - nodes.indexOf(b));
      let path, lx, ly;
      if (a === b) {
        path = "M" + (x1 - 14) + "," + (mid - H / 2) + " C" + (x1 - 34) + "," + (mid - H / 2 - 44) + " " + (x1 + 34) + ","
          + (mid - H / 2 - 44) + " " + (x1 + 14) + "," + (mid - H / 2);
        lx = x1; ly = mid - H / 2 - 38;
      } else {
        const up = x2 > x1, y = up ? mid - H / 2 : mid + H / 2, h = up ? -lift(d) : lift(d);
        const sx = x1 + (up ? 10 : -10), ex = x2 + (up ? -10 : 10);
        path = "M" + sx + "," + y + " Q" + ((sx + ex) / 2) + "," + (y + 2 * h) + " " + ex + "," + y;
        lx = (sx + ex) / 2; ly = y + h + (up ? -4 : 12);
      }
      g.append(svg("g", { class: "edge" }, svg("path", { d: path, "marker-end": "url(#arrow)" }),
        svg("text", { x: lx, y: ly, "text-anchor": "middle" }, "\u00d7" + n), svg("title", {}, a + " \u2192 " + b + ": " + n)));
    }
    for (const n of nodes) {
      const cx = x(n), short = n.length > 18 ? n.slice(0, 17) + "\u2026" : n;
      g.append(svg("g", { class: "node" + (n === END ? " end" : "") },
        svg("rect", { x: cx - W / 2, y: mid - H / 2, width: W, height: H, rx: 6 }),
        svg("text", { x: cx, y: mid + 4, "text-anchor": "middle" }, short), svg("title", {}, n)));
    }
    $("flow").append(g);
  } else {
    $("flow").append(el("p", { text: "No agent flow in this session." }));
  }
  const handoffs = $("handoffs").tBodies[0];
  for (const [a, b, n] of D.flow.edges) handoffs.append(el("tr", {}, el("td", { text: a }), el("td", { text: b }), el("td", { class: "num", text: n })));

  // --- analysis ---
  const stats = $("agent-stats").tBodies[0];
  for (const [a, count, tot, mean, p95, max, errs] of D.analysis.agents) {
    stats.append(el("tr", {}, el("td", { text: a || "-" }), el("td", { class: "num", text: count }),
      ...[tot, mean, p95, max].map((v) => el("td", { class: "num", text: fmt(v) })), el("td", { class: "num", text: errs })));
  }
  const tokens = $("tokens").tBodies[0];
  for (const [a, model, calls, input, output, tot] of D.tokens) {
    tokens.append(el("tr", {}, el("td", { text: a }), el("td", { text: model }),
      ...[calls, input, output, tot].map((v) => el("td", { class: "num", text: v.toLocaleString("en") }))));
  }
  if (!D.tokens.length) tokens.append(el("tr", {}, el("td", { colspan: 6, text: "No record in this session carries token counts." })));
  function spanButton(i, depth) {
    const s = SPANS[i];
    const b = el("button", { type: "button", text: "\u00a0\u00a0".repeat(depth || 0) + spanLabel(s) + " \u2014 " + fmt(s[5]) + (s[7] ? " \u2717" : "") });
    b.addEventListener("click", () => { focusBar(i); showSpan(i, b); });
    return el("li", {}, b);
  }
  const covered = D.analysis.critical.filter(([d]) => d === 0).reduce((sum, [, i]) => sum + SPANS[i][5], 0);
  $("critical-total").textContent = "(" + fmt(covered) + " of " + fmt(total) + ")";
  for (const [depth, i] of D.analysis.critical) $("critical").append(spanButton(i, depth));
  for (const i of D.analysis.slowest) $("slowest").append(spanButton(i));
  $("error-count").textContent = "(" + errorCount + ")";
  for (const i of D.analysis.errors) {
    const e = EVENTS[i];
    const b = el("button", { type: "button", text: clock(e[0]) + " " + (agentName(e[1]) || "-") + " " + HOOKS[e[2]] + ": " + e[4] });
    b.addEventListener("click", () => showEvent(i, b));
    $("errors").append(el("li", {}, b));
  }
  if (!errorCount) $("errors").append(el("li", { text: "none" }));

  // --- events table ---
  const fAgent = $("f-agent"), fKind = $("f-kind"), fText = $("f-text"), fErrors = $("f-errors");
  AGENTS.forEach((a, i) => { if (a) fAgent.append(el("option", { value: i, text: a })); });
  HOOKS.forEach((h, i) => fKind.append(el("option", { value: i, text: h })));
  const body = $("events").tBodies[0], more = $("more");
  const haystack = [];
  function text(i) {
    if (haystack[i] === undefined) {
      const e = EVENTS[i];
      haystack[i] = [agentName(e[1]), HOOKS[e[2]], e[3], e[4] || "", JSON.stringify(D.records[i])].join("\n").toLowerCase();
    }
    return haystack[i];
  }
  let matches = [], shown = 0;
  function row(i) {
    const e = EVENTS[i];
    const tr = el("tr", { tabindex: "0", "data-i": i, class: e[4] ? "err" : null },
      el("td", { class: "num", text: i + 1 }), el("td", { text: clock(e[0]) }), el("td", { class: "num", text: (e[0] / 1000).toFixed(3) }),
      el("td", { text: agentName(e[1]) || "-" }), el("td", { text: HOOKS[e[2]] }), el("td", { text: e[3] }),
      el("td", { text: e[4] || "" }));
    return tr;
  }
  function showMore() {
    const frag = document.createDocumentFragment();
    for (const i of matches.slice(shown, shown + PAGE)) frag.append(row(i));
    body.append(frag);
    shown = Math.min(matches.length, shown + PAGE);
    more.hidden = shown >= matches.length;
    more.textContent = "Show " + Math.min(PAGE, matches.length - shown) + " more of " + (matches.length - shown) + " remaining";
  }
  function applyFilters() {
    const a = fAgent.value, k = fKind.value, q = fText.value.trim().toLowerCase(), errs = fErrors.checked;
    matches = [];
    for (let i = 0; i < EVENTS.length; i++) {
      const e = EVENTS[i];
      if (a !== "" && e[1] !== +a) continue;
      if (k !== "" && e[2] !== +k) continue;
      if (errs && !e[4]) continue;
      if (q && !text(i).includes(q)) continue;
      matches.push(i);
    }
    body.replaceChildren();
    shown = 0;
    showMore();
    $("f-count").textContent = matches.length === EVENTS.length ? EVENTS.length + " events" : matches.length + " of " + EVENTS.length + " events";
  }
  let timer = 0;
  fText.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(applyFilters, 150); });
  for (const f of [fAgent, fKind, fErrors]) f.addEventListener("change", applyFilters);
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); applyFilters(); });
  more.addEventListener("click", showMore);
  body.addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr");
    if (tr) showEvent(+tr.dataset.i, tr);
  });
  body.addEventListener("keydown", (ev) => {
    const tr = ev.target.closest("tr");
    if (!tr) return;
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); showEvent(+tr.dataset.i, tr); }
    else if (ev.key === "ArrowDown" && tr.nextElementSibling) { ev.preventDefault(); tr.nextElementSibling.focus(); }
    else if (ev.key === "ArrowUp" && tr.previousElementSibling) { ev.preventDefault(); tr.previousElementSibling.focus(); }
  });
  applyFilters();
  document.documentElement.dataset.ready = "1";
})();
"""
