"""Contract section 7: real time through Nchan.

Covers, for each transport (WebSocket, EventSource, long-poll): 401 / 403 /
allowed on every channel kind and every way of passing the token; every event
type of the table arriving with its envelope on exactly the channels the
table names; ordering of 200 concurrent messages; resume after a disconnect;
an agent transferred off a chat stops getting its events; typing events.
The Node NchanSubscriber client, the publisher-down case and the soak test
live in test_realtime_node.py, test_realtime_down.py and test_realtime_soak.py.
"""

import concurrent.futures
import http.client
import json
import pathlib
import re
import socket
import threading
import time
import urllib.parse
import uuid

import pytest
import requests

import rt

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MESSAGE_KEYS = {"id", "chat_id", "sender_id", "sender_role", "content", "created_at"}
CHAT_KEYS = {"id", "customer_id", "department_id", "agent_id", "status", "subject", "created_at",
             "queued_at", "assigned_at", "closed_at", "closed_by", "queue_position", "customer", "agent"}
TRANSFER_KEYS = {"id", "chat_id", "from_department_id", "to_department_id", "from_agent_id",
                 "to_agent_id", "reason", "transferred_by", "created_at"}


class Org:
    """A fresh department with agents, made through the public API."""

    def __init__(self, api, admin_token, token_for):
        self.api, self.admin, self.token_for = api, admin_token, token_for

    def ok(self, resp, status=200):
        assert resp.status_code == status, resp.text
        return resp.json() if resp.text else None

    def department(self):
        name = "RT " + uuid.uuid4().hex[:10]
        return self.ok(self.api.post("/api/departments/", token=self.admin, json={"name": name}), 201)

    def agent(self, dept, max_chats=5, presence="available"):
        username = "rt_" + uuid.uuid4().hex[:10]
        user = self.ok(self.api.post("/api/users/", token=self.admin, json={
            "username": username, "password": "password123", "full_name": "Agent " + username,
            "role": "agent", "department_id": dept["id"], "max_chats": max_chats}), 201)
        user["token"] = self.token_for(username)
        if presence != "offline":
            self.presence(user, presence)
        return user

    def presence(self, user, presence):
        return self.ok(self.api.put(f"/api/users/{user['id']}/status", token=self.admin,
                                    json={"status": presence}))

    def customer(self):
        body = self.ok(self.api.post("/api/auth/guest", json={"full_name": "Cust " + uuid.uuid4().hex[:6]}), 201)
        body["user"]["token"] = body["token"]
        return body["user"]

    def chat(self, customer, dept, **extra):
        return self.ok(self.api.post("/api/chats/", token=customer["token"],
                                     json={"department_id": dept["id"], **extra}), 201)

    def say(self, token, chat, content):
        return self.ok(self.api.post(f"/api/chats/{chat['id']}/messages", token=token,
                                     json={"content": content}), 201)


@pytest.fixture
def org(api, admin_token, token_for):
    return Org(api, admin_token, token_for)


@pytest.fixture(params=sorted(rt.TRANSPORTS))
def transport(request):
    return rt.TRANSPORTS[request.param]


def test_subscriptions_are_authorised(transport, base_url, org, admin_token):
    dept, other_dept = org.department(), org.department()
    agent, stranger = org.agent(dept), org.agent(other_dept)
    customer, other_customer = org.customer(), org.customer()
    chat = org.chat(customer, dept)

    def status(channel, **auth):
        return rt.subscription_status(transport, base_url, channel, **auth)

    accepted = {101, 200, "held"}
    for channel in [f"chat/{chat['id']}", f"agent/{agent['id']}", f"department/{dept['id']}"]:
        assert status(channel) == 401
        assert status(channel, token="0" * 64) == 401
        assert status(channel, token=admin_token) in accepted
    # the chat: its customer and its department's agents, in each token form
    assert status(f"chat/{chat['id']}", token=customer["token"]) in accepted
    assert status(f"chat/{chat['id']}", cookie=customer["token"]) in accepted
    # the cookie among others, after one whose name it begins
    assert status(f"chat/{chat['id']}", cookie=customer["token"],
                  other_cookies=f"theme=dark; carebot_token_old={'0' * 64}") in accepted
    assert status(f"chat/{chat['id']}", cookie="0" * 64,
                  other_cookies=f"xcarebot_token={customer['token']}") == 401
    assert status(f"chat/{chat['id']}", bearer=agent["token"]) in accepted
    # the first form present is the one checked: ?token=, then the header, then the cookie
    assert status(f"chat/{chat['id']}", cookie="0" * 64, bearer=customer["token"]) in accepted
    assert status(f"chat/{chat['id']}", cookie=customer["token"], bearer="0" * 64) == 401
    assert status(f"chat/{chat['id']}", token=customer["token"], bearer="0" * 64) in accepted
    assert status(f"chat/{chat['id']}", token=other_customer["token"]) == 403
    assert status(f"chat/{chat['id']}", token=stranger["token"]) == 403
    assert status("chat/999999999", token=admin_token) == 403  # no such chat: nothing to see
    # an id that cannot be one: no such channel, said before the token is looked at
    for channel in ("chat/0", "agent/0", f"department/{'9' * 25}"):
        assert status(channel, token=admin_token) == 403, channel
        assert status(channel) == 403, channel
    assert status("chat/999999999", token=customer["token"]) == 403
    # an agent's channel: that agent and admins
    assert status(f"agent/{agent['id']}", token=agent["token"]) in accepted
    assert status(f"agent/{agent['id']}", token=stranger["token"]) == 403
    assert status(f"agent/{agent['id']}", token=customer["token"]) == 403
    # a department's channel: its agents and admins
    assert status(f"department/{dept['id']}", token=agent["token"]) in accepted
    assert status(f"department/{dept['id']}", token=stranger["token"]) == 403
    assert status(f"department/{dept['id']}", token=customer["token"]) == 403
    # channels of nothing are refused to admins too: no such agent (a customer is
    # none either), no such department, a deleted one
    gone = org.department()
    assert org.api.delete(f"/api/departments/{gone['id']}", token=admin_token).status_code == 204
    for channel in ["agent/999999999", f"agent/{customer['id']}", "department/999999999",
                    f"department/{gone['id']}"]:
        assert status(channel, token=admin_token) == 403, channel


