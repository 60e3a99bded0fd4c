"""The workers' caches (README, "Caching"): a change made through carebot
reaches every worker before its response does.

`tools/carebot test` runs the workers with cache_max_age_ms and
history_cache_max_age_ms = 60000, so a cached item or a kept history page
that a change failed to invalidate would still be served here and fail the
test. Each test first makes every worker cache the item (the pool's
workers take connections in turn, so ROUNDS requests reach them all), makes
the change, and asks ROUNDS times again.
"""

import os
import subprocess

import pytest

from chathelp import World, assert_error, ok, uniq

ROUNDS = 24


@pytest.fixture
def w(api, admin_token, token_for):
    return World(api, admin_token, token_for)


def active_entry(api, dept_id):
    """The department's entry in the public list ("000-" names sort first)."""
    r = api.get("/api/departments/active?limit=200")
    assert r.status_code == 200, r.text
    found = [d for d in r.json() if d["id"] == dept_id]
    return found[0] if found else None


def every_worker(read):
    return [read() for _ in range(ROUNDS)]


def early_department(w):
    return w.department(name=uniq("000-cache"))


def test_department_list_follows_presence_and_chats(w, api):
    dept = early_department(w)
    agent = w.agent(dept["id"], max_chats=1, presence="available")
    seen = every_worker(lambda: active_entry(api, dept["id"]))
    assert all(d["available_agents"] == 1 and d["waiting_chats"] == 0 for d in seen), seen

    w.chat(w.customer(), department_id=dept["id"])  # takes the agent's only seat
    seen = every_worker(lambda: active_entry(api, dept["id"]))
    assert all(d["available_agents"] == 0 and d["waiting_chats"] == 0 for d in seen), seen

    w.chat(w.customer(), department_id=dept["id"])  # waits
    seen = every_worker(lambda: active_entry(api, dept["id"]))
    assert all(d["available_agents"] == 0 and d["waiting_chats"] == 1 for d in seen), seen

    w.presence(agent["id"], "offline")  # both chats go back to the queue
    seen = every_worker(lambda: active_entry(api, dept["id"]))
    assert all(d["waiting_chats"] == 2 for d in seen), seen


def test_department_list_follows_department_changes(w, api):
    dept = early_department(w)
    assert all(every_worker(lambda: active_entry(api, dept["id"])))
    ok(api.put(f"/api/departments/{dept['id']}", token=w.admin, json={"is_active": False}))
    assert not any(every_worker(lambda: active_entry(api, dept["id"])))
    ok(api.put(f"/api/departments/{dept['id']}", token=w.admin, json={"description": "back"}))
    ok(api.put(f"/api/departments/{dept['id']}", token=w.admin, json={"is_active": True}))
    seen = every_worker(lambda: active_entry(api, dept["id"]))
    assert all(d and d["description"] == "back" for d in seen), seen


