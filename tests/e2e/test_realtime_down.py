"""Contract section 7: "If Nchan is down, the API request still succeeds and
the history endpoint stays the source of truth" — and health says so.

Boots a second, private instance whose workers publish to a socket where
nothing listens, drives it over HTTP, and takes it down again.
"""

import os
import shutil
import socket
import subprocess
import time

import pytest
import requests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def deaf_instance(repo_root, tmp_path_factory):
    state = tmp_path_factory.mktemp("deaf") / "state"
    port = free_port()
    carebot = str(repo_root / "tools" / "carebot")
    env = dict(os.environ, CAREBOT_PUBLISH_SOCKET=str(state.parent / "nobody-listens-here.sock"))
    up = subprocess.run([carebot, "up", "--state", str(state), "--port", str(port), "--workers", "2"],
                        env=env, capture_output=True, text=True, timeout=300)
    try:
        # up answers 3 for an instance that runs with a part down, and says which
        assert up.returncode == 3, up.stdout[-2000:] + up.stderr[-2000:]
        assert '"realtime":"down"' in up.stderr and "carebot is running" in up.stdout, up.stderr[-2000:]
        yield f"http://127.0.0.1:{port}", state, carebot
    finally:
        subprocess.run([carebot, "down", "--state", str(state)], capture_output=True, timeout=120)
        shutil.rmtree(state.parent, ignore_errors=True)  # its datadir is 250 MB


def test_health_reports_realtime_down(deaf_instance):
    url, _, _ = deaf_instance
    r = requests.get(url + "/api/health", timeout=10)
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "degraded" and body["database"] == "ok" and body["realtime"] == "down"
    assert body["error"]["code"] == "unavailable"


def test_writes_succeed_and_history_has_them(deaf_instance):
    url, state, carebot = deaf_instance
    token = subprocess.run([carebot, "admin", "--state", str(state), "token", "customer1"],
                           capture_output=True, text=True, timeout=60).stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    chat = requests.post(url + "/api/chats/", json={"message": "is anyone there?"}, headers=auth, timeout=10)
    assert chat.status_code == 201, chat.text
    chat_id = chat.json()["id"]
    sent = requests.post(f"{url}/api/chats/{chat_id}/messages", json={"content": "still here"},
                         headers=auth, timeout=10)
    assert sent.status_code == 201, sent.text
    history = requests.get(f"{url}/api/chats/{chat_id}/messages", headers=auth, timeout=10).json()
    assert [m["content"] for m in history][-2:] == ["is anyone there?", "still here"]
    closed = requests.put(f"{url}/api/chats/{chat_id}/close", headers=auth, timeout=10)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"


def test_a_resume_the_publisher_cannot_vet_never_reaches_nchan(deaf_instance):
    """Here nginx serves subscriptions while the workers cannot reach its
    publisher (as a worker that backs off after a failed publish cannot, for
    2 s), so they cannot tell whether the channel keeps anything. Passed on
    as a resume anyway, the second one aborted nginx's worker (Nchan 1.3.6
    on a channel that keeps nothing, slact/nchan #534), ending every
    subscription. An EventSource's resume is taken as a new subscription; a
    long-poll's is the 409 (README 6, "Resume")."""
    url, state, carebot = deaf_instance
    token = subprocess.run([carebot, "admin", "--state", str(state), "token", "customer1"],
                           capture_output=True, text=True, timeout=60).stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    chat = requests.post(url + "/api/chats/", json={}, headers=auth, timeout=10)
    assert chat.status_code == 201, chat.text
    sub = f"{url}/ws/chat/{chat.json()['id']}"
    log = state / "log" / "nginx-error.log"
    start = log.stat().st_size
    held = []
    try:
        for _ in range(3):
            for headers, query in [({"Last-Event-ID": "1:0"}, {}), ({}, {"last_event_id": "1:0"})]:
                r = requests.get(sub, params={"token": token, **query}, timeout=5, stream=True,
                                 headers={"Accept": "text/event-stream", **headers})
                held.append(r)
                assert r.status_code == 200, (headers, query, r.status_code, r.text)
        time.sleep(0.5)
        with open(log, "rb") as f:
            f.seek(start)
            assert b"exited on signal" not in f.read()
        for _ in range(3):
            r = requests.get(sub, params={"token": token}, headers={"If-None-Match": "1:0"}, timeout=5)
            assert r.status_code == 409, (r.status_code, r.text)
            assert r.json()["error"]["code"] == "conflict", r.text
    finally:
        for r in held:
            r.close()