def test_the_cookie_is_accepted_only_from_the_instances_own_pages(transport, base_url, org):
    """A browser sends the cookie with any page's request; a foreign page must
    not read the user's events with it (README 6, "Tokens and origins")."""
    customer = org.customer()
    chat = org.chat(customer, org.department())
    channel = f"chat/{chat['id']}"
    own = base_url  # http://127.0.0.1:PORT, the Host the subscriber sends

    def status(**auth):
        return rt.subscription_status(transport, base_url, channel, **auth)

    accepted = {101, 200, "held"}
    assert status(cookie=customer["token"], origin=own) in accepted
    assert status(cookie=customer["token"], origin=own.upper().replace("HTTP", "https")) in accepted
    for foreign in ["http://evil.example", "null", own + ".evil.example", "http://127.0.0.1"]:
        assert status(cookie=customer["token"], origin=foreign) == 403, foreign
        # before the token is looked up: a dead cookie is refused the same way
        assert status(cookie="0" * 64, origin=foreign) == 403, foreign
        # a token the page itself knew is fine from anywhere
        assert status(token=customer["token"], origin=foreign) in accepted, foreign
        assert status(bearer=customer["token"], origin=foreign) in accepted, foreign
    sub = rt.EventSource(base_url, channel, cookie=customer["token"], origin="http://evil.example")
    sub.start(wait=False)
    assert sub.done.wait(5) and sub.status == 403
    assert json.loads(sub.error_body)["error"]["code"] == "forbidden"


def test_a_malformed_websocket_handshake_is_a_json_400_after_the_token(base_url, org):
    """Nchan answers these in plain text; the contract's errors are JSON."""
    customer, other = org.customer(), org.customer()
    chat = org.chat(customer, org.department())
    host, port = urllib.parse.urlsplit(base_url).netloc.split(":")
    key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

    def handshake(token, extra):
        query = f"?token={token}" if token else ""
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall((f"GET /ws/chat/{chat['id']}{query} HTTP/1.1\r\nHost: x\r\n"
                       f"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n{extra}\r\n").encode())
            data = b""
            while b"\r\n\r\n" not in data or (b" 101 " not in data[:13] and not data.rstrip().endswith(b"}")):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.decode().partition("\r\n\r\n")
        status = int(head.split(" ", 2)[1])
        return status, head.lower(), body

    for extra in ["Sec-WebSocket-Version: 99\r\n" + key, "Sec-WebSocket-Version: 13\r\n",
                  key, "Sec-WebSocket-Version: 8\r\n"]:
        status, head, body = handshake(customer["token"], extra)
        assert status == 400, (extra, head, body)
        assert "application/json" in head and "sec-websocket-version: 13" in head, head
        assert json.loads(body)["error"]["code"] == "bad_request"
        # the token first, as for every subscription
        assert handshake(None, extra)[0] == 401
        assert handshake(other["token"], extra)[0] == 403
    assert handshake(customer["token"], "Sec-WebSocket-Version: 13\r\n" + key)[0] == 101


