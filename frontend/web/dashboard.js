// The dashboard's script: polls GET /dashboard/data every 500 ms and shows it — cards, the
// replica table, a rolling canvas chart of orders and latency with leader changes and
// reselections marked, and the list of those events. All times are the front-end's clock.
"use strict";

const POLL_MS = 500;
const COLORS = {
  rate: "#2f6fdf", failed: "#d23c3c", p50: "#2a9d4b", p99: "#8e44ad",
  leader: "#d23c3c", reselection: "#e08a00", grid: "#e3e6ea", text: "#555",
};

const $ = (id) => document.getElementById(id);
const replicaName = (id) => (id === null || id === undefined ? "none" : `replica ${id}`);
const clock = (ms) => new Date(ms).toLocaleTimeString();

function setText(id, text) {
  $(id).textContent = text;
}

function renderCards(d) {
  const leader = d.replicas.find((r) => r.status && r.status.id === d.leader);
  setText("leader", replicaName(d.leader));
  $("leader").dataset.leader = d.leader === null ? "" : String(d.leader);
  setText("term", leader ? `term ${leader.status.term}` : "no replica leads now");
  const selected = d.frontend.selected_replica;
  setText("selected", replicaName(selected));
  $("selected").dataset.selected = selected === null ? "" : String(selected);
  setText("reselections", `${d.frontend.reselections} reselection(s) since start`);
  const last = d.orders[d.orders.length - 1];
  setText("rate", last ? String(last.placed) : "–");
  setText("latency", last && last.p50_ms !== null
    ? `p50 ${last.p50_ms.toFixed(1)} ms · p99 ${last.p99_ms.toFixed(1)} ms` : "no orders in the last second");
  setText("catalog", d.catalog.health === "ok" ? "healthy" : d.catalog.health);
  setText("stock", d.catalog.toys === null ? "stock unknown" : `${d.catalog.toys} toys, ${d.catalog.units} units in stock`);
  const cache = d.frontend.cache;
  const reads = cache.hits + cache.misses;
  setText("hit-ratio", reads ? `${((100 * cache.hits) / reads).toFixed(1)} % hits` : "no reads yet");
  setText("cache", `${cache.entries}/${cache.capacity} entries · lease ${cache.lease_valid ? "held" : "not held"}`
    + ` · ${cache.invalidations} invalidations · ${cache.evictions} evictions`);
}

function renderReplicas(d) {
  const body = document.querySelector("#replicas tbody");
  body.replaceChildren(...d.replicas.map((replica) => {
    const row = document.createElement("tr");
    const s = replica.status;
    row.dataset.replica = String(replica.id);
    row.dataset.role = s ? s.role : "down";
    row.dataset.health = s ? s.health : replica.error;
    row.classList.toggle("leader", replica.id === d.leader);
    row.classList.toggle("down", !s);
    const star = replica.id === d.frontend.selected_replica ? " ★" : "";
    const cells = s
      ? [s.role, s.term, s.leader ?? "–", s.health === "ok" ? "can serve" : `cannot serve: ${s.health}`,
        s.last_log_index ?? "–", s.applied_index ?? "–", s.purged_index ?? "–", s.orders, s.digest.slice(0, 12)]
      : ["–", "–", "–", replica.error, "–", "–", "–", "–", "–"];
    [`${replica.id}${star}`, ...cells].forEach((value, i) => {
      const cell = row.insertCell();
      cell.textContent = String(value);
      if ([2, 5, 6, 7, 8].includes(i)) cell.className = "num";
      if (i === 4) cell.className = s && s.health === "ok" ? "ok" : "bad";
    });
    return row;
  }));
}

// Rounds a scale's top up to 1, 2 or 5 times a power of ten (so fifths are round numbers).
function niceTop(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((top) => top >= value);
}

