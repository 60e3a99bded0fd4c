// nchan-subscriber.js - subscribe the way a browser page does, with Nchan's own
// NchanSubscriber (npm "nchan"), under Node.
//
//   node nchan-subscriber.js URL websocket|eventsource COUNT
//
// Prints "connected" once subscribed, then one line per message (the event
// JSON), and exits 0 after COUNT messages (1 after 20 s without them).

// NchanSubscriber expects a browser: a window with event listeners, WebSocket
// and EventSource. Node 20 has none of them; give it the usual libraries.
globalThis.window = globalThis;
globalThis.addEventListener = () => {};
globalThis.removeEventListener = () => {};
globalThis.WebSocket = require("ws");
globalThis.EventSource = require("eventsource").EventSource;

const NchanSubscriber = require("nchan");

const [url, transport, count] = process.argv.slice(2);
let received = 0;
const sub = new NchanSubscriber(url, { subscriber: transport, reconnect: false });

sub.on("connect", () => console.log("connected"));
sub.on("message", (message) => {
  console.log(message);
  if (++received >= Number(count)) {
    sub.stop();
    process.exit(0);
  }
});
sub.on("error", (err, desc) => console.error("error", desc || err));
sub.start();
setTimeout(() => {
  console.error(`timeout after ${received} messages`);
  process.exit(1);
}, 20000);