def test_an_idle_eventsource_gets_a_bare_comment_every_30_seconds(base_url, org):
    """So that proxies keep an idle stream open; a comment, never an event a
    client could take for a message."""
    customer = org.customer()
    chat = org.chat(customer, org.department())
    host, port = urllib.parse.urlsplit(base_url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=45)
    conn.request("GET", f"/ws/chat/{chat['id']}?token={customer['token']}",
                 headers={"Accept": "text/event-stream"})
    sock = conn.sock  # getresponse() forgets it
    resp = conn.getresponse()
    assert resp.status == 200
    start, lines = time.monotonic(), []
    try:
        while time.monotonic() - start < 40 and lines.count(":") < 1:
            lines.append(resp.readline().decode().rstrip("\r\n"))
    finally:
        rt.shutdown(sock)
        conn.close()
    assert lines[0] == ": hi" and ":" in lines, lines
    assert 25 < time.monotonic() - start < 40
    assert not [line for line in lines if line and not line.startswith(":")], lines


def test_a_trailing_slash_is_the_same_channel(transport, base_url, org, admin_token):
    dept = org.department()
    customer, other_customer = org.customer(), org.customer()
    chat = org.chat(customer, dept)
    slash = f"chat/{chat['id']}/"

    def status(channel, **auth):
        return rt.subscription_status(transport, base_url, channel, **auth)

    assert status(slash) == 401
    assert status(slash, token=other_customer["token"]) == 403
    sub = transport(base_url, slash, token=customer["token"]).start()
    try:
        org.say(customer["token"], chat, "through the slash")
        events = sub.wait_for(lambda evs: any(e["type"] == "message.created" for e in evs))
    finally:
        sub.close()
    assert [e["data"]["content"] for e in events if e["type"] == "message.created"] == ["through the slash"]



def test_every_spelling_nginx_routes_is_the_same_channel(transport, base_url, org):
    """nginx decodes and normalizes a path before it picks the location
    (/ws/chat/%35 and /ws//chat/5 are /ws/chat/5), but the workers parsed the
    raw URI: such a subscription got 403 "no such channel" with any token or
    none. nginx now tells the workers the channel it matched."""
    dept = org.department()
    customer, other_customer = org.customer(), org.customer()
    chat = org.chat(customer, dept)
    digits = "".join(f"%{ord(c):02X}" for c in str(chat["id"]))

    def status(channel, **auth):
        return rt.subscription_status(transport, base_url, channel, **auth)

    for spelling in [f"chat/{digits}", f"%63hat/{chat['id']}", f"/chat//{chat['id']}"]:
        assert status(spelling) == 401, spelling
        assert status(spelling, token=other_customer["token"]) == 403, spelling
        assert status(spelling, token=customer["token"]) in {101, 200, "held"}, spelling
    sub = transport(base_url, f"chat/{digits}", token=customer["token"]).start()
    try:
        org.say(customer["token"], chat, "through an encoded path")
        events = sub.wait_for(lambda evs: any(e["type"] == "message.created" for e in evs))
    finally:
        sub.close()
    assert [e["data"]["content"] for e in events if e["type"] == "message.created"] == \
        ["through an encoded path"]

def check_envelope(event):
    assert set(event) == {"type", "chat_id", "at", "data"}, event
    assert TIME_RE.match(event["at"]), event
    kind = event["type"]
    data = event["data"]
    if kind == "message.created":
        assert set(data) == MESSAGE_KEYS and data["chat_id"] == event["chat_id"]
    elif kind in ("chat.assigned", "chat.waiting", "chat.closed"):
        assert set(data) == CHAT_KEYS and data["id"] == event["chat_id"]
    elif kind == "chat.transferred":
        assert set(data) == {"chat", "transfer"}
        assert set(data["chat"]) == CHAT_KEYS and set(data["transfer"]) == TRANSFER_KEYS
    elif kind == "typing":
        assert set(data) == {"user_id", "role", "typing"}
    elif kind == "agent.status":
        assert event["chat_id"] is None and data["role"] == "agent" and "password" not in data
    else:
        pytest.fail(f"unknown event type {kind}")


