// deliver.js - workload e of `tools/carebot bench`: publish -> deliver latency.
//
//   node deliver.js CONFIG.json
//
// CONFIG: {"port", "api_port"? (where to POST, default port: a development
// hook), "rate" (messages/s), "duration" (s), "chats": [{"id",
// "post_token", "sub_tokens": [...]}]}. It opens one WebSocket subscriber per
// sub_token on ws://127.0.0.1:PORT/ws/chat/ID?token=..., waits until all are
// open, then POSTs /api/chats/ID/messages as each chat's customer, round robin
// over the chats, open loop at a fixed rate (a message is sent when it is
// due, whether or not earlier ones were answered). Each message's content
// carries its sequence number; the latency of a delivery is the time from
// the moment its POST was sent to its arrival on one subscriber, so every
// message counts once per subscriber of its chat. Prints one line
// "BENCH_JSON {...}" (milliseconds) for the bench driver, with this client's
// own longest stalls (its event loop, its garbage collector), the wall
// clock at which the slowest delivery was sent, and when each delivery
// slower than 10 ms (e's target for p99) was sent and how long it took.
"use strict";

const fs = require("fs");
const http = require("http");
const { PerformanceObserver } = require("perf_hooks");
const WebSocket = require("ws");

const cfg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

const sent = new Map(); // seq -> {t0, expected, got}
const deliveries = [];
const postLatencies = [];
const out = {
  subscribers: 0, subscribers_open: 0, subscribe_errors: 0, subscribe_error_sample: "",
  sent: 0, post_ok: 0, post_errors: 0, post_error_sample: "", expected: 0, delivered: 0,
  unexpected: 0, max_in_flight: 0,
  // This client's own stalls, and the slowest delivery's place in time, so the
  // report can tell them from the server's and set them beside machine pauses.
  loop_max_gap_ms: 0, gc_max_ms: 0, slowest_ms: 0, slowest_sent_at: 0,
  slow: [], // [sent at (s since the epoch), ms] of the deliveries over SLOW_MS (the first SLOW_KEEP)
  slow_total: 0, // every delivery over SLOW_MS
};
const SLOW_MS = 10; // e's target for p99
const SLOW_KEEP = 50000;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) out.gc_max_ms = Math.max(out.gc_max_ms, e.duration);
}).observe({ entryTypes: ["gc"] });
let inFlight = 0;

function subscribe(chat, token) {
  return new Promise((resolve) => {
    const url = `ws://127.0.0.1:${cfg.port}/ws/chat/${chat.id}?token=${token}`;
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let settled = false;
    const settle = (ok, why) => {
      if (settled) return;
      settled = true;
      if (ok) out.subscribers_open++;
      else {
        out.subscribe_errors++;
        out.subscribe_error_sample = out.subscribe_error_sample || why;
      }
      resolve(ok ? ws : null);
    };
    ws.on("open", () => settle(true));
    ws.on("unexpected-response", (req, res) => settle(false, `HTTP ${res.statusCode}`));
    ws.on("error", (err) => settle(false, String(err.message || err)));
    ws.on("message", (data) => onEvent(data));
    setTimeout(() => settle(false, "timeout"), 10000);
  });
}

function onEvent(data) {
  const t = nowMs();
  let ev;
  try {
    ev = JSON.parse(data.toString());
  } catch (e) {
    out.unexpected++;
    return;
  }
  if (ev.type !== "message.created" || !ev.data || typeof ev.data.content !== "string") return;
  const m = /^bench-e (\d+) /.exec(ev.data.content);
  if (!m) return;
  const s = sent.get(Number(m[1]));
  if (!s) {
    out.unexpected++;
    return;
  }
  s.got++;
  out.delivered++;
  deliveries.push(t - s.t0);
  if (t - s.t0 > SLOW_MS) {
    out.slow_total++;
    if (out.slow.length < SLOW_KEEP) out.slow.push([s.wall / 1000, Math.round((t - s.t0) * 1000) / 1000]);
  }
  if (t - s.t0 > out.slowest_ms) {
    out.slowest_ms = t - s.t0;
    out.slowest_sent_at = s.wall / 1000; // seconds since the epoch
  }
}

