"""Contract section 2: "No input, however malformed, crashes a worker or
returns a 5xx other than 503."

test_errors.py throws fixed garbage at a few endpoints. This test throws typed
garbage at all of them: every field of every body gets values of every JSON
type and edge (null, huge and negative numbers, long, empty and odd strings,
arrays, objects), with odd ids, query strings, Idempotency-Keys, content
types and cut-off bodies, as an admin, an agent, a customer and nobody. The
generator is seeded, so a failure replays: CAREBOT_FUZZ_SEED picks the seed,
CAREBOT_FUZZ_REQUESTS the count.

Every answer must be below 500, every error must have the contract's shape
and a code its status allows, every success must be JSON, and no worker may
have died. The requests act on a world of their own: every id they name is
one of its objects or one that cannot exist, so the rest of the suite's data
is not touched, and `is_default: true` is left out (moving the default
department would move every other test's new chats), as is a new chat without
a department (it would wait in the default one).
"""

import json
import os
import random
from urllib.parse import quote

from chathelp import World, ok, uniq

SEED = int(os.environ.get("CAREBOT_FUZZ_SEED", "20261124"))
REQUESTS = int(os.environ.get("CAREBOT_FUZZ_REQUESTS", "6000"))

CODES = {
    400: {"bad_json", "bad_request"},
    401: {"unauthorized"},
    403: {"forbidden"},
    404: {"not_found"},
    405: {"method_not_allowed"},
    409: {"conflict", "duplicate", "department_in_use", "chat_closed", "idempotency_conflict"},
    413: {"too_large"},
    415: {"unsupported_media_type"},
    422: {"validation_error"},
    429: {"rate_limited"},
}

STRINGS = ["", " ", "\t\n", "a" * 5000, "\u00e9" * 3000, "\u0000", "\U0001F600" * 1000, "%s%n%x",
           "'; DROP TABLE users; --", "\\", "\"", "<script>", "null", "1e999", "-1", "0", "9" * 30,
           "available", "busy", "offline", "agent", "admin", "customer", "waiting", "closed",
           "x" * 101, "ab", "abc", "a b", "a" * 50, "a" * 51, "password1"]
NUMBERS = [0, -1, 1, 2, 5, 100, 101, 2**31, 2**63 - 1, -2**63, 2**64, 10**30, 0.5, -0.0, 1e308, 3.0]
BOGUS_IDS = [0, -1, 2**63 - 1, 2**64, 10**30, 1.5, "1", "", None, True, [], {}]
ID_FIELDS = {"department_id": "departments", "agent_id": "users", "customer_id": "users"}
BODIES = {
    "departments": ["name", "description", "is_active", "is_default"],
    "users": ["username", "password", "full_name", "role", "email", "department_id", "max_chats"],
    "status": ["status"],
    "chats": ["department_id", "subject", "message", "customer_id"],
    "messages": ["content"],
    "transfer": ["department_id", "agent_id", "reason"],
    "typing": ["typing"],
    "guest": ["full_name", "email"],
}
QUERY_KEYS = ["limit", "offset", "after_id", "before_id", "status", "department_id", "agent_id",
              "customer_id", "role"]