def test_every_event_reaches_exactly_its_channels(transport, base_url, org, admin_token):
    dept_a, dept_b = org.department(), org.department()
    a1 = org.agent(dept_a, presence="offline")
    b1 = org.agent(dept_b)
    customer = org.customer()

    def sub(channel, token=admin_token):
        return transport(base_url, channel, token=token).start()

    subs = {"dept_a": sub(f"department/{dept_a['id']}"), "dept_b": sub(f"department/{dept_b['id']}"),
            "a1": sub(f"agent/{a1['id']}", a1["token"]), "b1": sub(f"agent/{b1['id']}", b1["token"])}
    try:
        chat = org.chat(customer, dept_a)              # nobody available in A: waits
        assert chat["status"] == "waiting"
        subs["chat"] = sub(f"chat/{chat['id']}", customer["token"])
        org.presence(a1, "available")                  # a1 takes it
        org.say(customer["token"], chat, "hello from the customer")
        assert org.api.post(f"/api/chats/{chat['id']}/typing", token=customer["token"],
                            json={"typing": True}).status_code == 204
        r = org.api.post(f"/api/chats/{chat['id']}/transfer", token=a1["token"],
                         json={"department_id": dept_b["id"], "reason": "billing question"})
        assert r.status_code == 200, r.text                # b1 takes it
        assert org.api.put(f"/api/chats/{chat['id']}/close", token=b1["token"]).status_code == 200

        closed = lambda evs: any(e["type"] == "chat.closed" for e in evs)  # noqa: E731
        for name in ("chat", "b1", "dept_b"):
            subs[name].wait_for(closed, timeout=5)
        subs["dept_a"].wait_for(lambda evs: False, timeout=1)  # let stray events arrive, if any
        got = {name: s.wait_for(lambda evs: True, timeout=0) for name, s in subs.items()}
    finally:
        for s in subs.values():
            s.close()

    for events in got.values():
        for e in events:
            check_envelope(e)
            assert e["chat_id"] in (chat["id"], None)
    types = {name: [e["type"] for e in events] for name, events in got.items()}

    # chat/X: everything about the chat, in the order of the changes
    chat_types = types["chat"]
    for expected in ["chat.assigned", "message.created", "typing", "chat.transferred", "chat.closed"]:
        assert expected in chat_types, chat_types
    order = [t for t in chat_types if t in ("chat.assigned", "chat.transferred", "chat.closed")]
    assert order == ["chat.assigned", "chat.transferred", "chat.assigned", "chat.closed"], chat_types
    contents = [e["data"]["content"] for e in got["chat"] if e["type"] == "message.created"]
    assert f"{a1['full_name']} joined the chat." in contents
    assert "hello from the customer" in contents
    assert any(c.startswith("Chat transferred from ") and c.endswith("Reason: billing question") for c in contents)
    assert f"{b1['full_name']} joined the chat." in contents
    assert "agent.status" not in chat_types

    # agent/a1: its own status, its chat while it had it, the transfer away; not typing, not the close
    assert "agent.status" in types["a1"] and "chat.assigned" in types["a1"] and "chat.transferred" in types["a1"]
    a1_msgs = [e["data"]["content"] for e in got["a1"] if e["type"] == "message.created"]
    assert "hello from the customer" in a1_msgs
    assert f"{b1['full_name']} joined the chat." not in a1_msgs
    assert "typing" not in types["a1"] and "chat.closed" not in types["a1"]

    # agent/b1: the assignment, what came after, the close; not the earlier messages or the transfer
    assert "chat.assigned" in types["b1"] and "chat.closed" in types["b1"]
    b1_msgs = [e["data"]["content"] for e in got["b1"] if e["type"] == "message.created"]
    assert f"{b1['full_name']} joined the chat." in b1_msgs and "hello from the customer" not in b1_msgs
    assert "chat.transferred" not in types["b1"] and "typing" not in types["b1"]

    # departments: queue and agents, never messages or typing
    assert "chat.waiting" in types["dept_a"] and "agent.status" in types["dept_a"]
    assert "chat.assigned" in types["dept_a"] and "chat.transferred" in types["dept_a"]
    assert "chat.closed" not in types["dept_a"]
    assert "chat.transferred" in types["dept_b"] and "chat.assigned" in types["dept_b"]
    assert "chat.closed" in types["dept_b"]
    for name in ("dept_a", "dept_b"):
        assert "message.created" not in types[name] and "typing" not in types[name], types[name]


