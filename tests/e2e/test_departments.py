"""Contract section 4: departments - lists, the object and its live counts,
create/update/delete with validation, case-insensitive unique names, the
single default, department_in_use, soft delete. The role matrix of these
endpoints is in test_roles_directory.py.
"""

import concurrent.futures
import re

import pytest

from dirhelp import DEPARTMENT_FIELDS, assert_error, directory, uid  # noqa: F401


def names(items):
    return [d["name"] for d in items]


def test_create_returns_the_object_with_defaults(directory):
    api = directory.api
    name = "Dept " + uid()
    r = api.post("/api/departments/", token=directory.admin, json={"name": name})
    assert r.status_code == 201, r.text
    dept = r.json()
    assert set(dept) == DEPARTMENT_FIELDS
    assert dept["name"] == name and dept["description"] is None
    assert dept["is_active"] is True and dept["is_default"] is False
    assert (dept["agent_count"], dept["available_agents"], dept["waiting_chats"]) == (0, 0, 0)
    assert isinstance(dept["id"], int) and dept["id"] > 0
    assert directory.get_department(dept["id"]) == dept

    full = directory.department(description="All about widgets", is_active=False)
    assert full["description"] == "All about widgets" and full["is_active"] is False


def test_list_all_is_sorted_by_name_and_counted(directory):
    tag = uid()
    b = directory.department(name=f"zz {tag} b")
    a = directory.department(name=f"zz {tag} A")
    off = directory.department(name=f"zz {tag} c", is_active=False)
    r = directory.api.get("/api/departments", token=directory.admin)  # without the slash too
    assert r.status_code == 200
    everything = directory.list_all("/api/departments/")
    assert int(r.headers["X-Total-Count"]) == len(everything)
    mine = [d["id"] for d in everything if tag in d["name"]]
    assert mine == [a["id"], b["id"], off["id"]]
    # other files make names in any script; the database's collation orders those, so
    # compare only plain ASCII names, whose order both agree on
    ordered = [n.lower() for n in names(everything) if re.fullmatch(r"[A-Za-z0-9 ]+", n)]
    assert len(ordered) >= 3 and ordered == sorted(ordered)


def test_active_list_is_public_and_only_active(directory):
    on = directory.department()
    off = directory.department(is_active=False)
    r = directory.api.get("/api/departments/active?limit=200")  # no token
    assert r.status_code == 200, r.text
    active = directory.list_all("/api/departments/active", token=False)
    ids = [d["id"] for d in active]
    assert on["id"] in ids and off["id"] not in ids
    assert active and all(d["is_active"] for d in active)
    assert int(r.headers["X-Total-Count"]) == len(active)
    # the inactive one is still in the full list and readable
    assert off["id"] in [d["id"] for d in directory.list_all("/api/departments/")]
    assert directory.get_department(off["id"])["is_active"] is False


def test_paging_limit_offset_and_cap(directory):
    api = directory.api
    for _ in range(3):
        directory.department()
    r = api.get("/api/departments/?limit=2&offset=1", token=directory.admin)
    assert r.status_code == 200
    total = int(r.headers["X-Total-Count"])
    assert len(r.json()) == 2 and total >= 7
    full = api.get("/api/departments/?limit=200", token=directory.admin).json()
    assert [d["id"] for d in r.json()] == [d["id"] for d in full[1:3]]
    # The cap needs more departments than it: made here, deleted by the fixture.
    for _ in range(201 - total):
        directory.department()
    total = max(total, 201)
    assert int(api.get("/api/departments/?limit=1", token=directory.admin).headers["X-Total-Count"]) == total
    assert len(api.get("/api/departments/", token=directory.admin).json()) == 50  # the default page
    for big in ("201", "100000", "9223372036854775808", "9" * 40):  # past a 64-bit integer too
        capped = api.get(f"/api/departments/?limit={big}", token=directory.admin)
        assert capped.status_code == 200 and len(capped.json()) == 200
        past = str(total) if big == "201" else big  # an instance may hold more than 201
        far = api.get(f"/api/departments/?offset={past}", token=directory.admin)
        assert far.status_code == 200 and far.json() == [], far.text
        assert int(far.headers["X-Total-Count"]) == total
    for bad in ("limit=0", "limit=abc", "offset=-1", "limit=-99999999999999999999", "limit=1e3"):
        assert_error(api.get(f"/api/departments/?{bad}", token=directory.admin), 400, "bad_request",
                     bad.split("=")[0])


