"""Pages on other sites (README 2): a chat widget on the shop's own site calls
the API from the visitor's browser, which asks first (a CORS preflight) and
lets the page read an answer only when it names the page's origin. The pages
of cors_origins may; any other page gets no CORS header, and its preflight
stays the 405 every OPTIONS was before.

The module lists two pages in cors_origins (carebot.conf, which the workers
read when they start), replaces the workers, and puts both back afterwards.
"""

import os
import socket

import pytest

from chathelp import World, assert_error, ok
from test_history_age import conf_setting

SHOP = "https://shop.example.com"
DEV = "http://localhost:3000"
OTHER = "https://evil.example"


@pytest.fixture(scope="module")
def listed(api, pool_pids, state_dir):
    with conf_setting(api, pool_pids, state_dir, "cors_origins", f"{SHOP}, {DEV}/"):
        yield


@pytest.fixture
def w(api, admin_token, token_for):
    return World(api, admin_token, token_for)


def preflight(api, path, origin, method="POST"):
    return api.request("OPTIONS", path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type,idempotency-key"})


def assert_cors(resp, origin):
    assert resp.headers.get("Access-Control-Allow-Origin") == origin, resp.headers
    assert "Origin" in resp.headers.get("Vary", ""), resp.headers
    exposed = [h.strip().lower() for h in resp.headers["Access-Control-Expose-Headers"].split(",")]
    assert {"x-total-count", "retry-after", "x-request-id"} <= set(exposed), resp.headers


def assert_no_cors(resp):
    assert not [h for h in resp.headers if h.lower().startswith("access-control-")], resp.headers


def chat_count(w):
    r = w.api.get("/api/chats/?limit=1", token=w.admin)
    assert r.status_code == 200, r.text
    return int(r.headers["X-Total-Count"])


def test_without_the_setting_no_page_gets_cors(api):
    """First, before the module's fixture lists any page: the instance's own
    cors_origins is empty unless the environment set it."""
    if os.environ.get("CAREBOT_CORS_ORIGINS"):
        pytest.skip("the environment sets cors_origins")
    r = preflight(api, "/api/chats/", SHOP)
    assert_error(r, 405, "method_not_allowed")
    assert_no_cors(r)


def test_a_listed_pages_preflight_names_the_paths_methods_and_the_headers_the_api_reads(
        listed, w):
    before = chat_count(w)
    for origin in (SHOP, DEV):
        r = preflight(w.api, "/api/chats/", origin)
        assert r.status_code == 204, r.text
        assert r.content == b""
        assert_cors(r, origin)
        methods = [m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")]
        assert set(methods) == {"GET", "HEAD", "POST"}, r.headers
        allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "content-type", "idempotency-key"} <= allowed, r.headers
        assert int(r.headers["Access-Control-Max-Age"]) > 0
    r = preflight(w.api, "/api/departments/7", SHOP, method="DELETE")
    assert r.status_code == 204, r.text
    assert "DELETE" in r.headers["Access-Control-Allow-Methods"]
    # A preflight is a question: it created nothing.
    assert chat_count(w) == before


def test_a_listed_page_reads_every_answer_errors_included(listed, w):
    r = w.api.post("/api/auth/guest", json={"full_name": "Widget visitor"},
                   headers={"Origin": SHOP})
    body = ok(r, 201)
    assert_cors(r, SHOP)
    token = body["token"]
    r = w.api.post("/api/chats/", token=token, json={"subject": "from the widget"},
                   headers={"Origin": SHOP})
    chat = ok(r, 201)
    assert_cors(r, SHOP)
    r = w.api.get(f"/api/chats/{chat['id']}/messages", token=token, headers={"Origin": DEV})
    ok(r)
    assert_cors(r, DEV)
    assert "X-Total-Count" in r.headers
    # The widget must be able to read why it failed, not only that it did.
    r = w.api.get("/api/chats/", headers={"Origin": SHOP})
    assert_error(r, 401, "unauthorized")
    assert_cors(r, SHOP)
    r = w.api.post(f"/api/chats/{chat['id']}/messages", token=token, json={"content": 5},
                   headers={"Origin": SHOP})
    assert_error(r, 422, "validation_error", "content")
    assert_cors(r, SHOP)
    r = w.api.get("/api/chats/?limit=x", token=token, headers={"Origin": SHOP})
    assert_error(r, 400, "bad_request", "limit")
    assert_cors(r, SHOP)
    # refused while the request is read, before any route is looked at
    r = w.api.get("/api/chats/?limit=%ff", token=token, headers={"Origin": SHOP})
    assert_error(r, 400, "bad_request")
    assert_cors(r, SHOP)


def test_other_pages_and_other_requests_get_no_cors(listed, w):
    before = chat_count(w)
    for origin in (OTHER, "https://shop.example.com.evil.example", "http://shop.example.com",
                   "null", "https://" + "a" * 300):
        r = preflight(w.api, "/api/chats/", origin)
        assert_error(r, 405, "method_not_allowed")
        assert r.headers["Allow"] == "GET, HEAD, POST"
        assert_no_cors(r)
        r = w.api.get("/api/departments/active", headers={"Origin": origin})
        ok(r)
        assert_no_cors(r)
        # the answer depends on the Origin, so a cache must key on it
        assert "Origin" in r.headers.get("Vary", ""), r.headers
    # Without an Origin, or an OPTIONS that is no preflight: as any client.
    r = w.api.get("/api/departments/active")
    ok(r)
    assert_no_cors(r)
    r = w.api.request("OPTIONS", "/api/chats/", headers={"Origin": SHOP})
    assert_error(r, 405, "method_not_allowed")
    assert_cors(r, SHOP)
    # A path that does not exist is no path to ask about.
    r = preflight(w.api, "/api/nothing/here", SHOP)
    assert_error(r, 404, "not_found")
    assert chat_count(w) == before


def test_a_listed_pages_subscription_refusals_carry_one_allow_origin(listed, w, api):
    """A subscription URL's CORS headers are Nchan's, which names any Origin.
    The workers added their own to what /_auth answered for a listed page, so
    its 401, 403 and 409 carried Access-Control-Allow-Origin twice, which a
    browser refuses ("contains multiple values ... but only one is allowed"):
    a long-poll page saw a network error instead of the status, and Chromium's
    console reported a CORS fault for an EventSource's 409. The 400 for a
    malformed message id (/_bad_msgid, which Nchan never sees) had the workers'
    header only, so an unlisted page could not read it."""
    customer = w.customer()
    chat = ok(api.post("/api/chats/", token=customer["token"], json={}), 201)
    dept = w.department()   # its channel keeps nothing yet: a long-poll's resume there is the 409
    stranger = w.customer()["token"]
    resume = {"Accept": "text/event-stream", "Last-Event-ID": "1:0"}   # through /_resume
    cases = [(f"/ws/chat/{chat['id']}?token=nonsense", {}, 401, "unauthorized"),
             (f"/ws/chat/{chat['id']}?token={stranger}", {}, 403, "forbidden"),
             (f"/ws/chat/{chat['id']}?token=nonsense", resume, 401, "unauthorized"),
             (f"/ws/chat/{chat['id']}?token={stranger}", resume, 403, "forbidden"),
             (f"/ws/department/{dept['id']}?token={w.admin}", {"If-None-Match": "1:0"}, 409, "conflict"),
             (f"/ws/chat/{chat['id']}?token={customer['token']}&last_event_id=zz", {}, 400,
              "bad_request")]
    for origin in (SHOP, OTHER):
        for path, headers, status, code in cases:
            r = api.get(path, headers=dict(headers, Origin=origin))
            assert_error(r, status, code)
            assert r.raw.headers.getlist("Access-Control-Allow-Origin") == [origin], (
                path, r.raw.headers.items())
    # Without an Origin (not a page) nothing names one.
    r = api.get(cases[0][0])
    assert_error(r, 401, "unauthorized")
    assert "Access-Control-Allow-Origin" not in r.headers


def test_a_fragment_in_a_subscription_uri_names_no_origin(base_url):
    """The CORS maps read "$request_uri#$http_origin": a raw # in the request
    line (no browser sends one) made the text after it an
    Access-Control-Allow-Origin of every refusal."""
    host, port = base_url.split("//")[1].split(":")
    for origin in ("", "Origin: https://page.example\r\n"):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(f"GET /ws/department/1#frag HTTP/1.1\r\nHost: {host}:{port}\r\n{origin}"
                      "Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode().lower()
        assert head.startswith("http/1.1 401"), head
        allowed = [line for line in head.split("\r\n") if line.startswith("access-control-allow-origin:")]
        assert allowed == (["access-control-allow-origin: https://page.example"] if origin else []), head
