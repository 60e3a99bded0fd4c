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
// message counts once per subscriber of its chat (a duplicate or a delivery
// to another chat's subscriber does not count, and is counted apart), and
// the percentiles are over every delivery expected, a lost one ranking last
// (null where a percentile falls on a lost one). Prints one line
// "BENCH_JSON {...}" (milliseconds) for the bench driver, with this client's
// own longest stalls (its event loop, its garbage collector), the wall
// clock at which the slowest delivery was sent, and when each delivery
// slower than 10 ms (e's target for p99) was sent and how long it took.
"use strict";

const fs = require("fs");
const http = require("http");
const { PerformanceObserver } = require("perf_hooks");

let cfg; // read by main
let WebSocket; // required by main: the tracker below needs no module
let agent;
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

const postLatencies = [];
const out = {
  subscribers: 0, subscribers_open: 0, subscribe_errors: 0, subscribe_error_sample: "",
  sent: 0, post_ok: 0, post_errors: 0, post_error_sample: "", expected: 0, delivered: 0,
  unexpected: 0, duplicates: 0, misrouted: 0, max_in_flight: 0,
  // This client's own stalls, and the slowest delivery's place in time, so the
  // report can tell them from the server's and set them beside machine pauses.
  loop_max_gap_ms: 0, gc_max_ms: 0, slowest_ms: 0, slowest_sent_at: 0,
  slow: [], // [sent at (s since the epoch), ms] of the deliveries over SLOW_MS (the first SLOW_KEEP)
  slow_total: 0, // every delivery over SLOW_MS
};
const SLOW_MS = 10; // e's target for p99
const SLOW_KEEP = 50000;
let inFlight = 0;

// The deliveries: each message once to each subscriber of its chat. A
// message that arrives twice at one subscriber counts once (and as a
// duplicate), one that arrives at a subscriber of another chat not at all
// (misrouted), so neither can stand in for a lost one. The percentiles are
// over every delivery expected: one that never came ranks after the slowest
// that did, so the p99 of a run that lost more than 1 % is not a number.
class Tracker {
  constructor(o) {
    this.out = o;
    this.sent = new Map(); // seq -> {t0, wall, chat, seen: one flag per subscriber of the chat}
    this.latencies = [];
  }

  send(seq, chatId, subscribers, t0, wall) {
    this.sent.set(seq, { t0, wall, chat: chatId, seen: new Uint8Array(subscribers) });
    this.out.expected += subscribers;
  }

  // An event at subscriber number sub of chat chatId, at time t; the latency, or null.
  arrive(chatId, sub, ev, t) {
    const o = this.out;
    if (ev.type !== "message.created" || !ev.data || typeof ev.data.content !== "string") return null;
    const m = /^bench-e (\d+) /.exec(ev.data.content);
    if (!m) return null;
    const s = this.sent.get(Number(m[1]));
    if (!s) {
      o.unexpected++;
      return null;
    }
    if (s.chat !== chatId || ev.chat_id !== chatId || ev.data.chat_id !== chatId) {
      o.misrouted++;
      return null;
    }
    if (s.seen[sub]) {
      o.duplicates++;
      return null;
    }
    s.seen[sub] = 1;
    o.delivered++;
    const ms = t - s.t0;
    this.latencies.push(ms);
    if (ms > SLOW_MS) {
      o.slow_total++;
      if (o.slow.length < SLOW_KEEP) o.slow.push([s.wall / 1000, Math.round(ms * 1000) / 1000]);
    }
    if (ms > o.slowest_ms) {
      o.slowest_ms = ms;
      o.slowest_sent_at = s.wall / 1000; // seconds since the epoch
    }
    return ms;
  }

  // p50, p99 and max over every expected delivery; null where the rank is a lost one.
  summary() {
    const d = this.latencies.slice().sort((a, b) => a - b);
    const n = this.out.expected;
    const at = (p) => {
      if (n === 0) return 0;
      const i = Math.min(n - 1, Math.round((p / 100) * (n - 1)));
      return i < d.length ? d[i] : null;
    };
    return { lost: n - this.out.delivered, p50_ms: at(50), p99_ms: at(99), max_ms: at(100) };
  }
}

const tracker = new Tracker(out);

function subscribe(chat, token, sub) {
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
    ws.on("message", (data) => onEvent(data, chat.id, sub));
    setTimeout(() => settle(false, "timeout"), 10000);
  });
}

function onEvent(data, chatId, sub) {
  const t = nowMs();
  let ev;
  try {
    ev = JSON.parse(data.toString());
  } catch (e) {
    out.unexpected++;
    return;
  }
  tracker.arrive(chatId, sub, ev, t);
}

function post(chat, seq) {
  const body = JSON.stringify({ content: `bench-e ${seq} is my order on its way?` });
  const t0 = nowMs();
  tracker.send(seq, chat.id, chat.sub_tokens.length, t0, Date.now());
  out.sent++;
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
  for (const chat of cfg.chats) chat.sub_tokens.forEach((token, sub) => jobs.push([chat, token, sub]));
  out.subscribers = jobs.length;
  const sockets = [];
  // A few at a time: each subscription is an authorisation subrequest to the workers.
  for (let i = 0; i < jobs.length; i += 50) {
    const batch = await Promise.all(jobs.slice(i, i + 50).map(([c, t, n]) => subscribe(c, t, n)));
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
  cfg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  WebSocket = require("ws");
  agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) out.gc_max_ms = Math.max(out.gc_max_ms, e.duration);
  }).observe({ entryTypes: ["gc"] });
  const sockets = await openAll();
  await new Promise((r) => setTimeout(r, 500));
  const elapsed = await sendAtRate();
  await waitDrained(5000);
  postLatencies.sort((a, b) => a - b);
  const r3 = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
  const sum = tracker.summary();
  Object.assign(out, {
    rate_target: cfg.rate,
    rate_achieved: r3(out.sent / (elapsed / 1000)),
    lost: sum.lost,
    p50_ms: r3(sum.p50_ms), p99_ms: r3(sum.p99_ms), max_ms: r3(sum.max_ms),
    post_p50_ms: r3(pct(postLatencies, 50)), post_p99_ms: r3(pct(postLatencies, 99)),
    loop_max_gap_ms: r3(out.loop_max_gap_ms), gc_max_ms: r3(out.gc_max_ms), slowest_ms: r3(out.slowest_ms),
  });
  for (const ws of sockets) ws.terminate();
  agent.destroy();
  process.stdout.write(`BENCH_JSON ${JSON.stringify(out)}\n`);
  process.exit(0);
}

module.exports = { Tracker };

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`deliver.js: ${err.stack || err}\n`);
    process.exit(1);
  });
}
