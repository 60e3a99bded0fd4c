"""Contract section 3, the role table, for the department and user endpoints
(sections 4 and 5): every role - admin, agent, customer, no token - against
every endpoint, with the exact status. Each call gets fresh objects, so a
write allowed for one role cannot change what the next role sees.
"""

import re

import pytest

from dirhelp import PASSWORD, assert_no_secret, directory, uid  # noqa: F401

ROLES = ("admin", "agent", "customer", "anon")


def _new_user_body():
    return {"username": "rm_" + uid(), "password": PASSWORD, "full_name": "Role Matrix",
            "role": "customer"}


# name: (method, path from the world w, body or None, {role: status})
MATRIX = {
    "departments active": ("GET", lambda w: "/api/departments/active", None,
                           dict(admin=200, agent=200, customer=200, anon=200)),
    "departments list": ("GET", lambda w: "/api/departments/", None,
                         dict(admin=200, agent=200, customer=200, anon=401)),
    "department get": ("GET", lambda w: f"/api/departments/{w['dept']['id']}", None,
                       dict(admin=200, agent=200, customer=200, anon=401)),
    "department create": ("POST", lambda w: "/api/departments/", lambda: {"name": "RM " + uid()},
                          dict(admin=201, agent=403, customer=403, anon=401)),
    "department update": ("PUT", lambda w: f"/api/departments/{w['dept']['id']}",
                          lambda: {"description": "changed"},
                          dict(admin=200, agent=403, customer=403, anon=401)),
    "department delete": ("DELETE", lambda w: f"/api/departments/{w['empty_dept']['id']}", None,
                          dict(admin=204, agent=403, customer=403, anon=401)),
    "users list": ("GET", lambda w: "/api/users/", None,
                   dict(admin=200, agent=200, customer=403, anon=401)),
    "agents available": ("GET", lambda w: "/api/users/agents/available", None,
                         dict(admin=200, agent=200, customer=403, anon=401)),
    "user get self": ("GET", lambda w: f"/api/users/{w['self']['id']}", None,
                      dict(admin=200, agent=200, customer=200, anon=401)),
    "user get other agent": ("GET", lambda w: f"/api/users/{w['other_agent']['id']}", None,
                             dict(admin=200, agent=200, customer=404, anon=401)),
    "user get other customer": ("GET", lambda w: f"/api/users/{w['other_customer']['id']}", None,
                                dict(admin=200, agent=403, customer=404, anon=401)),
    "user create": ("POST", lambda w: "/api/users/", _new_user_body,
                    dict(admin=201, agent=403, customer=403, anon=401)),
    "user update self": ("PUT", lambda w: f"/api/users/{w['self']['id']}", lambda: {"full_name": "Me Myself"},
                         dict(admin=200, agent=200, customer=200, anon=401)),
    "user update other": ("PUT", lambda w: f"/api/users/{w['other_agent']['id']}",
                          lambda: {"full_name": "Someone"},
                          dict(admin=200, agent=403, customer=404, anon=401)),
    "user delete": ("DELETE", lambda w: f"/api/users/{w['other_customer']['id']}", None,
                    dict(admin=204, agent=403, customer=403, anon=401)),
    "status of self (admin: of an agent)": ("PUT", lambda w: f"/api/users/{w['self_agent']['id']}/status",
                                            lambda: {"status": "busy"},
                                            dict(admin=200, agent=200, customer=403, anon=401)),
    "status of other agent": ("PUT", lambda w: f"/api/users/{w['other_agent']['id']}/status",
                              lambda: {"status": "busy"},
                              dict(admin=200, agent=403, customer=403, anon=401)),
    "heartbeat self": ("POST", lambda w: f"/api/users/{w['self']['id']}/heartbeat", None,
                       dict(admin=204, agent=204, customer=403, anon=401)),
    "heartbeat other agent": ("POST", lambda w: f"/api/users/{w['other_agent']['id']}/heartbeat", None,
                              dict(admin=204, agent=403, customer=403, anon=401)),
}


@pytest.fixture(scope="module")
def callers(api, admin_token, token_for):
    """One caller per role, in a department of their own."""
    from dirhelp import Dir
    d = Dir(api, admin_token, token_for)
    dept = d.department()
    yield {"admin": d.user("admin"), "agent": d.agent(dept), "customer": d.customer(), "anon": None,
           "dept": dept}
    d.cleanup()


def world(d, callers, role):
    """Fresh objects for one call, as seen from role."""
    other_dept = d.department()
    me = callers[role]
    return {
        "dept": d.department(),
        "empty_dept": d.department(),
        "self": me or callers["agent"],
        "self_agent": callers["agent"] if role in ("admin", "anon") else me,
        "other_agent": d.agent(other_dept, token=False),
        "other_customer": d.user("customer", token=False),
    }


def snapshot(d, w):
    """Everything a call of the matrix could change: the world's objects as the
    admin sees them (last_seen_at aside: any request of an agent moves it) and
    the two lists' totals."""
    def obj(path):
        body = d.ok(d.api.get(path, token=d.admin))
        body.pop("last_seen_at", None)
        return body

    def total(path):
        return d.api.get(path + "?limit=1", token=d.admin).headers["X-Total-Count"]

    users = {k: obj(f"/api/users/{w[k]['id']}") for k in ("self", "self_agent", "other_agent", "other_customer")}
    depts = {k: obj(f"/api/departments/{w[k]['id']}") for k in ("dept", "empty_dept")}
    return users, depts, total("/api/departments/"), total("/api/users/")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_role_matrix(directory, callers, name, role):
    method, path, body, expected = MATRIX[name]
    w = world(directory, callers, role)
    token = callers[role]["token"] if callers[role] else None
    before = snapshot(directory, w)
    resp = directory.api.request(method, path(w), token=token, json=body() if body else None)
    assert resp.status_code == expected[role], f"{method} {path(w)} as {role}: {resp.text}"
    assert_no_secret(resp)
    if resp.status_code >= 400:
        assert resp.json()["error"]["code"] == {401: "unauthorized", 403: "forbidden",
                                                404: "not_found"}[resp.status_code]
        assert snapshot(directory, w) == before, f"{method} {path(w)} as {role} was refused but changed something"


def test_matrix_covers_every_route(repo_root):
    """The table has a row for every route the workers declare for departments
    and users (their route tables in fcgi/), so a new route cannot go without
    its role checks."""
    ids = dict(dept={"id": 1}, empty_dept={"id": 1}, self={"id": 1}, self_agent={"id": 1},
               other_agent={"id": 1}, other_customer={"id": 1})
    pairs = {(m, p(ids).rstrip("/")) for m, p, _, _ in MATRIX.values()}
    routes = set()
    for name in ("api-departments.c", "api-users.c"):
        source = (repo_root / "fcgi" / name).read_text()
        routes |= {(m, p.replace("{id}", "1"))
                   for m, p in re.findall(r'\{"([A-Z]+)", "(/api/[^"]*)"', source)}
    assert len(routes) == 14, routes  # contract sections 4 and 5
    assert routes <= pairs, routes - pairs