function post(chat, seq) {
  const body = JSON.stringify({ content: `bench-e ${seq} is my order on its way?` });
  const t0 = nowMs();
  sent.set(seq, { t0, wall: Date.now(), expected: chat.sub_tokens.length, got: 0 });
  out.sent++;
  out.expected += chat.sub_tokens.length;
  inFlight++;
  out.max_in_flight = Math.max(out.max_in_flight, inFlight);
  const req = http.request({
    host: "127.0.0.1", port: cfg.api_port || cfg.port, method: "POST", agent,
    path: `/api/chats/${chat.id}/messages`,
    headers: {
      "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body),
      Authorization: `Bearer ${chat.post_token}`,
    },
  }, (res) => {
    res.resume();
    res.on("end", () => {
      inFlight--;
      if (res.statusCode === 201) {
        out.post_ok++;
        postLatencies.push(nowMs() - t0);
      } else {
        out.post_errors++;
        out.post_error_sample = out.post_error_sample || `HTTP ${res.statusCode}`;
      }
    });
  });
  req.on("error", (err) => {
    inFlight--;
    out.post_errors++;
    out.post_error_sample = out.post_error_sample || String(err.message || err);
  });
  req.end(body);
}

function pct(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))];
}

async function openAll() {
  const jobs = [];
  for (const chat of cfg.chats) for (const token of chat.sub_tokens) jobs.push([chat, token]);
  out.subscribers = jobs.length;
  const sockets = [];
  // A few at a time: each subscription is an authorisation subrequest to the workers.
  for (let i = 0; i < jobs.length; i += 50) {
    const batch = await Promise.all(jobs.slice(i, i + 50).map(([c, t]) => subscribe(c, t)));
    sockets.push(...batch.filter(Boolean));
  }
  return sockets;
}

function sendAtRate() {
  return new Promise((resolve) => {
    const start = nowMs();
    const total = Math.max(1, Math.round(cfg.rate * cfg.duration));
    let seq = 0;
    let last = start;
    const tick = () => {
      const now = nowMs();
      out.loop_max_gap_ms = Math.max(out.loop_max_gap_ms, now - last);
      last = now;
      const due = Math.min(total, Math.floor(((nowMs() - start) / 1000) * cfg.rate) + 1);
      while (seq < due) {
        post(cfg.chats[seq % cfg.chats.length], seq);
        seq++;
      }
      if (seq >= total) {
        clearInterval(timer);
        resolve(nowMs() - start);
      }
    };
    const timer = setInterval(tick, 1);
    tick();
  });
}

function waitDrained(graceMs) {
  return new Promise((resolve) => {
    const until = nowMs() + graceMs;
    const check = () => {
      if ((out.delivered >= out.expected && inFlight === 0) || nowMs() > until) resolve();
      else setTimeout(check, 20);
    };
    check();
  });
}

async function main() {
  const sockets = await openAll();
  await new Promise((r) => setTimeout(r, 500));
  const elapsed = await sendAtRate();
  await waitDrained(5000);
  deliveries.sort((a, b) => a - b);
  postLatencies.sort((a, b) => a - b);
  const r3 = (x) => Math.round(x * 1000) / 1000;
  Object.assign(out, {
    rate_target: cfg.rate,
    rate_achieved: r3(out.sent / (elapsed / 1000)),
    lost: out.expected - out.delivered,
    p50_ms: r3(pct(deliveries, 50)), p99_ms: r3(pct(deliveries, 99)),
    max_ms: r3(deliveries.length ? deliveries[deliveries.length - 1] : 0),
    post_p50_ms: r3(pct(postLatencies, 50)), post_p99_ms: r3(pct(postLatencies, 99)),
    loop_max_gap_ms: r3(out.loop_max_gap_ms), gc_max_ms: r3(out.gc_max_ms), slowest_ms: r3(out.slowest_ms),
  });
  for (const ws of sockets) ws.terminate();
  agent.destroy();
  process.stdout.write(`BENCH_JSON ${JSON.stringify(out)}\n`);
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`deliver.js: ${err.stack || err}\n`);
  process.exit(1);
});
