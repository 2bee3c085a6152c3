// Troupe's dashboard: renders the node's telemetry snapshot, which the
// server pushes as server-sent events on v1/telemetry/events, the members'
// figures over time (v1/telemetry/history), the raft replica's keys and
// locks (v1/keys) and any member's logs (v1/logs/{node}, followed on
// v1/logs/{node}/follow). With ?static=1 it draws everything once and
// opens no stream: the page settles (<html data-settled="true">).
"use strict";

const $ = (sel) => document.querySelector(sel);
const STATIC = new URLSearchParams(location.search).has("static");
const COLORS = ["#3867d6", "#d64545", "#1f9d55", "#d69e2e", "#8854d0", "#0fb9b1", "#e84393", "#4b6584"];

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 1 : 0) : n.toFixed(0)) + " " + units[i];
}

function num(x) {
  if (Math.abs(x) >= 1e6) return (x / 1e6).toFixed(1) + "M";
  if (Math.abs(x) >= 1e3) return (x / 1e3).toFixed(1) + "k";
  return x >= 10 || Number.isInteger(x) ? x.toFixed(0) : x.toFixed(1);
}

function clock(t) {
  return new Date(t).toLocaleTimeString([], { hour12: false });
}

function duration(ms) {
  if (!(ms >= 0)) return "–";
  const s = Math.round(ms / 1000);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

// parseExact parses JSON text like JSON.parse, but keeps an integer too
// large for a double exactly, as its decimal string.
function parseExact(text) {
  let i = 0;
  const ws = () => { while (i < text.length && " \t\n\r".includes(text[i])) i++; };
  const value = () => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++; const o = {}; ws();
      if (text[i] === "}") { i++; return o; }
      for (;;) {
        ws(); const k = string(); ws(); i++; // ':'
        o[k] = value(); ws();
        if (text[i++] === "}") return o;
      }
    }
    if (c === "[") {
      i++; const a = []; ws();
      if (text[i] === "]") { i++; return a; }
      for (;;) {
        a.push(value()); ws();
        if (text[i++] === "]") return a;
      }
    }
    if (c === '"') return string();
    const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?|^true|^false|^null/.exec(text.slice(i, i + 400));
    if (!m) throw new SyntaxError("bad JSON at " + i);
    i += m[0].length;
    if (m[0] === "true") return true;
    if (m[0] === "false") return false;
    if (m[0] === "null") return null;
    const n = Number(m[0]);
    return !m[1] && !m[2] && !Number.isSafeInteger(n) ? m[0] : n;
  };
  const string = () => {
    const start = i++;
    while (text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const v = value();
  return v;
}

// ---- charts: hand-drawn SVG line charts with axes and units.

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// niceStep picks a round step that divides span into about n parts.
function niceStep(span, n) {
  const raw = span / n, p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

// chart draws one time-series chart: series [{name, color, t: [ms], v: []}]
// over [t0, t1]; fmt formats the y axis's values with their unit. A gap
// longer than gapMS between points breaks the line.
function chart({ id, title, unit, fmt, series, t0, t1, gapMS }) {
  const W = 440, H = 170, L = 58, R = 8, T = 8, B = 22;
  const box = el("figure", { class: "chart", "data-chart": id });
  const head = el("figcaption", {}, el("b", {}, title), " ", el("span", { class: "muted small" }, unit));
  let max = 0;
  for (const s of series) for (const v of s.v) if (v > max) max = v;
  const step = max > 0 ? niceStep(max, 4) : 1;
  const top = Math.max(step, Math.ceil(max / step) * step);
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  for (let v = 0; v <= top + step / 2; v += step) {
    g.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    const lab = svg("text", { x: L - 5, y: y(v) + 4, class: "ylab", "text-anchor": "end" });
    lab.textContent = fmt(v);
    g.append(lab);
  }
  const tstep = niceStep(t1 - t0, 5) >= 60e3 ? Math.max(60e3, Math.round(niceStep(t1 - t0, 5) / 60e3) * 60e3) : niceStep(t1 - t0, 5);
  for (let t = Math.ceil(t0 / tstep) * tstep; t <= t1; t += tstep) {
    g.append(svg("line", { x1: x(t), x2: x(t), y1: T, y2: H - B, class: "grid" }));
    const edge = x(t) > W - R - 24; // a label at the right edge ends there
    const lab = svg("text", { x: edge ? W - R : x(t), y: H - 6, class: "xlab", "text-anchor": edge ? "end" : "middle" });
    const d = new Date(t);
    lab.textContent = d.toLocaleTimeString([], { hour12: false, hour: "2-digit", minute: "2-digit", second: tstep < 60e3 ? "2-digit" : undefined });
    g.append(lab);
  }
  g.append(svg("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }), svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
  const legend = el("div", { class: "legend" });
  for (const s of series) {
    let d = "", prev = null, n = 0;
    for (let i = 0; i < s.t.length; i++) {
      if (s.t[i] < t0) continue;
      d += (prev === null || s.t[i] - prev > gapMS ? "M" : "L") + x(s.t[i]).toFixed(1) + "," + y(s.v[i]).toFixed(1);
      prev = s.t[i]; n++;
    }
    if (d) g.append(svg("path", { d, stroke: s.color, class: "series", "data-series": s.name, "data-points": n }));
    const last = s.v.length ? fmt(s.v[s.v.length - 1]) : "–";
    legend.append(el("span", { class: "key" }, el("i", { style: `background:${s.color}` }), `${s.name} ${last}`));
  }
  box.append(head, g, legend);
  return box;
}

const chartDefs = [
  { id: "cpu", title: "CPU", unit: "% of one core", key: "cpu_percent", fmt: (v) => num(v) + "%" },
  { id: "rss", title: "Memory (RSS)", unit: "bytes resident", key: "rss_bytes", fmt: bytes },
  { id: "goroutines", title: "Goroutines", unit: "count", key: "goroutines", fmt: num },
  { id: "mailbox", title: "Mailbox depth", unit: "messages waiting", key: "mailbox_depth", fmt: num, proto: "mailbox_depth" },
  { id: "msgs", title: "Messages handled", unit: "per second, timer firings left out", key: "msgs_per_sec", fmt: (v) => num(v) + "/s", proto: "msgs_per_sec" },
  { id: "timers", title: "Timer firings", unit: "per second (shown apart)", key: "timers_per_sec", fmt: (v) => num(v) + "/s", proto: "timers_per_sec" },
  { id: "bytes-in", title: "Network in", unit: "bytes per second", key: "bytes_in_per_sec", fmt: (v) => bytes(v) + "/s", proto: "bytes_in_per_sec" },
  { id: "bytes-out", title: "Network out", unit: "bytes per second", key: "bytes_out_per_sec", fmt: (v) => bytes(v) + "/s", proto: "bytes_out_per_sec" },
];

let history = null;

function renderCharts() {
  const h = history;
  if (!h) return;
  const nodeSel = $("#chart-node"), protoSel = $("#chart-protocol");
  fillSelect(nodeSel, h.series.map((s) => s.node), "every node");
  const protos = [...new Set(h.series.flatMap((s) => s.protocols.map((p) => p.name)))].sort();
  fillSelect(protoSel, protos, "all protocols");
  const node = nodeSel.value, proto = protoSel.value;
  const t1 = Date.parse(h.time), t0 = t1 - h.window_ms;
  const shown = h.series.filter((s) => !node || s.node === node);
  const charts = chartDefs.filter((d) => !proto || d.proto).map((d) => chart({
    id: d.id, title: d.title + (proto && d.proto ? " · " + proto : ""), unit: d.unit, fmt: d.fmt, t0, t1, gapMS: 3 * h.step_ms + 1000,
    series: shown.map((s) => {
      const color = COLORS[h.series.indexOf(s) % COLORS.length];
      if (proto && d.proto) {
        const p = s.protocols.find((p) => p.name === proto);
        return { name: s.node, color, t: p ? s.t : [], v: p ? p[d.proto] : [] };
      }
      return { name: s.node, color, t: s.t, v: s[d.key] };
    }),
  }));
  $("#charts").replaceChildren(...charts);
  const points = Math.max(0, ...h.series.map((s) => s.t.length));
  $("#charts-note").textContent = `one point per ${h.step_ms / 1000} s per node, kept ${duration(h.max_window_ms)} in ${h.node}'s memory · ${points} points`;
}

function fillSelect(sel, values, all) {
  const cur = sel.value;
  if ([...sel.options].slice(1).map((o) => o.value).join() === values.join()) return;
  sel.replaceChildren(el("option", { value: "" }, all), ...values.map((v) => el("option", { value: v, selected: v === cur }, v)));
}

async function getJSON(url, opts) {
  const resp = await fetch(url, opts);
  const text = await resp.text();
  let body;
  try { body = parseExact(text); } catch { body = { error: text }; }
  if (!resp.ok) {
    const e = new Error(body.error || resp.statusText);
    e.status = resp.status;
    throw e;
  }
  return body;
}

// windowMS is the milliseconds of a window option ("5m", "15m").
const windowMS = (w) => Number(w.replace(/m$/, "")) * 60e3;
const SERIES_KEYS = ["cpu_percent", "rss_bytes", "heap_bytes", "goroutines", "mailbox_depth", "msgs_per_sec", "timers_per_sec",
  "bytes_in_per_sec", "bytes_out_per_sec"];
const PROTO_KEYS = ["msgs_per_sec", "timers_per_sec", "bytes_in_per_sec", "bytes_out_per_sec", "mailbox_depth"];
let historyWindow = null; // the window the history holds

// mergeHistory appends the points of a newer answer (asked with since) to
// the history held, and drops those out of the window.
function mergeHistory(old, neu) {
  const byNode = new Map(old.series.map((s) => [s.node, s]));
  const cut = Date.parse(neu.time) - neu.window_ms;
  return { ...neu, series: neu.series.map((ns) => {
    const os = byNode.get(ns.node);
    if (!os) return ns;
    let start = os.t.findIndex((t) => t >= cut);
    if (start < 0) start = os.t.length;
    const last = os.t.length ? os.t[os.t.length - 1] : -Infinity;
    let from = ns.t.findIndex((t) => t > last);
    if (from < 0) from = ns.t.length;
    const cat = (a, b) => a.slice(start).concat(b.slice(from));
    const m = { ...ns, t: cat(os.t, ns.t) };
    for (const k of SERIES_KEYS) m[k] = cat(os[k], ns[k]);
    const zeros = (n) => new Array(n).fill(0);
    const protos = new Map();
    for (const p of os.protocols) protos.set(p.name, { old: p });
    for (const p of ns.protocols) protos.set(p.name, { ...(protos.get(p.name) || {}), neu: p });
    m.protocols = [...protos.keys()].sort().map((name) => {
      const { old: op, neu: np } = protos.get(name);
      const out = { name };
      for (const k of PROTO_KEYS) {
        out[k] = (op ? op[k].slice(start) : zeros(os.t.length - start)).concat(np ? np[k].slice(from) : zeros(ns.t.length - from));
      }
      return out;
    });
    return m;
  }) };
}

// loadHistory fetches the figures over time: all of the window once, then
// only the points after the newest held.
async function loadHistory() {
  let w = $("#chart-window").value;
  // A node keeps what it is configured to: ask for no more (all it keeps).
  if (w && history && windowMS(w) > history.max_window_ms) w = "";
  const q = new URLSearchParams();
  if (w) q.set("window", w);
  const newest = history && historyWindow === w ? Math.max(0, ...history.series.map((s) => s.t.length ? s.t[s.t.length - 1] : 0)) : 0;
  if (newest > 0) q.set("since", String(newest - 1));
  try {
    let h;
    try {
      h = await getJSON("v1/telemetry/history?" + q);
    } catch (e) {
      if (e.status !== 400 || !w) throw e;
      q.delete("window"); // the window is more than the node keeps
      q.delete("since");
      w = "";
      h = await getJSON("v1/telemetry/history?" + q);
    }
    history = q.has("since") ? mergeHistory(history, h) : h;
    historyWindow = w;
    renderCharts();
  } catch (e) {
    $("#charts-note").textContent = "could not fetch the history: " + e.message;
  }
}

// ---- the snapshot's panels.

let snap = null;

function blanked(m) {
  return !m.status || m.stale || m.state === "failed" || m.state === "left";
}

// The members panel shows one page of the members that match the search
// and the state filter, with a count of the members by state: usable with
// a thousand members.
let membersPage = 0;

function memberState(m) {
  return m.stale && (m.state === "alive" || m.state === "suspect") ? "stale" : m.state;
}

function renderMembersSummary(s) {
  const counts = {};
  for (const m of s.members) {
    counts[m.state] = (counts[m.state] || 0) + 1;
    if (m.stale && (m.state === "alive" || m.state === "suspect")) counts.stale = (counts.stale || 0) + 1;
  }
  const parts = ["alive", "suspect", "failed", "left", "stale"].filter((k) => counts[k]).map((k) =>
    el("a", { href: "#sec-members", class: "badge " + (k === "stale" ? "suspect" : k), "data-state": k, title: "show only " + k }, `${counts[k]} ${k}`));
  const box = $("#members-summary");
  box.replaceChildren(el("span", { class: "muted" }, `${s.members.length} members`), ...parts,
    el("span", { class: "muted" }, s.aggregator ? `statuses aggregated by ${s.aggregator}` : ""));
  for (const a of box.querySelectorAll("a[data-state]")) {
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      $("#members-state").value = a.dataset.state;
      membersPage = 0;
      if (snap) renderMembers(snap);
    });
  }
}

function renderMembers(s) {
  renderMembersSummary(s);
  const body = $("#members tbody");
  body.replaceChildren();
  const snapTime = new Date(s.time);
  const q = $("#members-q").value.trim().toLowerCase(), want = $("#members-state").value;
  const size = Number($("#members-size").value) || 50;
  const match = s.members.filter((m) => (!q || m.name.toLowerCase().includes(q)) && (!want || m.state === want || memberState(m) === want));
  const pages = Math.max(1, Math.ceil(match.length / size));
  membersPage = Math.min(membersPage, pages - 1);
  $("#members-page").textContent = `page ${membersPage + 1} of ${pages} · ${match.length} shown of ${s.members.length}`;
  $("#members-prev").disabled = membersPage === 0;
  $("#members-next").disabled = membersPage >= pages - 1;
  for (const m of match.slice(membersPage * size, (membersPage + 1) * size)) {
    // A member that failed, left or went quiet keeps no current figures:
    // they are blanked rather than shown as if live.
    const st = blanked(m) ? null : m.status;
    const sum = (f) => st ? st.protocols.reduce((a, p) => a + f(p), 0) : 0;
    const name = el("td", {}, m.name);
    if (m.name === s.leader) name.append(el("span", { class: "badge leader", title: "leader" }, "leader"));
    const age = m.last_seen ? ((snapTime - new Date(m.last_seen)) / 1000).toFixed(1) + " s ago" : "never";
    const cls = ["state-" + m.state];
    if (m.stale) cls.push("stale");
    const role = st && st.raft ? st.raft.state.replace(/^State/, "").toLowerCase() : "–";
    const cell = (v) => el("td", { class: "num" }, st ? v() : "–");
    body.append(el("tr", { class: cls.join(" "), "data-member": m.name, "data-state": m.state, "data-blank": st ? "false" : "true" },
      name,
      el("td", {}, el("span", { class: "badge " + m.state }, m.state)),
      el("td", {}, role),
      cell(() => st.cpu_percent.toFixed(0) + "%"),
      cell(() => st.rss_bytes ? bytes(st.rss_bytes) : bytes(st.memory_bytes) + " (Go)"),
      cell(() => st.goroutines),
      cell(() => sum((p) => p.mailbox_depth)),
      cell(() => sum((p) => p.restarts)),
      cell(() => num(sum((p) => p.msgs_in_per_sec))),
      cell(() => num(sum((p) => p.timers_per_sec || 0))),
      el("td", { class: "num age" }, age + (m.stale ? " (stale)" : ""))));
  }
}

function renderRaft(s) {
  const g = s.raft;
  $("#raft-none").hidden = !!g;
  $("#raft").hidden = !g;
  const q = $("#raft-quorum");
  if (!g) {
    q.replaceChildren();
    return;
  }
  q.replaceChildren(el("span", { class: "badge " + (g.quorum === "healthy" ? "alive" : "failed"), "data-quorum": g.quorum }, "quorum " + g.quorum));
  $("#raft-summary").textContent = `${g.reachable.length} of ${g.voters.length} voters reachable, a majority is ${g.majority} · voters ${g.voters.join(", ")}` +
    (g.learners.length ? ` · learners ${g.learners.join(", ")}` : "");
  // The leader's progress of its followers, from its own status.
  const leader = s.members.find((m) => m.status && m.status.raft && m.status.raft.state === "StateLeader" && !blanked(m));
  const follow = {};
  for (const f of (leader && leader.status.raft.followers) || []) follow[f.node] = f;
  const body = $("#raft tbody");
  body.replaceChildren(...s.members.filter((m) => g.voters.includes(m.name) || g.learners.includes(m.name) || (m.status && m.status.raft)).map((m) => {
    const r = blanked(m) ? null : m.status.raft;
    const f = follow[m.name];
    const role = r ? r.state.replace(/^State/, "").toLowerCase() + (g.learners.includes(m.name) ? " (learner)" : "") : "–";
    const cell = (v) => el("td", { class: "num" }, v);
    return el("tr", { "data-raft": m.name, "data-role": r ? r.state : "", class: "state-" + m.state },
      el("td", {}, m.name), el("td", {}, el("span", { class: "badge " + m.state }, m.state)), el("td", {}, role),
      cell(r ? r.term : "–"), cell(r ? r.commit : "–"), cell(r ? r.applied : "–"), cell(r ? r.keys : "–"),
      cell(f ? f.match : (r && r.state === "StateLeader" ? "leader" : "–")),
      el("td", { class: "num lag" + (f && f.lag > 0 ? " behind" : ""), "data-lag": f ? f.lag : "" }, f ? f.lag : "–"),
      el("td", {}, f ? f.state.replace(/^State/, "").toLowerCase() + (f.active ? "" : " · inactive") : "–"));
  }));
}

// Parts report progress of their own (GET /v1/jobs/{id}'s "progress", 0 to
// 1: the parts done and the running parts' fractions). The telemetry
// status counts parts done only, so while a job runs the panel asks
// GET /v1/jobs (every member's jobs, without results) for it, at most once
// a second; without an answer it shows the parts done.
let jobProgress = {}, progressAsked = 0;

async function loadJobProgress(s) {
  if (STATIC || !s.jobs.some((j) => j.state === "running")) {
    jobProgress = {};
    return;
  }
  if (Date.now() - progressAsked < 1000) return;
  progressAsked = Date.now();
  try {
    const list = await getJSON("v1/jobs");
    jobProgress = Object.fromEntries(list.map((j) => [j.id, j.progress]));
    if (snap) renderJobs(snap);
  } catch {
    jobProgress = {};
  }
}

function renderJobs(s) {
  const box = $("#jobs");
  if (!s.jobs.length) {
    box.replaceChildren(el("p", { class: "muted" }, "no jobs"));
    return;
  }
  const now = Date.parse(s.time);
  box.replaceChildren(...s.jobs.map((j) => {
    const byParts = j.parts_total ? j.parts_done / j.parts_total : (j.state === "succeeded" ? 1 : 0);
    const frac = j.ended ? byParts : Math.max(byParts, jobProgress[j.id] || 0);
    const pct = Math.round(100 * frac);
    const start = Date.parse(j.submitted), end = j.ended ? Date.parse(j.ended) : now;
    let eta = "";
    if (!j.ended && frac > 0 && frac < 1) {
      eta = " · ETA " + duration(((end - start) / frac) * (1 - frac));
    }
    const e = el("div", { class: "job state-" + j.state, "data-job": j.id, "data-state": j.state, "data-progress": pct },
      el("div", {}, el("span", { class: "id" }, j.id), " ", el("span", { class: "muted small" }, "contact " + j.contact)),
      el("div", {}, el("span", { class: "badge " + j.state }, j.state), " ",
        el("span", { class: "muted", "data-timing": "" }, `${j.parts_done}/${j.parts_total} parts · ${pct}% · ${j.ended ? "took" : "running for"} ${duration(end - start)}${eta}`)),
      el("div", { class: "bar" }, el("div", { class: "fill", style: `width:${pct}%` })));
    const per = Object.entries(j.parts_by_node || {}).sort();
    if (per.length) e.append(el("div", { class: "per-node small" }, "parts per node: " + per.map(([n, c]) => `${n} ${c}`).join(" · ")));
    if (j.result) {
      const res = el("div", { class: "result small", "data-result": "" }, "result: ", el("code", {}, j.result + (j.result_cut ? " …" : "")));
      if (j.contact === s.node) res.append(" ", el("a", { href: "v1/jobs/" + encodeURIComponent(j.id), target: "_blank" }, "whole result"));
      else res.append(el("span", { class: "muted" }, ` (whole result: GET /v1/jobs/${j.id} on ${j.contact})`));
      e.append(res);
    }
    if (j.error) e.append(el("div", { class: "error" }, j.error));
    if (!j.ended && (j.state === "pending" || j.state === "running")) {
      e.append(el("div", {}, el("button", { type: "button", class: "cancel", "data-cancel": j.id, onclick: () => cancelJob(j.id) }, "cancel")));
    }
    return e;
  }));
}

// cancelJob sends DELETE /v1/jobs/{id} (any node forwards it to the
// contact). A browser's token cookie authenticates only GETs, so a node
// with a token needs it here, as a bearer header: asked for once, kept for
// the tab's session.
async function cancelJob(id) {
  const note = $("#jobs-note");
  const headers = {};
  const token = sessionStorage.getItem("troupe-token");
  if (token) headers.Authorization = "Bearer " + token;
  note.textContent = `cancelling ${id}…`;
  try {
    const st = await getJSON("v1/jobs/" + encodeURIComponent(id), { method: "DELETE", headers });
    note.textContent = `${id}: ${st.state}`;
  } catch (e) {
    if (e.status === 401) {
      $("#token-form").hidden = false;
      $("#token-form").dataset.retry = id;
      note.textContent = "the node refused: " + e.message;
      return;
    }
    note.textContent = `could not cancel ${id}: ${e.message}`;
  }
}

function renderAlerts(s) {
  const list = $("#alerts");
  const active = s.alerts.filter((a) => a.state === "active").length;
  $("#alerts-count").textContent = active ? `${active} active` : "none active";
  const state = $("#alerts-state").value, sev = $("#alerts-severity").value, text = $("#alerts-text").value.toLowerCase();
  const shown = s.alerts.filter((a) => (!state || (a.state || "event") === state) && (!sev || a.severity === sev) &&
    (!text || (a.message + " " + a.kind + " " + a.subject).toLowerCase().includes(text)));
  if (!shown.length) {
    list.replaceChildren(el("li", { class: "muted" }, s.alerts.length ? "no alert matches the filter" : "no alerts"));
    return;
  }
  // The server sends the active alerts first, then the newest.
  list.replaceChildren(...shown.map((a) => {
    const st = a.state || "event";
    const when = el("span", { class: "when" }, el("time", { dateTime: a.started }, clock(a.started)));
    if (a.ended) when.append(" – ", el("time", { dateTime: a.ended }, clock(a.ended)));
    const mark = st === "event" ? "" : el("span", { class: "badge " + st }, st);
    return el("li", { class: "alert " + st, "data-kind": a.kind, "data-subject": a.subject, "data-key": a.key, "data-state": st },
      when,
      el("span", {}, el("span", { class: "badge " + a.severity }, a.severity)),
      el("span", {}, mark, mark ? " " : "", a.message),
      el("span", { class: "from", title: "reported by " + a.reporters.join(", ") },
        "raised by " + a.raised_by + (a.resolved_by ? ", resolved by " + a.resolved_by : "")));
  }));
}

// The channel table sums each protocol's traffic by channel (stream,
// datagram, gossip) over the live members, or the node and protocol chosen
// for the charts.
const CHANNEL_KEYS = ["msgs_out", "bytes_out", "msgs_in", "bytes_in", "dropped"];

function renderChannels(s) {
  const node = $("#chart-node").value, proto = $("#chart-protocol").value, rows = new Map();
  for (const m of s.members) {
    if (blanked(m) || (node && m.name !== node)) continue;
    for (const p of m.status.protocols) {
      if (proto && p.name !== proto) continue;
      for (const c of p.channels || []) {
        const k = p.name + " " + c.channel;
        if (!rows.has(k)) rows.set(k, { name: p.name, channel: c.channel, msgs_out: 0, bytes_out: 0, msgs_in: 0, bytes_in: 0, dropped: 0 });
        const r = rows.get(k);
        for (const f of CHANNEL_KEYS) r[f] += c[f] || 0;
      }
    }
  }
  $("#channels tbody").replaceChildren(...[...rows.keys()].sort().map((k) => {
    const r = rows.get(k);
    return el("tr", { "data-protocol": r.name, "data-channel": r.channel }, el("td", {}, r.name), el("td", {}, r.channel),
      ...CHANNEL_KEYS.map((f) => el("td", { class: "num" }, f.startsWith("bytes") ? bytes(r[f]) : num(r[f]))));
  }));
}

function renderLogNodes(s) {
  const sel = $("#logs-node");
  const names = s.members.map((m) => m.name);
  const current = sel.value || s.node;
  if ([...sel.options].map((o) => o.value).join() === names.join()) return;
  sel.replaceChildren(...names.map((n) => el("option", { value: n, selected: n === current }, n)));
}

function render(s) {
  snap = s;
  $("#self").textContent = s.node;
  $("#leader").textContent = s.leader || "none";
  $("#term").textContent = s.term;
  const alive = s.members.filter((m) => m.state === "alive").length;
  const running = s.jobs.filter((j) => j.state === "running").length;
  $("#counts").textContent = `${alive}/${s.members.length} members alive · ${running} job${running === 1 ? "" : "s"} running`;
  renderMembers(s);
  renderRaft(s);
  renderJobs(s);
  loadJobProgress(s);
  renderAlerts(s);
  renderChannels(s);
  renderLogNodes(s);
}

// ---- keys and locks.

let kvAfter = "";

async function loadKeys(more) {
  const prefix = $("#kv-prefix").value;
  const note = $("#kv-note");
  const q = new URLSearchParams({ prefix, limit: "50" });
  if (more) q.set("after", kvAfter);
  try {
    const b = await getJSON("v1/keys?" + q);
    $("#kv-keys tbody").replaceChildren(...(b.keys.length ? b.keys.map((k) => el("tr", { "data-key": k.key },
      el("td", { class: "mono" }, k.key), el("td", { class: "num" }, bytes(k.size)),
      el("td", { class: "mono value" }, k.binary ? "(binary)" : k.value + (k.cut ? " …" : "")))) : [el("tr", {}, el("td", { colSpan: 3, class: "muted" }, "no keys"))]));
    $("#kv-locks tbody").replaceChildren(...(b.locks.length ? b.locks.map((l) => el("tr", { "data-lock": l.name },
      el("td", { class: "mono" }, l.name), el("td", {}, l.owner || "(anonymous)"), el("td", { class: "num mono", "data-token": l.token }, l.token),
      el("td", { class: "num" }, l.expires_in_ns ? duration(Number(l.expires_in_ns) / 1e6) : "–"))) : [el("tr", {}, el("td", { colSpan: 4, class: "muted" }, "no held locks"))]));
    kvAfter = b.keys.length ? b.keys[b.keys.length - 1].key : "";
    $("#kv-more").hidden = !b.more;
    note.textContent = `${b.node}'s replica at applied index ${b.applied}` + (prefix ? ` · prefix "${prefix}"` : "") + " · read-only";
  } catch (e) {
    note.textContent = e.status === 404 ? e.message : "could not list keys: " + e.message;
  }
}

// ---- logs.

let follower = null;

function logLine(l) {
  if (typeof l !== "object" || l === null) return String(l);
  const { time, level, message, node, ...rest } = l;
  const extra = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
  return [time || "", (level || "").padEnd(5), node ? `[${node}]` : "", message || "", extra].filter(Boolean).join(" ");
}

function logsQuery() {
  const q = new URLSearchParams();
  const level = $("#logs-level").value, search = $("#logs-search").value;
  if (level) q.set("level", level);
  if (search) q.set("q", search);
  return q;
}

function showLogs(body, append) {
  const pre = $("#logs");
  const text = body.lines.map(logLine).join("\n");
  if (append && pre.textContent) pre.textContent += text ? "\n" + text : "";
  else pre.textContent = text;
  // Keep the follower's view bounded.
  const lines = pre.textContent.split("\n");
  if (lines.length > 2000) pre.textContent = lines.slice(-2000).join("\n");
  pre.scrollTop = pre.scrollHeight;
}

async function fetchLogs(ev) {
  if (ev) ev.preventDefault();
  stopFollowing();
  const node = $("#logs-node").value;
  const note = $("#logs-note");
  if ($("#logs-follow").checked && !STATIC) return follow(node);
  note.textContent = "fetching…";
  const q = logsQuery();
  q.set("limit", "500");
  try {
    const body = await getJSON(`v1/logs/${encodeURIComponent(node)}?${q}`);
    note.textContent = `${body.lines.length} lines from ${body.node}` + (body.truncated ? " (older ones left out)" : "");
    showLogs(body, false);
  } catch (e) {
    note.textContent = "could not fetch logs: " + e.message;
  }
}

function follow(node) {
  const note = $("#logs-note");
  note.textContent = `following ${node}…`;
  $("#logs").textContent = "";
  let n = 0;
  follower = new EventSource(`v1/logs/${encodeURIComponent(node)}/follow?${logsQuery()}`);
  follower.addEventListener("lines", (ev) => {
    const body = parseExact(ev.data);
    n += body.lines.length;
    note.textContent = `following ${body.node}: ${n} lines`;
    note.dataset.following = body.node;
    showLogs(body, true);
  });
  follower.addEventListener("problem", (ev) => { note.textContent = `following ${node}: ` + JSON.parse(ev.data).error; });
  follower.onerror = () => { note.textContent = `following ${node}: disconnected, retrying`; };
}

function stopFollowing() {
  if (follower) follower.close();
  follower = null;
  delete $("#logs-note").dataset.following;
}

// ---- wiring.

function connect() {
  const conn = $("#conn");
  const es = new EventSource("v1/telemetry/events");
  es.addEventListener("snapshot", (ev) => {
    conn.textContent = "live";
    conn.className = "conn live";
    render(parseExact(ev.data));
  });
  es.addEventListener("problem", (ev) => {
    conn.textContent = "node busy: " + JSON.parse(ev.data).error;
    conn.className = "conn connecting";
  });
  es.onerror = () => {
    conn.textContent = "disconnected, retrying";
    conn.className = "conn down";
  };
}

$("#logs-form").addEventListener("submit", fetchLogs);
$("#logs-follow").addEventListener("change", () => fetchLogs());
$("#kv-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadKeys(false); });
$("#kv-more").addEventListener("click", () => loadKeys(true));
$("#token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("troupe-token", $("#token").value);
  $("#token").value = "";
  $("#token-form").hidden = true;
  if ($("#token-form").dataset.retry) cancelJob($("#token-form").dataset.retry);
});
$("#chart-window").addEventListener("change", loadHistory);
for (const id of ["#chart-node", "#chart-protocol"]) {
  $(id).addEventListener("change", () => { renderCharts(); if (snap) renderChannels(snap); });
}
for (const id of ["#members-q", "#members-state", "#members-size"]) {
  $(id).addEventListener("input", () => { membersPage = 0; if (snap) renderMembers(snap); });
}
$("#members-prev").addEventListener("click", () => { membersPage = Math.max(0, membersPage - 1); if (snap) renderMembers(snap); });
$("#members-next").addEventListener("click", () => { membersPage++; if (snap) renderMembers(snap); });
for (const id of ["#alerts-state", "#alerts-severity", "#alerts-text"]) {
  $(id).addEventListener("input", () => snap && renderAlerts(snap));
}

async function once() {
  const conn = $("#conn");
  try {
    render(await getJSON("v1/telemetry"));
    conn.textContent = "static";
    conn.className = "conn live";
  } catch (e) {
    conn.textContent = "could not fetch: " + e.message;
    conn.className = "conn down";
  }
  await Promise.all([loadHistory(), loadKeys(false), fetchLogs()]);
  document.documentElement.dataset.settled = "true";
}

if (STATIC) {
  once();
} else {
  // The streams open after the page has loaded, so the load completes
  // (a headless browser waiting for it is not held by them).
  window.addEventListener("load", () => setTimeout(() => {
    connect();
    loadHistory();
    loadKeys(false);
    setInterval(loadHistory, 3000);
  }, 0));
}