def test_computed_counts_follow_agents(directory):
    dept = directory.department()
    a1 = directory.agent(dept, presence="available")
    a2 = directory.agent(dept)
    d = directory.get_department(dept["id"])
    assert (d["agent_count"], d["available_agents"], d["waiting_chats"]) == (2, 1, 0)
    directory.presence(a2, "available")
    assert directory.get_department(dept["id"])["available_agents"] == 2
    directory.presence(a1, "busy")
    assert directory.get_department(dept["id"])["available_agents"] == 1
    # a deactivated agent is no longer counted
    assert directory.api.delete(f"/api/users/{a2['id']}", token=directory.admin).status_code == 204
    d = directory.get_department(dept["id"])
    assert (d["agent_count"], d["available_agents"]) == (1, 0)


def test_waiting_chats_counts_the_queue(directory):
    dept = directory.department()
    directory.chat(directory.customer(), dept)
    directory.chat(directory.customer(), dept)
    assert directory.get_department(dept["id"])["waiting_chats"] == 2


@pytest.mark.parametrize("body, field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": None}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": "é" * 101}, "name"),
    ({"name": "\u00a0\u3000\u200b"}, "name"),
    ({"name": 42}, "name"),
    ({"name": "OK", "description": "d" * 1001}, "description"),
    ({"name": "OK", "description": 7}, "description"),
    ({"name": "OK", "is_active": "yes"}, "is_active"),
    ({"name": "OK", "is_active": None}, "is_active"),
    ({"name": "OK", "is_default": 1}, "is_default"),
])
def test_create_validation(directory, body, field):
    api = directory.api
    if body.get("name") == "OK":
        body = {**body, "name": "Bad " + uid()}
    before = directory.list_all("/api/departments/")
    assert_error(api.post("/api/departments/", token=directory.admin, json=body), 422,
                 "validation_error", field)
    assert directory.list_all("/api/departments/") == before


def test_limits_count_characters_not_bytes(directory):
    """A name of 100 characters and a description of 1000 are accepted, in any script."""
    for name in (("n" + uid() * 10)[:100], ("é" + uid() * 10)[:100], uid()[:8] + "日" * 92):
        assert len(name) == 100
        assert directory.department(name=name)["name"] == name
    for description in ("d" * 1000, "ü" * 1000):
        assert directory.department(description=description)["description"] == description


def test_names_are_unique_ignoring_case(directory):
    api = directory.api
    name = "Unique " + uid()
    first = directory.department(name=name)
    assert_error(api.post("/api/departments/", token=directory.admin, json={"name": name.upper()}),
                 409, "duplicate")
    other = directory.department()
    assert_error(api.put(f"/api/departments/{other['id']}", token=directory.admin,
                         json={"name": name.lower()}), 409, "duplicate")
    assert directory.get_department(other["id"])["name"] == other["name"]
    assert directory.get_department(first["id"])["name"] == name
    assert names(directory.list_all("/api/departments/")).count(name) == 1
    # letters outside ASCII too (simple lower-casing); Straße and STRASSE stay two (README 11)
    accented = directory.department(name="Élan " + uid())
    assert_error(api.post("/api/departments/", token=directory.admin, json={"name": accented["name"].lower()}),
                 409, "duplicate")
    strasse = "Straße " + uid()
    directory.department(name=strasse)
    assert directory.department(name=strasse.upper())["name"] == strasse.upper()  # STRASSE
    assert_error(api.post("/api/departments/", token=directory.admin, json={"name": strasse.lower()}),
                 409, "duplicate")
    # renaming a department to its own name in another case is fine
    r = api.put(f"/api/departments/{first['id']}", token=directory.admin, json={"name": name.upper()})
    assert r.status_code == 200 and r.json()["name"] == name.upper()