def test_agent_status_follows_every_load_change_once_and_transfers_into_a_queue_wait(
        base_url, org, api, admin_token):
    """agent.status whenever an agent's active_chats or status changes (each
    assignment too, one snapshot per change); a chat assigned on creation
    brings its agent the customer's first words; a chat transferred into a
    queue gets chat.waiting there, after chat.transferred."""
    dept, empty = org.department(), org.department()
    agent = org.agent(dept, max_chats=2)
    customer = org.customer()
    subs = {"agent": rt.WebSocket(base_url, f"agent/{agent['id']}", token=agent["token"]).start(),
            "dept": rt.WebSocket(base_url, f"department/{dept['id']}", token=admin_token).start(),
            "empty": rt.WebSocket(base_url, f"department/{empty['id']}", token=admin_token).start()}
    try:
        c1 = org.chat(customer, dept, message="first words")
        c2 = org.chat(customer, dept)
        c3 = org.chat(customer, dept)
        assert (c1["agent_id"], c2["agent_id"], c3["status"]) == (agent["id"], agent["id"], "waiting")
        subs["chat3"] = rt.WebSocket(base_url, f"chat/{c3['id']}", token=customer["token"]).start()
        org.ok(api.put(f"/api/chats/{c1['id']}/close", token=agent["token"]))  # c3 takes its seat
        r = api.post(f"/api/chats/{c3['id']}/transfer", token=agent["token"], json={"department_id": empty["id"]})
        assert org.ok(r)["status"] == "waiting"
        loads = lambda evs: [(e["data"]["status"], e["data"]["active_chats"])  # noqa: E731
                             for e in evs if e["type"] == "agent.status"]
        settled = [("available", 1), ("busy", 2), ("busy", 2), ("available", 1)]
        subs["agent"].wait_for(lambda evs: loads(evs) == settled, timeout=5)
        subs["chat3"].wait_for(lambda evs: "chat.waiting" in [e["type"] for e in evs], timeout=5)
        subs["empty"].wait_for(lambda evs: "chat.waiting" in [e["type"] for e in evs], timeout=5)
        subs["dept"].wait_for(lambda evs: len(loads(evs)) >= 4, timeout=5)
        got = {name: s.wait_for(lambda evs: True, timeout=0) for name, s in subs.items()}
    finally:
        for s in subs.values():
            s.close()

    assert loads(got["agent"]) == settled, got["agent"]
    assert loads(got["dept"]) == settled
    user = org.ok(api.get(f"/api/users/{agent['id']}", token=admin_token))
    assert (user["status"], user["active_chats"]) == settled[-1]
    # the customer's first words, then the agent's arrival, then the assignment
    c1_events = [(e["type"], e["data"].get("content")) for e in got["agent"] if e["chat_id"] == c1["id"]]
    assert c1_events[:3] == [("message.created", "first words"),
                             ("message.created", f"{agent['full_name']} joined the chat."),
                             ("chat.assigned", None)], c1_events
    # into the empty department's queue: transferred, then waiting there, first in line
    for name in ("chat3", "empty"):
        kinds = [e["type"] for e in got[name] if e["type"].startswith("chat.")]
        assert kinds[-2:] == ["chat.transferred", "chat.waiting"], (name, kinds)
        assert got[name][-1]["data"]["queue_position"] == 1 and got[name][-1]["data"]["department_id"] == empty["id"]
    assert "chat.waiting" not in [e["type"] for e in got["agent"]]


def test_an_admin_change_that_hands_the_agent_a_chat_is_one_agent_status(base_url, org, api, admin_token):
    """max_chats raised: the queue is served at once (6.2.5), and the agent's
    channel hears of the change once, with the load after the assignment, not
    a snapshot from before it and then another (a white-box review)."""
    dept = org.department()
    agent = org.agent(dept, max_chats=1)
    customer = org.customer()
    first, second = org.chat(customer, dept), org.chat(customer, dept)
    assert (first["agent_id"], second["status"]) == (agent["id"], "waiting")
    sub = rt.WebSocket(base_url, f"agent/{agent['id']}", token=agent["token"]).start()
    try:
        org.ok(api.put(f"/api/users/{agent['id']}", token=admin_token, json={"max_chats": 2}))
        sub.wait_for(lambda evs: "chat.assigned" in [e["type"] for e in evs], timeout=5)
        time.sleep(0.5)  # anything else the change publishes
        events = sub.wait_for(lambda evs: True, timeout=0)
    finally:
        sub.close()
    statuses = [(e["data"]["max_chats"], e["data"]["active_chats"], e["data"]["status"])
                for e in events if e["type"] == "agent.status"]
    assert statuses == [(2, 2, "busy")], events


def test_the_last_agent_status_is_the_agents_state_after_a_burst(base_url, org, api, admin_token):
    """Closes of one agent's chats at once commit one after the other but
    publish under their own chats' mutexes; the last agent.status each
    subscriber gets must still be the agent as it ends up (README 6)."""
    dept = org.department()
    agent = org.agent(dept, max_chats=20)
    customer = org.customer()
    sub = rt.WebSocket(base_url, f"agent/{agent['id']}", token=agent["token"]).start()
    try:
        for burst in range(3):
            chats = [org.chat(customer, dept) for _ in range(12)]
            assert {c["agent_id"] for c in chats} == {agent["id"]}
            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                closed = list(pool.map(lambda c: api.put(f"/api/chats/{c['id']}/close", token=agent["token"]).status_code, chats))
            assert closed == [200] * 12
            seen = -1
            while True:  # until the events stop coming
                events = sub.wait_for(lambda evs: len(evs) > seen, timeout=0.5)
                if len(events) == seen:
                    break
                seen = len(events)
            last = [e["data"] for e in events if e["type"] == "agent.status"][-1]
            user = org.ok(api.get(f"/api/users/{agent['id']}", token=admin_token))
            assert (last["status"], last["active_chats"]) == (user["status"], user["active_chats"]) == ("available", 0), burst
    finally:
        sub.close()


