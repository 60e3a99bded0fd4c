"""The database out of room (contract 2: 503 `unavailable`, the request did
nothing; no 5xx but 503): a table that cannot grow answers every post and
new chat a JSON 503 at once, stores nothing, and leaves no worker hanging on
its next request. MariaDB's disk is not filled here: a trigger raises the
very error a full disk gives an INSERT (1114, "The table ... is full") for
messages carrying this run's marker (README 9, "A full disk"). And
`tools/carebot up` on a filesystem with no room says so (a tmpfs of its
own, mounted and unmounted by the test; skipped where it cannot mount)."""

import contextlib
import os
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

from chathelp import uniq
from test_ops import free_port, processes_mentioning

# A request that takes longer than this hangs: a worker out of step with
# MariaDB waited for its 30 s read timeout (README 9, "A full disk").
PROMPT = 8


def root_sql(state_dir, statement):
    done = subprocess.run(["mariadb", f"--socket={state_dir / 'run' / 'mysqld.sock'}", "-uroot",
                           "carebot"], input=statement, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


class TableFull:
    """While open, an INSERT of a message starting with the marker fails as on a full disk."""

    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.marker = f"full-{uuid.uuid4().hex}"
        self.trigger = "test_" + self.marker.replace("-", "_")

    def __enter__(self):
        root_sql(self.state_dir, f"""DELIMITER //
CREATE TRIGGER {self.trigger} BEFORE INSERT ON messages FOR EACH ROW
IF NEW.content LIKE '{self.marker}%' THEN
  SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1114, MESSAGE_TEXT = 'The table ''messages'' is full';
END IF//
""")
        return self

    def __exit__(self, *exc):
        root_sql(self.state_dir, f"DROP TRIGGER IF EXISTS {self.trigger}")


def post(base_url, path, token, body, key=None):
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    started = time.monotonic()
    r = requests.post(base_url + path, json=body, headers=headers, timeout=PROMPT)
    return r, time.monotonic() - started


def assert_full(r, elapsed):
    assert r.status_code == 503, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == "unavailable"
    assert "nothing was done" in error["message"]
    assert elapsed < 3, f"{elapsed:.1f} s"


def guest_chat(api):
    guest = api.post("/api/auth/guest", json={"full_name": uniq("Full")})
    assert guest.status_code == 201, guest.text
    token = guest.json()["token"]
    r = api.post("/api/chats/", token=token, json={"subject": "disk"})
    assert r.status_code == 201, r.text
    return token, f"/api/chats/{r.json()['id']}/messages"


def test_a_worker_that_met_a_full_table_answers_its_next_requests_at_once(
        api, base_url, state_dir, pool_pids):
    """An error after the row's columns (INSERT ... RETURNING) left the
    statement out of step: the worker's next post waited 30 s, then 503."""
    token, path = guest_chat(api)
    # More posts than workers, so that some worker meets the error twice,
    # in autocommit and in a transaction (an Idempotency-Key), and a good
    # post after each.
    rounds = len(pool_pids()) + 1
    with TableFull(state_dir) as full:
        for i in range(rounds):
            for key in (None, uniq("k")):
                r, elapsed = post(base_url, path, token, {"content": f"{full.marker} {i}"}, key)
                assert r.status_code >= 500 and elapsed < 3, f"{r.status_code} {elapsed:.1f} s"
            r, elapsed = post(base_url, path, token, {"content": f"fine {i}"})
            assert r.status_code == 201 and elapsed < 3, f"{r.text} {elapsed:.1f} s"
    history = api.get(f"{path}?limit=500", token=token).json()
    assert [m["content"] for m in history] == [f"fine {i}" for i in range(rounds)]


def test_a_full_table_is_a_503_that_did_nothing(api, base_url, state_dir):
    token, path = guest_chat(api)
    with TableFull(state_dir) as full:
        assert_full(*post(base_url, path, token, {"content": f"{full.marker} plain"}))
        assert_full(*post(base_url, path, token, {"content": f"{full.marker} keyed"},
                          key=uniq("k")))
        # A new chat whose first message cannot be stored is not made at all.
        assert_full(*post(base_url, "/api/chats/", token,
                          {"subject": "half", "message": f"{full.marker} first"}))
    assert api.get(path, token=token).json() == []
    assert [c["subject"] for c in api.get("/api/chats/", token=token).json()] == ["disk"]
    assert api.get("/api/health").json()["status"] == "ok"


@pytest.mark.parametrize("size,fill", [("4m", True), ("64m", False)], ids=["full", "too-small"])
def test_up_on_a_full_filesystem_says_so_and_starts_nothing(repo_root, size, fill):
    """`tools/carebot up` with no room for MariaDB used to fail on whatever
    wrote first ("MariaDB stopped at once", or "cat: write error"). A new
    datadir needs more than a start (its 256 MiB redo log): with 64 MiB
    free, mariadb-install-db failed and left half a datadir."""
    mount = tempfile.mkdtemp(prefix="carebot-full-")
    try:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mount],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here (not root?)")
        try:
            state = os.path.join(mount, "st")
            os.mkdir(state)
            with open(os.path.join(mount, "filler"), "wb") as f, contextlib.suppress(OSError):
                while fill:
                    f.write(b"\0" * 65536)
                    f.flush()
            up = subprocess.run([str(repo_root / "tools" / "carebot"), "up", "--state", state,
                                 "--port", str(free_port())],
                                capture_output=True, text=True, timeout=120)
            assert up.returncode == 1, up.stdout + up.stderr
            assert f"the filesystem of {state} is full" in up.stderr, up.stderr
            assert not os.path.exists(os.path.join(state, "mysql")), "a datadir was begun"
            assert processes_mentioning(state) == []
        finally:
            subprocess.run(["umount", mount], check=True)
    finally:
        os.rmdir(mount)
