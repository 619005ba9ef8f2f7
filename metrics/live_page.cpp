// The admin port's live page ("/"): the essentials of a running swarm, drawn in
// the browser from /metrics and /debug/agents every second. One self-contained
// HTML file: plain SVG, no library, no request beyond this admin port.

#include "metrics/live_page.hpp"

namespace swarm::metrics {

std::string_view live_page_html() noexcept {
  return R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Swarm — live</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:16px;background:#fafafa;color:#222}
h1{font-size:20px;margin:0 0 4px} .sub{color:#666;margin-bottom:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px}
.card h2{font-size:13px;font-weight:600;margin:0 0 4px;color:#555}
.value{font-size:24px;font-weight:600} svg{width:100%;height:60px;display:block}
path{fill:none;stroke:#2a6fdb;stroke-width:1.5} table{border-collapse:collapse;width:100%;font-size:12px}
td,th{text-align:left;padding:2px 6px;border-bottom:1px solid #eee} button{margin-right:8px}
#error{color:#b00}
</style></head><body>
<h1>Swarm — live</h1>
<div class="sub"><span id="instance"></span> · up <span id="uptime">?</span> ·
<a href="/metrics">/metrics</a> · <a href="/debug/agents">/debug/agents</a> · <a href="/debug/topics">/debug/topics</a> ·
<a href="/index.txt">all pages</a> <span id="error"></span></div>
<p><button onclick="window.open('/debug/flamegraph?seconds=5')">CPU flamegraph (5 s)</button>
<button onclick="window.open('/debug/flamegraph?seconds=5&amp;type=logical')">Handler time by agent type (5 s)</button></p>
<div class="grid">
<div class="card"><h2>Agents live</h2><div class="value" id="v-agents">–</div><svg id="c-agents"></svg></div>
<div class="card"><h2>Messages handled /s</h2><div class="value" id="v-messages">–</div><svg id="c-messages"></svg></div>
<div class="card"><h2>Dropped /s (accepted, then lost)</h2><div class="value" id="v-drops">–</div><svg id="c-drops"></svg><table id="t-drops"></table></div>
<div class="card"><h2>Worker utilization</h2><div class="value" id="v-workers">–</div><svg id="c-workers"></svg><table id="t-workers"></table></div>
<div class="card"><h2>Queueing delay p99</h2><div class="value" id="v-queueing">–</div><svg id="c-queueing"></svg></div>
<div class="card"><h2>Handler time p99</h2><div class="value" id="v-handler">–</div><svg id="c-handler"></svg></div>
<div class="card"><h2>Ask round trip p99</h2><div class="value" id="v-ask">–</div><svg id="c-ask"></svg></div>
<div class="card"><h2>Deepest mailboxes</h2><table id="t-mailboxes"></table></div>
<div class="card"><h2>Slowest consumers</h2><table id="t-consumers"></table></div>
</div>
<script>
"use strict";
// Rates and p99s compare the newest scrape with the oldest of the last WINDOW
// seconds, timed by the server's own uptime, not the browser's clock.
const HISTORY = 120, WINDOW = 10, series = {}, snapshots = [];
document.getElementById("instance").textContent = location.host;

// Prometheus text format: [{name, labels, value}]
function parse(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({name: m[1], labels, value: Number(m[4])});
  }
  return out;
}
const sum = (rows, name, filter = () => true) =>
  rows.filter(r => r.name === name && filter(r.labels)).reduce((a, r) => a + r.value, 0);
function groups(rows, name, label) {
  const g = {};
  for (const r of rows) if (r.name === name) g[r.labels[label]] = (g[r.labels[label]] || 0) + r.value;
  return g;
}
// The 0.99 quantile of the observations between two scrapes, from cumulative buckets.
function p99(rows, old, name) {
  const now = groups(rows, name + "_bucket", "le"), before = groups(old, name + "_bucket", "le");
  const buckets = Object.keys(now).map(le => [le === "+Inf" ? Infinity : Number(le), now[le] - (before[le] || 0)])
                                  .sort((a, b) => a[0] - b[0]);
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (total <= 0) return null;
  for (const [le, count] of buckets) if (count >= 0.99 * total) return le;
  return null;
}
function push(id, v) {
  (series[id] = series[id] || []).push(v);
  if (series[id].length > HISTORY) series[id].shift();
  const data = series[id].filter(x => x !== null), svg = document.getElementById("c-" + id);
  if (!svg || !data.length) return;
  const max = Math.max(...data, 1e-12), n = series[id].length, w = 300, h = 60;
  let d = "";
  series[id].forEach((x, i) => {
    if (x === null) return;
    d += (d ? "L" : "M") + (n === 1 ? w : (i / (n - 1)) * w).toFixed(1) + "," + (h - 2 - (x / max) * (h - 4)).toFixed(1);
  });
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.innerHTML = `<path d="${d}"></path>`;
  svg.dataset.points = data.length;
}
const fmt = v => v === null ? "–" : Number.isInteger(v) ? String(v) : v >= 1e6 ? (v / 1e6).toFixed(2) + " M" : v >= 1e3 ? (v / 1e3).toFixed(1) + " k" : v.toFixed(v < 10 ? 2 : 0);
const dur = s => s === null ? "no samples" : s < 1e-3 ? (s * 1e6).toFixed(0) + " µs" : s < 1 ? (s * 1e3).toFixed(1) + " ms" : s.toFixed(2) + " s";
function table(id, head, rows) {
  document.getElementById(id).innerHTML = "<tr>" + head.map(h => `<th>${h}</th>`).join("") + "</tr>" +
    rows.map(r => "<tr>" + r.map(c => `<td>${String(c).replace(/</g, "&lt;")}</td>`).join("") + "</tr>").join("");
}
function set(id, text) { document.getElementById("v-" + id).textContent = text; }

async function tick() {
  try {
    const [metrics, agents] = await Promise.all([fetch("/metrics").then(r => r.text()),
                                                 fetch("/debug/agents?top=10").then(r => r.json())]);
    const rows = parse(metrics), now = sum(rows, "swarm_uptime_seconds");
    snapshots.push({time: now, rows});
    while (snapshots.length > 2 && (now - snapshots[1].time >= WINDOW || snapshots.length > 1000)) snapshots.shift();
    const dt = now - snapshots[0].time, old = dt >= 0.2 ? snapshots[0].rows : null;
    const rate = (name, f) => old ? (sum(rows, name, f) - sum(old, name, f)) / dt : null;
    document.getElementById("uptime").textContent = dur(sum(rows, "swarm_uptime_seconds"));
    const live = sum(rows, "swarm_agents_live");
    set("agents", fmt(live)); push("agents", live);
    const messages = rate("swarm_worker_messages_total");
    set("messages", fmt(messages)); push("messages", messages);
    const drops = rate("swarm_messages_dropped_total");
    set("drops", fmt(drops)); push("drops", drops);
    const byReason = groups(rows, "swarm_messages_dropped_total", "reason"), oldReason = old ? groups(old, "swarm_messages_dropped_total", "reason") : {};
    table("t-drops", ["reason", "total", "/s"], Object.keys(byReason).map(r =>
      [r, byReason[r], old ? fmt((byReason[r] - (oldReason[r] || 0)) / dt) : "–"]));
    const busy = groups(rows, "swarm_worker_busy_seconds_total", "worker"), oldBusy = old ? groups(old, "swarm_worker_busy_seconds_total", "worker") : null;
    const util = oldBusy ? Object.keys(busy).map(w => [w, Math.min(1, (busy[w] - oldBusy[w]) / dt)]) : [];
    const avg = util.length ? util.reduce((a, u) => a + u[1], 0) / util.length : null;
    set("workers", avg === null ? "–" : (avg * 100).toFixed(0) + "%"); push("workers", avg);
    table("t-workers", ["worker", "busy"], util.map(([w, u]) => [w, (u * 100).toFixed(0) + "%"]));
    for (const [id, name] of [["queueing", "swarm_queueing_delay_seconds"], ["handler", "swarm_handler_duration_seconds"],
                              ["ask", "swarm_ask_duration_seconds"]]) {
      const q = old ? p99(rows, old, name) : null;
      set(id, dur(q)); push(id, q);
    }
    table("t-mailboxes", ["agent", "type", "depth", "capacity"],
          (agents.deepest_mailboxes || []).map(a => [a.agent, a.type, a.mailbox_depth, a.mailbox_capacity]));
    table("t-consumers", ["agent", "type", "queueing delay", "depth"],
          (agents.slowest_consumers || []).map(a => [a.agent, a.type, dur(a.queueing_delay_seconds), a.mailbox_depth]));
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = "· cannot reach the admin port: " + e;
  }
}
tick();
setInterval(tick, 1000);
</script></body></html>
)HTML";
}

}  // namespace swarm::metrics
