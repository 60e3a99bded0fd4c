"""Real subscribers for the real-time tests: EventSource, WebSocket, long-poll.

Each runs in a thread, collects the JSON events it receives, and says when it
is subscribed (EventSource: Nchan's ": hi" comment; WebSocket: the finished
handshake; long-poll: it starts from the channel's oldest buffered message,
so it needs no readiness at all).
"""

import http.client
import json
import socket
import threading
import time
import urllib.parse

import websocket


class Subscriber:
    transport = None

    def __init__(self, base_url, channel, token=None, cookie=None, bearer=None, last_event_id=None,
                 origin=None, other_cookies=None):
        self.url = f"{base_url}/ws/{channel}"
        if token is not None:
            self.url += "?token=" + urllib.parse.quote(token)
        self.headers = {}
        if cookie is not None:  # other_cookies: "a=1; b=2", sent before it, as a browser may
            self.headers["Cookie"] = "; ".join(filter(None, [other_cookies, f"carebot_token={cookie}"]))
        if bearer is not None:
            self.headers["Authorization"] = f"Bearer {bearer}"
        self.origin = origin    # the page a browser would name; None: none sent
        if origin is not None:
            self.headers["Origin"] = origin
        self.last_event_id = last_event_id
        self.events = []        # (message id or None, decoded JSON)
        self.status = None      # HTTP status of the subscription
        self.error_body = None
        self.ready = threading.Event()
        self.done = threading.Event()
        self.cond = threading.Condition()
        self.stopping = False
        self.lock = threading.Lock()  # orders close() against a new connection's _register()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self, wait=True):
        self.thread.start()
        if wait:
            assert self.ready.wait(10) or self.done.wait(0), f"{self.transport} subscription to {self.url} never started"
        return self

    def _add(self, msg_id, text):
        with self.cond:
            self.events.append((msg_id, json.loads(text)))
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=10):
        """Waits until predicate(list of events) is true; returns the events."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate([e for _, e in self.events]):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return [e for _, e in self.events]

    def wait_count(self, n, timeout=10):
        return self.wait_for(lambda evs: len(evs) >= n, timeout)

    def last_id(self):
        with self.cond:
            return self.events[-1][0]

    def _run(self):
        """Runs _listen; a read ended by close() is not an error."""
        try:
            self._listen()
        except Exception:
            if not self.stopping:
                raise
        finally:
            self.ready.set()
            self.done.set()

    def _register(self, sock):
        """Makes sock the one close() shuts down; False (and sock shut down) once
        close() has begun. A connection made after close() had shut the
        previous one down was never ended: a long-poll subscriber's next
        request went on waiting, and close() gave up on it after 5 s."""
        with self.lock:
            if self.stopping:
                shutdown(sock)
                return False
            self.sock = sock
            return True

    def close(self):
        with self.lock:
            self.stopping = True
            self._close()
        self.thread.join(5)


class EventSource(Subscriber):
    """EventSource over http.client, so close() can end a blocked read by
    shutting the socket down (requests' close() waits for the reader)."""
    transport = "eventsource"

    def _listen(self):
        parts = urllib.parse.urlsplit(self.url)
        headers = dict(self.headers, Accept="text/event-stream")
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.conn.connect()
        if not self._register(self.conn.sock):  # getresponse() may forget it; close() needs it
            self.conn.close()
            return
        self.conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""), headers=headers)
        resp = self.conn.getresponse()
        self.status = resp.status
        if self.status != 200:
            self.error_body = resp.read().decode()
            return
        msg_id, data = None, []
        while True:
            raw = resp.readline()
            if not raw:
                break
            line = raw.decode().rstrip("\r\n")
            if line.startswith(":"):
                self.ready.set()
            elif line.startswith("id:"):
                msg_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif line == "" and data:
                self._add(msg_id, "\n".join(data))
                msg_id, data = None, []

    def _close(self):
        shutdown(getattr(self, "sock", None))


class WebSocket(Subscriber):
    transport = "websocket"

    def _listen(self):
        url = "ws" + self.url[len("http"):]
        # websocket-client sends an Origin of its own (the URL's host) unless told one
        headers = [f"{k}: {v}" for k, v in self.headers.items() if k != "Origin"]
        try:
            ws = websocket.create_connection(url, header=headers, timeout=120,
                                             origin=self.origin)
        except websocket.WebSocketBadStatusException as e:  # refused: 401/403
            self.status = e.status_code
            body = getattr(e, "resp_body", None)
            self.error_body = body.decode() if body else ""
            return
        with self.lock:  # as _register: a close() that came first ends it here
            if self.stopping:
                ws.close()
                return
            self.ws = ws
        self.status = 101
        self.ready.set()
        while True:
            text = self.ws.recv()
            if text:
                self._add(None, text)

    def _close(self):
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()


class LongPoll(Subscriber):
    """Nchan long-polling: one message per request, the next asked for with
    If-Modified-Since / If-None-Match. Starts from the oldest buffered message."""
    transport = "longpoll"

    def _listen(self):
        parts = urllib.parse.urlsplit(self.url)
        target = parts.path + ("?" + parts.query if parts.query else "")
        # Second 1, not 0: Nchan reads time 0 as "no id" and would wait for
        # the next message instead of starting from the oldest buffered one.
        modified, etag = "Thu, 01 Jan 1970 00:00:01 GMT", "0"
        self.ready.set()
        while not self.stopping:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            conn.connect()
            if not self._register(conn.sock):
                conn.close()
                return
            conn.request("GET", target, headers=dict(self.headers, **{
                "If-Modified-Since": modified, "If-None-Match": etag}))
            r = conn.getresponse()
            body = r.read().decode()
            conn.close()
            if r.status == 304 or r.status == 408:
                continue
            self.status = r.status
            if r.status != 200:
                self.error_body = body
                return
            modified = r.getheader("Last-Modified", modified)
            etag = r.getheader("Etag", etag)
            self._add(f"{modified}:{etag}", body)

    def _close(self):
        shutdown(getattr(self, "sock", None))


def shutdown(sock):
    """Ends a blocked read on sock from another thread."""
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


TRANSPORTS = {"eventsource": EventSource, "websocket": WebSocket, "longpoll": LongPoll}


def subscription_status(cls, base_url, channel, **auth):
    """Starts a subscriber and returns its HTTP status: 101 (WebSocket) or
    200 when accepted, 401/403 when refused, "held" for a long-poll request
    that is accepted and waiting for a message. Only long-polling may hold its
    answer back: a WebSocket or EventSource subscriber that has no status
    after the wait is "no answer", which no test counts as accepted."""
    sub = cls(base_url, channel, **auth).start(wait=False)
    deadline = time.monotonic() + 1.5
    while sub.status is None and time.monotonic() < deadline:
        time.sleep(0.02)
    status = sub.status
    if status is None:
        status = "held" if cls is LongPoll else "no answer"
    sub.close()
    return status