def test_names_differ_by_white_space_wherever_it_stands(directory):
    """Only letter case is ignored: a space at the end makes another name, as one at
    the start does (MariaDB's padding collation made 'X ' a duplicate of 'X')."""
    api = directory.api
    name = "Spaced " + uid()
    directory.department(name=name)
    for variant in (name + " ", " " + name, name + "\u00a0", name + "\t"):
        assert directory.department(name=variant)["name"] == variant
    assert_error(api.post("/api/departments/", token=directory.admin,
                          json={"name": name.upper() + " "}), 409, "duplicate")
    assert names(directory.list_all("/api/departments/")).count(name + " ") == 1


def test_update_changes_only_what_is_given(directory):
    api = directory.api
    dept = directory.department(description="old")
    r = api.put(f"/api/departments/{dept['id']}/", token=directory.admin,
                json={"description": None, "is_active": False})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["description"] is None and got["is_active"] is False and got["name"] == dept["name"]
    assert got["updated_at"] >= dept["updated_at"]
    new_name = "Renamed " + uid()
    got = directory.ok(api.put(f"/api/departments/{dept['id']}", token=directory.admin,
                               json={"name": new_name, "is_active": True, "unknown": 1}))
    assert got["name"] == new_name and got["is_active"] is True
    assert directory.get_department(dept["id"]) == got


@pytest.mark.parametrize("body, field", [
    ({"name": ""}, "name"),
    ({"name": None}, "name"),
    ({"name": "y" * 101}, "name"),
    ({"name": "  \t "}, "name"),
    ({"name": "\u2003\ufeff"}, "name"),
    ({"description": ["x"]}, "description"),
    ({"description": "d" * 1001}, "description"),
    ({"is_active": 0}, "is_active"),
    ({"is_default": "true"}, "is_default"),
])
def test_update_validation_changes_nothing(directory, body, field):
    dept = directory.department(description="keep")
    assert_error(directory.api.put(f"/api/departments/{dept['id']}", token=directory.admin, json=body),
                 422, "validation_error", field)
    assert directory.get_department(dept["id"]) == dept


def test_unknown_department_is_404(directory):
    api = directory.api
    for resp in (api.get("/api/departments/999999999", token=directory.admin),
                 api.put("/api/departments/999999999", token=directory.admin, json={"name": "x" + uid()}),
                 api.delete("/api/departments/999999999", token=directory.admin)):
        assert_error(resp, 404, "not_found")


def test_default_moves_and_stays_single(directory):
    api = directory.api
    old = directory.default_department()
    try:
        new = directory.department(is_default=True)
        assert new["is_default"] is True
        assert directory.get_department(old["id"])["is_default"] is False
        assert directory.default_department()["id"] == new["id"]
        # moving it by PUT on another department
        third = directory.department()
        got = directory.ok(api.put(f"/api/departments/{third['id']}", token=directory.admin,
                                   json={"is_default": True}))
        assert got["is_default"] is True
        assert directory.get_department(new["id"])["is_default"] is False
        assert directory.default_department()["id"] == third["id"]
    finally:
        directory.ok(api.put(f"/api/departments/{old['id']}", token=directory.admin,
                             json={"is_default": True}))
    assert directory.default_department()["id"] == old["id"]


def test_racing_moves_of_the_default_all_succeed(directory):
    """Two moves of the default at once, one of them onto the department that
    holds it when they start: both answer 200, one department is the default."""
    api = directory.api
    old = directory.default_department()
    pair = [directory.department(), directory.department()]

    def move(dept):
        return api.put(f"/api/departments/{dept['id']}", token=directory.admin,
                       json={"is_default": True})

    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for _ in range(40):
                answers = list(pool.map(move, pair))
                assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
                defaults = [d["id"] for d in directory.list_all("/api/departments/") if d["is_default"]]
                assert len(defaults) == 1 and defaults[0] in (pair[0]["id"], pair[1]["id"])
    finally:
        directory.ok(move(old))
    assert directory.default_department()["id"] == old["id"]


