"""Contract 6.1 and the chat rows of section 3: every chat endpoint, its
validation (status, error code, field, and that nothing changed), message
history paging, and a table of who may call what on whose chat."""

import time

import pytest

from chathelp import World, assert_error, ok

CHAT_FIELDS = {"id", "customer_id", "department_id", "agent_id", "status", "subject", "created_at",
               "queued_at", "assigned_at", "closed_at", "closed_by", "queue_position", "customer", "agent"}
MESSAGE_FIELDS = {"id", "chat_id", "sender_id", "sender_role", "content", "created_at"}


@pytest.fixture
def w(api, admin_token, token_for):
    return World(api, admin_token, token_for)


# ---- POST /api/chats/ ----

def test_customer_creates_a_chat(w, api):
    dept = w.department()
    cust = w.customer()
    chat = w.chat(cust, department_id=dept["id"], subject="Order 42", message="Where is it?")
    assert set(chat) == CHAT_FIELDS
    assert chat["customer"] == {"id": cust["id"], "full_name": cust["full_name"]}
    assert (chat["status"], chat["agent"], chat["subject"], chat["queue_position"]) == ("waiting", None, "Order 42", 1)
    assert chat["queued_at"] == chat["created_at"]
    msgs = w.messages(chat["id"])
    assert [(m["sender_id"], m["sender_role"], m["content"]) for m in msgs] == [(cust["id"], "customer", "Where is it?")]
    assert set(msgs[0]) == MESSAGE_FIELDS


def test_admin_creates_for_a_customer(w, api):
    cust = w.customer()
    r = ok(api.post("/api/chats/", token=w.admin, json={"customer_id": cust["id"], "message": "hi"}), 201)
    assert r["customer_id"] == cust["id"]
    assert w.messages(r["id"])[0]["sender_id"] == cust["id"]
    agent = w.agent(w.department()["id"])
    gone = w.customer()
    ok(api.delete(f"/api/users/{gone['id']}", token=w.admin), 204)
    before = all_chats(api, w.admin)
    for body in ({}, {"customer_id": agent["id"]}, {"customer_id": ok(api.get("/api/auth/me", token=w.admin))["id"]}, {"customer_id": gone["id"]},
                 {"customer_id": 999999999}, {"customer_id": "1"}, {"customer_id": 0}):
        r = api.post("/api/chats/", token=w.admin, json={**body, "message": "for nobody"})
        assert_error(r, 422, "validation_error", "customer_id")
    assert all_chats(api, w.admin) == before


def all_chats(api, token):
    """The count of every chat and the newest one's id: any chat made would move both."""
    r = api.get("/api/chats/?limit=1", token=token)
    assert r.status_code == 200, r.text
    return r.headers["X-Total-Count"], [c["id"] for c in r.json()]


def test_a_customers_customer_id_is_ignored(w, api):
    """customer_id is the admin's (contract 6.1); a customer's is ignored,
    whatever it holds (README 11): the chat is always the customer's own."""
    me, other = w.customer(), w.customer()
    dept = w.department()["id"]
    for customer_id in (other["id"], "x"):
        chat = w.chat(me, department_id=dept, customer_id=customer_id, message="mine")
        assert (chat["customer_id"], chat["customer"]["id"]) == (me["id"], me["id"])
        assert [m["sender_id"] for m in w.messages(chat["id"])] == [me["id"]]
    assert ok(api.get("/api/chats/", token=other["token"])) == []


def test_agent_cannot_create(w, api):
    agent = w.agent(w.department()["id"])
    before = all_chats(api, w.admin)
    assert_error(api.post("/api/chats/", token=agent["token"], json={}), 403, "forbidden")
    assert_error(api.post("/api/chats/", token=agent["token"], json={"message": "x"}), 403, "forbidden")
    assert all_chats(api, w.admin) == before


@pytest.mark.parametrize("body,field", [
    ({"subject": "x" * 201}, "subject"),
    ({"subject": 5}, "subject"),
    ({"message": ""}, "message"),
    ({"message": "   \n\t"}, "message"),
    ({"message": "\u00a0\u3000"}, "message"),
    ({"message": "x" * 4001}, "message"),
    ({"message": 7}, "message"),
    ({"department_id": "1"}, "department_id"),
    ({"department_id": 0}, "department_id"),
    ({"department_id": 1.5}, "department_id"),
])
def test_create_validation(w, api, body, field):
    cust = w.customer()
    assert_error(api.post("/api/chats/", token=cust["token"], json=body), 422, "validation_error", field)
    assert ok(api.get("/api/chats/", token=cust["token"])) == []


