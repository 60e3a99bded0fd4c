"""Contract section 2, Idempotency-Key on POST /api/chats/ and POST
/api/chats/{id}/messages: replays (in a row and concurrent), conflicts,
scoping by user and endpoint, malformed keys, and failures not stored."""

import threading
import uuid

import pytest

from chathelp import World, assert_error, ok


@pytest.fixture
def w(api, admin_token, token_for):
    return World(api, admin_token, token_for)


def post(api, path, token, body, key):
    return api.post(path, token=token, json=body, headers={"Idempotency-Key": key})


def at_once(n, fn):
    """Runs fn() in n threads released together; returns the results in thread order."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        results[i] = fn()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_chat_same_key_twice_in_a_row(w, api):
    cust = w.customer()
    body = {"department_id": w.department()["id"], "message": "hello"}
    key = uuid.uuid4().hex
    first = post(api, "/api/chats/", cust["token"], body, key)
    second = post(api, "/api/chats/", cust["token"], body, key)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert len(ok(api.get("/api/chats/", token=cust["token"]))) == 1
    assert len(w.messages(first.json()["id"])) == 1


def test_chat_same_key_at_once(w, api):
    cust = w.customer()
    body = {"department_id": w.department()["id"], "message": "race"}
    key = uuid.uuid4().hex
    results = at_once(2, lambda: post(api, "/api/chats/", cust["token"], body, key))
    assert [r.status_code for r in results] == [201, 201], [r.text for r in results]
    assert results[0].content == results[1].content
    assert len(ok(api.get("/api/chats/", token=cust["token"]))) == 1


def test_message_same_key_in_a_row_and_at_once(w, api):
    cust = w.customer()
    chat = w.chat(cust, department_id=w.department()["id"])
    path = f"/api/chats/{chat['id']}/messages"
    key = uuid.uuid4().hex
    a = post(api, path, cust["token"], {"content": "once"}, key)
    b = post(api, path, cust["token"], {"content": "once"}, key)
    assert a.status_code == b.status_code == 201 and a.content == b.content
    key2 = uuid.uuid4().hex
    results = at_once(4, lambda: post(api, path, cust["token"], {"content": "twice?"}, key2))
    assert {r.status_code for r in results} == {201}
    assert len({r.content for r in results}) == 1
    assert [m["content"] for m in w.messages(chat["id"])] == ["once", "twice?"]


def test_different_body_same_key_is_a_conflict(w, api):
    cust = w.customer()
    dept = w.department()["id"]
    key = uuid.uuid4().hex
    ok(post(api, "/api/chats/", cust["token"], {"department_id": dept, "subject": "a"}, key), 201)
    r = post(api, "/api/chats/", cust["token"], {"department_id": dept, "subject": "b"}, key)
    assert_error(r, 409, "idempotency_conflict")
    assert len(ok(api.get("/api/chats/", token=cust["token"]))) == 1
    chat_id = ok(api.get("/api/chats/", token=cust["token"]))[0]["id"]
    path = f"/api/chats/{chat_id}/messages"
    ok(post(api, path, cust["token"], {"content": "a"}, key), 201)
    assert_error(post(api, path, cust["token"], {"content": "b"}, key), 409, "idempotency_conflict")
    assert [m["content"] for m in w.messages(chat_id)] == ["a"]


def test_keys_are_scoped_to_user_and_endpoint(w, api):
    dept = w.department()["id"]
    one, two = w.customer(), w.customer()
    key = uuid.uuid4().hex
    c1 = ok(post(api, "/api/chats/", one["token"], {"department_id": dept}, key), 201)
    c2 = ok(post(api, "/api/chats/", two["token"], {"department_id": dept}, key), 201)
    assert c1["id"] != c2["id"]
    # The same key on the messages endpoint of a chat, and of another chat, is new each time.
    c3 = w.chat(one, department_id=dept)
    m1 = ok(post(api, f"/api/chats/{c1['id']}/messages", one["token"], {"content": "x"}, key), 201)
    m2 = ok(post(api, f"/api/chats/{c3['id']}/messages", one["token"], {"content": "x"}, key), 201)
    assert m1["id"] != m2["id"]


@pytest.mark.parametrize("key", ["", "a" * 129, "tab\there", "bell\x07", "del\x7f", "é"])
def test_malformed_key_is_400(w, api, key):
    cust = w.customer()
    r = api.post("/api/chats/", token=cust["token"], json={"department_id": w.department()["id"]},
                 headers={"Idempotency-Key": key.encode("utf-8")})
    assert_error(r, 400, "bad_request")
    assert ok(api.get("/api/chats/", token=cust["token"])) == []
    chat = w.chat(cust, department_id=w.department()["id"], message="first")
    r = api.post(f"/api/chats/{chat['id']}/messages", token=cust["token"], json={"content": "again"},
                 headers={"Idempotency-Key": key.encode("utf-8")})
    assert_error(r, 400, "bad_request")
    assert [m["content"] for m in w.messages(chat["id"])] == ["first"]


def test_longest_key_and_printable_punctuation_are_fine(w, api):
    cust = w.customer()
    dept = w.department()["id"]
    # printable ASCII is 0x20-0x7e, the space included
    for key in ("k" * 128, "!~#$%&'*+-.^_`|", "has space", '"quoted" (and) <angled> {x}'):
        ok(post(api, "/api/chats/", cust["token"], {"department_id": dept}, key), 201)


def test_failures_are_not_stored(w, api):
    cust = w.customer()
    key = uuid.uuid4().hex
    body = {"department_id": 999999999}
    assert_error(post(api, "/api/chats/", cust["token"], body, key), 422, "validation_error", "department_id")
    assert_error(post(api, "/api/chats/", cust["token"], {"department_id": 999999999, "x": 1}, key),
                 422, "validation_error", "department_id")  # not a conflict: nothing was stored
    good = {"department_id": w.department()["id"]}
    ok(post(api, "/api/chats/", cust["token"], good, key), 201)