def test_the_default_cannot_be_unset_deactivated_or_deleted(directory):
    api = directory.api
    default = directory.default_department()
    for body in ({"is_default": False}, {"is_active": False}, {"is_active": False, "is_default": True}):
        assert_error(api.put(f"/api/departments/{default['id']}", token=directory.admin, json=body),
                     409, "conflict")
    assert_error(api.delete(f"/api/departments/{default['id']}", token=directory.admin), 409, "conflict")
    after = directory.get_department(default["id"])
    assert after["is_default"] is True and after["is_active"] is True
    assert after["updated_at"] == default["updated_at"]


def test_an_inactive_department_cannot_take_the_default(directory):
    api = directory.api
    default = directory.default_department()
    name = "NoDefault " + uid()
    assert_error(api.post("/api/departments/", token=directory.admin,
                          json={"name": name, "is_default": True, "is_active": False}), 409, "conflict")
    assert name not in names(directory.list_all("/api/departments/"))
    off = directory.department(is_active=False)
    assert_error(api.put(f"/api/departments/{off['id']}", token=directory.admin,
                         json={"is_default": True}), 409, "conflict")
    assert directory.get_department(off["id"]) == off
    assert directory.default_department()["id"] == default["id"]


def test_delete_is_blocked_by_active_agents_then_soft(directory):
    api = directory.api
    dept = directory.department()
    agent = directory.agent(dept)
    assert_error(api.delete(f"/api/departments/{dept['id']}", token=directory.admin), 409,
                 "department_in_use")
    assert directory.get_department(dept["id"])["agent_count"] == 1
    # once its only agent is deactivated, it can go
    assert api.delete(f"/api/users/{agent['id']}", token=directory.admin).status_code == 204
    r = api.delete(f"/api/departments/{dept['id']}/", token=directory.admin)
    assert r.status_code == 204 and r.text == ""
    assert_error(api.get(f"/api/departments/{dept['id']}", token=directory.admin), 404, "not_found")
    assert_error(api.put(f"/api/departments/{dept['id']}", token=directory.admin,
                         json={"description": "x"}), 404, "not_found")
    assert_error(api.delete(f"/api/departments/{dept['id']}", token=directory.admin), 404, "not_found")
    assert dept["id"] not in [d["id"] for d in directory.list_all("/api/departments/")]
    assert dept["id"] not in [d["id"] for d in api.get("/api/departments/active?limit=200").json()]
    # its name is free again, in any case
    again = directory.department(name=dept["name"].upper())
    assert again["id"] != dept["id"]
    # and no agent can be put into it
    assert_error(api.post("/api/users/", token=directory.admin, json={
        "username": "ag_" + uid(), "password": "password123", "full_name": "X", "role": "agent",
        "department_id": dept["id"]}), 422, "validation_error", "department_id")


def test_delete_is_blocked_by_open_chats_and_closed_ones_stay(directory):
    api = directory.api
    dept = directory.department()
    customer = directory.customer()
    chat = directory.chat(customer, dept)
    assert_error(api.delete(f"/api/departments/{dept['id']}", token=directory.admin), 409,
                 "department_in_use")
    assert directory.get_department(dept["id"])["waiting_chats"] == 1
    directory.close_chat(chat)
    assert api.delete(f"/api/departments/{dept['id']}", token=directory.admin).status_code == 204
    kept = directory.ok(api.get(f"/api/chats/{chat['id']}", token=directory.admin))
    assert kept["department_id"] == dept["id"] and kept["status"] == "closed"


def test_body_must_be_json(directory):
    r = directory.api.post("/api/departments/", token=directory.admin, data="name=x",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(r, 415, "unsupported_media_type")
    r = directory.api.post("/api/departments/", token=directory.admin, data="{",
                           headers={"Content-Type": "application/json"})
    assert_error(r, 400, "bad_json")