def test_create_limits_are_inclusive(w):
    cust = w.customer()
    chat = w.chat(cust, department_id=w.department()["id"], subject="é" * 200, message="ü" * 4000)
    assert chat["subject"] == "é" * 200
    assert w.messages(chat["id"])[0]["content"] == "ü" * 4000
    assert w.chat(cust, department_id=w.department()["id"], subject=None)["subject"] is None


def test_create_bad_json_and_media_type(w, api):
    cust = w.customer()
    r = api.post("/api/chats/", token=cust["token"], data="{", headers={"Content-Type": "application/json"})
    assert_error(r, 400, "bad_json")
    r = api.post("/api/chats/", token=cust["token"], data="x=1", headers={"Content-Type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")
    assert ok(api.get("/api/chats/", token=cust["token"])) == []


# ---- GET /api/chats/ ----

def test_list_filters_paging_and_total(w, api):
    dept = w.department()
    cust = w.customer()
    chats = [w.chat(cust, department_id=dept["id"]) for _ in range(5)]
    w.close(chats[0]["id"])
    r = api.get(f"/api/chats/?department_id={dept['id']}&limit=2&offset=1", token=w.admin)
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "5"
    assert [c["id"] for c in r.json()] == [chats[3]["id"], chats[2]["id"]]
    assert [c["id"] for c in w.chats(department_id=dept["id"], status="closed")] == [chats[0]["id"]]
    assert len(w.chats(customer_id=cust["id"], status="waiting")) == 4
    assert w.chats(customer_id=cust["id"], agent_id=999999999) == []
    r = api.get(f"/api/chats?customer_id={cust['id']}&limit=1000", token=w.admin)
    assert [c["id"] for c in r.json()] == [c["id"] for c in reversed(chats)]
    for q in ("status=open", "limit=0", "limit=x", "offset=-1", "department_id=abc", "agent_id=0"):
        assert_error(api.get(f"/api/chats/?{q}", token=w.admin), 400, "bad_request", q.split("=")[0])


def test_list_default_page_and_cap(w, api):
    """More chats than the cap: the default page is 50, a larger limit gives 200."""
    dept, cust = w.department(), w.customer()
    made = [w.chat(cust, department_id=dept["id"])["id"] for _ in range(201)]
    newest_first = list(reversed(made))
    r = api.get(f"/api/chats/?customer_id={cust['id']}", token=w.admin)
    assert r.headers["X-Total-Count"] == "201"
    assert [c["id"] for c in r.json()] == newest_first[:50]
    for big in ("201", "1000", "9" * 30):
        r = api.get(f"/api/chats/?customer_id={cust['id']}&limit={big}", token=w.admin)
        assert [c["id"] for c in r.json()] == newest_first[:200], big
    r = api.get(f"/api/chats/?customer_id={cust['id']}&limit=200&offset=200", token=w.admin)
    assert [c["id"] for c in r.json()] == newest_first[200:]


def test_history_default_page_and_cap(w, api):
    """More messages than the cap: the default page is the newest 100, a larger limit gives 500."""
    cust = w.customer()
    chat = w.chat(cust, department_id=w.department()["id"])
    ids = [ok(api.post(f"/api/chats/{chat['id']}/messages", token=cust["token"],
                       json={"content": f"m{i}"}), 201)["id"] for i in range(501)]
    r = api.get(f"/api/chats/{chat['id']}/messages", token=cust["token"])
    assert r.headers["X-Total-Count"] == "501"
    assert [m["id"] for m in r.json()] == ids[-100:]
    for big in ("501", "100000", "9" * 30):
        assert [m["id"] for m in w.messages(chat["id"], limit=big)] == ids[-500:], big
    assert [m["id"] for m in w.messages(chat["id"], after_id=0, limit=1000)] == ids[:500]


def test_list_visibility(w, api):
    dept, other = w.department(), w.department()
    agent = w.agent(dept["id"], max_chats=1)
    mine, theirs = w.customer(), w.customer()
    c_mine = w.chat(mine, department_id=dept["id"])
    c_theirs = w.chat(theirs, department_id=other["id"])
    assert [c["id"] for c in ok(api.get("/api/chats/", token=mine["token"]))] == [c_mine["id"]]
    # A customer's filters cannot widen what it sees.
    assert ok(api.get(f"/api/chats/?customer_id={theirs['id']}", token=mine["token"])) == []
    seen = {c["id"] for c in ok(api.get("/api/chats/?limit=200", token=agent["token"]))}
    assert c_mine["id"] in seen and c_theirs["id"] not in seen
    # Assigned to the agent after a transfer into another department: still visible to it.
    w.presence(agent["id"], "available")
    ok(api.post(f"/api/chats/{c_mine['id']}/transfer", token=agent["token"],
                json={"department_id": other["id"]}))
    other_agent = w.agent(other["id"], presence="available")
    c3 = w.chat(w.customer(), department_id=dept["id"])
    assert c3["agent_id"] == agent["id"]
    ok(api.post(f"/api/chats/{c3['id']}/transfer", token=agent["token"],
                json={"department_id": other["id"], "agent_id": other_agent["id"]}))
    seen = {c["id"] for c in ok(api.get(f"/api/chats/?agent_id={other_agent['id']}", token=agent["token"]))}
    assert seen == set()


def test_an_agents_list_is_its_department_and_its_own_chats_elsewhere_paged_as_one(w, api):
    """The agent's list is read as two sets (README 5, "Lists at scale"): the
    department's chats and the agent's own in other departments (those it
    closed there before it moved). Every page, total and filter must be
    those of the one list they make together."""
    old, new = w.department(), w.department()
    agent = w.agent(old["id"], max_chats=3, presence="available")
    before = [w.chat(w.customer(), department_id=old["id"]) for _ in range(3)]
    assert all(c["agent_id"] == agent["id"] for c in before)
    w.close(before[0]["id"])
    w.close(before[1]["id"])
    # Moved: its open chat goes back to the old queue, its closed ones stay its own.
    ok(api.put(f"/api/users/{agent['id']}", token=w.admin, json={"department_id": new["id"]}))
    department = [w.chat(w.customer(), department_id=new["id"]) for _ in range(5)]
    w.close(department[1]["id"])
    others = [w.chat(w.customer(), department_id=old["id"]), w.chat(w.customer())]
    chats = [w.get_chat(c["id"]) for c in before + department + others]
    visible = sorted((c for c in chats if c["department_id"] == new["id"] or
                      c["agent_id"] == agent["id"]), key=lambda c: -c["id"])
    # Both sets, interleaved by nothing but id: the old ones all come last.
    assert [c["id"] for c in visible[-2:]] == [before[1]["id"], before[0]["id"]]
    assert {c["status"] for c in visible} == {"active", "waiting", "closed"}

    def listed(query):
        r = api.get(f"/api/chats/?{query}", token=agent["token"])
        assert r.status_code == 200, r.text
        return int(r.headers["X-Total-Count"]), [c["id"] for c in r.json()]

    for query, keep in {"": lambda c: True,
                        "status=closed": lambda c: c["status"] == "closed",
                        "status=waiting": lambda c: c["status"] == "waiting",
                        f"department_id={old['id']}": lambda c: c["department_id"] == old["id"],
                        f"agent_id={agent['id']}": lambda c: c["agent_id"] == agent["id"],
                        f"customer_id={before[0]['customer_id']}":
                            lambda c: c["customer_id"] == before[0]["customer_id"],
                        f"status=closed&department_id={old['id']}":
                            lambda c: c["status"] == "closed" and c["department_id"] == old["id"],
                        f"status=active&agent_id={agent['id']}&department_id={new['id']}":
                            lambda c: (c["status"], c["agent_id"], c["department_id"]) ==
                            ("active", agent["id"], new["id"])}.items():
        ids = [c["id"] for c in visible if keep(c)]
        assert ids, query
        for limit in (1, 2, 3, 7):
            pages = []
            for offset in range(0, len(ids) + limit, limit):
                total, page = listed(f"{query}&limit={limit}&offset={offset}")
                assert total == len(ids), (query, limit, offset, total)
                pages += page
            assert pages == ids, (query, limit)



def test_a_page_past_the_end_still_counts_for_admins_and_customers(w, api):
    """A page past the end has no row to carry the total, so it is counted on
    its own, by a statement per role; the agents' one is exercised above."""
    cust = w.customer()
    made = [w.chat(cust, department_id=w.department()["id"])["id"] for _ in range(3)]
    w.close(made[0])
    for token, query, total in [(w.admin, f"customer_id={cust['id']}", 3),
                                (w.admin, f"customer_id={cust['id']}&status=waiting", 2),
                                (cust["token"], "", 3),
                                (cust["token"], "status=closed", 1)]:
        r = api.get(f"/api/chats/?{query}&offset=5", token=token)
        assert r.status_code == 200 and r.json() == [], (query, r.text)
        assert r.headers["X-Total-Count"] == str(total), query


# ---- GET /api/chats/{id} ----

def test_show_adds_transfers_oldest_first(w, api):
    a, b, c = w.department(), w.department(), w.department()
    chat = w.chat(w.customer(), department_id=a["id"])
    assert w.get_chat(chat["id"])["transfers"] == []
    ok(api.post(f"/api/chats/{chat['id']}/transfer", token=w.admin, json={"department_id": b["id"]}))
    ok(api.post(f"/api/chats/{chat['id']}/transfer", token=w.admin, json={"department_id": c["id"], "reason": None}))
    t = w.get_chat(chat["id"])["transfers"]
    assert [(x["from_department_id"], x["to_department_id"]) for x in t] == [(a["id"], b["id"]), (b["id"], c["id"])]
    assert t[0]["id"] < t[1]["id"] and t[1]["reason"] is None
    assert_error(api.get("/api/chats/999999999", token=w.admin), 404, "not_found")


# ---- messages ----

def test_post_message_roles_and_rules(w, api):
    dept = w.department()
    agent = w.agent(dept["id"], presence="available")
    cust = w.customer()
    chat = w.chat(cust, department_id=dept["id"])
    m = ok(api.post(f"/api/chats/{chat['id']}/messages", token=agent["token"], json={"content": "Hello!"}), 201)
    assert set(m) == MESSAGE_FIELDS
    assert (m["chat_id"], m["sender_id"], m["sender_role"], m["content"]) == (chat["id"], agent["id"], "agent", "Hello!")
    m = ok(api.post(f"/api/chats/{chat['id']}/messages", token=w.admin, json={"content": "admin here"}), 201)
    assert m["sender_role"] == "admin"
    m = ok(api.post(f"/api/chats/{chat['id']}/messages", token=cust["token"], json={"content": "  hi  "}), 201)
    assert m["sender_role"] == "customer" and m["content"] == "  hi  "


def test_waiting_customer_may_write(w, api):
    cust = w.customer()
    chat = w.chat(cust, department_id=w.department()["id"])
    assert chat["status"] == "waiting"
    ok(api.post(f"/api/chats/{chat['id']}/messages", token=cust["token"], json={"content": "still there?"}), 201)


@pytest.mark.parametrize("body", [{}, {"content": ""}, {"content": " \t\n "}, {"content": "x" * 4001},
                                  {"content": None}, {"content": 3},
                                  {"content": "\u00a0\u3000\u2003"}, {"content": "\u200b\ufeff \u2028"}])
def test_post_message_validation(w, api, body):
    cust = w.customer()
    chat = w.chat(cust, department_id=w.department()["id"])
    r = api.post(f"/api/chats/{chat['id']}/messages", token=cust["token"], json=body)
    assert_error(r, 422, "validation_error", "content")
    assert w.messages(chat["id"]) == []


def test_closed_chat_refuses_messages_close_and_typing(w, api):
    cust = w.customer()
    chat = w.chat(cust, department_id=w.department()["id"], message="bye")
    closed = ok(api.put(f"/api/chats/{chat['id']}/close", token=cust["token"]))
    assert closed["status"] == "closed" and closed["closed_by"] == cust["id"] and closed["closed_at"]
    assert closed["queue_position"] is None
    assert_error(api.post(f"/api/chats/{chat['id']}/messages", token=cust["token"], json={"content": "x"}),
                 409, "chat_closed")
    # validation comes before the chat's state (README 11)
    assert_error(api.post(f"/api/chats/{chat['id']}/messages", token=cust["token"], json={"content": " "}),
                 422, "validation_error", "content")
    assert_error(api.put(f"/api/chats/{chat['id']}/close", token=w.admin), 409, "chat_closed")
    assert_error(api.post(f"/api/chats/{chat['id']}/typing", token=cust["token"], json={"typing": True}),
                 409, "chat_closed")
    assert len(w.messages(chat["id"])) == 1
    assert w.get_chat(chat["id"]) == {**closed, "transfers": []}  # closed_at and closed_by kept


def test_close_frees_the_agent(w, api):
    dept = w.department()
    agent = w.agent(dept["id"], max_chats=1, presence="available")
    chat = w.chat(w.customer(), department_id=dept["id"])
    assert w.user(agent["id"])["status"] == "busy"
    r = ok(api.put(f"/api/chats/{chat['id']}/close", token=agent["token"]))
    assert r["agent_id"] == agent["id"] and r["closed_by"] == agent["id"]
    u = w.user(agent["id"])
    assert (u["active_chats"], u["status"]) == (0, "available")


def test_typing(w, api):
    cust = w.customer()
    chat = w.chat(cust, department_id=w.department()["id"])
    for value in (True, False, True):
        r = api.post(f"/api/chats/{chat['id']}/typing", token=cust["token"], json={"typing": value})
        assert r.status_code == 204 and r.content == b""
    assert w.messages(chat["id"]) == []


def test_typing_validation_publishes_nothing(w, api, base_url):
    import rt
    cust = w.customer()
    chat = w.chat(cust, department_id=w.department()["id"])
    sub = rt.WebSocket(base_url, f"chat/{chat['id']}", token=w.admin).start()
    try:
        for body in ({}, {"typing": "yes"}, {"typing": 1}, {"typing": 0}, {"typing": None}, {"typing": "true"},
                     {"typing": [True]}):
            r = api.post(f"/api/chats/{chat['id']}/typing", token=cust["token"], json=body)
            assert_error(r, 422, "validation_error", "typing")
        # a valid one goes out, and is the only event: the refused ones sent nothing
        assert api.post(f"/api/chats/{chat['id']}/typing", token=cust["token"], json={"typing": True}).status_code == 204
        sub.wait_for(lambda evs: any(e["type"] == "typing" for e in evs))
        time.sleep(0.3)
        events = [e for _, e in sub.events]
        assert [(e["type"], e["data"]["typing"]) for e in events] == [("typing", True)], events
    finally:
        sub.close()
    assert w.messages(chat["id"]) == []


def test_history_paging(w, api):
    cust = w.customer()
    chat = w.chat(cust, department_id=w.department()["id"])
    ids = [ok(api.post(f"/api/chats/{chat['id']}/messages", token=cust["token"],
                       json={"content": f"m{i}"}), 201)["id"] for i in range(12)]
    assert [m["id"] for m in w.messages(chat["id"])] == ids
    r = api.get(f"/api/chats/{chat['id']}/messages?limit=3", token=cust["token"])
    assert r.headers["X-Total-Count"] == "12"
    assert [m["id"] for m in r.json()] == ids[-3:]
    assert [m["id"] for m in w.messages(chat["id"], after_id=ids[2], limit=4)] == ids[3:7]
    assert [m["id"] for m in w.messages(chat["id"], before_id=ids[5], limit=4)] == ids[1:5]
    assert [m["id"] for m in w.messages(chat["id"], before_id=ids[2], limit=10)] == ids[:2]
    assert [m["id"] for m in w.messages(chat["id"], after_id=ids[-1])] == []
    # after_id=0 is the start of the chat, not "no cursor" (which gives the newest)
    assert [m["id"] for m in w.messages(chat["id"], after_id=0, limit=3)] == ids[:3]
    assert [m["id"] for m in w.messages(chat["id"], after_id=0, before_id=ids[2])] == ids[:2]
    assert [m["id"] for m in w.messages(chat["id"], after_id=ids[1], before_id=ids[5])] == ids[2:5]
    # Walking backwards page by page yields everything once.
    seen, before = [], None
    while True:
        page = w.messages(chat["id"], limit=5, **({"before_id": before} if before else {}))
        if not page:
            break
        seen = [m["id"] for m in page] + seen
        before = page[0]["id"]
    assert seen == ids
    for q in ("limit=0", "after_id=x", "after_id=-1", "before_id=-3", "before_id=0"):
        assert_error(api.get(f"/api/chats/{chat['id']}/messages?{q}", token=cust["token"]), 400,
                     "bad_request", q.split("=")[0])


def test_transfer_and_close_validation(w, api):
    chat = w.chat(w.customer(), department_id=w.department()["id"])
    for body, field in (({}, "department_id"), ({"department_id": "2"}, "department_id"),
                        ({"department_id": 1, "agent_id": "x"}, "agent_id"),
                        ({"department_id": 1, "reason": "r" * 501}, "reason"),
                        ({"department_id": 1, "reason": "é" * 501}, "reason"),
                        ({"department_id": 1, "reason": 5}, "reason")):
        r = api.post(f"/api/chats/{chat['id']}/transfer", token=w.admin, json=body)
        assert_error(r, 422, "validation_error", field)
    assert w.get_chat(chat["id"])["transfers"] == []
    # the longest reason is taken, counted in characters
    dst = w.department()
    moved = ok(api.post(f"/api/chats/{chat['id']}/transfer", token=w.admin,
                        json={"department_id": dst["id"], "reason": "é" * 500}))
    assert moved["department_id"] == dst["id"]
    assert w.get_chat(chat["id"])["transfers"][0]["reason"] == "é" * 500


# ---- who may do what (contract 3) ----

ROLES = ["admin", "dept_agent", "assigned_agent", "other_agent", "own_customer", "other_customer", "anonymous"]
# endpoint -> expected status per role (in ROLES order)
TABLE = {
    "show":     [200, 200, 200, 403, 200, 404, 401],
    "messages": [200, 200, 200, 403, 200, 404, 401],
    # An empty page is answered on another path (no rows to carry the chat's state).
    "messages_empty": [200, 200, 200, 403, 200, 404, 401],
    "post":     [201, 403, 201, 403, 201, 404, 401],
    "typing":   [204, 403, 204, 403, 204, 404, 401],
    "transfer": [200, 403, 200, 403, 403, 403, 401],
    "close":    [200, 403, 200, 403, 200, 404, 401],
}


@pytest.fixture(scope="module")
def cast(api, admin_token, token_for):
    w = World(api, admin_token, token_for)
    dept, other = w.department(), w.department()
    people = {"admin": {"token": admin_token},
              "dept_agent": w.agent(dept["id"]),
              "assigned_agent": w.agent(dept["id"], max_chats=100, presence="available"),
              "other_agent": w.agent(other["id"]),
              "own_customer": w.customer(),
              "other_customer": w.customer(),
              "anonymous": {"token": None}}
    return w, dept, other, people


@pytest.mark.parametrize("endpoint", list(TABLE))
@pytest.mark.parametrize("role", ROLES)
def test_role_table(cast, api, endpoint, role):
    w, dept, other, people = cast
    chat = w.chat(people["own_customer"], department_id=dept["id"])
    assert chat["agent_id"] == people["assigned_agent"]["id"]
    token = people[role]["token"]
    cid = chat["id"]
    r = {"show": lambda: api.get(f"/api/chats/{cid}", token=token),
         "messages": lambda: api.get(f"/api/chats/{cid}/messages", token=token),
         "messages_empty": lambda: api.get(f"/api/chats/{cid}/messages?before_id=1", token=token),
         "post": lambda: api.post(f"/api/chats/{cid}/messages", token=token, json={"content": "hi"}),
         "typing": lambda: api.post(f"/api/chats/{cid}/typing", token=token, json={"typing": True}),
         "transfer": lambda: api.post(f"/api/chats/{cid}/transfer", token=token,
                                      json={"department_id": other["id"]}),
         "close": lambda: api.put(f"/api/chats/{cid}/close", token=token)}[endpoint]()
    expected = TABLE[endpoint][ROLES.index(role)]
    assert r.status_code == expected, (role, endpoint, r.text)
    after = w.get_chat(cid)
    if expected >= 400:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}[expected]
        assert r.json()["error"]["code"] == code
        # Nothing changed: still active with the same agent, and only the joined message.
        assert (after["status"], after["agent_id"], after["transfers"]) == ("active", chat["agent_id"], [])
        assert len(w.messages(cid)) == 1
    if after["status"] != "closed":
        w.close(cid)


