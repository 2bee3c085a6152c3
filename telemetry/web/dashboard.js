// Troupe's dashboard: renders the node's telemetry snapshot, which the
// server pushes as server-sent events on v1/telemetry/events.
"use strict";

const $ = (sel) => document.querySelector(sel);

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
  if (!n) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function rate(x) {
  if (x >= 1000) return (x / 1000).toFixed(1) + "k";
  return x >= 10 ? x.toFixed(0) : x.toFixed(1);
}

function clock(t) {
  return new Date(t).toLocaleTimeString([], { hour12: false });
}

function meter(frac, text) {
  const pct = Math.max(0, Math.min(1, frac)) * 100;
  return el("span", {}, el("span", { class: "meter" }, el("div", { style: `width:${pct.toFixed(0)}%` })), text);
}

function renderMembers(s) {
  const body = $("#members tbody");
  body.replaceChildren();
  const snapTime = new Date(s.time);
  for (const m of s.members) {
    const st = m.status;
    const sum = (f) => st ? st.protocols.reduce((a, p) => a + f(p), 0) : 0;
    const name = el("td", {}, m.name);
    if (m.name === s.leader) name.append(el("span", { class: "badge leader", title: "leader" }, "leader"));
    const age = m.last_seen ? ((snapTime - new Date(m.last_seen)) / 1000).toFixed(1) + " s ago" : "never";
    const cls = ["state-" + m.state];
    if (m.stale) cls.push("stale");
    body.append(el("tr", { class: cls.join(" "), "data-member": m.name, "data-state": m.state },
      name,
      el("td", {}, el("span", { class: "badge " + m.state }, m.state)),
      el("td", { class: "num" }, st ? meter(st.cpu_percent / (100 * Math.max(1, st.num_cpu)), st.cpu_percent.toFixed(0) + "%") : "–"),
      el("td", { class: "num" }, st ? bytes(st.memory_bytes) : "–"),
      el("td", { class: "num" }, st ? st.goroutines : "–"),
      el("td", { class: "num" }, st ? sum((p) => p.mailbox_depth) : "–"),
      el("td", { class: "num" }, st ? sum((p) => p.restarts) : "–"),
      el("td", { class: "num" }, st ? rate(sum((p) => p.msgs_in_per_sec)) : "–"),
      el("td", { class: "num age" }, age + (m.stale ? " (stale)" : ""))));
  }
}

function renderJobs(s) {
  const box = $("#jobs");
  if (!s.jobs.length) {
    box.replaceChildren(el("p", { class: "muted" }, "no jobs"));
    return;
  }
  box.replaceChildren(...s.jobs.map((j) => {
    const pct = j.parts_total ? Math.round((100 * j.parts_done) / j.parts_total) : (j.state === "succeeded" ? 100 : 0);
    const e = el("div", { class: "job state-" + j.state, "data-job": j.id, "data-state": j.state, "data-progress": pct },
      el("div", {}, el("span", { class: "id" }, j.id), " ", el("span", { class: "muted small" }, "contact " + j.contact)),
      el("div", {}, el("span", { class: "badge " + j.state }, j.state), " ",
        el("span", { class: "muted" }, `${j.parts_done}/${j.parts_total} parts · ${pct}%`)),
      el("div", { class: "bar" }, el("div", { class: "fill", style: `width:${pct}%` })));
    if (j.error) e.append(el("div", { class: "error" }, j.error));
    return e;
  }));
}

function sparkline(points) {
  const w = 180, h = 36, n = points.length;
  const max = Math.max(1, ...points);
  const xy = points.map((v, i) => [n > 1 ? (i / (n - 1)) * w : w, h - 2 - (v / max) * (h - 4)]);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  if (n) {
    const line = xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
    const area = document.createElementNS(ns, "polygon");
    area.setAttribute("points", `${xy[0][0].toFixed(1)},${h} ${line} ${w},${h}`);
    const pl = document.createElementNS(ns, "polyline");
    pl.setAttribute("points", line);
    svg.append(area, pl);
  }
  return svg;
}