function drawChart(d) {
  const canvas = $("chart");
  const g = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  const left = 48, right = 60, top = 18, bottom = 26;
  const plotW = W - left - right, plotH = H - top - bottom;
  const end = d.now_ms, span = 120000, start = end - span;
  const x = (ms) => left + ((ms - start) / span) * plotW;
  const rateTop = niceTop(Math.max(5, ...d.orders.map((s) => s.placed + s.failed)));
  const msTop = niceTop(Math.max(1, ...d.orders.map((s) => s.p99_ms || 0)));
  const yRate = (v) => top + plotH - (v / rateTop) * plotH;
  const yMs = (v) => top + plotH - (v / msTop) * plotH;

  g.clearRect(0, 0, W, H);
  g.font = "12px system-ui, sans-serif";
  g.strokeStyle = COLORS.grid;
  g.fillStyle = COLORS.text;
  g.lineWidth = 1;
  for (let i = 0; i <= 5; i++) {
    const y = top + (plotH * i) / 5;
    g.beginPath(); g.moveTo(left, y); g.lineTo(left + plotW, y); g.stroke();
    g.textAlign = "right";
    g.fillText(String(+(rateTop * (1 - i / 5)).toFixed(1)), left - 6, y + 4);
    g.textAlign = "left";
    g.fillText(`${+(msTop * (1 - i / 5)).toFixed(1)} ms`, left + plotW + 6, y + 4);
  }
  g.textAlign = "center";
  for (let back = 120; back >= 0; back -= 30) {
    g.fillText(back ? `−${back} s` : "now", x(end - back * 1000), H - 8);
  }

  // Orders per second as bars, failures stacked on top.
  const barW = Math.max(1, plotW / 120 - 1);
  for (const s of d.orders) {
    g.fillStyle = COLORS.rate;
    g.fillRect(x(s.start_ms), yRate(s.placed), barW, yRate(0) - yRate(s.placed));
    if (s.failed) {
      g.fillStyle = COLORS.failed;
      g.fillRect(x(s.start_ms), yRate(s.placed + s.failed), barW, yRate(0) - yRate(s.failed));
    }
  }
  // Latency lines, broken where a second placed no order.
  for (const key of ["p50", "p99"]) {
    g.strokeStyle = COLORS[key];
    g.lineWidth = 2;
    g.beginPath();
    let drawing = false;
    for (const s of d.orders) {
      const v = s[key + "_ms"];
      if (v === null) { drawing = false; continue; }
      const px = x(s.start_ms + 500), py = yMs(v);
      if (drawing) g.lineTo(px, py); else g.moveTo(px, py);
      drawing = true;
    }
    g.stroke();
  }
  // Events: a dashed line and a label each. Events come in bursts (no leader, reselection,
  // new leader within a second), so the labels take turns on three rows, and near the right
  // edge they are written to the left of their line.
  g.setLineDash([5, 4]);
  g.lineWidth = 2;
  d.events.filter((e) => e.at_ms >= start).forEach((e, i) => {
    const px = x(e.at_ms);
    g.strokeStyle = g.fillStyle = COLORS[e.kind];
    g.beginPath(); g.moveTo(px, top); g.lineTo(px, top + plotH); g.stroke();
    const label = e.kind === "leader" ? (e.replica === null ? "no leader" : `leader ${e.replica}`) : `selected ${e.replica}`;
    const leftward = px > left + plotW - 90;
    g.textAlign = leftward ? "right" : "left";
    g.fillText(label, px + (leftward ? -4 : 4), top + 12 + (i % 3) * 14);
  });
  g.setLineDash([]);
}

function describe(e) {
  if (e.kind === "reselection") return `the front-end selected ${replicaName(e.replica)}`;
  if (e.replica === null) return `no replica leads (term ${e.term ?? "?"})`;
  return `new Raft leader: ${replicaName(e.replica)} (term ${e.term})`;
}

function renderEvents(d) {
  const list = $("events");
  list.replaceChildren(...d.events.slice().reverse().map((e) => {
    const item = document.createElement("li");
    item.dataset.kind = e.kind;
    item.dataset.replica = e.replica === null ? "" : String(e.replica);
    item.className = e.kind;
    item.textContent = `${clock(e.at_ms)} ${describe(e)}`;
    return item;
  }));
  if (!d.events.length) {
    const item = document.createElement("li");
    item.className = "muted";
    item.textContent = "No leader change or reselection in the last two minutes.";
    list.append(item);
  }
}

let polling = false;

async function poll() {
  if (polling) return;
  polling = true;
  try {
    const answer = await fetch("/dashboard/data");
    const json = await answer.json();
    if (!answer.ok || !json.data) throw new Error(json.error ? json.error.message : answer.status);
    const d = json.data;
    window.dashboardData = d; // the last answer, for the browser's console (and the tests)
    renderCards(d);
    renderReplicas(d);
    drawChart(d);
    renderEvents(d);
    setText("updated", `Updated ${clock(d.now_ms)} (front-end clock), every ${POLL_MS} ms.`);
    $("updated").className = "muted";
  } catch (err) {
    setText("updated", `The front-end does not answer (${err.message}); retrying.`);
    $("updated").className = "error";
  } finally {
    polling = false;
  }
}

poll();
setInterval(poll, POLL_MS);