def test_customer_never_sees_another_customers_chat(w, api):
    mine, theirs = w.customer(), w.customer()
    chat = w.chat(theirs, department_id=w.department()["id"], message="private")
    for path in (f"/api/chats/{chat['id']}", f"/api/chats/{chat['id']}/messages"):
        assert_error(api.get(path, token=mine["token"]), 404, "not_found")
    assert chat["id"] not in {c["id"] for c in ok(api.get("/api/chats/?limit=200", token=mine["token"]))}


# ---- events (contract 7), read back from the chat channel's buffer by long-poll ----

def channel_events(base_url, channel, token, predicate):
    import rt
    sub = rt.LongPoll(base_url, channel, token=token).start(wait=False)
    try:
        return sub.wait_for(predicate)
    finally:
        sub.close()


def transferred(cid):
    return lambda evs: any(e["type"] == "chat.transferred" and e["chat_id"] == cid for e in evs)


def test_chat_events_in_order(w, api, base_url):
    src, dst = w.department(), w.department()
    agent = w.agent(src["id"], presence="available")
    cust = w.customer()
    chat = w.chat(cust, department_id=src["id"], message="hi")
    cid = chat["id"]
    assert api.post(f"/api/chats/{cid}/typing", token=cust["token"], json={"typing": True}).status_code == 204
    ok(api.post(f"/api/chats/{cid}/transfer", token=agent["token"], json={"department_id": dst["id"]}))
    ok(api.put(f"/api/chats/{cid}/close", token=cust["token"]))
    events = channel_events(base_url, f"chat/{cid}", w.admin, lambda evs: len(evs) >= 8)
    assert [e["type"] for e in events] == [
        "message.created", "message.created", "chat.assigned", "typing",
        "message.created", "chat.transferred", "chat.waiting", "chat.closed"]
    assert all(e["chat_id"] == cid for e in events)
    assert events[3]["data"] == {"user_id": cust["id"], "role": "customer", "typing": True}
    moved = events[5]["data"]
    assert set(moved) == {"chat", "transfer"}
    assert moved["chat"]["department_id"] == dst["id"] and moved["chat"]["status"] == "waiting"
    assert (moved["transfer"]["from_agent_id"], moved["transfer"]["to_agent_id"]) == (agent["id"], None)
    assert (events[6]["data"]["status"], events[6]["data"]["queue_position"]) == ("waiting", 1)
    assert events[7]["data"]["status"] == "closed"
    # The previous agent and both departments hear of the transfer.
    for channel, token in ((f"agent/{agent['id']}", agent["token"]), (f"department/{dst['id']}", w.admin),
                           (f"department/{src['id']}", w.admin)):
        got = channel_events(base_url, channel, token, transferred(cid))
        types = [e["type"] for e in got if e["chat_id"] == cid]
        assert "chat.transferred" in types, (channel, types)


def test_at_never_goes_back_on_a_chat_channel(w, api, base_url):
    """A transfer that assigns at once: chat.transferred goes out before the
    "joined" message and chat.assigned of the assignment, and its at is not
    later than theirs (it was stamped after them, then moved before them)."""
    src, dst = w.department(), w.department()
    agent = w.agent(src["id"], max_chats=10, presence="available")
    w.agent(dst["id"], max_chats=10, presence="available")
    for _ in range(5):
        cid = w.chat(w.customer(), department_id=src["id"], message="hi")["id"]
        ok(api.post(f"/api/chats/{cid}/transfer", token=agent["token"], json={"department_id": dst["id"]}))
        events = channel_events(base_url, f"chat/{cid}", w.admin, lambda evs: len(evs) >= 7)
        types = [e["type"] for e in events]
        assert types[-4:] == ["message.created", "chat.transferred", "message.created", "chat.assigned"], types
        stamps = [e["at"] for e in events]
        assert stamps == sorted(stamps), list(zip(types, stamps))
