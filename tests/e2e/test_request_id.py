"""Request correlation (README 9, "Following one request"): every answer
of the public server, whoever made it (a worker, nginx's own JSON error
pages, Nchan, the subscription refusals), carries nginx's $request_id as
X-Request-Id, a new one per request and never the client's own; nginx's
access log line of the request ends with it, and each line a worker logs
while serving the request says req=<id>, the subscription checks (/_auth)
included. So a user's "503 at 14:02", with its id or its time, leads to
both logs."""

import http.client
import re
import socket
import time
import uuid

import pytest

from test_db_full import TableFull, guest_chat

ID = re.compile(r"[0-9a-f]{32}")


def request_id(resp):
    """The answer's one X-Request-Id (requests joins a repeated header with ", ")."""
    value = resp.headers.get("X-Request-Id")
    assert value is not None and ID.fullmatch(value), (resp.status_code, dict(resp.headers))
    return value


def raw(base_url, data):
    """Sends bytes as they are (a request nginx cannot parse); the status and header lines."""
    host, port = base_url.split("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
    head = got.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(head[0].split()[1]), headers


def log_lines(path, needle, timeout=5):
    """The lines of a log holding needle, waited for (nginx flushes its access log once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in path.read_text(errors="replace").splitlines() if needle in line]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def own_channel(api):
    """A guest's token and its own chat's channel, which it may subscribe to."""
    token, path = guest_chat(api)
    return token, "/ws/chat/" + path.split("/")[3]


def test_every_kind_of_answer_carries_its_own_id(api, base_url):
    token, channel = own_channel(api)
    big = b"x" * (64 * 1024 + 1)
    answers = {
        "worker 200": api.get("/api/health"),
        "worker 401": api.get("/api/auth/me"),
        "worker 404": api.get("/api/no/such/path"),
        "worker 405": api.request("PATCH", "/api/health"),
        "worker preflight": api.request("OPTIONS", "/api/chats/", headers={
            "Origin": "https://widget.example", "Access-Control-Request-Method": "POST"}),
        "nginx 404": api.get("/nowhere"),
        "nginx 404 /api": api.get("/api"),
        "nginx 413": api.post("/api/auth/login", data=big, headers={"Content-Type": "application/json"}),
        "subscription refused 401": api.get("/ws/chat/1"),
        "subscription 405": api.post("/ws/chat/1", data=b"{}"),
        "subscription preflight": api.request("OPTIONS", "/ws/chat/1", headers={
            "Origin": "https://widget.example", "Access-Control-Request-Method": "GET"}),
        "subscription bad message id": api.get(channel, token=token, headers={"Last-Event-ID": "nonsense"}),
    }
    expected = {"worker 200": 200, "worker 401": 401, "worker 404": 404, "worker 405": 405,
                "nginx 404": 404, "nginx 404 /api": 404, "nginx 413": 413,
                "subscription refused 401": 401, "subscription 405": 405,
                "subscription bad message id": 400}
    for kind, status in expected.items():
        assert answers[kind].status_code == status, (kind, answers[kind].status_code, answers[kind].text)
    ids = {kind: request_id(resp) for kind, resp in answers.items()}
    # An accepted subscription: Nchan's own 200 (an EventSource, closed at once).
    with api.session.get(base_url + channel, headers={
            "Accept": "text/event-stream", "Authorization": f"Bearer {token}"},
            stream=True, timeout=10) as stream:
        assert stream.status_code == 200, stream.status_code
        ids["subscription 200"] = request_id(stream)
    # A request line nginx cannot parse: its 400 page.
    status, headers = raw(base_url, b"NONSENSE\r\n\r\n")
    assert status == 400 and len(headers.get("x-request-id", [])) == 1, (status, headers)
    assert ID.fullmatch(headers["x-request-id"][0]), headers
    ids["nginx 400"] = headers["x-request-id"][0]
    assert len(set(ids.values())) == len(ids), ids


def test_an_accepted_websocket_carries_its_id(api, base_url):
    token, channel = own_channel(api)
    host, port = base_url.split("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", channel, headers={
            "Authorization": f"Bearer {token}", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        resp = conn.getresponse()
        assert resp.status == 101, resp.status
        assert ID.fullmatch(resp.getheader("X-Request-Id") or ""), resp.getheaders()
    finally:
        conn.close()


def test_a_client_sent_id_is_not_echoed(api):
    mine = uuid.uuid4().hex
    for path in ("/api/health", "/nowhere", "/ws/chat/1"):
        r = api.get(path, headers={"X-Request-Id": mine})
        assert request_id(r) != mine, path
        assert mine not in r.text


def test_a_logged_failure_names_its_request_in_both_logs(api, base_url, state_dir):
    """The user's 503: its id leads to the worker's error line and to nginx's
    access line, and a client's own X-Request-Id is in neither."""
    token, path = guest_chat(api)
    mine = uuid.uuid4().hex
    with TableFull(state_dir) as full:
        r = api.post(path, token=token, json={"content": f"{full.marker} lost"},
                     headers={"X-Request-Id": mine})
    assert r.status_code == 503, r.text
    rid = request_id(r)
    logged = log_lines(state_dir / "log" / "fcgi.log", f"req={rid}")
    assert any(" error: req=" + rid + " database: " in line and "is full" in line for line in logged), logged
    access = log_lines(state_dir / "log" / "nginx-access.log", rid)
    assert len(access) == 1 and f'"POST {path}" 503 ' in access[0], access
    assert access[0].endswith(" " + rid), access
    assert not log_lines(state_dir / "log" / "fcgi.log", mine, timeout=0)
    assert not log_lines(state_dir / "log" / "nginx-access.log", mine, timeout=0)


@pytest.fixture
def database_down(db_stop, db_start, api):
    db_stop()
    try:
        yield
    finally:
        db_start()
        deadline = time.monotonic() + 15
        while api.get("/api/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.5)


def test_a_subscription_check_logs_with_the_subscribers_id(api, state_dir, database_down):
    """/_auth runs in nginx's checker server, a request of its own: the
    subscriber's id rides along, so the worker's line names the subscription
    that the client and the access log know. An unknown token has to be
    looked up in the database, which is down: the worker logs that, and the
    subscriber gets a 503."""
    r = api.get("/ws/chat/1", token=None, headers={"Authorization": f"Bearer {uuid.uuid4().hex * 2}"})
    assert r.status_code == 503, r.text
    rid = request_id(r)
    logged = log_lines(state_dir / "log" / "fcgi.log", f"req={rid}")
    assert any("database" in line for line in logged), logged
    access = log_lines(state_dir / "log" / "nginx-access.log", rid)
    assert len(access) == 1 and '"GET /ws/chat/1" 503 ' in access[0], access
