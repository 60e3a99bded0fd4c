"""Contract section 5: users and agent presence - create/read/update/delete with
validation, filters and paging, self-service and mass assignment, department
moves, deactivation and reactivation, derived status, the available-agents
list, heartbeats; and that no response carries a password or hash. The role
matrix of these endpoints is in test_roles_directory.py.
"""

import concurrent.futures
import datetime
import subprocess
import threading
import time

import pytest
import requests

from conftest import Api
from dirhelp import PASSWORD, USER_FIELDS, assert_error, directory, parse_time, uid  # noqa: F401


def ids(items):
    return [u["id"] for u in items]


def login(api, username, password):
    """Logs in, waiting out the rate limit of 10 attempts a minute (contract 3) if need be."""
    deadline = time.monotonic() + 70
    while True:
        r = api.post("/api/auth/login", json={"username": username, "password": password})
        if r.status_code != 429 or time.monotonic() > deadline:
            return r
        time.sleep(5)


def same_user(a, b):
    """Equal but for last_seen_at, which any request of the user itself refreshes."""
    drop = ("last_seen_at", "token")
    return {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}


def strip_token(user):
    return {k: v for k, v in user.items() if k != "token"}


# ---- create -----------------------------------------------------------------

def test_create_agent_customer_and_admin(directory):
    dept = directory.department()
    agent = directory.user("agent", dept, token=False, email="a@example.com")
    assert set(agent) == USER_FIELDS
    assert agent["role"] == "agent" and agent["department_id"] == dept["id"]
    assert agent["presence"] == "offline" and agent["status"] == "offline"
    assert agent["max_chats"] == 5 and agent["active_chats"] == 0
    assert agent["is_active"] is True and agent["last_seen_at"] is None
    assert agent["email"] == "a@example.com"
    assert directory.get_user(agent["id"]) == agent

    customer = directory.user("customer", token=False)
    assert customer["department_id"] is None and customer["email"] is None
    assert customer["status"] is None and customer["presence"] is None
    admin = directory.user("admin", token=False, max_chats=9)
    assert admin["role"] == "admin" and admin["status"] is None and admin["max_chats"] == 9
    assert directory.user("agent", dept, token=False, max_chats=100)["max_chats"] == 100
    assert directory.user("agent", dept, token=False, max_chats=1)["max_chats"] == 1


def test_created_user_can_log_in_with_the_password(directory):
    user = directory.user("customer", token=False)
    r = login(directory.api, user["username"], PASSWORD)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == user["id"]


def _create_cases():
    good = {"password": PASSWORD, "full_name": "Val Idation", "role": "customer"}
    agent = {**good, "role": "agent"}
    return [
        ({**good, "username": "ab"}, "username"),
        ({**good, "username": "u" * 51}, "username"),
        ({**good, "username": "has space"}, "username"),
        ({**good, "username": "bad/char"}, "username"),
        ({**good, "username": 12345}, "username"),
        ({**good, "username": None}, "username"),
        (good, "username"),
        ({**good, "password": "short12"}, "password"),
        ({**good, "password": 12345678}, "password"),
        ({k: v for k, v in good.items() if k != "password"}, "password"),
        ({k: v for k, v in good.items() if k != "full_name"}, "full_name"),
        ({**good, "full_name": ""}, "full_name"),
        ({**good, "full_name": "   "}, "full_name"),
        ({**good, "full_name": "f" * 101}, "full_name"),
        ({k: v for k, v in good.items() if k != "role"}, "role"),
        ({**good, "role": "root"}, "role"),
        ({**good, "role": "Agent"}, "role"),
        ({**good, "email": "not-an-email"}, "email"),
        ({**good, "email": 5}, "email"),
        ({**good, "email": "a@nodot"}, "email"),
        ({**good, "email": "a@trailing."}, "email"),
        ({**good, "email": "a@.leading"}, "email"),
        ({**good, "email": "@example.com"}, "email"),
        ({**good, "email": "two@at@example.com"}, "email"),
        ({**good, "email": "white space@example.com"}, "email"),
        ({**good, "email": "tab@exa\tmple.com"}, "email"),
        ({**good, "email": "nl@example.com\n"}, "email"),
        ({**good, "email": "x" * 243 + "@example.com"}, "email"),  # 255 bytes
        ({**good, "email": "ü" * 122 + "@example.com"}, "email"),  # 134 characters, 256 bytes
        ({**good, "password": "p" * 1025}, "password"),
        ({**good, "full_name": "é" * 101}, "full_name"),
        ({**good, "max_chats": 0}, "max_chats"),
        ({**good, "max_chats": 101}, "max_chats"),
        ({**good, "max_chats": "5"}, "max_chats"),
        ({**good, "max_chats": 5.5}, "max_chats"),
        ({**good, "max_chats": 5.0}, "max_chats"),  # README 11: written as an integer
        ({**good, "max_chats": True}, "max_chats"),
        (agent, "department_id"),
        ({**agent, "department_id": None}, "department_id"),
        ({**agent, "department_id": "1"}, "department_id"),
        ({**agent, "department_id": 0}, "department_id"),
        ({**agent, "department_id": 999999999}, "department_id"),
        ({**good, "department_id": 1}, "department_id"),
        ({**good, "department_id": 0}, "department_id"),  # ids are positive (contract 2), for any role
        ({**good, "role": "admin", "department_id": 1}, "department_id"),
    ]


@pytest.mark.parametrize("body, field", _create_cases())
def test_create_validation(directory, body, field):
    api = directory.api
    body = dict(body)
    if field != "username":
        body.setdefault("username", "v_" + uid())
    before = int(api.get("/api/users/?limit=1", token=directory.admin).headers["X-Total-Count"])
    assert_error(api.post("/api/users/", token=directory.admin, json=body), 422, "validation_error", field)
    after = int(api.get("/api/users/?limit=1", token=directory.admin).headers["X-Total-Count"])
    assert after == before