def test_two_hundred_concurrent_messages_arrive_once_in_id_order(base_url, org, api):
    dept = org.department()
    agent = org.agent(dept)
    customer = org.customer()
    chat = org.chat(customer, dept)
    sub = rt.WebSocket(base_url, f"chat/{chat['id']}", token=customer["token"]).start()
    errors = []

    def post(thread_no):
        for i in range(25):
            token = customer["token"] if i % 2 else agent["token"]
            r = api.post(f"/api/chats/{chat['id']}/messages", token=token,
                         json={"content": f"t{thread_no}-m{i}"})
            if r.status_code != 201:
                errors.append(r.text)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    events = sub.wait_for(lambda evs: sum(1 for e in evs if e["type"] == "message.created"
                                          and e["data"]["content"].startswith("t")) >= 200, timeout=20)
    sub.close()
    ids = [e["data"]["id"] for e in events if e["type"] == "message.created"
           and re.match(r"^t\d-m\d+$", e["data"]["content"])]
    assert len(ids) == 200 and len(set(ids)) == 200
    assert ids == sorted(ids)
    history = api.get(f"/api/chats/{chat['id']}/messages?limit=500", token=customer["token"]).json()
    assert [m["id"] for m in history if re.match(r"^t\d-m\d+$", m["content"])] == ids


@pytest.mark.parametrize("how", ["last-event-id", "query"])
def test_resume_gets_exactly_what_was_missed(how, base_url, org, api):
    dept = org.department()
    agent = org.agent(dept)
    customer = org.customer()
    chat = org.chat(customer, dept)
    first = rt.EventSource(base_url, f"chat/{chat['id']}", token=customer["token"]).start()
    org.say(customer["token"], chat, "before the disconnect")
    first.wait_for(lambda evs: any(e["type"] == "message.created" and e["data"]["content"] ==
                                   "before the disconnect" for e in evs))
    last = first.last_id()
    first.close()
    missed = [org.say(agent["token"] if i % 2 else customer["token"], chat, f"missed {i}")["id"]
              for i in range(5)]
    if how == "last-event-id":
        again = rt.EventSource(base_url, f"chat/{chat['id']}", token=customer["token"], last_event_id=last)
    else:
        again = rt.EventSource(base_url + "", f"chat/{chat['id']}", token=customer["token"])
        again.url += "&last_event_id=" + last
    again.start()
    events = again.wait_count(5, timeout=10)
    extra = again.wait_count(6, timeout=1)
    again.close()
    assert len(extra) == 5, [e["type"] for e in extra]
    assert [e["type"] for e in events] == ["message.created"] * 5
    assert [e["data"]["id"] for e in events] == missed


@pytest.mark.parametrize("bad", ["-5:3", "99999999999999999999:0", "1795574478:2,junk", "abc"])
def test_a_malformed_message_id_is_a_json_400_after_the_token(bad, base_url, org):
    """Nchan answered a message id it cannot read with a plain-text 400, before
    the token: now no token is 401, a stranger 403, and only then a JSON 400,
    for the id in the header or the query, as EventSource or long-poll."""
    customer, stranger = org.customer(), org.customer()
    chat = org.chat(customer, org.department())
    for how, accept in [("header", "text/event-stream"), ("query", "text/event-stream"), ("header", "*/*")]:
        def get(token=None):
            query = {"token": token} if token else {}
            headers = {"Accept": accept}
            if how == "header":
                headers["Last-Event-ID"] = bad
            else:
                query["last_event_id"] = bad
            return requests.get(f"{base_url}/ws/chat/{chat['id']}", params=query, headers=headers,
                                timeout=5, stream=True)

        assert get().status_code == 401
        assert get(stranger["token"]).status_code == 403
        r = get(customer["token"])
        assert r.status_code == 400 and r.headers["Content-Type"].startswith("application/json"), r.text
        assert r.json()["error"]["code"] == "bad_request"
    # Nchan's own form is taken, and resumes: "1:0" is older than anything kept
    again = rt.EventSource(base_url, f"chat/{chat['id']}", token=customer["token"], last_event_id="1:0").start()
    try:
        assert again.wait_for(lambda evs: any(e["type"] == "chat.waiting" for e in evs))
    finally:
        again.close()


def test_subscribers_that_hang_up_while_being_authorized_leave_nginx_up(base_url, org, state_dir):
    """Nchan 1.3.6's own authorization (nchan_authorize_request) crashed nginx's
    worker (SIGSEGV), and with it every subscription of the instance, when a
    subscriber hung up while its authorization subrequest was out, as closed
    tabs and lost networks do: 16 crashes in 12,800 subscriptions abandoned
    within 10 ms (an audit). nginx's auth_request asks the workers instead
    (README 6, "Authorization"). 6,400 such subscriptions, in all three
    transports, resumes among them, closed or reset, from 32 connections at
    once; then nginx's worker is the same process and still serves."""
    log = pathlib.Path(state_dir, "log", "nginx-error.log")
    start = log.stat().st_size
    customer = org.customer()
    chat = org.chat(customer, org.department())
    host, port = urllib.parse.urlsplit(base_url).netloc.split(":")
    path = f"/ws/chat/{chat['id']}?token={customer['token']}"
    key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    asks = [f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode() for extra in (
        "Upgrade: websocket\r\nConnection: Upgrade\r\n" + key,
        "Accept: text/event-stream\r\n",
        "Accept: text/event-stream\r\nLast-Event-ID: 1:0\r\n",
        "",
    )]

    def hang_up(n):
        for i in range(n):
            with socket.create_connection((host, int(port)), timeout=10) as s:
                s.sendall(asks[i % len(asks)])
                time.sleep((i % 6) * 0.002)  # 0-10 ms: the authorization is out
                if i % 2:  # a reset rather than a close
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(hang_up, [200] * 32))
    with open(log, "rb") as f:
        f.seek(start)
        assert b"exited on signal" not in f.read()
    sub = rt.WebSocket(base_url, f"chat/{chat['id']}", token=customer["token"]).start()
    try:
        org.say(customer["token"], chat, "still here")
        assert sub.wait_for(lambda evs: any(e["type"] == "message.created" for e in evs))
    finally:
        sub.close()


