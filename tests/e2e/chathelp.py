"""Helpers for the chat, assignment, concurrency and idempotency tests.

Every test builds its own world: a fresh department, agents created through
POST /api/users/ and customers through POST /api/auth/guest, all with unique
names, so the files share one instance with the rest of the suite.
"""

import itertools
import re
import uuid

_seq = itertools.count(1)


def uniq(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:8]}_{next(_seq)}"


def ok(resp, status=200):
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
    return resp.json() if resp.content else None


def assert_error(resp, status, code, field=None):
    """The contract's error body: status, JSON, code, a message, and field only when one is at fault."""
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    err = resp.json()["error"]
    assert err["code"] == code, err
    assert isinstance(err.get("message"), str) and err["message"], err
    if field is None:
        assert "field" not in err, err
    else:
        assert err.get("field") == field, err


class World:
    """An admin's view of the instance, with builders for departments, agents, customers and chats."""

    def __init__(self, api, admin_token, token_for):
        self.api, self.admin, self.token_for = api, admin_token, token_for

    def department(self, **extra):
        return ok(self.api.post("/api/departments/", token=self.admin,
                                json={"name": uniq("dept"), **extra}), 201)

    def agent(self, dept_id, max_chats=5, presence=None, full_name=None):
        username = uniq("ag")
        user = ok(self.api.post("/api/users/", token=self.admin, json={
            "username": username, "password": "password123", "role": "agent",
            "full_name": full_name or f"Agent {username}", "department_id": dept_id,
            "max_chats": max_chats}), 201)
        user["token"] = self.token_for(username)
        if presence:
            self.presence(user["id"], presence)
        return user

    def presence(self, user_id, status):
        return ok(self.api.put(f"/api/users/{user_id}/status", token=self.admin,
                               json={"status": status}))

    def customer(self):
        body = ok(self.api.post("/api/auth/guest", json={"full_name": uniq("Guest")}), 201)
        return {**body["user"], "token": body["token"]}

    def chat(self, customer, **body):
        return ok(self.api.post("/api/chats/", token=customer["token"], json=body), 201)

    def get_chat(self, chat_id):
        return ok(self.api.get(f"/api/chats/{chat_id}", token=self.admin))

    def user(self, user_id):
        return ok(self.api.get(f"/api/users/{user_id}", token=self.admin))

    def messages(self, chat_id, **query):
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        return ok(self.api.get(f"/api/chats/{chat_id}/messages?{qs}", token=self.admin))

    def chats(self, **query):
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        return ok(self.api.get(f"/api/chats/?{qs}", token=self.admin))

    def close(self, chat_id):
        return ok(self.api.put(f"/api/chats/{chat_id}/close", token=self.admin))


def reassign_counts(admin_cli, *args):
    done = admin_cli("reassign", *args)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"assigned=(\d+) requeued=(\d+) timed_out=(\d+)", line)
    assert m, line
    return {"assigned": int(m[1]), "requeued": int(m[2]), "timed_out": int(m[3])}