def test_boundaries_are_accepted(directory):
    """The longest and shortest values the rules allow, counted in characters (e-mail: bytes)."""
    tail = uid()[:3]
    for fields in [{"username": "u" + tail[:2]}, {"username": "u" * 40 + "_" + uid()[:9]},
                   {"password": "p" * 8}, {"password": "p" * 1024},
                   {"full_name": "f" * 100}, {"full_name": "é" * 100},
                   {"email": "x" * 242 + "@example.com"}, {"email": "ü" * 121 + "@example.com"},
                   {"email": "ü@bü.example"},
                   {"email": "x@y.z"}]:
        body = {"username": "b_" + uid(), "password": PASSWORD, "full_name": "Bound Ary",
                "role": "customer", **fields}
        got = directory.ok(directory.api.post("/api/users/", token=directory.admin, json=body), 201)
        directory.made_users.append(got["id"])
        assert got["username"] == body["username"] and got["full_name"] == body["full_name"]
        assert got["email"] == body.get("email")
        assert len(got["username"]) in (3, 50) or "username" not in fields
    long_password = {"username": "pw_" + uid(), "password": "p" * 1024, "full_name": "Long Pass", "role": "customer"}
    directory.made_users.append(directory.ok(directory.api.post("/api/users/", token=directory.admin,
                                                                json=long_password), 201)["id"])
    assert login(directory.api, long_password["username"], "p" * 1024).status_code == 200


def test_agent_needs_a_live_active_department(directory):
    api = directory.api
    off = directory.department(is_active=False)
    gone = directory.department()
    assert api.delete(f"/api/departments/{gone['id']}", token=directory.admin).status_code == 204
    total = api.get("/api/users/?limit=1", token=directory.admin).headers["X-Total-Count"]
    for dept in (off, gone):
        username = "ag_" + uid()
        assert_error(api.post("/api/users/", token=directory.admin, json={
            "username": username, "password": PASSWORD, "full_name": "X", "role": "agent",
            "department_id": dept["id"]}), 422, "validation_error", "department_id")
    assert directory.get_department(off["id"])["agent_count"] == 0
    assert api.get("/api/users/?limit=1", token=directory.admin).headers["X-Total-Count"] == total


def test_duplicate_username(directory):
    api = directory.api
    user = directory.user("customer", token=False)
    total = api.get("/api/users/?limit=1", token=directory.admin).headers["X-Total-Count"]
    for taken in (user["username"], user["username"].upper()):  # ignoring case (README 11)
        r = api.post("/api/users/", token=directory.admin, json={
            "username": taken, "password": PASSWORD, "full_name": "Other", "role": "customer"})
        assert_error(r, 409, "duplicate")
    assert api.get("/api/users/?limit=1", token=directory.admin).headers["X-Total-Count"] == total
    other = directory.user("customer", token=False)
    assert_error(api.put(f"/api/users/{other['id']}", token=directory.admin,
                         json={"username": user["username"]}), 409, "duplicate")
    assert directory.get_user(other["id"]) == other


# ---- list -------------------------------------------------------------------

def test_list_filters_and_paging(directory):
    api = directory.api
    dept = directory.department()
    avail = directory.agent(dept, presence="available")
    busy = directory.agent(dept, presence="busy")
    off = directory.agent(dept)
    gone = directory.agent(dept)
    assert api.delete(f"/api/users/{gone['id']}", token=directory.admin).status_code == 204

    mine = directory.list_all(f"/api/users/?department_id={dept['id']}")
    assert ids(mine) == sorted([avail["id"], busy["id"], off["id"]])
    by_status = {s: ids(directory.list_all(f"/api/users?department_id={dept['id']}&status={s}"))
                 for s in ("available", "busy", "offline")}
    assert by_status == {"available": [avail["id"]], "busy": [busy["id"]], "offline": [off["id"]]}
    r = api.get(f"/api/users/?department_id={dept['id']}&role=agent&status=busy", token=directory.admin)
    assert ids(r.json()) == [busy["id"]] and r.headers["X-Total-Count"] == "1"
    assert directory.list_all(f"/api/users/?department_id={dept['id']}&role=admin") == []

    everyone = directory.list_all("/api/users/")
    assert ids(everyone) == sorted(ids(everyone))
    assert gone["id"] not in ids(everyone)
    assert all(u["is_active"] for u in everyone)
    customers = directory.list_all("/api/users/?role=customer")
    assert customers and all(u["role"] == "customer" for u in customers)

    page = api.get("/api/users/?limit=2&offset=1", token=directory.admin)
    assert ids(page.json()) == ids(everyone)[1:3]
    assert int(page.headers["X-Total-Count"]) == len(everyone)
    # The default page and the cap need more users than either: guests are cheap.
    for _ in range(201 - len(everyone)):
        directory.customer()
    total = int(api.get("/api/users/?limit=1", token=directory.admin).headers["X-Total-Count"])
    assert total > 200
    default = api.get("/api/users/", token=directory.admin)
    assert len(default.json()) == 50
    capped = api.get("/api/users/?limit=5000", token=directory.admin)
    assert capped.status_code == 200 and len(capped.json()) == 200
    assert int(capped.headers["X-Total-Count"]) == total



def test_list_a_page_past_the_end_still_counts(directory):
    """A page past the end has no row to carry the total: it is counted on its own."""
    api = directory.api
    dept = directory.department()
    for _ in range(3):
        directory.agent(dept)
    for query, total in [(f"department_id={dept['id']}", 3),
                         (f"department_id={dept['id']}&status=available", 0)]:
        r = api.get(f"/api/users/?{query}&limit=2&offset=3", token=directory.admin)
        assert r.status_code == 200 and r.json() == [], r.text
        assert r.headers["X-Total-Count"] == str(total), query
    everyone = int(api.get("/api/users/?limit=1", token=directory.admin).headers["X-Total-Count"])
    r = api.get(f"/api/users/?offset={everyone + 10}", token=directory.admin)
    assert r.json() == [] and int(r.headers["X-Total-Count"]) == everyone