function renderRates(s) {
  $("#rates").replaceChildren(...s.rates.map((r) => {
    const last = r.points.length ? r.points[r.points.length - 1] : 0;
    return el("div", { class: "rate", "data-protocol": r.protocol },
      el("span", { class: "name" }, r.protocol), el("span", { class: "value" }, rate(last) + "/s"), sparkline(r.points));
  }));
}

function renderAlerts(s) {
  const list = $("#alerts");
  if (!s.alerts.length) {
    list.replaceChildren(el("li", { class: "muted" }, "no alerts"));
    return;
  }
  // The server sends the active alerts first, then the newest.
  const active = s.alerts.filter((a) => a.state === "active").length;
  $("#alerts-count").textContent = active ? `${active} active` : "none active";
  list.replaceChildren(...s.alerts.map((a) => {
    const state = a.state || "event";
    const when = el("span", { class: "when" }, el("time", { dateTime: a.started }, clock(a.started)));
    if (a.ended) when.append(" – ", el("time", { dateTime: a.ended }, clock(a.ended)));
    const mark = state === "event" ? "" : el("span", { class: "badge " + state }, state);
    return el("li", { class: "alert " + state, "data-kind": a.kind, "data-subject": a.subject, "data-key": a.key, "data-state": state },
      when,
      el("span", {}, el("span", { class: "badge " + a.severity }, a.severity)),
      el("span", {}, mark, mark ? " " : "", a.message),
      el("span", { class: "from", title: "reported by " + a.reporters.join(", ") },
        "raised by " + a.raised_by + (a.resolved_by ? ", resolved by " + a.resolved_by : "")));
  }));
}

function renderLogNodes(s) {
  const sel = $("#logs-node");
  const live = s.members.filter((m) => m.state === "alive" || m.state === "suspect").map((m) => m.name);
  const current = sel.value || s.node;
  if ([...sel.options].map((o) => o.value).join() === live.join()) return;
  sel.replaceChildren(...live.map((n) => el("option", { value: n, selected: n === current }, n)));
}

function render(s) {
  $("#self").textContent = s.node;
  $("#leader").textContent = s.leader || "none";
  $("#term").textContent = s.term;
  const alive = s.members.filter((m) => m.state === "alive").length;
  const running = s.jobs.filter((j) => j.state === "running").length;
  $("#counts").textContent = `${alive}/${s.members.length} members alive · ${running} job${running === 1 ? "" : "s"} running`;
  renderMembers(s);
  renderJobs(s);
  renderRates(s);
  renderAlerts(s);
  renderLogNodes(s);
}

function connect() {
  const conn = $("#conn");
  const es = new EventSource("v1/telemetry/events");
  es.addEventListener("snapshot", (ev) => {
    conn.textContent = "live";
    conn.className = "conn live";
    render(JSON.parse(ev.data));
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

async function fetchLogs(ev) {
  ev.preventDefault();
  const node = $("#logs-node").value, level = $("#logs-level").value;
  const note = $("#logs-note");
  note.textContent = "fetching…";
  try {
    const resp = await fetch(`v1/logs/${encodeURIComponent(node)}?limit=200&level=${level}`);
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error);
    note.textContent = `${body.lines.length} lines from ${body.node}` + (body.truncated ? " (older ones left out)" : "");
    $("#logs").textContent = body.lines.map((l) => {
      if (typeof l !== "object") return String(l);
      const { time, level, message, node, ...rest } = l;
      const extra = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
      return [time || "", (level || "").padEnd(5), message || "", extra].join(" ").trim();
    }).join("\n");
  } catch (e) {
    note.textContent = "could not fetch logs: " + e.message;
  }
}

$("#logs-form").addEventListener("submit", fetchLogs);
connect();
