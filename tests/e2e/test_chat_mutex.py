"""The chats' mutexes (README 6, "Order"): a change to a chat waits while
another process holds that chat's mutex, and only that chat's.

Both kinds are tried: the host's record locks on chat_mutex_file, which
tools/carebot configures, and MariaDB named locks, which an instance without
the setting uses (the module empties the setting and replaces the workers,
and puts both back afterwards). The test takes a chat's mutex itself, the way
the workers and carebot-admin do, and watches a post and a reassign wait for
it: a process that took no mutex, or another one, would go ahead.
"""

import contextlib
import fcntl
import os
import re
import subprocess
import threading

import pytest
import requests

from chathelp import World
from test_history_age import read_conf, replace_workers, sql

# How long a held mutex is kept before it is released: long enough for a
# process that does not wait to finish, far below the 10 s a waiter waits.
HOLD_S = 1.0


def conf_value(state_dir, key):
    # [ \t], not \s: an empty value ("chat_mutex_file =", an instance on named
    # locks) must not run on into the next line and read its text as the value.
    found = re.search(rf"(?m)^{key}[ \t]*=[ \t]*(.*?)[ \t]*$", read_conf(state_dir))
    return found.group(1) if found else ""


@contextlib.contextmanager
def named_locks(api, pool_pids, state_dir):
    """The chats' and agents' mutexes as MariaDB named locks while it lasts:
    chat_mutex_file emptied and the workers replaced (carebot-admin reads the
    conf each run), then the conf and the workers as they were."""
    original = read_conf(state_dir)
    if not conf_value(state_dir, "chat_mutex_file"):
        yield
        return
    path = os.path.realpath(conf_value(state_dir, "chat_mutex_file"))
    emptied = re.sub(r"(?m)^chat_mutex_file[ \t]*=.*$", "chat_mutex_file =", original)
    (state_dir / "carebot.conf").write_text(emptied)
    replace_workers(api, pool_pids)
    try:
        # The mode took: no new worker holds the file open.
        for pid in pool_pids():
            fds = f"/proc/{pid}/fd"
            assert not any(os.path.realpath(os.path.join(fds, fd)).startswith(path)
                           for fd in os.listdir(fds)), f"worker {pid} still opens {path}"
        yield
    finally:
        (state_dir / "carebot.conf").write_text(original)
        replace_workers(api, pool_pids)


class HostMutex:
    """A chat's mutex as the workers take it: a record lock on byte <id> of the file."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR)

    def take(self, chat_id):
        fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, chat_id, os.SEEK_SET)

    def release(self, chat_id):
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, chat_id, os.SEEK_SET)

    def close(self):
        os.close(self.fd)


class NamedMutex:
    """A chat's mutex as MariaDB named lock, held by a mariadb client session (root's, on the
    instance's own socket: a named lock is the server's, whoever holds it, and the workers may
    reach MariaDB another way, test_lost_answer's proxy)."""

    def __init__(self, state_dir):
        self.client = subprocess.Popen(
            ["mariadb", "--no-defaults", "--unbuffered", "-N", "-B",
             f"--socket={state_dir / 'run' / 'mysqld.sock'}", "-uroot",
             conf_value(state_dir, "db_name") or "carebot"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, statement):
        self.client.stdin.write(statement + ";\n")
        self.client.stdin.flush()
        return self.client.stdout.readline().strip()

    def take(self, chat_id):
        # A worker sends its release without waiting for it (README 6, "Order"), so the lock of
        # the chat it just created may still be on its way out: wait for it a little.
        assert self.ask(f"SELECT GET_LOCK('carebot.chat.{chat_id}', 5)") == "1"

    def release(self, chat_id):
        assert self.ask(f"SELECT RELEASE_LOCK('carebot.chat.{chat_id}')") == "1"

    def close(self):
        self.client.stdin.close()
        self.client.wait(timeout=10)


@pytest.fixture(scope="module", params=["host", "database"])
def mutex(request, api, pool_pids, state_dir):
    path = conf_value(state_dir, "chat_mutex_file")
    if request.param == "host":
        if not path:
            pytest.skip("this instance has no chat_mutex_file")
        m = HostMutex(path)
        yield m
        m.close()
        return
    with named_locks(api, pool_pids, state_dir):
        m = NamedMutex(state_dir)
        yield m
        m.close()


@pytest.fixture
def w(api, admin_token, token_for):
    return World(api, admin_token, token_for)


def in_background(fn):
    """Runs fn in a thread; returns the thread and a list that receives fn's result."""
    out = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    return t, out


def contents(w, chat_id):
    return [m["content"] for m in w.messages(chat_id, limit=100)]


def test_a_post_waits_while_its_chat_is_held(w, base_url, mutex):
    dept = w.department()
    w.agent(dept["id"], presence="available")
    customer = w.customer()
    chat = w.chat(customer, department_id=dept["id"], message="first")
    mutex.take(chat["id"])
    try:
        t, out = in_background(lambda: requests.post(
            f"{base_url}/api/chats/{chat['id']}/messages", json={"content": "second"},
            headers={"Authorization": f"Bearer {customer['token']}"}, timeout=60))
        t.join(HOLD_S)
        assert t.is_alive(), f"the post did not wait for the chat's mutex: {out}"
        assert "second" not in contents(w, chat["id"])
    finally:
        mutex.release(chat["id"])
    t.join(60)
    assert out and out[0].status_code == 201, out and out[0].text
    assert contents(w, chat["id"])[-1] == "second"


def test_a_held_chat_does_not_hold_up_another(w, api, mutex):
    dept = w.department()
    w.agent(dept["id"], presence="available")
    held = w.chat(w.customer(), department_id=dept["id"], message="held")
    customer = w.customer()
    other = w.chat(customer, department_id=dept["id"], message="other")
    mutex.take(held["id"])
    try:
        # Waiting for the held mutex would take 10 s and then fail the post.
        r = api.post(f"/api/chats/{other['id']}/messages", token=customer["token"],
                     json={"content": "goes ahead"})
        assert r.status_code == 201, r.text
        assert "goes ahead" in contents(w, other["id"])
    finally:
        mutex.release(held["id"])


def test_carebot_admin_reassign_waits_while_a_chat_is_held(w, admin_cli, state_dir, mutex):
    dept = w.department()
    agent = w.agent(dept["id"])
    chat = w.chat(w.customer(), department_id=dept["id"], message="waiting")
    assert w.get_chat(chat["id"])["status"] == "waiting"
    # Available behind carebot's back, so nothing assigns the chat but the sweep.
    sql(state_dir, "UPDATE users SET presence = 'available', last_seen_at = NOW(3) "
                   f"WHERE id = {agent['id']}")
    mutex.take(chat["id"])
    try:
        t, out = in_background(lambda: admin_cli("reassign"))
        t.join(HOLD_S)
        assert t.is_alive(), f"carebot-admin did not wait for the chat's mutex: {out}"
        assert w.get_chat(chat["id"])["status"] == "waiting"
    finally:
        mutex.release(chat["id"])
    t.join(120)
    assert out and out[0].returncode == 0, out and out[0].stderr
    got = w.get_chat(chat["id"])
    assert got["status"] == "active" and got["agent"]["id"] == agent["id"], got
