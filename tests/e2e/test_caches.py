"""The workers' caches (README, "Caching"): a change made through carebot
reaches every worker before its response does.

`tools/carebot test` runs the workers with cache_max_age_ms = 60000, so a
cached item that a change failed to invalidate would still be served here and
fail the test. Each test first makes every worker cache the item (the pool's
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