class Fuzz:
    def __init__(self, rnd, ids):
        """ids: the world's own, by kind ("departments", "users", "chats")."""
        self.rnd, self.ids = rnd, ids

    def value(self, depth=0):
        k = self.rnd.randrange(8)
        if k == 0:
            return None
        if k == 1:
            return self.rnd.choice([True, False])
        if k == 2:
            return self.rnd.choice(NUMBERS)
        if k == 5 and depth < 3:
            return [self.value(depth + 1) for _ in range(self.rnd.randrange(3))]
        if k == 6 and depth < 3:
            return {"a": self.value(depth + 1)}
        return self.rnd.choice(STRINGS)

    def id_value(self, kind):
        """An id of the world's own of that kind, or one that names nothing, or not an id at all."""
        return self.rnd.choice(self.ids[kind] + BOGUS_IDS)

    def body(self, kind):
        if self.rnd.random() < 0.05:
            return self.value()  # not an object at all
        body = {}
        for field in BODIES[kind]:
            if self.rnd.random() < 0.7:
                body[field] = self.id_value(ID_FIELDS[field]) if field in ID_FIELDS else self.value()
        if body.get("is_default") is True:
            del body["is_default"]
        if kind == "chats" and body.get("department_id") is None:
            # Without one, the chat would wait in the default department, among other tests' chats.
            body["department_id"] = self.ids["departments"][0]
        if self.rnd.random() < 0.1:
            body["unknown"] = self.value()
        return body

    def path_id(self, kind):
        return str(self.rnd.choice(
            self.ids[kind] + ["0", "-1", "9" * 25, "abc", "1.5", "%20", "1%00", "1%2F2"]))

    def query(self):
        parts = []
        for _ in range(self.rnd.randrange(4)):
            v = self.value()
            text = v if isinstance(v, str) else json.dumps(v)
            if text.isdigit() and len(text) < 12:
                text = str(self.id_value(self.rnd.choice(list(self.ids))))  # only the world's ids
            safe = self.rnd.choice(["", "%&="])
            parts.append(f"{self.rnd.choice(QUERY_KEYS)}={quote(text[:300], safe=safe)}")
        return "?" + "&".join(parts) if parts else ""

    def request(self):
        d, u, c = self.path_id("departments"), self.path_id("users"), self.path_id("chats")
        m, path, kind = self.rnd.choice([
            ("GET", "/api/departments/" + self.rnd.choice(["", "active", d]), None),
            ("POST", "/api/departments/", "departments"),
            ("PUT", f"/api/departments/{d}", "departments"),
            ("DELETE", f"/api/departments/{d}", None),
            ("GET", "/api/users/" + self.rnd.choice(["", u, "agents/available"]), None),
            ("POST", "/api/users/", "users"),
            ("PUT", f"/api/users/{u}", "users"),
            ("DELETE", f"/api/users/{u}", None),
            ("PUT", f"/api/users/{u}/status", "status"),
            ("POST", f"/api/users/{u}/heartbeat", None),
            ("GET", "/api/chats/" + self.rnd.choice(["", c, c + "/messages"]), None),
            ("POST", "/api/chats/", "chats"),
            ("POST", f"/api/chats/{c}/messages", "messages"),
            ("POST", f"/api/chats/{c}/transfer", "transfer"),
            ("PUT", f"/api/chats/{c}/close", None),
            ("POST", f"/api/chats/{c}/typing", "typing"),
            ("GET", "/api/auth/me", None),
            ("POST", "/api/auth/guest", "guest"),
            (self.rnd.choice(["PATCH", "OPTIONS", "HEAD"]), f"/api/chats/{c}", None),
        ])
        headers = {}
        if self.rnd.random() < 0.15:
            headers["Idempotency-Key"] = self.rnd.choice(
                ["k" + str(self.rnd.randrange(5)), "", "x" * 129, "a b", "~!"])
        data = None
        if kind is not None:
            data = json.dumps(self.body(kind)).encode()
            if self.rnd.random() < 0.05:
                data = data[:self.rnd.randrange(len(data) + 1)]
            headers["Content-Type"] = "application/json"
        if self.rnd.random() < 0.05:
            headers["Content-Type"] = self.rnd.choice(
                ["text/plain", "application/json; charset=latin1", "application/jsonx"])
        return m, path + self.query(), headers, data


def check(resp, method):
    """What is wrong with one answer, or None."""
    if resp.status_code >= 500:
        return "a 5xx"
    if method == "HEAD":
        return None
    if resp.status_code == 204:
        return None if not resp.content else "a body on a 204"
    try:
        body = resp.json()
    except ValueError:
        return "not JSON"
    if resp.status_code < 400:
        return None
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("message"), str):
        return "not the error shape"
    if err.get("code") not in CODES.get(resp.status_code, set()):
        return f"code {err.get('code')!r} with status {resp.status_code}"
    if "field" in err and not isinstance(err["field"], str):
        return "a field that is not a string"
    return None


def test_typed_garbage_everywhere_crashes_nothing(api, admin_token, token_for, pool_pids):
    workers = pool_pids()
    w = World(api, admin_token, token_for)
    dept = w.department()
    agents = [w.agent(dept["id"], presence="available") for _ in range(2)]
    customers = [w.customer() for _ in range(2)]
    chats = [w.chat(c, department_id=dept["id"], message="fuzz") for c in customers]
    username = uniq("fuzzadmin")
    admin = ok(api.post("/api/users/", token=admin_token, json={
        "username": username, "password": "password123", "role": "admin",
        "full_name": "Fuzz Admin"}), 201)
    ids = {"departments": [dept["id"]],
           "users": [admin["id"]] + [a["id"] for a in agents] + [c["id"] for c in customers],
           "chats": [c["id"] for c in chats]}
    tokens = [None, "garbage", token_for(username), agents[0]["token"], customers[0]["token"]]
    fuzz = Fuzz(random.Random(SEED), ids)

    problems = []
    for n in range(REQUESTS):
        method, path, headers, data = fuzz.request()
        token = fuzz.rnd.choice(tokens)
        resp = api.request(method, path, token=token, headers=headers, data=data)
        problem = check(resp, method)
        if problem:
            problems.append(f"#{n} {method} {path[:120]} {(data or b'')[:120]!r}: {problem}: "
                            f"{resp.status_code} {resp.text[:200]}")
    assert not problems, f"seed {SEED}:\n" + "\n".join(problems[:20])
    assert pool_pids() == workers, "a worker died"
    assert api.get("/api/health").json()["status"] == "ok"