@pytest.mark.parametrize("query, name", [
    ("role=root", "role"), ("status=away", "status"), ("department_id=abc", "department_id"),
    ("department_id=0", "department_id"), ("limit=0", "limit"), ("offset=x", "offset"),
])
def test_list_rejects_malformed_queries(directory, query, name):
    assert_error(directory.api.get(f"/api/users/?{query}", token=directory.admin), 400, "bad_request", name)


def test_agents_list_staff_only(directory):
    dept = directory.department()
    agent = directory.agent(dept)
    seen = directory.list_all("/api/users/", token=agent["token"])
    assert agent["id"] in ids(seen)
    assert seen and all(u["role"] in ("admin", "agent") for u in seen)
    assert directory.list_all("/api/users/?role=customer", token=agent["token"]) == []


# ---- read -------------------------------------------------------------------

def test_read_visibility(directory):
    api = directory.api
    dept = directory.department()
    agent = directory.agent(dept)
    colleague = directory.agent(directory.department(), token=False)
    customer = directory.customer()
    other_customer = directory.customer()
    admin = directory.admin

    assert directory.ok(api.get(f"/api/users/{colleague['id']}", token=agent["token"]))["id"] == colleague["id"]
    assert directory.ok(api.get(f"/api/users/{agent['id']}", token=agent["token"]))["id"] == agent["id"]
    seeded_admin = directory.list_all("/api/users/?role=admin")[0]
    assert directory.ok(api.get(f"/api/users/{seeded_admin['id']}", token=agent["token"]))["role"] == "admin"
    assert_error(api.get(f"/api/users/{customer['id']}", token=agent["token"]), 403, "forbidden")

    assert directory.ok(api.get(f"/api/users/{customer['id']}", token=customer["token"]))["id"] == customer["id"]
    for target in (other_customer, agent, seeded_admin):
        assert_error(api.get(f"/api/users/{target['id']}", token=customer["token"]), 404, "not_found")
    assert_error(api.get("/api/users/999999999", token=admin), 404, "not_found")

    # deactivated: admins still see it (to reactivate); nobody else does
    assert api.delete(f"/api/users/{colleague['id']}", token=admin).status_code == 204
    assert directory.get_user(colleague["id"])["is_active"] is False
    assert_error(api.get(f"/api/users/{colleague['id']}", token=agent["token"]), 404, "not_found")


def test_agent_reads_customers_of_visible_chats(directory):
    api = directory.api
    dept = directory.department()
    agent = directory.agent(dept)
    customer = directory.customer()
    assert_error(api.get(f"/api/users/{customer['id']}", token=agent["token"]), 403, "forbidden")
    directory.chat(customer, dept)
    assert directory.ok(api.get(f"/api/users/{customer['id']}", token=agent["token"]))["id"] == customer["id"]
    stranger = directory.agent(directory.department())
    assert_error(api.get(f"/api/users/{customer['id']}", token=stranger["token"]), 403, "forbidden")


def test_agent_reads_customers_of_chats_it_held_in_another_department(directory):
    """"Visible" is the agent's department's chats or those assigned to it
    (contract 3), closed ones too (README 11): after a move, the customer of a
    chat it served and closed in its old department stays readable to it, as
    the chat does; an agent of the new department who never held it gets 403."""
    api = directory.api
    old, new = directory.department(), directory.department()
    agent = directory.agent(old, presence="available")
    customer = directory.customer()
    chat = directory.chat(customer, old)
    assert chat["agent_id"] == agent["id"]
    directory.close_chat(chat)
    directory.ok(api.put(f"/api/users/{agent['id']}", token=directory.admin, json={"department_id": new["id"]}))
    assert directory.ok(api.get(f"/api/chats/{chat['id']}", token=agent["token"]))["id"] == chat["id"]
    assert directory.ok(api.get(f"/api/users/{customer['id']}", token=agent["token"]))["id"] == customer["id"]
    colleague = directory.agent(new)
    assert_error(api.get(f"/api/users/{customer['id']}", token=colleague["token"]), 403, "forbidden")


# ---- update -----------------------------------------------------------------

