"""Ids near their limits (contract 2, "IDs are positive integers"; README 9,
"Ids"): every id is a BIGINT AUTO_INCREMENT, so the API must serve every id
MariaDB hands out, up to 2^63 - 1, in paths, queries, bodies, channels and
the caches keyed by id, and refuse the ones past it.

A private instance (its AUTO_INCREMENTs are moved, which would change every
other file's ids) is started with `tools/carebot up` and taken down at the
end; E2E_IDS_PORT names its port (default: a free one). In file order:
- two chats whose ids agree in their low 32 bits (and so share every
  cache slot keyed by id) stay apart;
- past 2^53 (what JavaScript reads exactly; 2^53 + 1 is the first id it
  cannot), a whole chat's life through the API and real time. Before
  2026-11-25 ids took at most 15 digits: a department made past 10^15
  answered 201, then 404 to its own GET and 422 to an agent naming it;
- the largest id of each table, 2^63 - 1: chat, agent, department and
  message ids there work (the newest page left out message 2^63 - 1; an
  agent's mutex could not be taken past 2^63 - 1 - 2^60), the next one is
  a 503 that did nothing (it was a 500), and ids past it are no object's
  (2^63 in a body, which json-c reads as 2^63 - 1, named that department).
"""

import os
import shutil
import subprocess

import pytest

import rt
from chathelp import assert_error, ok, uniq
from conftest import Api
from test_ops import free_port

TOP = 2**63 - 1  # BIGINT's largest: the last id a table can give
JS_FIRST_INEXACT = 2**53 + 1  # JSON.parse reads it as 2^53
TABLES = ("departments", "users", "sessions", "chats", "messages", "transfers", "login_attempts")


