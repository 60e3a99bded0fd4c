"""Real subscribers for the real-time tests: EventSource, WebSocket, long-poll.

Each runs in a thread, collects the JSON events it receives, and says when it
is subscribed (EventSource: Nchan's ": hi" comment; WebSocket: the finished
handshake; long-poll: it starts from the channel's oldest buffered message,
so it needs no readiness at all).
"""

import json
import threading
import time
import urllib.parse

import requests
import websocket


class Subscriber:
    transport = None

    def __init__(self, base_url, channel, token=None, cookie=None, bearer=None, last_event_id=None):
        self.url = f"{base_url}/ws/{channel}"
        if token is not None:
            self.url += "?token=" + urllib.parse.quote(token)
        self.headers = {}
        if cookie is not None:
            self.headers["Cookie"] = f"carebot_token={cookie}"
        if bearer is not None:
            self.headers["Authorization"] = f"Bearer {bearer}"
        self.last_event_id = last_event_id
        self.events = []        # (message id or None, decoded JSON)
        self.status = None      # HTTP status of the subscription
        self.error_body = None
        self.ready = threading.Event()
        self.done = threading.Event()
        self.cond = threading.Condition()
        self.stopping = False
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

    def types(self):
        with self.cond:
            return [e["type"] for _, e in self.events]

    def last_id(self):
        with self.cond:
            return self.events[-1][0]

    def close(self):
        self.stopping = True
        self._close()
        self.thread.join(5)


class EventSource(Subscriber):
    transport = "eventsource"

    def _run(self):
        headers = dict(self.headers, Accept="text/event-stream")
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        try:
            self.resp = requests.get(self.url, headers=headers, stream=True, timeout=(5, 120))
            self.status = self.resp.status_code
            if self.status != 200:
                self.error_body = self.resp.text
                return
            msg_id, data = None, []
            for raw in self.resp.iter_lines(decode_unicode=True):
                if raw is None:
                    continue
                if raw.startswith(":"):
                    self.ready.set()
                elif raw.startswith("id:"):
                    msg_id = raw[3:].strip()
                elif raw.startswith("data:"):
                    data.append(raw[5:].lstrip())
                elif raw == "" and data:
                    self._add(msg_id, "\n".join(data))
                    msg_id, data = None, []
        except Exception:
            if not self.stopping:
                raise
        finally:
            self.ready.set()
            self.done.set()

    def _close(self):
        resp = getattr(self, "resp", None)
        if resp is not None:
            resp.close()


class WebSocket(Subscriber):
    transport = "websocket"

    def _run(self):
        url = "ws" + self.url[len("http"):]
        headers = [f"{k}: {v}" for k, v in self.headers.items()]
        try:
            self.ws = websocket.create_connection(url, header=headers, timeout=120)
            self.status = 101
            self.ready.set()
            while True:
                text = self.ws.recv()
                if text:
                    self._add(None, text)
        except websocket.WebSocketBadStatusException as e:
            self.status = e.status_code
            self.error_body = e.resp_body.decode() if e.resp_body else ""
        except Exception:
            if not self.stopping:
                raise
        finally:
            self.ready.set()
            self.done.set()

    def _close(self):
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()


class LongPoll(Subscriber):
    """Nchan long-polling: one message per request, the next asked for with
    If-Modified-Since / If-None-Match. Starts from the oldest buffered message."""
    transport = "longpoll"

    def _run(self):
        # Second 1, not 0: Nchan reads time 0 as "no id" and would wait for
        # the next message instead of starting from the oldest buffered one.
        modified, etag = "Thu, 01 Jan 1970 00:00:01 GMT", "0"
        self.ready.set()
        try:
            while not self.stopping:
                headers = dict(self.headers, **{"If-Modified-Since": modified, "If-None-Match": etag})
                r = requests.get(self.url, headers=headers, timeout=(5, 30))
                if self.status is None or r.status_code != 304:
                    self.status = r.status_code
                if r.status_code == 200:
                    modified = r.headers.get("Last-Modified", modified)
                    etag = r.headers.get("Etag", etag)
                    self._add(f"{modified}:{etag}", r.text)
                elif r.status_code in (304, 408):
                    continue
                else:
                    self.error_body = r.text
                    return
        except Exception:
            if not self.stopping:
                raise
        finally:
            self.done.set()

    def _close(self):
        pass


TRANSPORTS = {"eventsource": EventSource, "websocket": WebSocket, "longpoll": LongPoll}


def subscription_status(cls, base_url, channel, **auth):
    """Starts a subscriber and returns its HTTP status: 101 (WebSocket) or
    200 when accepted, 401/403 when refused, "held" for a long-poll request
    that is accepted and waiting for a message."""
    sub = cls(base_url, channel, **auth).start(wait=False)
    deadline = time.monotonic() + 3
    while sub.status is None and time.monotonic() < deadline:
        time.sleep(0.02)
    status = sub.status if sub.status is not None else "held"
    sub.close()
    return status
