"""Contract 6.2 (assignment), 6.3 (transfer), 6.4 (agents going offline) and
the reassign sweep of section 8, one test per rule, each in its own fresh
department with its own agents and guest customers."""

import datetime

import pytest

from chathelp import World, assert_error, ok, reassign_counts, uniq


@pytest.fixture
def w(api, admin_token, token_for):
    return World(api, admin_token, token_for)


def ts(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def departments(w):
    """Every department, all pages: the instance may hold more than a page of
    them (runs before this one leave theirs, and test_caches.py's sort first)."""
    items = []
    while True:
        r = w.api.get(f"/api/departments/?limit=200&offset={len(items)}", token=w.admin)
        items += ok(r)
        if not r.json() or len(items) >= int(r.headers["X-Total-Count"]):
            return items


# ---- 6.2.1 ----

def test_no_department_goes_to_the_default(w, api):
    default = [d for d in departments(w) if d["is_default"]][0]
    chat = w.chat(w.customer())
    assert chat["department_id"] == default["id"]


def test_no_department_follows_a_default_that_moves_meanwhile(w, api, state_dir):
    """A create that read the default, then waited for its lock while the
    default moved and the old one was deactivated, goes to the new default:
    it named no department, so no department_id can be at fault (an audit saw
    422 about once in 4,000 creates racing default moves). A SQL session
    holds the old default's row lock to make the race certain."""
    from test_chat_mutex import NamedMutex, in_background
    original = next(d for d in departments(w) if d["is_default"])
    old, new = w.department(), w.department()
    ok(api.put(f"/api/departments/{old['id']}", token=w.admin, json={"is_default": True}))
    session = NamedMutex(state_dir)
    try:
        assert session.ask(f"BEGIN; SELECT id FROM departments WHERE id = {old['id']} FOR UPDATE") == str(old["id"])
        customer = w.customer()
        thread, out = in_background(lambda: api.post("/api/chats/", token=customer["token"], json={"message": "hi"}))
        thread.join(0.7)  # the create has read the default and waits for its row
        assert thread.is_alive(), out
        assert session.ask(f"UPDATE departments SET is_default = FALSE, is_active = FALSE WHERE id = {old['id']}; "
                           f"UPDATE departments SET is_default = TRUE WHERE id = {new['id']}; "
                           f"COMMIT; SELECT 'moved'") == "moved"
        thread.join(15)
        chat = ok(out[0], 201)
        assert chat["department_id"] == new["id"], chat
    finally:
        session.close()
        # back to the suite's default, through the API so that every worker hears of it
        ok(api.put(f"/api/departments/{original['id']}", token=w.admin, json={"is_default": True}))


@pytest.mark.parametrize("which", ["unknown", "inactive", "deleted"])
def test_unknown_inactive_or_deleted_department_is_422(w, api, which):
    customer = w.customer()
    if which == "unknown":
        dept_id = 999999999
    else:
        dept_id = w.department()["id"]
        if which == "inactive":
            ok(api.put(f"/api/departments/{dept_id}", token=w.admin, json={"is_active": False}))
        else:
            ok(api.delete(f"/api/departments/{dept_id}", token=w.admin), 204)
    r = api.post("/api/chats/", token=customer["token"], json={"department_id": dept_id, "message": "hi"})
    assert_error(r, 422, "validation_error", "department_id")
    assert ok(api.get("/api/chats/", token=customer["token"])) == []


# ---- 6.2.2 / 6.2.3 ----

def test_busy_or_offline_agents_are_not_eligible(w):
    dept = w.department()
    w.agent(dept["id"], presence="busy")
    w.agent(dept["id"])  # offline
    chat = w.chat(w.customer(), department_id=dept["id"])
    assert chat["status"] == "waiting" and chat["agent_id"] is None
    assert chat["queue_position"] == 1


def test_least_loaded_agent_gets_the_chat(w):
    dept = w.department()
    a = w.agent(dept["id"], presence="available")
    c1, c2 = (w.chat(w.customer(), department_id=dept["id"]) for _ in range(2))
    assert c1["agent_id"] == a["id"] and c2["agent_id"] == a["id"]
    b = w.agent(dept["id"], presence="available")
    c3 = w.chat(w.customer(), department_id=dept["id"])
    c4 = w.chat(w.customer(), department_id=dept["id"])
    assert (c3["agent_id"], c4["agent_id"]) == (b["id"], b["id"])  # 0 < 2, then 1 < 2


def test_tie_goes_to_the_oldest_last_assignment(w):
    dept = w.department()
    a = w.agent(dept["id"], presence="available")
    b = w.agent(dept["id"], presence="available")
    c1 = w.chat(w.customer(), department_id=dept["id"])  # a: lowest id, both never assigned
    c2 = w.chat(w.customer(), department_id=dept["id"])  # b: fewer chats
    assert (c1["agent_id"], c2["agent_id"]) == (a["id"], b["id"])
    # Both hold one; a was assigned before b, so a is next.
    assert w.chat(w.customer(), department_id=dept["id"])["agent_id"] == a["id"]
    # Both hold two; b's last assignment (c2) is now the oldest.
    assert w.chat(w.customer(), department_id=dept["id"])["agent_id"] == b["id"]


def test_never_assigned_agent_comes_first(w):
    dept = w.department()
    a = w.agent(dept["id"], presence="available")
    first = w.chat(w.customer(), department_id=dept["id"])
    assert first["agent_id"] == a["id"]
    w.close(first["id"])
    b = w.agent(dept["id"], presence="available")  # higher id, never assigned
    assert w.chat(w.customer(), department_id=dept["id"])["agent_id"] == b["id"]


def test_then_the_lowest_id(w):
    dept = w.department()
    a = w.agent(dept["id"])
    b = w.agent(dept["id"])
    w.presence(b["id"], "available")
    w.presence(a["id"], "available")
    assert w.chat(w.customer(), department_id=dept["id"])["agent_id"] == min(a["id"], b["id"])


# ---- 6.2.4 / capacity ----

def test_capacity_is_never_exceeded_and_the_rest_queue_fifo(w):
    dept = w.department()
    a = w.agent(dept["id"], max_chats=2, presence="available")
    chats = [w.chat(w.customer(), department_id=dept["id"]) for _ in range(4)]
    assert [c["status"] for c in chats] == ["active", "active", "waiting", "waiting"]
    assert [c["queue_position"] for c in chats[2:]] == [1, 2]
    agent = w.user(a["id"])
    assert agent["active_chats"] == 2 and agent["status"] == "busy"
    assert [c["id"] for c in w.chats(department_id=dept["id"], status="waiting")] == \
        [chats[3]["id"], chats[2]["id"]]  # lists are newest first


def test_queue_position_is_null_unless_waiting(w):
    """Contract 6: queue_position is the place among the department's waiting
    chats, null unless waiting - for an active chat in the create answer, its
    GET and the list alike, also while chats wait in its department."""
    dept = w.department()
    w.agent(dept["id"], max_chats=1, presence="available")
    active, waiting = (w.chat(w.customer(), department_id=dept["id"]) for _ in range(2))
    assert (active["status"], active["queue_position"]) == ("active", None)
    assert (waiting["status"], waiting["queue_position"]) == ("waiting", 1)
    assert w.get_chat(active["id"])["queue_position"] is None
    assert {c["id"]: c["queue_position"] for c in w.chats(department_id=dept["id"])} == \
        {active["id"]: None, waiting["id"]: 1}


def joined(w, chat_id, full_name):
    return [m for m in w.messages(chat_id) if m["sender_role"] == "system"
            and m["content"] == f"{full_name} joined the chat."]


def test_assignment_adds_the_joined_message_after_the_customer_message(w):
    dept = w.department()
    a = w.agent(dept["id"], presence="available", full_name="Jo Joiner")
    chat = w.chat(w.customer(), department_id=dept["id"], message="my printer is on fire")
    msgs = w.messages(chat["id"])
    assert [(m["sender_role"], m["content"]) for m in msgs] == [
        ("customer", "my printer is on fire"), ("system", "Jo Joiner joined the chat.")]
    assert msgs[1]["sender_id"] is None
    assert chat["agent"] == {"id": a["id"], "full_name": "Jo Joiner"}


# ---- 6.2.5: every trigger drains the queue oldest first ----

def queue_of(w, dept_id, n):
    return [w.chat(w.customer(), department_id=dept_id) for _ in range(n)]


def test_drain_when_an_agent_becomes_available(w):
    dept = w.department()
    a = w.agent(dept["id"], max_chats=2)
    chats = queue_of(w, dept["id"], 3)
    w.presence(a["id"], "available")
    got = [w.get_chat(c["id"]) for c in chats]
    assert [c["agent_id"] for c in got] == [a["id"], a["id"], None]
    assert got[2]["queue_position"] == 1


def test_drain_when_a_chat_closes(w):
    dept = w.department()
    a = w.agent(dept["id"], max_chats=1, presence="available")
    held, second, third = queue_of(w, dept["id"], 3)
    ok(w.api.put(f"/api/chats/{held['id']}/close", token=a["token"]))
    assert w.get_chat(second["id"])["agent_id"] == a["id"]
    assert w.get_chat(third["id"])["status"] == "waiting"


def test_drain_when_a_chat_is_transferred_away(w):
    dept, other = w.department(), w.department()
    a = w.agent(dept["id"], max_chats=1, presence="available")
    held, waiting = queue_of(w, dept["id"], 2)
    ok(w.api.post(f"/api/chats/{held['id']}/transfer", token=a["token"],
                  json={"department_id": other["id"]}))
    assert w.get_chat(waiting["id"])["agent_id"] == a["id"]


def test_drain_when_max_chats_rises(w):
    dept = w.department()
    a = w.agent(dept["id"], max_chats=1, presence="available")
    held, second, third = queue_of(w, dept["id"], 3)
    ok(w.api.put(f"/api/users/{a['id']}", token=w.admin, json={"max_chats": 2}))
    assert w.get_chat(second["id"])["agent_id"] == a["id"]
    assert w.get_chat(third["id"])["status"] == "waiting"


def test_lowering_max_chats_takes_nothing_away_and_holds_new_chats_back(w):
    dept = w.department()
    a = w.agent(dept["id"], max_chats=3, presence="available")
    held = queue_of(w, dept["id"], 3)
    assert [c["agent_id"] for c in held] == [a["id"]] * 3
    ok(w.api.put(f"/api/users/{a['id']}", token=w.admin, json={"max_chats": 1}))
    user = w.user(a["id"])
    assert (user["active_chats"], user["status"], user["presence"]) == (3, "busy", "available")
    assert all(w.get_chat(c["id"])["agent_id"] == a["id"] for c in held)
    waiting = w.chat(w.customer(), department_id=dept["id"])
    assert waiting["status"] == "waiting"
    w.close(held[0]["id"])
    w.close(held[1]["id"])  # 1 active of max 1: still full
    assert w.get_chat(waiting["id"])["status"] == "waiting"
    assert w.user(a["id"])["status"] == "busy"
    w.close(held[2]["id"])
    assert w.get_chat(waiting["id"])["agent_id"] == a["id"]


def test_drain_when_an_agent_joins_the_department(w):
    dept, other = w.department(), w.department()
    a = w.agent(other["id"], presence="available")
    chats = queue_of(w, dept["id"], 2)
    ok(w.api.put(f"/api/users/{a['id']}", token=w.admin, json={"department_id": dept["id"]}))
    assert [w.get_chat(c["id"])["agent_id"] for c in chats] == [a["id"], a["id"]]


def test_drain_when_the_department_is_reactivated(w, api):
    # An inactive department's queue waits (the engine gives it no eligible
    # agents); re-activation serves it at once, oldest first.
    dept = w.department()
    a = w.agent(dept["id"], max_chats=2)
    chats = queue_of(w, dept["id"], 3)
    ok(api.put(f"/api/departments/{dept['id']}", token=w.admin, json={"is_active": False}))
    w.presence(a["id"], "available")
    assert [w.get_chat(c["id"])["status"] for c in chats] == ["waiting"] * 3
    ok(api.put(f"/api/departments/{dept['id']}", token=w.admin, json={"is_active": True}))
    assert [w.get_chat(c["id"])["agent_id"] for c in chats] == [a["id"], a["id"], None]


# ---- 6.3 transfer ----

def test_transfer_to_a_department_assigns_there_by_load(w):
    src, dst = w.department(), w.department()
    a = w.agent(src["id"], presence="available", full_name="Ann Source")
    b = w.agent(dst["id"], presence="available")
    chat = w.chat(w.customer(), department_id=src["id"], message="hello")
    r = ok(w.api.post(f"/api/chats/{chat['id']}/transfer", token=a["token"],
                      json={"department_id": dst["id"], "reason": "needs tech"}))
    assert r["department_id"] == dst["id"] and r["agent_id"] == b["id"] and r["status"] == "active"
    assert ts(r["queued_at"]) >= ts(chat["queued_at"])
    full = w.get_chat(chat["id"])
    (t,) = full["transfers"]
    assert (t["from_department_id"], t["to_department_id"], t["from_agent_id"], t["to_agent_id"],
            t["reason"], t["transferred_by"]) == (src["id"], dst["id"], a["id"], b["id"], "needs tech", a["id"])
    # the record is dated when the chat entered the target queue, before its assignment
    assert t["created_at"] == full["queued_at"] and ts(t["created_at"]) <= ts(full["assigned_at"])
    msgs = [m["content"] for m in w.messages(chat["id"])]
    text = f"Chat transferred from {src['name']} to {dst['name']} by Ann Source. Reason: needs tech"
    assert msgs[0] == "hello" and text in msgs
    assert msgs.index(text) < msgs.index(f"{b['full_name']} joined the chat.")
    assert w.user(a["id"])["active_chats"] == 0


def test_a_blank_transfer_reason_is_no_reason(w):
    """ " Reason: <reason>" only if given: empty or white-space-only counts as not given."""
    a, b, c = w.department(), w.department(), w.department()
    chat = w.chat(w.customer(), department_id=a["id"])
    for dst, reason in ((b, "  \t\u3000 "), (c, "")):
        ok(w.api.post(f"/api/chats/{chat['id']}/transfer", token=w.admin,
                      json={"department_id": dst["id"], "reason": reason}))
    assert [t["reason"] for t in w.get_chat(chat["id"])["transfers"]] == [None, None]
    notes = [m["content"] for m in w.messages(chat["id"]) if m["content"].startswith("Chat transferred")]
    assert len(notes) == 2 and all(n.endswith(".") and "Reason:" not in n for n in notes), notes
    assert notes[0].startswith(f"Chat transferred from {a['name']} to {b['name']} by ")


def test_transfer_to_a_named_agent(w):
    src, dst = w.department(), w.department()
    a = w.agent(src["id"], presence="available")
    loaded = w.agent(dst["id"], presence="available")
    least = w.agent(dst["id"], presence="available")
    w.chat(w.customer(), department_id=dst["id"])  # loaded (lower id) 1, least 0
    least_load = w.user(least["id"])["active_chats"]
    chat = w.chat(w.customer(), department_id=src["id"])
    r = ok(w.api.post(f"/api/chats/{chat['id']}/transfer", token=w.admin,
                      json={"department_id": dst["id"], "agent_id": loaded["id"]}))
    assert r["agent_id"] == loaded["id"]
    assert w.user(least["id"])["active_chats"] == least_load
    assert w.get_chat(chat["id"])["transfers"][0]["to_agent_id"] == loaded["id"]


def test_a_null_agent_id_is_no_agent_id(w):
    """README 11: "agent_id": null on a transfer is read as agent_id left out: the target
    department's least-loaded agent gets the chat, and within the department it is 422
    department_id, not agent_id."""
    src, dst = w.department(), w.department()
    a = w.agent(src["id"], presence="available")
    loaded = w.agent(dst["id"], presence="available")
    least = w.agent(dst["id"], presence="available")
    w.chat(w.customer(), department_id=dst["id"])  # loaded (lower id) 1, least 0
    chat = w.chat(w.customer(), department_id=src["id"])
    assert chat["agent_id"] == a["id"]
    before = snapshot(w, chat["id"], a, loaded, least)
    r = w.api.post(f"/api/chats/{chat['id']}/transfer", token=a["token"],
                   json={"department_id": src["id"], "agent_id": None})
    assert_error(r, 422, "validation_error", "department_id")
    assert snapshot(w, chat["id"], a, loaded, least) == before
    r = ok(w.api.post(f"/api/chats/{chat['id']}/transfer", token=a["token"],
                      json={"department_id": dst["id"], "agent_id": None, "reason": None}))
    assert r["agent_id"] == least["id"]
    (t,) = w.get_chat(chat["id"])["transfers"]
    assert (t["to_agent_id"], t["reason"]) == (least["id"], None)


def test_transfer_within_the_department_needs_an_agent(w):
    dept = w.department()
    a = w.agent(dept["id"], presence="available")
    b = w.agent(dept["id"], presence="available")
    chat = w.chat(w.customer(), department_id=dept["id"])
    assert chat["agent_id"] == a["id"]
    before = snapshot(w, chat["id"], a, b)
    r = w.api.post(f"/api/chats/{chat['id']}/transfer", token=a["token"], json={"department_id": dept["id"]})
    assert_error(r, 422, "validation_error", "department_id")
    # naming the agent who already holds the chat is no transfer either (README 11)
    r = w.api.post(f"/api/chats/{chat['id']}/transfer", token=a["token"],
                   json={"department_id": dept["id"], "agent_id": a["id"]})
    assert_error(r, 422, "validation_error", "agent_id")
    assert snapshot(w, chat["id"], a, b) == before
    r = ok(w.api.post(f"/api/chats/{chat['id']}/transfer", token=a["token"],
                      json={"department_id": dept["id"], "agent_id": b["id"]}))
    assert r["agent_id"] == b["id"]
    assert w.user(a["id"])["active_chats"] == 0


def test_transfer_to_an_empty_department_waits_with_a_new_queued_at(w):
    src, dst = w.department(), w.department()
    a = w.agent(src["id"], presence="available")
    chat = w.chat(w.customer(), department_id=src["id"])
    r = ok(w.api.post(f"/api/chats/{chat['id']}/transfer", token=a["token"], json={"department_id": dst["id"]}))
    assert r["status"] == "waiting" and r["agent_id"] is None and r["queue_position"] == 1
    assert ts(r["queued_at"]) > ts(chat["queued_at"])
    assert w.get_chat(chat["id"])["transfers"][0]["to_agent_id"] is None


def test_a_chat_transferred_in_is_served_after_the_chats_already_waiting(w):
    """6.3.4 puts a transferred chat into the target queue with queued_at = now,
    and 6.2.4/6.2.5 serve a queue by queued_at, then id: a chat with a lower id
    that is transferred in is served after the chats that were already waiting
    there (the drain's order, not only the queue_position shown)."""
    src, dst = w.department(), w.department()
    a = w.agent(dst["id"], max_chats=1)  # offline: dst's queue builds up
    moved = w.chat(w.customer(), department_id=src["id"])
    waiting = w.chat(w.customer(), department_id=dst["id"])
    assert moved["id"] < waiting["id"]
    r = ok(w.api.post(f"/api/chats/{moved['id']}/transfer", token=w.admin, json={"department_id": dst["id"]}))
    assert (r["status"], r["queue_position"]) == ("waiting", 2)
    w.presence(a["id"], "available")
    assert w.get_chat(waiting["id"])["agent_id"] == a["id"]
    after = w.get_chat(moved["id"])
    assert (after["status"], after["agent_id"], after["queue_position"]) == ("waiting", None, 1)


def snapshot(w, chat_id, *agents):
    chat = w.get_chat(chat_id)
    return chat, len(w.messages(chat_id)), [w.user(x["id"])["active_chats"] for x in agents]


@pytest.mark.parametrize("case", ["busy", "offline", "full"])
def test_agent_unavailable_changes_nothing(w, case):
    src, dst = w.department(), w.department()
    a = w.agent(src["id"], presence="available")
    target = w.agent(dst["id"], max_chats=1, presence="available")
    if case == "full":
        w.chat(w.customer(), department_id=dst["id"])
    else:
        w.presence(target["id"], case)
    chat = w.chat(w.customer(), department_id=src["id"])
    before = snapshot(w, chat["id"], a, target)
    r = w.api.post(f"/api/chats/{chat['id']}/transfer", token=a["token"],
                   json={"department_id": dst["id"], "agent_id": target["id"]})
    assert_error(r, 409, "agent_unavailable")
    assert snapshot(w, chat["id"], a, target) == before


def deactivated_agent(w, dept_id):
    agent = w.agent(dept_id, presence="available")
    ok(w.api.delete(f"/api/users/{agent['id']}", token=w.admin), 204)
    return agent["id"]


@pytest.mark.parametrize("case", ["other_department", "customer", "unknown", "deactivated"])
def test_transfer_agent_must_be_an_agent_of_the_target(w, case):
    src, dst = w.department(), w.department()
    a = w.agent(src["id"], presence="available")
    agent_id = {"other_department": lambda: w.agent(src["id"], presence="available")["id"],
                "customer": lambda: w.customer()["id"], "unknown": lambda: 999999999,
                "deactivated": lambda: deactivated_agent(w, dst["id"])}[case]()
    chat = w.chat(w.customer(), department_id=src["id"])
    before = snapshot(w, chat["id"], a)
    r = w.api.post(f"/api/chats/{chat['id']}/transfer", token=w.admin,
                   json={"department_id": dst["id"], "agent_id": agent_id})
    assert_error(r, 422, "validation_error", "agent_id")
    assert snapshot(w, chat["id"], a) == before


def test_transfer_errors_chat_closed_and_bad_department(w, api):
    src = w.department()
    inactive = w.department()
    ok(api.put(f"/api/departments/{inactive['id']}", token=w.admin, json={"is_active": False}))
    deleted = w.department()  # active when deleted: gone all the same (contract 4)
    ok(api.delete(f"/api/departments/{deleted['id']}", token=w.admin), 204)
    chat = w.chat(w.customer(), department_id=src["id"])
    for dept_id in (inactive["id"], deleted["id"], 999999999):
        r = api.post(f"/api/chats/{chat['id']}/transfer", token=w.admin, json={"department_id": dept_id})
        assert_error(r, 422, "validation_error", "department_id")
    assert w.get_chat(chat["id"])["transfers"] == []
    w.close(chat["id"])
    before = snapshot(w, chat["id"])
    for body in ({"department_id": w.department()["id"]}, {"department_id": 999999999}):
        # closed comes first, before the department is looked at (6.3.1)
        r = api.post(f"/api/chats/{chat['id']}/transfer", token=w.admin, json=body)
        assert_error(r, 409, "chat_closed")
    assert snapshot(w, chat["id"]) == before


def test_previous_agent_is_released_and_served(w):
    src, dst = w.department(), w.department()
    a = w.agent(src["id"], max_chats=1, presence="available")
    held, waiting = queue_of(w, src["id"], 2)
    assert w.user(a["id"])["status"] == "busy"
    ok(w.api.post(f"/api/chats/{held['id']}/transfer", token=a["token"], json={"department_id": dst["id"]}))
    assert w.get_chat(waiting["id"])["agent_id"] == a["id"]
    assert w.get_chat(held["id"])["agent_id"] is None


def test_previous_agent_status_returns_to_available(w):
    src, dst = w.department(), w.department()
    a = w.agent(src["id"], max_chats=1, presence="available")
    (held,) = queue_of(w, src["id"], 1)
    assert w.user(a["id"])["status"] == "busy"
    ok(w.api.post(f"/api/chats/{held['id']}/transfer", token=a["token"], json={"department_id": dst["id"]}))
    assert w.user(a["id"])["status"] == "available"


# ---- 6.4 ----

def test_offline_requeues_at_the_front_keeping_queued_at(w):
    dept = w.department()
    a = w.agent(dept["id"], max_chats=1, presence="available", full_name="Lee Leaver")
    held, later = queue_of(w, dept["id"], 2)
    w.presence(a["id"], "offline")
    back = w.get_chat(held["id"])
    assert back["status"] == "waiting" and back["agent_id"] is None
    assert back["queued_at"] == held["queued_at"] and back["queue_position"] == 1
    assert w.get_chat(later["id"])["queue_position"] == 2
    assert w.messages(held["id"])[-1]["content"] == "Lee Leaver left; you are back in the queue."
    b = w.agent(dept["id"], max_chats=1, presence="available")
    assert w.get_chat(held["id"])["agent_id"] == b["id"]
    assert w.get_chat(later["id"])["status"] == "waiting"


def test_lists_give_each_waiting_chat_the_place_its_own_get_gives(w, api):
    """A list numbers a page's places in one pass (README 2); they must be the single GET's."""
    one, two = w.department(), w.department()
    moved = w.chat(w.customer(), department_id=two["id"])  # the oldest id, queued last in one
    a = w.agent(one["id"], max_chats=1, presence="available")
    held, *rest = queue_of(w, one["id"], 4)
    others = queue_of(w, two["id"], 3)
    w.presence(a["id"], "offline")  # held goes back to the front of one's queue, queued_at kept
    w.close(rest[1]["id"])  # a gap in the middle of the queue
    ok(api.post(f"/api/chats/{moved['id']}/transfer", token=w.admin, json={"department_id": one["id"]}))
    ours = {moved["id"], held["id"], *(c["id"] for c in rest), *(c["id"] for c in others)}
    for query in [f"department_id={one['id']}", f"department_id={two['id']}", "status=waiting&limit=200",
                  f"department_id={one['id']}&limit=2&offset=1"]:
        listed = [c for c in w.chats(**dict(p.split("=") for p in query.split("&"))) if c["id"] in ours]
        assert listed, query
        for c in listed:
            assert c["queue_position"] == w.get_chat(c["id"])["queue_position"], (query, c)
    places = {c["id"]: c["queue_position"] for c in w.chats(department_id=one["id"])}
    assert places == {held["id"]: 1, rest[0]["id"]: 2, rest[1]["id"]: None, rest[2]["id"]: 3,
                      moved["id"]: 4}
    assert [c["queue_position"] for c in w.chats(department_id=two["id"])] == [3, 2, 1]


def test_reassign_times_out_silent_agents(w, api, admin_cli):
    dept = w.department()
    silent = w.agent(dept["id"], max_chats=1, presence="available")  # never seen: last_seen_at null
    chat = w.chat(w.customer(), department_id=dept["id"])
    assert chat["agent_id"] == silent["id"]
    fresh = w.agent(dept["id"], max_chats=1)
    ok(api.put(f"/api/users/{fresh['id']}/status", token=fresh["token"], json={"status": "busy"}))
    assert api.post(f"/api/users/{fresh['id']}/heartbeat", token=fresh["token"]).status_code == 204
    ok(api.put(f"/api/users/{fresh['id']}/status", token=fresh["token"], json={"status": "available"}))
    counts = reassign_counts(admin_cli, "--offline-after", "3600")
    assert counts["timed_out"] >= 1 and counts["requeued"] >= 1 and counts["assigned"] >= 1
    assert w.user(silent["id"])["presence"] == "offline"
    assert w.user(fresh["id"])["presence"] == "available"
    assert w.get_chat(chat["id"])["agent_id"] == fresh["id"]
    reassign_counts(admin_cli, "--offline-after", "3600")
    assert w.user(fresh["id"])["presence"] == "available"  # seen within the hour: kept


def test_reassign_leaves_agents_already_offline_alone(w, admin_cli):
    """Section 8: reassign sets offline the agents whose presence is not
    offline. One already offline, never seen, is not timed out again: it is
    not written (updated_at stays, README 11) while its silent colleague is."""
    dept = w.department()
    off = w.agent(dept["id"])
    silent = w.agent(dept["id"], presence="available")
    before = w.user(off["id"])
    counts = reassign_counts(admin_cli, "--offline-after", "3600")
    assert counts["timed_out"] >= 1
    assert w.user(silent["id"])["presence"] == "offline"
    assert w.user(off["id"]) == before


def test_reassign_gives_no_chat_to_an_agent_it_times_out(w, admin_cli):
    """Two silent agents of one department, a chat each. The sweep timed them
    out one at a time, so the first one's chat went to the second, still
    "available", and came back when the second timed out: "joined" and "left"
    twice and an assignment counted for nothing. A department's silent agents
    now go offline together; each chat is told once that its agent left."""
    dept = w.department()
    agents = [w.agent(dept["id"], max_chats=2, presence="available", full_name=f"Silent {i} {uniq('a')}")
              for i in range(2)]
    chats = [w.chat(w.customer(), department_id=dept["id"]) for _ in range(2)]
    assert sorted(c["agent_id"] for c in chats) == sorted(a["id"] for a in agents)
    counts = reassign_counts(admin_cli, "--offline-after", "3600")
    assert counts["timed_out"] >= 2 and counts["requeued"] >= 2, counts
    for chat in chats:
        after = w.get_chat(chat["id"])
        assert (after["status"], after["agent_id"]) == ("waiting", None), after
        name = next(a["full_name"] for a in agents if a["id"] == chat["agent_id"])
        system = [m["content"] for m in w.messages(chat["id"]) if m["sender_role"] == "system"]
        assert system == [f"{name} joined the chat.", f"{name} left; you are back in the queue."], system
    assert [w.user(a["id"])["presence"] for a in agents] == ["offline", "offline"]
    assert [c["id"] for c in w.chats(department_id=dept["id"], status="waiting")] == \
        sorted((c["id"] for c in chats), reverse=True)


def test_reassign_prints_one_line_and_rejects_bad_options(w, admin_cli):
    """carebot-admin names a bad argument on stderr, then prints the usage,
    exits 2 and changes nothing: an agent never seen, whom any reassign sets
    offline, stays available. --help and -h print the usage on stdout."""
    silent = w.agent(w.department()["id"], max_chats=1, presence="available")
    bad_ones = {
        ("reassign", "--offline-after", "soon"): "'soon'",
        ("reassign", "--offline-after", "-1"): "'-1'",
        ("reassign", "--offline-after", "1x"): "'1x'",
        ("reassign", "--offline-after=1x"): "'1x'",
        ("reassign", "--offline-after"): "--offline-after needs a value",
        ("reassign", "--later"): "'--later'",
        ("reassign", "--offline-after", "0", "now"): "'now'",
        ("frob",): "unknown command 'frob'",
        ("seed", "twice"): "'twice'",
        ("token",): "USERNAME",
        ("token", "admin", "59"): "TTL wants whole seconds from 60",
        ("add-admin",): "USERNAME",
        ("--frob", "reassign"): "'--frob'",
        ("-x", "reassign"): "unknown option '-x'",
        ("-c",): "option '-c' needs a value",
        (): "no command given",
    }
    for args, named in bad_ones.items():
        done = admin_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        first, *rest = done.stderr.splitlines() or [""]
        assert first.startswith("carebot-admin: ") and named in first, (args, done.stderr)
        assert rest and rest[0].startswith("usage: carebot-admin"), (args, done.stderr)
        assert done.stdout == "", args
    assert w.user(silent["id"])["presence"] == "available"
    for flag in ("--help", "-h"):
        done = admin_cli(flag)
        assert done.returncode == 0 and done.stderr == "", (flag, done.stderr)
        assert done.stdout.startswith("usage: carebot-admin") and "reassign" in done.stdout, flag
    done = admin_cli("reassign")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1
    assert w.user(silent["id"])["presence"] == "offline"
