"""Contract section 2: conventions and every row of the error table.

Each case sends the bad input, checks status, error code (and field), and
that nothing changed. 503 lives in test_ops.py (it stops MariaDB); 429 in
test_zz_ratelimit.py. The last test throws malformed input of every kind at
the workers and checks that none of them died.
"""

import http.client
import json
import socket
import urllib.parse
import uuid

import pytest
import requests

from dirhelp import assert_error


def departments(api, token):
    """Every department, all pages (the suite creates more than one page of them)."""
    items = []
    while True:
        r = api.get(f"/api/departments/?limit=200&offset={len(items)}", token=token)
        assert r.status_code == 200, r.text
        items += r.json()
        if not r.json() or len(items) >= int(r.headers["X-Total-Count"]):
            return items


@pytest.fixture
def customer_token(api):
    return api.post("/api/auth/guest", json={"full_name": "Error Tester"}).json()["token"]


def test_400_bad_json_changes_nothing(api, admin_token):
    before = departments(api, admin_token)
    cases = [b"{", b'{"name": "x",}', b"[1, 2]", b'"name"', b"{'name': 'x'}",
             b'{"name": NaN}', b'{"name": "a"} trailing', b'{"name": "caf\xe9"}',
             b'{"name": "x1", "n": 1.}', b'{"name": "x2", "n": -01}',
             b'{"name": "x3\\ud800"}', b'{"name": "\\udc00x4"}',
             b'{"name": "raw\x01control"}', b'{"name": "raw\ttab"}', b'{"name": "raw\nline"}']
    for body in cases:
        r = api.post("/api/departments/", token=admin_token, data=body,
                     headers={"Content-Type": "application/json"})
        assert_error(r, 400, "bad_json")
    assert departments(api, admin_token) == before