def test_a_resume_on_a_channel_that_keeps_nothing_is_new_or_409_and_nginx_stays_up(base_url, org,
                                                                                    admin_token, state_dir):
    """Nchan 1.3.6 aborted nginx's worker, and with it every subscription of the
    instance, at the second subscriber that resumed from a message id on a
    channel that keeps no event (slact/nchan #534): a new department, or any
    channel quiet for 10 minutes. A resume from Last-Event-ID or ?last_event_id=
    (an EventSource reconnecting by itself, which stops for good on anything
    but a 200) is now taken as a new subscription; a long-poll's, from
    If-Modified-Since or If-None-Match, is a JSON 409 conflict. As often as it
    is asked, in each form; a long-poll at time 0 asks for none and is held;
    the new subscriptions get what is published next; once the channel keeps an
    event, a resume is taken as one and gets it (README 6, "Resume")."""
    log = pathlib.Path(state_dir, "log", "nginx-error.log")
    start = log.stat().st_size
    dept = org.department()
    url = f"{base_url}/ws/department/{dept['id']}"
    taken = [({"Accept": "text/event-stream", "Last-Event-ID": "1:0"}, {}),
             ({"Accept": "text/event-stream"}, {"last_event_id": f"{int(time.time())}:0"}),
             ({"Accept": "text/event-stream"}, {"last_event_id": f"{int(time.time()) + 3600}:0"})]
    refused = [({"If-Modified-Since": "Thu, 01 Jan 1970 00:00:01 GMT", "If-None-Match": "0"}, {}),
               ({"If-None-Match": "1:0"}, {})]
    for _ in range(3):
        for headers, query in taken:
            with requests.get(url, params={"token": admin_token, **query}, headers=headers,
                              timeout=5, stream=True) as r:
                assert r.status_code == 200, (headers, query, r.status_code, r.text)
                assert r.headers["Content-Type"].startswith("text/event-stream"), r.headers
        for headers, query in refused:
            r = requests.get(url, params={"token": admin_token, **query}, headers=headers, timeout=5)
            assert r.status_code == 409, (headers, query, r.status_code, r.text)
            assert r.json()["error"]["code"] == "conflict", r.text
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url, params={"token": admin_token}, timeout=1.5,
                     headers={"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT", "If-None-Match": "0"})
    es = rt.EventSource(base_url, f"department/{dept['id']}", token=admin_token, last_event_id="1:0").start()
    ws = rt.WebSocket(base_url, f"department/{dept['id']}", token=admin_token)
    ws.url += "&last_event_id=1%3A0"
    ws.start()
    try:
        assert (es.status, ws.status) == (200, 101), (es.status, es.error_body, ws.status, ws.error_body)
        with open(log, "rb") as f:
            f.seek(start)
            assert b"exited on signal" not in f.read()
        org.agent(dept)  # available: an agent.status on the department's channel
        for sub in (es, ws):
            events = sub.wait_for(lambda evs: any(e["type"] == "agent.status" for e in evs))
            assert {e["type"] for e in events} == {"agent.status"}, events
    finally:
        es.close()
        ws.close()
    again = rt.EventSource(base_url, f"department/{dept['id']}", token=admin_token, last_event_id="1:0").start()
    try:
        assert again.wait_for(lambda evs: any(e["type"] == "agent.status" for e in evs))
    finally:
        again.close()


def test_a_long_poll_answer_is_not_kept_by_a_browser_cache(base_url, org):
    """Nchan's long-poll answer carries Last-Modified and Etag, and had no
    Cache-Control: Chromium kept it and, on the page's next plain GET of the
    same URL (a new subscriber, no id), sent If-Modified-Since and
    If-None-Match from its cache on its own, so the new subscriber resumed
    from the cached event, and after a reload of nginx or 10 quiet minutes got
    a 409 it could do nothing about (it had sent no id). The answer says
    no-store."""
    customer = org.customer()
    chat = org.chat(customer, org.department())   # no agent: chat.waiting is kept
    r = requests.get(f"{base_url}/ws/chat/{chat['id']}", params={"token": customer["token"]},
                     headers={"If-Modified-Since": "Thu, 01 Jan 1970 00:00:01 GMT",
                              "If-None-Match": "0"}, timeout=5)
    assert r.status_code == 200, r.text
    assert r.json()["chat_id"] == chat["id"]
    assert r.headers.get("Last-Modified") and r.headers.get("Etag") is not None, r.headers
    assert [v.strip() for v in r.headers.get("Cache-Control", "").split(",")] == ["no-store"], r.headers