class Instance:
    def __init__(self, carebot, state, url):
        self.carebot, self.state, self.url = carebot, state, url
        self.api = Api(url)
        self.admin = self.token("admin")

    def sql(self, statement):
        done = subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.state / 'run' / 'mysqld.sock'}", "-uroot",
             "-N", "-B", "carebot"], input=statement, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def next_ids(self, **tables):
        """Sets each table's next AUTO_INCREMENT id."""
        self.sql("".join(f"ALTER TABLE {t} AUTO_INCREMENT = {v};\n" for t, v in tables.items()))

    def admin_cli(self, *args):
        return subprocess.run([self.carebot, "admin", "--state", str(self.state), *map(str, args)],
                              capture_output=True, text=True, timeout=60)

    def token(self, username):
        done = self.admin_cli("token", username)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()[-1]

    def department(self):
        return ok(self.api.post("/api/departments/", token=self.admin, json={"name": uniq("d")}), 201)

    def agent(self, dept_id, presence=None):
        name = uniq("ag")
        user = ok(self.api.post("/api/users/", token=self.admin, json={
            "username": name, "password": "password123", "role": "agent",
            "full_name": f"Agent {name}", "department_id": dept_id}), 201)
        user["token"] = self.token(name)
        if presence:
            ok(self.api.put(f"/api/users/{user['id']}/status", token=user["token"],
                            json={"status": presence}))
        return user

    def customer(self):
        body = ok(self.api.post("/api/auth/guest", json={"full_name": uniq("Guest")}), 201)
        return {**body["user"], "token": body["token"]}

    def log(self):
        return (self.state / "log" / "fcgi.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def big(repo_root, tmp_path_factory):
    state = tmp_path_factory.mktemp("ids") / "state"
    port = int(os.environ.get("E2E_IDS_PORT") or free_port())
    carebot = str(repo_root / "tools" / "carebot")
    up = subprocess.run([carebot, "up", "--state", str(state), "--port", str(port), "--workers", "2"],
                        capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        yield Instance(carebot, state, f"http://127.0.0.1:{port}")
    finally:
        subprocess.run([carebot, "down", "--state", str(state)], capture_output=True, timeout=120)
        shutil.rmtree(state.parent, ignore_errors=True)  # its datadir is 250 MB


def post(big, chat_id, who, content, key=None):
    headers = {"Idempotency-Key": key} if key else None
    return big.api.post(f"/api/chats/{chat_id}/messages", token=who["token"],
                        json={"content": content}, headers=headers)


def page(big, chat_id, query, token=None):
    r = big.api.get(f"/api/chats/{chat_id}/messages?{query}", token=token or big.admin)
    return [m["id"] for m in ok(r)], int(r.headers["X-Total-Count"])


def seen(sub, kind, **match):
    """Waits for an event of that type (whose data has those values); all events so far."""
    def found(evs):
        return any(e["type"] == kind and all(e["data"].get(k) == v for k, v in match.items())
                   for e in evs)
    events = sub.wait_for(found)
    assert found(events), (kind, match, events)
    return events


def clean_log(big, since):
    """No worker failed on an id: no 500, no mutex it could not take."""
    new = big.log()[since:]
    for bad in ("failed internally", "cannot lock its mutex", "bug:"):
        assert bad not in new, new[-3000:]


def test_chats_whose_ids_agree_in_their_low_32_bits_stay_apart(big):
    """2^32 + 7 and 2^33 + 7 share their low 32 bits, so an id cut to 32 bits
    anywhere, and the slot of every cache keyed by id (history pages, chat
    states): each chat keeps its own messages, readers and events. First in
    the file, while the chats' ids are still small."""
    since = len(big.log())
    dept = big.department()
    one, two = big.customer(), big.customer()
    chats = []
    for who, cid in ((one, 2**32 + 7), (two, 2**33 + 7)):
        big.next_ids(chats=cid)
        chats.append(ok(big.api.post("/api/chats/", token=who["token"],
                                     json={"department_id": dept["id"]}), 201)["id"])
    assert chats == [2**32 + 7, 2**33 + 7]
    on_two = rt.EventSource(big.url, f"chat/{chats[1]}", token=two["token"]).start()
    try:
        for i in range(3):
            for who, cid in zip((one, two), chats):
                ok(post(big, cid, who, f"{cid} says {i}"), 201)
                for reader in (who, {"token": big.admin}):
                    got = ok(big.api.get(f"/api/chats/{cid}/messages", token=reader["token"]))
                    assert [m["content"] for m in got] == [f"{cid} says {k}" for k in range(i + 1)]
        assert_error(big.api.get(f"/api/chats/{chats[1]}/messages", token=one["token"]),
                     404, "not_found")
        assert_error(big.api.get(f"/api/chats/{chats[0]}", token=two["token"]), 404, "not_found")
        events = on_two.wait_count(3)
        assert [e["data"]["content"] for e in events] == [f"{chats[1]} says {i}" for i in range(3)]
    finally:
        on_two.close()
    clean_log(big, since)


def test_ids_past_2_53_work_end_to_end(big):
    base = JS_FIRST_INEXACT
    big.next_ids(**{t: base for t in TABLES})
    since = len(big.log())
    d1, d2 = big.department(), big.department()
    assert (d1["id"], d2["id"]) == (base, base + 1)
    ok(big.api.get(f"/api/departments/{d2['id']}", token=big.admin))
    a1 = big.agent(d1["id"], "available")
    a2 = big.agent(d2["id"], "available")
    assert (a1["id"], a2["id"]) == (base, base + 1)
    login = ok(big.api.post("/api/auth/login", json={"username": a1["username"],
                                                     "password": "password123"}))
    assert login["user"]["id"] == base
    cust = big.customer()
    assert ok(big.api.get("/api/auth/me", token=cust["token"]))["id"] == base + 2

    key = {"Idempotency-Key": uniq("k")}
    body = {"department_id": d1["id"], "message": "hello"}
    first = big.api.post("/api/chats/", token=cust["token"], json=body, headers=key)
    chat = ok(first, 201)
    assert (chat["id"], chat["agent_id"], chat["customer_id"]) == (base, a1["id"], cust["id"])
    assert f'"id":{base},' in first.text  # the exact digits on the wire
    again = big.api.post("/api/chats/", token=cust["token"], json=body, headers=key)
    assert (again.status_code, again.text) == (201, first.text)

    cid = chat["id"]
    on_chat = rt.EventSource(big.url, f"chat/{cid}", token=cust["token"]).start()
    on_agent = rt.WebSocket(big.url, f"agent/{a2['id']}", token=a2["token"]).start()
    on_dept = rt.EventSource(big.url, f"department/{d2['id']}", token=big.admin).start()
    try:
        sent = [ok(post(big, cid, cust, f"m{i}", key=uniq("p")), 201)["id"] for i in range(3)]
        sent.append(ok(post(big, cid, a1, "reply"), 201)["id"])
        everything, total = page(big, cid, "after_id=0&limit=500", cust["token"])
        assert total == len(everything) == 6 and everything == sorted(everything)
        assert everything[0] == base and everything[-4:] == sent  # hello, joined, then these
        assert page(big, cid, "limit=2") == (everything[-2:], 6)
        assert page(big, cid, f"before_id={everything[-2]}&limit=2")[0] == everything[-4:-2]
        assert page(big, cid, f"after_id={everything[1]}&limit=2")[0] == everything[2:4]
        assert page(big, cid, f"after_id={everything[1]}&before_id={everything[-1]}")[0] == \
            everything[2:-1]

        moved = ok(big.api.post(f"/api/chats/{cid}/transfer", token=a1["token"],
                                json={"department_id": d2["id"], "reason": "billing"}))
        assert (moved["department_id"], moved["agent_id"]) == (d2["id"], a2["id"])
        shown = ok(big.api.get(f"/api/chats/{cid}", token=a2["token"]))
        assert [(t["id"], t["from_agent_id"], t["to_agent_id"], t["to_department_id"])
                for t in shown["transfers"]] == [(base, a1["id"], a2["id"], d2["id"])]
        listed = big.api.get(f"/api/chats/?department_id={d2['id']}&agent_id={a2['id']}"
                             f"&customer_id={cust['id']}", token=big.admin)
        assert [c["id"] for c in ok(listed)] == [cid] and listed.headers["X-Total-Count"] == "1"
        assert [u["id"] for u in ok(big.api.get(f"/api/users/?department_id={d1['id']}",
                                                token=big.admin))] == [a1["id"]]
        assert ok(big.api.get(f"/api/users/{a2['id']}", token=a2["token"]))["department_id"] == d2["id"]
        assert big.api.post(f"/api/chats/{cid}/typing", token=cust["token"],
                            json={"typing": True}).status_code == 204
        ok(big.api.put(f"/api/chats/{cid}/close", token=cust["token"]))

        events = seen(on_chat, "chat.closed")
        assert {e["chat_id"] for e in events} == {cid}
        posted = [e["data"]["id"] for e in events if e["type"] == "message.created"]
        assert posted[:4] == sent and len(posted) == 6  # then the transfer's and a2's "joined"
        assert [e["data"]["user_id"] for e in events if e["type"] == "typing"] == [cust["id"]]
        seen(on_agent, "chat.closed")
        assigned = [e for e in on_agent.events if e[1]["type"] == "chat.assigned"]
        assert [(e["data"]["id"], e["data"]["agent_id"]) for _, e in assigned] == [(cid, a2["id"])]
        seen(on_dept, "chat.transferred")

        # A reconnect from the first event's id gets all the rest.
        resumed = rt.EventSource(big.url, f"chat/{cid}", token=cust["token"],
                                 last_event_id=on_chat.events[0][0]).start()
        try:
            got = resumed.wait_count(len(events) - 1)
            assert got == events[1:]
        finally:
            resumed.close()
    finally:
        for sub in (on_chat, on_agent, on_dept):
            sub.close()
    clean_log(big, since)


def test_the_largest_ids_work_and_the_next_is_a_503(big):
    """Each table's last id, 2^63 - 1: departments, users, chats and messages
    run out here (in that order), the sessions of the tokens do not. Last in
    the file: an AUTO_INCREMENT cannot be moved back below a table's ids."""
    since = len(big.log())
    big.next_ids(departments=TOP)
    dept = big.department()
    assert dept["id"] == TOP
    assert_error(big.api.post("/api/departments/", token=big.admin, json={"name": uniq("d")}),
                 503, "unavailable")
    big.next_ids(users=TOP - 2)
    a1 = big.agent(dept["id"], "available")
    a2 = big.agent(dept["id"])
    cust = big.customer()
    assert (a1["id"], a2["id"], cust["id"]) == (TOP - 2, TOP - 1, TOP)
    assert_error(big.api.post("/api/auth/guest", json={"full_name": "one too many"}),
                 503, "unavailable")
    big.next_ids(chats=TOP - 1, messages=TOP - 4)

    # 2^63 reads in json-c as 2^63 - 1, this department's id: no such department.
    assert_error(big.api.post("/api/chats/", token=cust["token"], json={"department_id": 2**63}),
                 422, "validation_error", "department_id")
    chat = ok(big.api.post("/api/chats/", token=cust["token"],
                           json={"department_id": TOP, "message": "hello"}), 201)
    cid = chat["id"]
    assert (cid, chat["agent_id"]) == (TOP - 1, a1["id"])

    on_chat = rt.EventSource(big.url, f"chat/{cid}", token=cust["token"]).start()
    on_agent = rt.WebSocket(big.url, f"agent/{a2['id']}", token=big.admin).start()
    on_dept = rt.EventSource(big.url, f"department/{TOP}", token=a2["token"]).start()
    try:
        ok(big.api.put(f"/api/users/{a2['id']}/status", token=a2["token"],
                       json={"status": "available"}))
        # a1 was last seen an hour ago: the sweep sets it offline and its chat goes to a2.
        big.sql(f"UPDATE users SET last_seen_at = NOW(3) - INTERVAL 1 HOUR WHERE id = {a1['id']}")
        swept = big.admin_cli("reassign", "--offline-after", 600)
        assert swept.returncode == 0 and "cannot lock" not in swept.stderr, swept.stderr
        assert swept.stdout.split()[-3:] == ["assigned=1", "requeued=1", "timed_out=1"], swept.stdout
        assert ok(big.api.get(f"/api/chats/{cid}", token=cust["token"]))["agent_id"] == a2["id"]

        last = ok(post(big, cid, cust, "the last message there can be"), 201)
        assert last["id"] == TOP
        assert page(big, cid, "limit=2", cust["token"]) == ([TOP - 1, TOP], 5)
        assert page(big, cid, "after_id=0") == ([TOP - 4, TOP - 3, TOP - 2, TOP - 1, TOP], 5)
        assert page(big, cid, f"after_id={TOP - 1}")[0] == [TOP]
        assert page(big, cid, f"after_id={TOP}")[0] == []
        assert page(big, cid, f"before_id={TOP}&limit=1")[0] == [TOP - 1]

        # No id left: 503, and nothing stored (a chat whose message cannot be, neither).
        assert_error(post(big, cid, cust, "one too many"), 503, "unavailable")
        assert_error(big.api.post("/api/chats/", token=cust["token"],
                                  json={"department_id": TOP, "message": "again"}),
                     503, "unavailable")
        assert page(big, cid, "after_id=0")[1] == 5
        assert [c["id"] for c in ok(big.api.get("/api/chats/", token=cust["token"]))] == [cid]

        events = seen(on_chat, "message.created", id=TOP)
        assert [e["data"]["id"] for e in events if e["type"] == "message.created"] == \
            [TOP - 2, TOP - 1, TOP]
        mine = seen(on_agent, "message.created", id=TOP)
        assert [e["data"]["id"] for e in mine if e["type"] == "agent.status"][:1] == [a2["id"]]
        assert [(e["data"]["id"], e["data"]["agent_id"]) for e in mine
                if e["type"] == "chat.assigned"] == [(cid, a2["id"])]
        seen(on_dept, "chat.assigned", id=cid, agent_id=a2["id"])
    finally:
        for sub in (on_chat, on_agent, on_dept):
            sub.close()
    ok(big.api.put(f"/api/chats/{cid}/close", token=a2["token"]))

    # Past 2^63 - 1 nothing can be: no such path, a malformed query, a field out of range.
    past = 2**63
    assert_error(big.api.get(f"/api/chats/{past}", token=big.admin), 404, "not_found")
    assert_error(big.api.get(f"/api/departments/{past}", token=big.admin), 404, "not_found")
    assert_error(big.api.get(f"/api/chats/?agent_id={past}", token=big.admin),
                 400, "bad_request", "agent_id")
    assert_error(big.api.get(f"/api/chats/{cid}/messages?after_id={past}", token=big.admin),
                 400, "bad_request", "after_id")
    before = ok(big.api.get(f"/api/chats/{cid}", token=big.admin))
    assert_error(big.api.post(f"/api/chats/{cid}/transfer", token=big.admin,
                              json={"department_id": TOP, "agent_id": 2**64}),
                 422, "validation_error", "agent_id")
    assert ok(big.api.get(f"/api/chats/{cid}", token=big.admin)) == before
    assert rt.subscription_status(rt.EventSource, big.url, f"chat/{past}", token=big.admin) == 403
    assert rt.subscription_status(rt.EventSource, big.url, f"chat/{cid}", token=big.admin) == 200
    clean_log(big, since)