def test_the_request_limits_of_readme_11(api, admin_token):
    """JSON up to 32 levels deep is read, deeper is bad_json; up to 32 query
    parameters are read, more is bad_request; a request line over 8 KiB is
    bad_request. Refused ones change nothing."""
    def nested(levels, name):
        # the object is one level, each array one more
        return ('{"x": ' + "[" * (levels - 1) + "]" * (levels - 1) + f', "name": "{name}"}}').encode()

    before = departments(api, admin_token)
    deep = f"deep {uuid.uuid4().hex[:8]}"
    r = api.post("/api/departments/", token=admin_token, data=nested(33, deep),
                 headers={"Content-Type": "application/json"})
    assert_error(r, 400, "bad_json")
    assert "nesting too deep" in r.json()["error"]["message"]
    assert departments(api, admin_token) == before
    r = api.post("/api/departments/", token=admin_token, data=nested(32, deep),
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 201 and r.json()["name"] == deep, r.text

    params = "&".join(f"p{i}=1" for i in range(31))
    r = api.get(f"/api/users/?{params}&limit=1", token=admin_token)
    assert r.status_code == 200 and len(r.json()) == 1, r.text
    r = api.get(f"/api/users/?{params}&p31=1&limit=1", token=admin_token)
    assert_error(r, 400, "bad_request")
    r = api.get("/api/users/?limit=1&q=" + "x" * 9000, token=admin_token)
    assert_error(r, 400, "bad_request")
    before = departments(api, admin_token)
    r = api.post("/api/departments/", token=admin_token, json={"name": f"long header {deep}"},
                 headers={"X-Padding": "x" * 9000})
    assert_error(r, 400, "bad_request")
    assert departments(api, admin_token) == before


def test_error_bodies_are_utf8_whatever_the_path(api, admin_token):
    """The 404 quotes the path; bytes of it that are not UTF-8 must not reach the JSON."""
    for path, token in [("/api/users/%ff", None), ("/api/nope%c3%28", None),
                        ("/api/caf%c3%a9%ed%a0%80", admin_token), ("/api/" + "%e2%82%ac" * 200, None)]:
        r = api.get(path, token=token)
        assert r.status_code == 404, (path, r.text)
        body = json.loads(r.content.decode("utf-8"))  # raises on a byte that is not UTF-8
        assert body["error"]["code"] == "not_found"
        assert body["error"]["message"].startswith("no such path: /api/")


def test_400_bad_request_for_malformed_queries(api, admin_token):
    # a parameter that is well encoded but not a valid value: field names it
    for query, field in [("?limit=abc", "limit"), ("?limit=-1", "limit"), ("?offset=x", "offset"),
                         ("?role=%C3%A9", "role"), ("?limit=1e3", "limit")]:
        assert_error(api.get("/api/users/" + query, token=admin_token), 400, "bad_request", field)
    # an encoding that is not one: bad escapes, NUL, bytes that are not UTF-8; no field.
    for query in ["?limit=%zz", "?limit=1%", "?limit=%00", "?role=agent%00", "?role=%ff",
                  "?x=%ff", "?%ff=1", "?role=%c3"]:
        assert_error(exact(api, "GET", "/api/users/" + query, admin_token), 400, "bad_request")
    before = departments(api, admin_token)
    body = json.dumps({"name": "q " + uuid.uuid4().hex[:8]}).encode()
    for query in ["?x=%ff", "?x=%zz"]:
        assert_error(exact(api, "POST", "/api/departments/" + query, admin_token, body), 400, "bad_request")
    assert departments(api, admin_token) == before


class Exact:
    """An answer read by http.client, with the two things assert_error reads."""

    def __init__(self, resp):
        self.status_code, self.headers, self.text = resp.status, resp.headers, resp.read().decode()

    def json(self):
        return json.loads(self.text)


def exact(api, method, target, token, body=None):
    """A request whose target goes out byte for byte as written (requests and
    urllib3 would rewrite a bad escape such as %zz into %25zz)."""
    conn = http.client.HTTPConnection(*urllib.parse.urlsplit(api.base_url).netloc.split(":"), timeout=10)
    try:
        conn.request(method, target, body=body, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        return Exact(conn.getresponse())
    finally:
        conn.close()


def test_checks_come_in_the_order_of_readme_11(api, admin_token, customer_token):
    """404, 405, 401, 403, 415, 400, 422: each refusal is the first that applies,
    and none of them changes anything."""
    before = departments(api, admin_token)
    name = "order " + uuid.uuid4().hex[:8]
    bad = {"data": b"{", "headers": {"Content-Type": "application/json"}}
    plain = {"data": b"{}", "headers": {"Content-Type": "text/plain"}}
    assert_error(api.request("PATCH", "/api/nope", data=b"{"), 404, "not_found")
    assert_error(api.request("PATCH", "/api/departments/", **bad), 405, "method_not_allowed")
    assert_error(api.post("/api/departments/", **bad), 401, "unauthorized")
    assert_error(api.post("/api/departments/", **plain), 401, "unauthorized")
    assert_error(api.post("/api/departments/", token=customer_token, **plain), 403, "forbidden")
    assert_error(api.post("/api/departments/", token=customer_token, **bad), 403, "forbidden")
    assert_error(api.post("/api/departments/", token=admin_token, data=b"{", headers={"Content-Type": "text/plain"}),
                 415, "unsupported_media_type")
    assert_error(api.post("/api/departments/", token=admin_token, **bad), 400, "bad_json")
    assert_error(api.post("/api/departments/", token=admin_token, json={"name": ""}), 422, "validation_error", "name")
    # several faulty fields: the first one found is named; fixing it names the next
    assert_error(api.post("/api/departments/", token=admin_token, json={"name": "", "is_active": "no"}),
                 422, "validation_error", "name")
    assert_error(api.post("/api/departments/", token=admin_token, json={"name": name, "is_active": "no"}),
                 422, "validation_error", "is_active")
    assert departments(api, admin_token) == before


def test_401_without_or_with_a_bad_token(api):
    for path in ["/api/departments/", "/api/users/", "/api/chats/", "/api/auth/me"]:
        assert_error(api.get(path), 401, "unauthorized")
        assert_error(api.get(path, token="f" * 64), 401, "unauthorized")


def test_403_role_does_not_allow_and_nothing_changes(api, admin_token, customer_token):
    before = departments(api, admin_token)
    r = api.post("/api/departments/", token=customer_token, json={"name": "Nope " + uuid.uuid4().hex[:6]})
    assert_error(r, 403, "forbidden")
    assert departments(api, admin_token) == before


def test_404_unknown_paths_and_objects(api, admin_token):
    for path in ["/api/nope", "/api/departments/999999999", "/api/departments/0",
                 "/api/departments/abc", "/api/departments/1/nope", "/nope", "/api"]:
        r = api.get(path, token=admin_token)
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert r.json()["error"]["code"] == "not_found"


def test_405_names_the_allowed_methods(api, admin_token):
    r = api.delete("/api/health")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, HEAD"
    r = api.request("PATCH", "/api/departments/", token=admin_token, json={})
    assert_error(r, 405, "method_not_allowed")
    assert "POST" in r.headers["Allow"] and "GET" in r.headers["Allow"]



def test_405_on_the_subscriber_paths_names_get_and_options(api, admin_token):
    """Subscribing is all one can do on /ws/...: any other method is a JSON
    405 with Allow (it had none; README 11 says every 405 names them), the
    token unlooked at, and HEAD a 405 without a body."""
    for path in ["/ws/chat/1", "/ws/agent/1/", "/ws/department/1"]:
        for method in ["POST", "PUT", "DELETE", "PATCH"]:
            r = api.request(method, path, token=admin_token, json={})
            assert_error(r, 405, "method_not_allowed")
            assert r.headers["Allow"] == "GET, OPTIONS", (method, path)
        r = api.request("HEAD", path, token=admin_token)
        assert (r.status_code, r.headers["Allow"], r.content) == (405, "GET, OPTIONS", b"")

def test_head_is_answered_as_get_without_a_body(api, admin_token):
    for path, token in [("/api/health", None), ("/api/departments/active", None),
                        ("/api/departments/", admin_token)]:
        get = api.get(path, token=token)
        head = api.request("HEAD", path, token=token)
        assert head.status_code == get.status_code == 200, (path, head.status_code)
        assert head.content == b"" and head.headers["Content-Type"] == get.headers["Content-Type"]
        assert head.headers.get("X-Total-Count") == get.headers.get("X-Total-Count")
    assert api.request("HEAD", "/api/departments/").status_code == 401
    assert api.request("HEAD", "/api/departments/999999999", token=admin_token).status_code == 404


def test_409_duplicate_name_ignoring_case(api, admin_token):
    name = "Dup " + uuid.uuid4().hex[:8]
    assert api.post("/api/departments/", token=admin_token, json={"name": name}).status_code == 201
    before = departments(api, admin_token)
    assert_error(api.post("/api/departments/", token=admin_token, json={"name": name.upper()}), 409, "duplicate")
    assert departments(api, admin_token) == before


def test_413_body_over_64_kib(api, admin_token):
    before = departments(api, admin_token)
    big = json.dumps({"name": "x", "description": "y" * (70 * 1024)})
    r = api.post("/api/departments/", token=admin_token, data=big, headers={"Content-Type": "application/json"})
    assert_error(r, 413, "too_large")
    # Just under the limit is read and validated (422), not refused.
    near = json.dumps({"name": "x", "description": "y" * (63 * 1024)})
    r = api.post("/api/departments/", token=admin_token, data=near, headers={"Content-Type": "application/json"})
    assert_error(r, 422, "validation_error", "description")
    assert departments(api, admin_token) == before


def test_nginx_own_errors_on_the_subscriber_paths_are_json(base_url):
    """The subscriber locations have an error_page of their own (@refused, for
    auth_request's refusals), which replaces all of the server's there: they
    repeat the others, or nginx's own errors on a subscription URL were HTML."""
    for channel in ("department/1", "chat/1"):
        r = requests.get(f"{base_url}/ws/{channel}", data=b"x" * (70 * 1024), timeout=10,
                         headers={"Content-Type": "application/json"})
        assert_error(r, 413, "too_large")


def test_413_is_for_a_body_over_64_kib_not_at_it(api, admin_token):
    """"Body over 64 KiB" (contract 2): 65,536 bytes are read and validated
    (422, the description is too long), one byte more is 413. Neither stores anything."""
    before = departments(api, admin_token)
    for size, status, code, field in ((64 * 1024, 422, "validation_error", "description"),
                                      (64 * 1024 + 1, 413, "too_large", None)):
        frame = '{"name": "x", "description": ""}'
        body = frame[:-2] + "y" * (size - len(frame)) + frame[-2:]
        assert len(body.encode()) == size
        r = api.post("/api/departments/", token=admin_token, data=body,
                     headers={"Content-Type": "application/json"})
        assert_error(r, status, code, field)
    assert departments(api, admin_token) == before


def test_415_body_must_be_json(api, admin_token):
    before = departments(api, admin_token)
    for ctype in ["text/plain", "application/x-www-form-urlencoded", None]:
        headers = {"Content-Type": ctype} if ctype else {}
        r = api.post("/api/departments/", token=admin_token, data=b'{"name": "Form"}', headers=headers)
        assert_error(r, 415, "unsupported_media_type")
    # Parameters other than charset are passed over.
    for ctype in ["application/json; charset=utf-8", "application/json; version=2; charset=UTF8"]:
        r = api.post("/api/departments/", token=admin_token, data=b'{"name": "Charset ' + uuid.uuid4().hex[:6].encode() + b'"}',
                     headers={"Content-Type": ctype})
        assert r.status_code == 201, (ctype, r.text)
    assert len(departments(api, admin_token)) == len(before) + 2
    # JSON is UTF-8: a body declared in another charset is refused, wherever its parameter is
    for ctype in ["application/json; charset=latin-1", 'application/json;charset="iso-8859-1"',
                  "application/json; version=2; charset=latin-1"]:
        r = api.post("/api/departments/", token=admin_token, data=b'{"name": "Latin"}',
                     headers={"Content-Type": ctype})
        assert_error(r, 415, "unsupported_media_type")
    assert len(departments(api, admin_token)) == len(before) + 2


def test_a_body_where_none_is_read_must_still_be_json(api, admin_token):
    """415 and 400 hold for every request that has a body, not only for the
    endpoints that read one: the request is refused and does nothing."""
    dept = api.post("/api/departments/", token=admin_token,
                    json={"name": "Bodyless " + uuid.uuid4().hex[:6]}).json()
    guest = api.post("/api/auth/guest", json={"full_name": "Body Tester"}).json()["token"]
    for data, ctype, status, code in [(b"hello", "text/plain", 415, "unsupported_media_type"),
                                      (b"hello", None, 415, "unsupported_media_type"),
                                      (b"garbage{", "application/json", 400, "bad_json")]:
        headers = {"Content-Type": ctype} if ctype else {}
        assert_error(api.delete(f"/api/departments/{dept['id']}", token=admin_token, data=data,
                                headers=headers), status, code)
        assert_error(api.post("/api/auth/logout", token=guest, data=data, headers=headers), status, code)
        assert_error(api.get("/api/auth/me", token=guest, data=data, headers=headers), status, code)
    assert api.get(f"/api/departments/{dept['id']}", token=admin_token).json() == dept
    assert api.get("/api/auth/me", token=guest).status_code == 200
    # a JSON body is read and ignored
    r = api.delete(f"/api/departments/{dept['id']}", token=admin_token, json={"ignored": True})
    assert r.status_code == 204, r.text
    assert api.get(f"/api/departments/{dept['id']}", token=admin_token).status_code == 404


def test_422_names_the_field_and_changes_nothing(api, admin_token):
    before = departments(api, admin_token)
    for body, field in [({}, "name"), ({"name": ""}, "name"), ({"name": 5}, "name"),
                        ({"name": "x" * 101}, "name"), ({"name": "ok", "is_active": "yes"}, "is_active"),
                        ({"name": "ok", "is_default": 1}, "is_default")]:
        assert_error(api.post("/api/departments/", token=admin_token, json=body), 422, "validation_error", field)
    assert departments(api, admin_token) == before


def test_trailing_slash_is_optional(api, admin_token):
    a = api.get("/api/departments", token=admin_token)
    b = api.get("/api/departments/", token=admin_token)
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json()
    assert api.get("/api/health/").status_code == 200


def test_unknown_fields_are_ignored(api, admin_token):
    name = "Extra " + uuid.uuid4().hex[:8]
    r = api.post("/api/departments/", token=admin_token, json={"name": name, "colour": "teal", "id": 5})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == name and "colour" not in r.json() and r.json()["id"] != 5



def test_an_empty_body_is_no_body(api, admin_token):
    """Zero bytes declared as application/json are no body (README 11): the
    fields are missing (422 naming the first), nothing is created; an
    endpoint that reads no body just works."""
    before = api.get("/api/departments/", token=admin_token).headers["X-Total-Count"]
    for path, token, field in [("/api/departments/", admin_token, "name"),
                               ("/api/auth/guest", None, "full_name"),
                               ("/api/auth/login", None, "username")]:
        r = api.post(path, token=token, data=b"", headers={"Content-Type": "application/json"})
        assert_error(r, 422, "validation_error", field)
    assert api.get("/api/departments/", token=admin_token).headers["X-Total-Count"] == before
    r = api.post("/api/users/1/heartbeat", token=admin_token, data=b"",
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 204, r.text

def raw_exchange(base_url, payload):
    """Sends raw bytes to nginx on a connection it closes after the answer
    (send Connection: close); returns everything it answered."""
    host, port = urllib.parse.urlsplit(base_url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(payload)
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except socket.timeout:
            pass
    return data


def raw_http(base_url, payload):
    """Sends raw bytes to nginx and returns the status line (or b'' if it hung up)."""
    host, port = urllib.parse.urlsplit(base_url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(payload)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
    return data.split(b"\r\n", 1)[0]


def test_framing_nginx_cannot_read_is_a_json_400_and_changes_nothing(api, base_url, admin_token):
    """A Transfer-Encoding other than chunked (nginx: 501) and an HTTP version
    other than 1.x (nginx: 505) are malformed requests, not server faults."""
    name = "TE " + uuid.uuid4().hex[:8]
    body = json.dumps({"name": name}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = (f"POST /api/departments/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Authorization: Bearer {admin_token}\r\nContent-Type: application/json\r\n").encode()
    requests_ = [head + b"Transfer-Encoding: " + te + b"\r\n\r\n" + chunked
                 for te in [b"gzip", b"identity", b"chunked, gzip", b"gzip, chunked", b"xyz"]]
    requests_ += [b"GET /api/health HTTP/" + v + b"\r\nHost: x\r\nConnection: close\r\n\r\n"
                  for v in [b"2.0", b"3.0", b"9.9"]]
    for raw in requests_:
        answer = raw_exchange(base_url, raw)
        status, _, rest = answer.partition(b"\r\n")
        assert status.startswith(b"HTTP/1.1 400 "), (raw[-60:], answer[:200])
        headers, _, payload = rest.partition(b"\r\n\r\n")
        assert b"application/json" in headers.lower(), answer[:300]
        assert json.loads(payload)["error"]["code"] == "bad_request"
    # chunked itself is fine, and the refusals above created nothing
    assert not [d for d in departments(api, admin_token) if d["name"] == name]
    answer = raw_exchange(base_url, head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:200]
    assert len([d for d in departments(api, admin_token) if d["name"] == name]) == 1


def test_no_input_crashes_a_worker(api, base_url, admin_token, pool_pids):
    workers = pool_pids()
    auth = {"Authorization": f"Bearer {admin_token}"}
    bodies = [b"\x00" * 100, b"\xff\xfe" * 500, b"{" * 5000, b"[" * 5000 + b"]" * 5000,
              b'{"name": "' + b"\\u0000" * 10 + b'"}', b'{"name": "\\ud800"}',
              b'{"name": ' + b"9" * 5000 + b"}", b'{"a":' * 2000 + b"1" + b"}" * 2000,
              json.dumps({"name": {"nested": [1, 2, {"x": None}]}}).encode()]
    for body in bodies:
        for path in ["/api/departments/", "/api/auth/login", "/api/auth/guest", "/api/chats/"]:
            r = api.post(path, data=body, headers={**auth, "Content-Type": "application/json"})
            assert r.status_code < 500, (path, body[:40], r.status_code, r.text)
    for path in ["/api/departments/" + "9" * 40, "/api/%00", "/api/departments/..%2f..%2fetc",
                 "/api/users/?role=" + "a" * 5000, "/api/chats/?" + "&".join(["x=1"] * 100),
                 "/api/departments/1?x=%ff%fe"]:
        r = api.get(path, headers=auth)
        assert r.status_code < 500, (path, r.status_code, r.text)
    for raw in [b"GARBAGE\r\n\r\n", b"GET /api/health HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: application/json\r\n\r\nzz\r\n\r\n"]:
        status = raw_http(base_url, raw)
        assert not status.startswith(b"HTTP/1.1 5") or status.startswith(b"HTTP/1.1 503"), status
    assert api.get("/api/health").json()["status"] == "ok"
    assert pool_pids() == workers