def test_agent_transferred_off_a_chat_stops_receiving_it(base_url, org, api):
    dept_a, dept_b = org.department(), org.department()
    a1, b1 = org.agent(dept_a), org.agent(dept_b)
    customer = org.customer()
    chat = org.chat(customer, dept_a)
    assert chat["agent_id"] == a1["id"]
    sub = rt.WebSocket(base_url, f"agent/{a1['id']}", token=a1["token"]).start()
    org.say(customer["token"], chat, "while a1 has it")
    assert api.post(f"/api/chats/{chat['id']}/transfer", token=a1["token"],
                    json={"department_id": dept_b["id"]}).status_code == 200
    org.say(customer["token"], chat, "after the transfer")
    org.say(b1["token"], chat, "b1 answers")
    sub.wait_for(lambda evs: False, timeout=1.5)
    sub.close()
    contents = [e["data"]["content"] for e in sub.wait_for(lambda evs: True, 0) if e["type"] == "message.created"]
    assert "while a1 has it" in contents
    assert "after the transfer" not in contents and "b1 answers" not in contents


def test_typing_is_published_not_stored_and_rate_limited(base_url, org, api, pool_pids):
    dept = org.department()
    org.agent(dept)
    customer = org.customer()
    chat = org.chat(customer, dept)
    before = api.get(f"/api/chats/{chat['id']}/messages", token=customer["token"]).json()
    sub = rt.EventSource(base_url, f"chat/{chat['id']}", token=customer["token"]).start()
    assert len(pool_pids()) > 1  # the limit is the instance's, not each worker's
    started = time.monotonic()
    for _ in range(50):  # a stuck key
        r = api.post(f"/api/chats/{chat['id']}/typing", token=customer["token"], json={"typing": True})
        assert r.status_code == 204
    took = time.monotonic() - started
    events = sub.wait_for(lambda evs: False, timeout=1.5)
    sub.close()
    typing = [e for e in events if e["type"] == "typing"]
    # One per second per user and chat, whichever workers answer (README 11, typing).
    assert 1 <= len(typing) <= 1 + int(took), (len(typing), took)
    assert typing[0]["data"] == {"user_id": customer["id"], "role": "customer", "typing": True}
    assert api.get(f"/api/chats/{chat['id']}/messages", token=customer["token"]).json() == before
    r = api.post(f"/api/chats/{chat['id']}/typing", token=customer["token"], json={"typing": "yes"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "typing"


def test_every_change_of_typing_is_published_whichever_worker_answers(base_url, org, api):
    """Each worker remembered only the values it had published itself: in
    true, false, true, false, true the last start reached a worker whose own
    last value was that first start, which it took for a repeat and dropped
    (an audit: 8 in 8), so the others saw the customer not typing. The last
    published value is now the instance's, so every change goes out, in order."""
    dept = org.department()
    org.agent(dept)
    customer = org.customer()
    chat = org.chat(customer, dept)
    sub = rt.EventSource(base_url, f"chat/{chat['id']}", token=customer["token"]).start()
    sent = [i % 2 == 0 for i in range(13)]
    for value in sent:
        assert api.post(f"/api/chats/{chat['id']}/typing", token=customer["token"],
                        json={"typing": value}).status_code == 204
    events = sub.wait_for(lambda evs: sum(1 for e in evs if e["type"] == "typing") >= len(sent),
                          timeout=5)
    sub.close()
    assert [e["data"]["typing"] for e in events if e["type"] == "typing"] == sent


def test_a_stop_after_a_burst_of_typing_is_always_published(base_url, org, api):
    """The throttle drops repeats, never a change: after starts, the stop arrives last."""
    dept = org.department()
    org.agent(dept)
    customer = org.customer()
    chat = org.chat(customer, dept)
    sub = rt.EventSource(base_url, f"chat/{chat['id']}", token=customer["token"]).start()
    for _ in range(3):
        for _ in range(20):
            assert api.post(f"/api/chats/{chat['id']}/typing", token=customer["token"],
                            json={"typing": True}).status_code == 204
        assert api.post(f"/api/chats/{chat['id']}/typing", token=customer["token"],
                        json={"typing": False}).status_code == 204
    events = sub.wait_for(lambda evs: sum(1 for e in evs if e["type"] == "typing"
                                          and e["data"]["typing"] is False) >= 3, timeout=5)
    sub.close()
    typing = [e["data"]["typing"] for e in events if e["type"] == "typing"]
    assert typing.count(False) == 3 and typing[-1] is False, typing