def test_department_list_follows_carebot_admin(w, api, state_dir, repo_root):
    """carebot-admin is a process of its own: its changes reach the workers too."""
    dept = early_department(w)
    w.agent(dept["id"], presence="available")  # never seen: reassign times it out
    seen = every_worker(lambda: active_entry(api, dept["id"]))
    assert all(d["available_agents"] == 1 for d in seen), seen
    build = os.environ.get("CAREBOT_BUILD_DIR", "build")
    done = subprocess.run([str(repo_root / build / "carebot-admin"), "-c",
                           os.path.join(state_dir, "carebot.conf"), "reassign",
                           "--offline-after", "3600"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = every_worker(lambda: active_entry(api, dept["id"]))
    assert all(d["available_agents"] == 0 for d in seen), seen


def test_logout_ends_the_token_in_every_worker(w, api):
    customer = w.customer()
    assert all(r.status_code == 200 for r in every_worker(
        lambda: api.get("/api/auth/me", token=customer["token"])))
    assert api.post("/api/auth/logout", token=customer["token"]).status_code == 204
    for r in every_worker(lambda: api.get("/api/auth/me", token=customer["token"])):
        assert_error(r, 401, "unauthorized")


def test_deactivation_and_role_change_reach_every_worker(w, api):
    dept = w.department()
    agent = w.agent(dept["id"])
    other = w.agent(dept["id"])
    assert all(r.status_code == 200 for r in every_worker(
        lambda: api.get("/api/users/agents/available", token=other["token"])))
    ok(api.put(f"/api/users/{other['id']}", token=w.admin, json={"role": "customer"}))
    for r in every_worker(lambda: api.get("/api/users/agents/available", token=other["token"])):
        assert_error(r, 403, "forbidden")
    assert api.delete(f"/api/users/{agent['id']}", token=w.admin).status_code in (200, 204)
    for r in every_worker(lambda: api.get("/api/auth/me", token=agent["token"])):
        assert_error(r, 401, "unauthorized")


def test_chat_access_follows_a_transfer(w, api):
    first, second = w.department(), w.department()
    a = w.agent(first["id"], presence="available")
    w.agent(second["id"], presence="available")
    chat = w.chat(w.customer(), department_id=first["id"])
    assert chat["agent_id"] == a["id"]
    path = f"/api/chats/{chat['id']}/messages"
    assert all(r.status_code == 200 for r in every_worker(lambda: api.get(path, token=a["token"])))
    ok(api.post(f"/api/chats/{chat['id']}/transfer", token=a["token"],
                json={"department_id": second["id"], "reason": "billing question"}))
    for r in every_worker(lambda: api.get(path, token=a["token"])):
        assert_error(r, 403, "forbidden")


def stored(w, chat_id):
    """The chat's whole history as MariaDB has it: a paged read never comes from the store."""
    page = w.messages(chat_id, before_id=999999999999999, limit=500)
    return [m["content"] for m in page]


def newest(api, chat_id, token, limit=None):
    """The newest page (the one the instance keeps) and its X-Total-Count."""
    query = f"?limit={limit}" if limit else ""
    r = api.get(f"/api/chats/{chat_id}/messages{query}", token=token)
    assert r.status_code == 200, r.text
    return [m["content"] for m in r.json()], int(r.headers["X-Total-Count"])


def test_history_page_follows_new_messages(w, api):
    """Every worker serves the newest page from the shared store; a post must end it at once."""
    dept = w.department()
    agent = w.agent(dept["id"], presence="available")
    customer = w.customer()
    chat = w.chat(customer, department_id=dept["id"], message="first")
    before = newest(api, chat["id"], agent["token"])
    assert before[0][0] == "first" and before[1] == len(before[0]), before
    assert all(p == before for p in every_worker(lambda: newest(api, chat["id"], agent["token"])))
    for n in range(3):
        words = f"message {n}"
        ok(api.post(f"/api/chats/{chat['id']}/messages", token=customer["token"],
                    json={"content": words}), 201)
        pages = every_worker(lambda: newest(api, chat["id"], agent["token"]))
        assert all(p == (before[0] + [f"message {i}" for i in range(n + 1)], before[1] + n + 1)
                   for p in pages), pages


def test_history_pages_per_limit_and_beside_paging(w, api):
    """Each limit is a page of its own; paged reads never come from the store."""
    dept = w.department()
    agent = w.agent(dept["id"], presence="available")
    customer = w.customer()
    chat = w.chat(customer, department_id=dept["id"], message="m0")
    for n in range(1, 5):
        ok(api.post(f"/api/chats/{chat['id']}/messages", token=customer["token"],
                    json={"content": f"m{n}"}), 201)
    for limit, n in ((2, 5), (3, 6)):
        every_worker(lambda: newest(api, chat["id"], agent["token"], limit))
        ok(api.post(f"/api/chats/{chat['id']}/messages", token=agent["token"],
                    json={"content": f"m{n}"}), 201)
        expected = [f"m{i}" for i in range(n + 1 - limit, n + 1)]
        assert all(p[0] == expected for p in every_worker(
            lambda: newest(api, chat["id"], agent["token"], limit)))
    last = w.messages(chat["id"], limit=1)[0]["id"]
    older = ok(api.get(f"/api/chats/{chat['id']}/messages?before_id={last}&limit=2",
                       token=agent["token"]))
    assert [m["content"] for m in older] == ["m4", "m5"]


def test_history_page_is_checked_for_each_reader(w, api):
    """The kept page carries the chat's state: every reader is checked against it."""
    dept, elsewhere = w.department(), w.department()
    agent = w.agent(dept["id"], presence="available")
    colleague, outsider = w.agent(dept["id"]), w.agent(elsewhere["id"])
    customer, stranger = w.customer(), w.customer()
    chat = w.chat(customer, department_id=dept["id"], message="hello")
    path = f"/api/chats/{chat['id']}/messages"
    first = every_worker(lambda: newest(api, chat["id"], customer["token"]))
    assert all(p == first[0] and p[0][0] == "hello" for p in first), first
    assert all(newest(api, chat["id"], colleague["token"]) == first[0] for _ in range(ROUNDS))
    for r in every_worker(lambda: api.get(path, token=stranger["token"])):
        assert_error(r, 404, "not_found")
    for r in every_worker(lambda: api.get(path, token=outsider["token"])):
        assert_error(r, 403, "forbidden")
    assert all(newest(api, chat["id"], agent["token"]) == first[0] for _ in range(ROUNDS))


def test_history_page_larger_than_a_slot_is_still_right(w, api):
    """Pages over the store's slot size are read from MariaDB every time."""
    dept = w.department()
    agent = w.agent(dept["id"], presence="available")
    customer = w.customer()
    chat = w.chat(customer, department_id=dept["id"], message="x" * 4000)
    for n in range(9):  # about 40 KB of JSON, over the 32 KiB a slot holds
        ok(api.post(f"/api/chats/{chat['id']}/messages", token=customer["token"],
                    json={"content": str(n) * 4000}), 201)
    every_worker(lambda: newest(api, chat["id"], agent["token"]))
    ok(api.post(f"/api/chats/{chat['id']}/messages", token=customer["token"],
                json={"content": "short"}), 201)
    assert all(p[0][-1] == "short" for p in every_worker(lambda: newest(api, chat["id"], agent["token"])))


def test_history_follows_carebot_admin(w, api, admin_cli):
    """carebot-admin requeues a silent agent's chat: its system message reaches every worker."""
    dept = w.department()
    agent = w.agent(dept["id"], presence="available")  # never seen: reassign times it out
    customer = w.customer()
    chat = w.chat(customer, department_id=dept["id"], message="anyone there?")
    assert chat["agent_id"] == agent["id"]
    before = every_worker(lambda: newest(api, chat["id"], customer["token"]))
    assert all(p == before[0] for p in before), before
    done = admin_cli("reassign", "--offline-after", "3600")
    assert done.returncode == 0, done.stderr
    now = stored(w, chat["id"])
    assert len(now) > len(before[0][0]), now  # the requeue wrote a system message
    pages = every_worker(lambda: newest(api, chat["id"], customer["token"]))
    assert all(p == (now, len(now)) for p in pages), pages
