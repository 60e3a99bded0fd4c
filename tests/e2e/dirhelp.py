"""Helpers for the directory tests (departments, users, presence; contract 3-5).

`Dir` builds fresh departments and users through the public API, with unique
names so the tests can share an instance with every other test file, and
checks every response it sees for leaked secrets (contract 5: never a
password or hash). Tests import the `directory` fixture from here.
"""

import datetime
import json
import uuid

import pytest

from conftest import Api

USER_FIELDS = {"id", "username", "email", "full_name", "role", "department_id", "status",
               "presence", "max_chats", "active_chats", "is_active", "last_seen_at",
               "created_at", "updated_at"}
DEPARTMENT_FIELDS = {"id", "name", "description", "is_active", "is_default", "created_at",
                     "updated_at", "agent_count", "available_agents", "waiting_chats"}
PASSWORD = "password123"


def uid():
    return uuid.uuid4().hex[:10]


def parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


def _secret_keys(value):
    """Every key anywhere in a JSON value that names a password or hash."""
    if isinstance(value, dict):
        found = [k for k in value if "password" in k.lower() or "hash" in k.lower()]
        for v in value.values():
            found += _secret_keys(v)
        return found
    if isinstance(value, list):
        return [k for v in value for k in _secret_keys(v)]
    return []


def assert_no_secret(resp):
    assert "$argon2" not in resp.text, resp.text
    if resp.text:
        try:
            body = resp.json()
        except json.JSONDecodeError:
            return
        assert _secret_keys(body) == [], resp.text


def assert_error(resp, status, code, field=None):
    """The contract's error body: status, JSON, code, a message, and field only when one is at fault."""
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    err = resp.json()["error"]
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    if field is None:
        assert "field" not in err, err
    else:
        assert err.get("field") == field, err


class CheckedApi(Api):
    """The conftest `api` (same session), checking every response for secrets."""

    def __init__(self, api):
        self.base_url, self.session = api.base_url, api.session
        self.raw = api  # unchecked, for cleanup and for testing the check itself
        self.seen = 0

    def request(self, method, path, **kw):
        resp = super().request(method, path, **kw)
        assert_no_secret(resp)
        self.seen += 1
        return resp


class Dir:
    """Fresh objects through the API; `admin` is the seeded admin's token."""

    def __init__(self, api, admin_token, token_for):
        self.api, self.admin, self.token_for = CheckedApi(api), admin_token, token_for
        self.made_users, self.made_departments = [], []

    @staticmethod
    def ok(resp, status=200):
        assert resp.status_code == status, resp.text
        return resp.json() if resp.text else None

    def department(self, **fields):
        body = {"name": "Dir " + uid(), **fields}
        dept = self.ok(self.api.post("/api/departments/", token=self.admin, json=body), 201)
        self.made_departments.append(dept["id"])
        return dept

    def get_department(self, dept_id):
        return self.ok(self.api.get(f"/api/departments/{dept_id}", token=self.admin))

    def user(self, role="agent", dept=None, token=True, **fields):
        username = f"{role[:2]}_{uid()}"
        body = {"username": username, "password": PASSWORD, "full_name": f"{role} {username}",
                "role": role, **fields}
        if dept is not None:
            body["department_id"] = dept["id"]
        user = self.ok(self.api.post("/api/users/", token=self.admin, json=body), 201)
        self.made_users.append(user["id"])
        if token:
            user["token"] = self.token_for(username)
        return user

    def agent(self, dept, presence="offline", **fields):
        user = self.user("agent", dept, **fields)
        if presence != "offline":
            self.presence(user, presence)
        return user

    def customer(self):
        body = self.ok(self.api.post("/api/auth/guest", json={"full_name": "Guest " + uid()}), 201)
        body["user"]["token"] = body["token"]
        return body["user"]

    def get_user(self, user_id):
        return self.ok(self.api.get(f"/api/users/{user_id}", token=self.admin))

    def presence(self, user, presence, token=None):
        return self.ok(self.api.put(f"/api/users/{user['id']}/status", token=token or self.admin,
                                    json={"status": presence}))

    def list_all(self, path, token=None):
        """Every page of a list endpoint, as the admin (token None), someone else, or nobody (False)."""
        token = self.admin if token is None else (token or None)
        items, offset = [], 0
        while True:
            sep = "&" if "?" in path else "?"
            resp = self.api.get(f"{path}{sep}limit=200&offset={offset}", token=token)
            page = self.ok(resp)
            items += page
            offset += len(page)
            if not page or offset >= int(resp.headers["X-Total-Count"]):
                return items

    def chat(self, customer, dept):
        """A chat opened by customer in dept."""
        resp = self.api.post("/api/chats/", token=customer["token"], json={"department_id": dept["id"]})
        return self.ok(resp, 201)

    def close_chat(self, chat, token=None):
        return self.ok(self.api.put(f"/api/chats/{chat['id']}/close", token=token or self.admin))

    def default_department(self):
        defaults = [d for d in self.list_all("/api/departments/") if d["is_default"]]
        assert len(defaults) == 1, defaults
        return defaults[0]


    def cleanup(self):
        """Best effort: deactivates the users and deletes the departments made here,
        so that the shared instance's lists do not grow without end. Whatever is
        still in use (a department with open chats) simply stays."""
        for user_id in self.made_users:
            self.api.raw.delete(f"/api/users/{user_id}", token=self.admin)
        for dept_id in self.made_departments:
            self.api.raw.delete(f"/api/departments/{dept_id}", token=self.admin)


@pytest.fixture
def directory(api, admin_token, token_for):
    d = Dir(api, admin_token, token_for)
    yield d
    d.cleanup()
