"""Contract section 3: login, guest, logout, me, and what a token is.

Login is rate-limited to 10 attempts a minute per address, so this file logs
in only a few times; the limit itself is tested in test_zz_ratelimit.py, which
runs last.
"""

import datetime
import re
import time
import uuid

import pytest

from dirhelp import assert_error
from test_history_age import sql

TOKEN_RE = re.compile(r"^[0-9a-f]{64}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
USER_FIELDS = {"id", "username", "email", "full_name", "role", "department_id", "status",
               "presence", "max_chats", "active_chats", "is_active", "last_seen_at",
               "created_at", "updated_at"}


def parse_time(text):
    assert TIME_RE.match(text), text
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


@pytest.fixture
def login_budget(state_dir):
    """This address's 10 attempts a minute, whole: a run of this file a moment
    ago (each makes 4) may have used most of them up."""
    sql(state_dir, "DELETE FROM login_attempts WHERE address = '127.0.0.1'; "
                   "DELETE FROM login_limits WHERE address = '127.0.0.1'")


def test_login_returns_token_expiry_and_user(api, login_budget):
    r = api.post("/api/auth/login", json={"username": "admin", "password": "admin123"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"token", "expires_at", "user"}
    assert TOKEN_RE.match(body["token"])
    lifetime = parse_time(body["expires_at"]) - datetime.datetime.now(datetime.timezone.utc)
    # default lifetime 12 h (contract section 3)
    assert datetime.timedelta(hours=11, minutes=55) < lifetime <= datetime.timedelta(hours=12, minutes=1)
    user = body["user"]
    assert set(user) == USER_FIELDS
    assert user["username"] == "admin" and user["role"] == "admin"
    assert user["status"] is None and user["presence"] is None
    assert "$argon2" not in r.text and "password" not in r.text

    me = api.get("/api/auth/me", token=body["token"])
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


def test_wrong_password_and_unknown_user_get_the_same_answer(api, login_budget):
    wrong = api.post("/api/auth/login", json={"username": "admin", "password": "not-it-at-all"})
    unknown = api.post("/api/auth/login", json={"username": "nobody_" + uuid.uuid4().hex[:8],
                                                "password": "whatever1"})
    assert_error(wrong, 401, "unauthorized")
    assert_error(unknown, 401, "unauthorized")
    assert wrong.json() == unknown.json()
    # the right password under a name that only MariaDB's collation takes for "admin"
    lookalike = api.post("/api/auth/login", json={"username": "ádmin ", "password": "admin123"})
    assert lookalike.json() == unknown.json()


def test_login_validates_its_fields(api):
    assert_error(api.post("/api/auth/login", json={"password": "x"}), 422, "validation_error", "username")
    assert_error(api.post("/api/auth/login", json={"username": "admin"}), 422, "validation_error", "password")
    assert_error(api.post("/api/auth/login", json={"username": 5, "password": "x"}),
                 422, "validation_error", "username")


def test_guest_creates_a_customer_with_a_working_token(api):
    email = f"visitor-{uuid.uuid4().hex[:8]}@example.com"
    r = api.post("/api/auth/guest", json={"full_name": "Vera Visitor", "email": email})
    assert r.status_code == 201, r.text
    body = r.json()
    assert TOKEN_RE.match(body["token"])
    assert body["user"]["role"] == "customer"
    assert body["user"]["full_name"] == "Vera Visitor"
    assert body["user"]["email"] == email
    assert body["user"]["status"] is None
    me = api.get("/api/auth/me", token=body["token"])
    assert me.status_code == 200 and me.json()["id"] == body["user"]["id"]

    no_email = api.post("/api/auth/guest", json={"full_name": "Nameless Email"})
    assert no_email.status_code == 201 and no_email.json()["user"]["email"] is None


def test_guest_validation(api, admin_token):
    before = api.get("/api/users/?role=customer&limit=1", token=admin_token).headers["X-Total-Count"]
    assert_error(api.post("/api/auth/guest", json={}), 422, "validation_error", "full_name")
    assert_error(api.post("/api/auth/guest", json={"full_name": "   "}), 422, "validation_error", "full_name")
    assert_error(api.post("/api/auth/guest", json={"full_name": "x" * 101}), 422, "validation_error", "full_name")
    assert_error(api.post("/api/auth/guest", json={"full_name": "Ok", "email": "not-an-address"}),
                 422, "validation_error", "email")
    assert_error(api.post("/api/auth/guest", json={"full_name": "Ok", "email": 7}),
                 422, "validation_error", "email")
    assert_error(api.post("/api/auth/guest", json={"full_name": "é" * 101}), 422, "validation_error", "full_name")
    after = api.get("/api/users/?role=customer&limit=1", token=admin_token).headers["X-Total-Count"]
    assert before == after  # no customer was created by any of them
    r = api.post("/api/auth/guest", json={"full_name": "é" * 100})
    assert r.status_code == 201 and r.json()["user"]["full_name"] == "é" * 100, r.text


def test_logout_revokes_the_token_at_once(api):
    token = api.post("/api/auth/guest", json={"full_name": "Short Stay"}).json()["token"]
    assert api.get("/api/auth/me", token=token).status_code == 200
    r = api.post("/api/auth/logout", token=token)
    assert r.status_code == 204 and r.text == ""
    assert_error(api.get("/api/auth/me", token=token), 401, "unauthorized")
    assert_error(api.post("/api/auth/logout", token=token), 401, "unauthorized")


def test_an_expired_token_is_401_on_every_worker(api, state_dir):
    """A token past its expires_at stops working, whether a worker has it cached or not."""
    body = api.post("/api/auth/guest", json={"full_name": "Brief Visit"}).json()
    token, user_id = body["token"], body["user"]["id"]
    sql(state_dir, f"UPDATE sessions SET expires_at = NOW(3) + INTERVAL 2 SECOND WHERE user_id = {user_id}")
    for _ in range(8):  # spread over the workers, so that some of them keep it cached
        assert api.get("/api/auth/me", token=token).status_code == 200
    time.sleep(2.5)
    for _ in range(8):
        assert_error(api.get("/api/auth/me", token=token), 401, "unauthorized")
    assert_error(api.post("/api/chats/", token=token, json={}), 401, "unauthorized")


def test_tokens_are_bearer_only_and_checked(api, admin_token):
    assert_error(api.get("/api/auth/me"), 401, "unauthorized")
    assert_error(api.get("/api/auth/me", token="0" * 64), 401, "unauthorized")
    assert_error(api.get("/api/auth/me", token="not-a-token"), 401, "unauthorized")
    assert_error(api.get("/api/auth/me", headers={"Authorization": "Basic YWRtaW46YWRtaW4xMjM="}),
                 401, "unauthorized")
    # The REST API does not take the subscription forms of the token.
    assert_error(api.get(f"/api/auth/me?token={admin_token}"), 401, "unauthorized")
    assert api.get("/api/auth/me", headers={"Authorization": f"bearer {admin_token}"}).status_code == 200


def test_admin_cli_token_is_a_real_session(api, token_for):
    token = token_for("customer1")
    assert TOKEN_RE.match(token)
    me = api.get("/api/auth/me", token=token)
    assert me.status_code == 200 and me.json()["username"] == "customer1"
    assert api.post("/api/auth/logout", token=token).status_code == 204
    assert api.get("/api/auth/me", token=token).status_code == 401