def test_admin_updates_every_field(directory):
    api = directory.api
    dept, dept2 = directory.department(), directory.department()
    agent = directory.agent(dept, token=False)
    new_name = "renamed_" + uid()
    r = api.put(f"/api/users/{agent['id']}", token=directory.admin, json={
        "username": new_name, "full_name": "New Name", "email": "new@example.com", "max_chats": 7,
        "department_id": dept2["id"], "password": "another-secret"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["username"], got["full_name"], got["email"], got["max_chats"], got["department_id"]) == \
        (new_name, "New Name", "new@example.com", 7, dept2["id"])
    assert directory.get_user(agent["id"]) == got
    assert directory.get_department(dept["id"])["agent_count"] == 0
    assert directory.get_department(dept2["id"])["agent_count"] == 1
    # email can be cleared
    assert directory.ok(api.put(f"/api/users/{agent['id']}", token=directory.admin,
                                json={"email": None}))["email"] is None


def test_role_changes_move_in_and_out_of_departments(directory):
    api = directory.api
    dept = directory.department()
    agent = directory.agent(dept, presence="available", token=False)
    # away from agent: leaves the department, presence no longer shown
    got = directory.ok(api.put(f"/api/users/{agent['id']}", token=directory.admin, json={"role": "customer"}))
    assert got["role"] == "customer" and got["department_id"] is None and got["status"] is None
    assert directory.get_department(dept["id"])["agent_count"] == 0
    # into agent: needs a department
    before = directory.get_user(agent["id"])
    assert_error(api.put(f"/api/users/{agent['id']}", token=directory.admin, json={"role": "agent"}),
                 422, "validation_error", "department_id")
    assert directory.get_user(agent["id"]) == before
    got = directory.ok(api.put(f"/api/users/{agent['id']}", token=directory.admin,
                               json={"role": "agent", "department_id": dept["id"]}))
    assert got["role"] == "agent" and got["presence"] == "offline" and got["status"] == "offline"
    # an agent cannot lose its department, a customer cannot get one
    before = directory.get_user(agent["id"])
    assert_error(api.put(f"/api/users/{agent['id']}", token=directory.admin, json={"department_id": None}),
                 422, "validation_error", "department_id")
    assert directory.get_user(agent["id"]) == before
    customer = directory.user("customer", token=False)
    assert_error(api.put(f"/api/users/{customer['id']}", token=directory.admin,
                         json={"department_id": dept["id"]}), 422, "validation_error", "department_id")
    assert directory.get_user(customer["id"]) == customer


def _update_cases():
    return [
        ({"username": "x"}, "username"), ({"username": "no spaces"}, "username"),
        ({"username": None}, "username"), ({"password": "short"}, "password"),
        ({"password": None}, "password"), ({"full_name": ""}, "full_name"),
        ({"full_name": " "}, "full_name"), ({"full_name": None}, "full_name"),
        ({"role": "boss"}, "role"), ({"role": None}, "role"), ({"email": "@"}, "email"),
        ({"max_chats": "5"}, "max_chats"), ({"max_chats": 0}, "max_chats"),
        ({"max_chats": 101}, "max_chats"), ({"max_chats": None}, "max_chats"),
        ({"is_active": "false"}, "is_active"), ({"department_id": "2"}, "department_id"),
        ({"department_id": 999999999}, "department_id"),
    ]


@pytest.mark.parametrize("body, field", _update_cases())
def test_update_validation_changes_nothing(directory, body, field):
    dept = directory.department()
    agent = directory.agent(dept, token=False)
    assert_error(directory.api.put(f"/api/users/{agent['id']}", token=directory.admin, json=body),
                 422, "validation_error", field)
    assert directory.get_user(agent["id"]) == agent


def test_moving_to_an_inactive_department_is_refused(directory):
    dept, off = directory.department(), directory.department(is_active=False)
    agent = directory.agent(dept, token=False)
    assert_error(directory.api.put(f"/api/users/{agent['id']}", token=directory.admin,
                                   json={"department_id": off["id"]}), 422, "validation_error", "department_id")
    assert directory.get_user(agent["id"]) == agent


def test_self_service_fields(directory):
    api = directory.api
    agent = directory.agent(directory.department())
    customer = directory.customer()
    for user in (agent, customer):
        r = api.put(f"/api/users/{user['id']}", token=user["token"],
                    json={"full_name": "Self Made", "email": "self@example.com", "password": "self-service-pw"})
        assert r.status_code == 200, r.text
        assert r.json()["full_name"] == "Self Made" and r.json()["email"] == "self@example.com"
        assert_error(api.put(f"/api/users/{user['id']}", token=user["token"], json={"full_name": ""}),
                     422, "validation_error", "full_name")
    # a key that is no field of the user object is unknown, ignored (contract 2)
    r = api.put(f"/api/users/{agent['id']}", token=agent["token"], json={"full_name": "Self", "colour": "red"})
    assert r.status_code == 200 and r.json()["full_name"] == "Self", r.text
    # the new password works
    r = login(api, agent["username"], "self-service-pw")
    assert r.status_code == 200, r.text


MASS_ASSIGNMENT = [
    {"role": "admin"}, {"department_id": None}, {"max_chats": 100}, {"is_active": True},
    {"username": "taken_" + uid()}, {"full_name": "Sneaky", "role": "admin"},
    # any other field of the user object, not only the admin's ones
    {"status": "available"}, {"full_name": "Sneaky", "presence": "busy"}, {"active_chats": 0},
    {"id": 1}, {"last_seen_at": "2026-01-01T00:00:00.000Z"},
    {"created_at": "2026-01-01T00:00:00.000Z"}, {"full_name": "Sneaky", "updated_at": "2026-01-01T00:00:00.000Z"},
]


@pytest.mark.parametrize("body", MASS_ASSIGNMENT)
@pytest.mark.parametrize("who", ["agent", "customer"])
def test_mass_assignment_is_forbidden_and_changes_nothing(directory, who, body):
    api = directory.api
    dept, other = directory.department(), directory.department()
    user = directory.agent(dept) if who == "agent" else directory.customer()
    if "department_id" in body:
        body = {"department_id": other["id"]}
    before = directory.get_user(user["id"])
    assert_error(api.put(f"/api/users/{user['id']}", token=user["token"], json=body), 403, "forbidden",
                 next(k for k in body if k != "full_name"))
    assert same_user(directory.get_user(user["id"]), before)
    assert directory.ok(api.get("/api/auth/me", token=user["token"]))["role"] == before["role"]


def test_non_admin_cannot_update_others(directory):
    api = directory.api
    agent = directory.agent(directory.department())
    target = directory.agent(directory.department(), token=False)
    customer = directory.customer()
    assert_error(api.put(f"/api/users/{target['id']}", token=agent["token"], json={"full_name": "X"}),
                 403, "forbidden")
    assert_error(api.put(f"/api/users/{target['id']}", token=customer["token"], json={"full_name": "X"}),
                 404, "not_found")
    assert directory.get_user(target["id"]) == strip_token(target)


def test_admin_cannot_demote_or_deactivate_itself(directory):
    api = directory.api
    me = directory.user("admin")
    for body in ({"role": "agent"}, {"is_active": False}):
        assert_error(api.put(f"/api/users/{me['id']}", token=me["token"], json=body), 409, "conflict")
    assert_error(api.delete(f"/api/users/{me['id']}", token=me["token"]), 409, "conflict")
    after = directory.get_user(me["id"])
    assert after["role"] == "admin" and after["is_active"] is True
    assert directory.ok(api.put(f"/api/users/{me['id']}", token=me["token"],
                                json={"full_name": "Still Admin"}))["full_name"] == "Still Admin"


@pytest.mark.parametrize("role", ["agent", "customer"])
def test_a_non_admin_cannot_delete_itself(directory, role):
    """DELETE /api/users/{id} is the admin's (contract 3): its own id is no
    exception for an agent or a customer (403, not the admin's 409), and
    nothing changes: still active, still available, its token still works."""
    api = directory.api
    user = directory.agent(directory.department(), presence="available") if role == "agent" \
        else directory.customer()
    before = directory.get_user(user["id"])
    assert_error(api.delete(f"/api/users/{user['id']}", token=user["token"]), 403, "forbidden")
    assert same_user(directory.get_user(user["id"]), before)
    assert api.get("/api/auth/me", token=user["token"]).status_code == 200


# ---- delete / reactivate ------------------------------------------------------

def test_delete_deactivates_revokes_and_hides(directory):
    api = directory.api
    dept = directory.department()
    agent = directory.agent(dept, presence="available")
    assert directory.ok(api.get("/api/auth/me", token=agent["token"]))["id"] == agent["id"]
    r = api.delete(f"/api/users/{agent['id']}", token=directory.admin)
    assert r.status_code == 204 and r.text == ""
    assert_error(api.get("/api/auth/me", token=agent["token"]), 401, "unauthorized")
    got = directory.get_user(agent["id"])
    assert got["is_active"] is False and got["presence"] == "offline" and got["status"] == "offline"
    assert agent["id"] not in ids(directory.list_all("/api/users/"))
    assert agent["id"] not in ids(api.get(f"/api/users/agents/available?department_id={dept['id']}",
                                          token=directory.admin).json())
    assert directory.get_department(dept["id"])["agent_count"] == 0
    assert_error(api.delete(f"/api/users/{agent['id']}", token=directory.admin), 404, "not_found")
    assert_error(api.delete("/api/users/999999999", token=directory.admin), 404, "not_found")

    # reactivation by PUT brings it back, offline
    got = directory.ok(api.put(f"/api/users/{agent['id']}", token=directory.admin, json={"is_active": True}))
    assert got["is_active"] is True and got["presence"] == "offline"
    assert agent["id"] in ids(directory.list_all(f"/api/users/?department_id={dept['id']}"))


def test_reactivation_needs_a_live_department(directory):
    api = directory.api
    dept = directory.department()
    agent = directory.agent(dept, token=False)
    assert api.delete(f"/api/users/{agent['id']}", token=directory.admin).status_code == 204
    assert api.delete(f"/api/departments/{dept['id']}", token=directory.admin).status_code == 204
    assert_error(api.put(f"/api/users/{agent['id']}", token=directory.admin, json={"is_active": True}),
                 422, "validation_error", "department_id")
    assert directory.get_user(agent["id"])["is_active"] is False
    new = directory.department()
    got = directory.ok(api.put(f"/api/users/{agent['id']}", token=directory.admin,
                               json={"is_active": True, "department_id": new["id"]}))
    assert got["is_active"] is True and got["department_id"] == new["id"]


def test_a_deactivated_user_gets_only_a_live_active_department(directory):
    """The department of a deactivated agent (or of a deactivated user made an
    agent) is checked as an active agent's is: an unknown one was a 500 (the
    foreign key), a deleted or inactive one was stored."""
    api = directory.api
    dept = directory.department()
    inactive = directory.department(is_active=False)
    deleted = directory.department()
    assert api.delete(f"/api/departments/{deleted['id']}", token=directory.admin).status_code == 204
    agent = directory.agent(dept, token=False)
    customer = directory.user("customer", token=False)
    for user in (agent, customer):
        assert api.delete(f"/api/users/{user['id']}", token=directory.admin).status_code == 204
    for user in (agent, customer):
        before = directory.get_user(user["id"])
        for dept_id in (999999999, inactive["id"], deleted["id"]):
            body = {"department_id": dept_id} if user is agent else {"role": "agent", "department_id": dept_id}
            assert_error(api.put(f"/api/users/{user['id']}", token=directory.admin, json=body),
                         422, "validation_error", "department_id")
        assert directory.get_user(user["id"]) == before
    # a live, active one is taken, and the agent stays deactivated
    got = directory.ok(api.put(f"/api/users/{agent['id']}", token=directory.admin,
                               json={"department_id": directory.department()["id"]}))
    assert got["is_active"] is False


def test_a_rename_racing_a_delete_or_a_reactivation_loses_neither(directory):
    """A PUT of one field wrote back the is_active it had read before it locked
    the row: a DELETE answered 204 and the user stayed active."""
    api = directory.api
    user = directory.customer()
    stop = threading.Event()

    def rename():
        while not stop.is_set():
            r = api.put(f"/api/users/{user['id']}", token=directory.admin, json={"full_name": "Renamed " + uid()})
            assert r.status_code == 200, r.text

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        renamers = [pool.submit(rename) for _ in range(2)]
        try:
            for _ in range(15):
                time.sleep(0.01)
                assert api.delete(f"/api/users/{user['id']}", token=directory.admin).status_code == 204
                time.sleep(0.03)
                assert directory.get_user(user["id"])["is_active"] is False
                directory.ok(api.put(f"/api/users/{user['id']}", token=directory.admin, json={"is_active": True}))
                time.sleep(0.03)
                assert directory.get_user(user["id"])["is_active"] is True
        finally:
            stop.set()
            for f in renamers:
                f.result()


def test_a_deactivated_user_cannot_log_in(directory):
    """A deactivated user's tokens stop working (contract 3), new ones too: its
    login with the right password is the 401 of wrong credentials, not a 200
    with a token that is dead on arrival."""
    user = directory.user("customer", token=False)
    assert directory.api.delete(f"/api/users/{user['id']}", token=directory.admin).status_code == 204
    r = login(directory.api, user["username"], PASSWORD)
    assert_error(r, 401, "unauthorized")
    assert "token" not in r.json()


def test_deactivation_by_put_revokes_too(directory):
    api = directory.api
    customer = directory.user("customer")
    got = directory.ok(api.put(f"/api/users/{customer['id']}", token=directory.admin, json={"is_active": False}))
    assert got["is_active"] is False
    assert_error(api.get("/api/auth/me", token=customer["token"]), 401, "unauthorized")


@pytest.mark.parametrize("removal", ["delete", "put"])
@pytest.mark.parametrize("role", ["agent", "customer"])
def test_reactivation_does_not_bring_old_tokens_back(directory, role, removal):
    """DELETE revokes the user's tokens (contract 5), and PUT is_active:false
    has the effects of DELETE (README 11): revoked, not only refused while the
    user is inactive, so a reactivation leaves them dead; a new one works."""
    api = directory.api
    user = directory.agent(directory.department()) if role == "agent" else directory.user("customer")
    if removal == "delete":
        assert api.delete(f"/api/users/{user['id']}", token=directory.admin).status_code == 204
    else:
        directory.ok(api.put(f"/api/users/{user['id']}", token=directory.admin, json={"is_active": False}))
    assert_error(api.get("/api/auth/me", token=user["token"]), 401, "unauthorized")
    directory.ok(api.put(f"/api/users/{user['id']}", token=directory.admin, json={"is_active": True}))
    assert_error(api.get("/api/auth/me", token=user["token"]), 401, "unauthorized")
    assert api.get("/api/auth/me", token=directory.token_for(user["username"])).status_code == 200


def mutual(api, a, b, removal):
    """a and b each remove the other at the same moment, each on its own connection."""
    barrier = threading.Barrier(2)

    def act(me, other):
        own = Api(api.base_url)
        barrier.wait()
        if removal == "delete":
            return own.delete(f"/api/users/{other['id']}", token=me["token"])
        return own.put(f"/api/users/{other['id']}", token=me["token"], json=removal)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        both = [pool.submit(act, a, b), pool.submit(act, b, a)]
        return [f.result() for f in both]


@pytest.mark.parametrize("removal", ["delete", {"is_active": False}, {"role": "customer"}],
                         ids=["delete", "deactivate", "demote"])
def test_two_admins_removing_each_other_at_once_leave_one(directory, removal):
    """Each request checked its admin when it started, so both mutual removals
    went through and no admin of the pair was left. The write checks the
    acting admin again under its row lock: at most one wins, the other is
    refused as deactivated (401) or no longer an admin (403); a request that
    starts after its admin became a customer finds no such user (404)."""
    refused = (401, 403, 404) if removal == {"role": "customer"} else (401, 403)
    for _ in range(10):
        a, b = directory.user("admin"), directory.user("admin")
        replies = mutual(directory.api, a, b, removal)
        won = [r for r in replies if r.status_code in (200, 204)]
        assert len(won) <= 1, [r.text for r in replies]
        for r in replies:
            assert r.status_code in (200, 204, *refused), r.text
        after = [directory.get_user(u["id"]) for u in (a, b)]
        admins = [u for u in after if u["is_active"] and u["role"] == "admin"]
        assert len(admins) == 2 - len(won), after


# ---- presence ------------------------------------------------------------------

def test_presence_and_derived_status(directory):
    api = directory.api
    dept = directory.department()
    agent = directory.agent(dept)
    for presence in ("available", "busy", "offline", "available"):
        r = api.put(f"/api/users/{agent['id']}/status", token=agent["token"], json={"status": presence})
        assert r.status_code == 200, r.text
        got = r.json()
        assert set(got) == USER_FIELDS
        assert got["presence"] == presence and got["status"] == presence
        assert directory.get_user(agent["id"])["status"] == presence
    # the admin may set it too
    assert directory.presence(agent, "busy")["status"] == "busy"


@pytest.mark.parametrize("body", [{}, {"status": "away"}, {"status": 1}, {"status": None},
                                  {"status": "Available"}])
def test_presence_validation(directory, body):
    agent = directory.agent(directory.department(), presence="busy")
    assert_error(directory.api.put(f"/api/users/{agent['id']}/status", token=agent["token"], json=body),
                 422, "validation_error", "status")
    assert directory.get_user(agent["id"])["presence"] == "busy"


def test_presence_targets(directory):
    api = directory.api
    agent = directory.agent(directory.department())
    other = directory.agent(directory.department(), token=False)
    customer = directory.user("customer")
    assert_error(api.put(f"/api/users/{other['id']}/status", token=agent["token"],
                         json={"status": "available"}), 403, "forbidden")
    assert directory.get_user(other["id"])["presence"] == "offline"
    # only active agents have a presence
    for target in (customer["id"], directory.user("admin", token=False)["id"], 999999999):
        assert_error(api.put(f"/api/users/{target}/status", token=directory.admin,
                             json={"status": "available"}), 404, "not_found")
    assert api.delete(f"/api/users/{other['id']}", token=directory.admin).status_code == 204
    assert_error(api.put(f"/api/users/{other['id']}/status", token=directory.admin,
                         json={"status": "available"}), 404, "not_found")
    assert directory.get_user(other["id"])["presence"] == "offline"


def test_agents_available_list(directory):
    api = directory.api
    dept, dept2 = directory.department(), directory.department()
    a = directory.agent(dept, presence="available")
    directory.agent(dept, presence="busy")
    directory.agent(dept)
    c = directory.agent(dept2, presence="available")
    r = api.get(f"/api/users/agents/available?department_id={dept['id']}", token=a["token"])
    assert r.status_code == 200
    assert ids(r.json()) == [a["id"]] and r.headers["X-Total-Count"] == "1"
    everywhere = ids(directory.list_all("/api/users/agents/available"))
    assert a["id"] in everywhere and c["id"] in everywhere
    assert all(u["status"] == "available" for u in api.get("/api/users/agents/available?limit=200",
                                                            token=directory.admin).json())
    directory.presence(a, "offline")
    assert api.get(f"/api/users/agents/available?department_id={dept['id']}", token=a["token"]).json() == []
    assert_error(api.get("/api/users/agents/available?department_id=x", token=a["token"]), 400,
                 "bad_request", "department_id")


def test_busy_at_capacity_and_available_again(directory):
    api = directory.api
    dept = directory.department()
    agent = directory.agent(dept, presence="available", max_chats=1)
    chat = directory.chat(directory.customer(), dept)
    got = directory.get_user(agent["id"])
    assert got["active_chats"] == 1 and got["presence"] == "available" and got["status"] == "busy"
    assert agent["id"] not in ids(api.get(f"/api/users/agents/available?department_id={dept['id']}",
                                          token=directory.admin).json())
    assert directory.get_department(dept["id"])["available_agents"] == 0
    # raising max_chats frees it (and drains the queue: a waiting chat is taken at once)
    waiting = directory.chat(directory.customer(), dept)
    assert waiting["status"] == "waiting"
    got = directory.ok(api.put(f"/api/users/{agent['id']}", token=directory.admin, json={"max_chats": 3}))
    assert got["active_chats"] == 2 and got["status"] == "available"
    directory.close_chat(chat)
    assert directory.get_user(agent["id"])["active_chats"] == 1


def test_moving_an_agent_requeues_its_chats(directory):
    api = directory.api
    dept, dept2 = directory.department(), directory.department()
    agent = directory.agent(dept, presence="available")
    chat = directory.chat(directory.customer(), dept)
    assert chat["agent_id"] == agent["id"]
    got = directory.ok(api.put(f"/api/users/{agent['id']}", token=directory.admin,
                               json={"department_id": dept2["id"]}))
    assert got["department_id"] == dept2["id"] and got["active_chats"] == 0
    back = directory.ok(api.get(f"/api/chats/{chat['id']}", token=directory.admin))
    assert back["status"] == "waiting" and back["agent_id"] is None and back["department_id"] == dept["id"]
    # the agent is available in its new department
    assert directory.get_department(dept2["id"])["available_agents"] == 1


def test_deactivating_an_agent_requeues_its_chats(directory):
    api = directory.api
    dept = directory.department()
    agent = directory.agent(dept, presence="available")
    colleague = directory.agent(dept, presence="busy")
    chat = directory.chat(directory.customer(), dept)
    assert chat["agent_id"] == agent["id"]
    directory.presence(colleague, "available")
    assert api.delete(f"/api/users/{agent['id']}", token=directory.admin).status_code == 204
    moved = directory.ok(api.get(f"/api/chats/{chat['id']}", token=directory.admin))
    assert moved["status"] == "active" and moved["agent_id"] == colleague["id"]


# ---- heartbeat -----------------------------------------------------------------

def test_heartbeat_refreshes_last_seen(directory):
    api = directory.api
    agent = directory.agent(directory.department())
    assert directory.get_user(agent["id"])["last_seen_at"] is None
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
    r = api.post(f"/api/users/{agent['id']}/heartbeat", token=agent["token"])
    assert r.status_code == 204 and r.text == ""
    first = parse_time(directory.get_user(agent["id"])["last_seen_at"])
    assert start < first < start + datetime.timedelta(seconds=65)
    time.sleep(0.05)
    assert api.post(f"/api/users/{agent['id']}/heartbeat/", token=directory.admin).status_code == 204
    second = parse_time(directory.get_user(agent["id"])["last_seen_at"])
    assert second > first
    # a deactivated (or unknown) user's heartbeat is 404 and refreshes nothing (README 11)
    assert api.delete(f"/api/users/{agent['id']}", token=directory.admin).status_code == 204
    time.sleep(0.05)
    for target in (agent["id"], 999999999):
        assert_error(api.post(f"/api/users/{target}/heartbeat", token=directory.admin), 404, "not_found")
    assert parse_time(directory.get_user(agent["id"])["last_seen_at"]) == second


def test_a_token_sent_where_none_is_needed_still_counts_as_the_agent_seen(directory):
    """GET /api/departments/active is open to all, but an agent's request there is
    still "a request the agent makes" (contract section 5); a bad token there is ignored."""
    api = directory.api
    agent = directory.agent(directory.department())
    assert directory.get_user(agent["id"])["last_seen_at"] is None
    anonymous = api.get("/api/departments/active")
    assert anonymous.status_code == 200
    r = api.get("/api/departments/active", token=agent["token"])
    assert r.status_code == 200 and r.json() == anonymous.json()
    assert directory.get_user(agent["id"])["last_seen_at"] is not None
    for token in ("not-a-token", "0" * 64):
        r = api.get("/api/departments/active/", token=token)
        assert r.status_code == 200 and r.json() == anonymous.json()


def test_a_read_whose_last_seen_refresh_meets_a_held_row_still_answers(directory, state_dir):
    """Any request an agent makes refreshes last_seen_at (contract 5); that side
    effect must not fail the request when the agent's row stays locked past
    MariaDB's lock wait (10 s): the read answers, and a later request refreshes."""
    api = directory.api
    agent = directory.agent(directory.department())
    assert directory.get_user(agent["id"])["last_seen_at"] is None
    holder = subprocess.Popen(["mariadb", f"--socket={state_dir / 'run' / 'mysqld.sock'}", "-uroot",
                               "--unbuffered", "-N", "-B", "carebot"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        holder.stdin.write(f"BEGIN; SELECT id FROM users WHERE id = {agent['id']} FOR UPDATE;\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == str(agent["id"])
        r = requests.get(f"{api.base_url}/api/auth/me", timeout=30,  # the lock wait is 10 s
                         headers={"Authorization": f"Bearer {agent['token']}"})
        assert r.status_code == 200 and r.json()["id"] == agent["id"], r.text
    finally:
        holder.stdin.write("ROLLBACK;\n")
        holder.stdin.close()
        holder.wait(10)
    assert directory.get_user(agent["id"])["last_seen_at"] is None
    assert api.get("/api/auth/me", token=agent["token"]).status_code == 200
    assert directory.get_user(agent["id"])["last_seen_at"] is not None


def test_heartbeat_targets(directory):
    api = directory.api
    agent = directory.agent(directory.department())
    other = directory.agent(directory.department(), token=False)
    customer = directory.customer()
    assert_error(api.post(f"/api/users/{other['id']}/heartbeat", token=agent["token"]), 403, "forbidden")
    assert_error(api.post(f"/api/users/{customer['id']}/heartbeat", token=customer["token"]), 403, "forbidden")
    assert directory.get_user(other["id"])["last_seen_at"] is None
    assert_error(api.post("/api/users/999999999/heartbeat", token=directory.admin), 404, "not_found")


def test_no_response_leaks_a_secret(directory):
    """Every response of these tests went through CheckedApi; this one makes sure it checks."""
    directory.user("agent", directory.department(), token=False)
    assert directory.api.seen >= 2
    r = directory.api.raw.get("/api/users/?limit=200", token=directory.admin)
    assert "$argon2" not in r.text and "password" not in r.text


def test_new_password_ends_every_other_session(api, admin_token, token_for):
    """A serious product's rule (README, section 11): whoever knew the old password is out."""
    username = "pw_" + uid()
    r = api.post("/api/users/", token=admin_token, json={
        "username": username, "password": "first-password", "full_name": "Pass Word", "role": "customer"})
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    mine, other = token_for(username), token_for(username)
    r = api.put(f"/api/users/{user_id}", token=mine, json={"password": "second-password"})
    assert r.status_code == 200, r.text
    assert api.get("/api/auth/me", token=mine).status_code == 200      # the session that changed it stays
    assert api.get("/api/auth/me", token=other).status_code == 401     # every other one ends
    again = token_for(username)
    r = api.put(f"/api/users/{user_id}", token=admin_token, json={"password": "third-password"})
    assert r.status_code == 200, r.text
    assert api.get("/api/auth/me", token=mine).status_code == 401      # an admin's reset ends them all
    assert api.get("/api/auth/me", token=again).status_code == 401
    assert api.get("/api/auth/me", token=admin_token).status_code == 200
    r = api.put(f"/api/users/{user_id}", token=admin_token, json={"full_name": "Still Here"})
    assert r.status_code == 200
    fresh = token_for(username)
    assert api.put(f"/api/users/{user_id}", token=admin_token, json={"full_name": "No Password Change"}).status_code == 200
    assert api.get("/api/auth/me", token=fresh).status_code == 200     # other edits end nothing


@pytest.mark.parametrize("role", ["agent", "customer"])
def test_racing_deletes_of_one_user_give_one_204(directory, role):
    """Three DELETEs of one user at once: one deactivates it (204), the others
    find it deleted (404), as a DELETE after it does (README 11). Each checked
    is_active before its locks, so all three answered 204 (an audit: 19 in 20)."""
    dept = directory.department()
    for _ in range(6):
        user = directory.agent(dept, presence="available") if role == "agent" else directory.user("customer")
        barrier = threading.Barrier(3)

        def delete():
            own = Api(directory.api.base_url)
            barrier.wait()
            return own.delete(f"/api/users/{user['id']}", token=directory.admin)

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            statuses = sorted(f.result().status_code for f in [pool.submit(delete) for _ in range(3)])
        assert statuses == [204, 404, 404], statuses
        assert directory.get_user(user["id"])["is_active"] is False


@pytest.mark.parametrize("removal", ["delete", {"is_active": False}], ids=["delete", "deactivate"])
def test_presence_racing_a_deactivation_never_leaves_an_inactive_agent_online(directory, removal):
    """An agent setting itself available while an admin deletes it: the
    presence change checked is_active before the department lock and wrote
    presence without checking it again, so a deactivated agent was left
    "available" (an audit: 7 in 8) and came back so when reactivated. Now the
    change lands before the deactivation (200, then offline) or finds the
    agent gone (404, or 401 for its revoked token); the agent always ends
    offline."""
    dept = directory.department()
    for _ in range(8):
        agent = directory.agent(dept)
        barrier = threading.Barrier(2)

        def set_available():
            own = Api(directory.api.base_url)
            barrier.wait()
            return own.put(f"/api/users/{agent['id']}/status", token=agent["token"],
                           json={"status": "available"})

        def remove():
            own = Api(directory.api.base_url)
            barrier.wait()
            if removal == "delete":
                return own.delete(f"/api/users/{agent['id']}", token=directory.admin)
            return own.put(f"/api/users/{agent['id']}", token=directory.admin, json=removal)

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            status, removed = [f.result() for f in [pool.submit(set_available), pool.submit(remove)]]
        assert removed.status_code in (200, 204), removed.text
        assert status.status_code in (200, 401, 404), status.text
        after = directory.get_user(agent["id"])
        assert (after["is_active"], after["presence"], after["status"]) == (False, "offline", "offline"), after
        back = directory.ok(directory.api.put(f"/api/users/{agent['id']}", token=directory.admin,
                                              json={"is_active": True}))
        assert (back["presence"], back["status"]) == ("offline", "offline"), back
