"""A COMMIT whose answer was lost (README 6, "A connection to MariaDB lost in
the middle of a request"): the client's 503 says the change may have been
done, and if it was, no cache may go on serving what it replaced.

The workers reach MariaDB through a TCP proxy of the test's own, which
forwards to MariaDB's unix socket and, when armed, lets the next COMMIT
through, waits for MariaDB's answer (so the COMMIT is done) and then closes
both sides without passing it on. The module points the workers at the
proxy in carebot.conf (db_socket emptied, db_host and db_port set), replaces
them, and puts both back afterwards; each test runs with the host's chat
mutexes and with MariaDB named locks (chat_mutex_file emptied).

Before the fix, neither the state generation (cache.h) nor the chat's
history counter (history.h) moved for such a COMMIT: a close that went
through still accepted posts, and a transfer's system message was missing
from the kept newest page, each for up to the 5 s maximum age.
"""

import contextlib
import re
import socket
import struct
import subprocess
import threading
import time

import pytest
import requests

from chathelp import World, assert_error, ok
from test_chat_mutex import HostMutex, NamedMutex, conf_value
from test_history_age import read_conf, replace_workers

MAY_HAVE = "may have been done"
CLIENT_SSL = 0x0800
COM_QUERY = 0x03


class LostCommitProxy:
    """127.0.0.1:port → MariaDB's unix socket. arm() cuts the next COMMIT's answer."""

    def __init__(self, unix_path):
        self.unix_path = unix_path
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.armed = False
        self.cut = threading.Event()  # a COMMIT was done and its answer dropped
        self.plain = 0  # connections whose client did not ask for TLS
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self):
        with self.lock:
            self.armed = True
        self.cut.clear()

    def disarm(self):
        with self.lock:
            self.armed = False

    def close(self):
        self.closing = True
        self.listener.close()

    def _accept(self):
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                server.connect(self.unix_path)
            except OSError:
                client.close()
                continue
            conn = {"client": client, "server": server, "cutting": False}
            threading.Thread(target=self._to_server, args=(conn,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(conn,), daemon=True).start()

    @staticmethod
    def _shut(conn):
        for s in (conn["client"], conn["server"]):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    @staticmethod
    def _packets(sock):
        """The MySQL packets read from sock: (sequence, payload, raw bytes)."""
        buf = b""
        while True:
            while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:3], "little"):
                n = int.from_bytes(buf[:3], "little")
                raw, buf = buf[:4 + n], buf[4 + n:]
                yield raw[3], raw[4:], raw
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data

    def _to_server(self, conn):
        """Client to MariaDB, packet by packet: the handshake answer and the commands."""
        for seq, payload, raw in self._packets(conn["client"]):
            if seq == 1 and len(payload) >= 4:  # the handshake response (or an SSL request)
                caps = struct.unpack("<I", payload[:4])[0]
                if not caps & CLIENT_SSL:
                    self.plain += 1
            if seq == 0 and payload[:1] == bytes([COM_QUERY]) and \
                    payload[1:].lstrip().upper().startswith(b"COMMIT"):
                with self.lock:
                    if self.armed:
                        self.armed = False
                        conn["cutting"] = True  # before the COMMIT leaves: its answer is next
            try:
                conn["server"].sendall(raw)
            except OSError:
                break
        self._shut(conn)

    def _to_client(self, conn):
        """MariaDB to the client: the greeting without TLS (so commands stay readable);
        once a cut COMMIT's answer arrives, both sockets are closed instead."""
        first = True
        for _seq, payload, raw in self._packets(conn["server"]):
            if conn["cutting"]:
                self.cut.set()
                break
            if first and payload[:1] == b"\x0a":  # protocol 10's greeting
                end = payload.index(b"\0", 1)
                at = end + 1 + 4 + 8 + 1  # version, thread id, scramble part 1, filler
                caps = struct.unpack("<H", payload[at:at + 2])[0] & ~CLIENT_SSL
                payload = payload[:at] + struct.pack("<H", caps) + payload[at + 2:]
                raw = raw[:4] + payload
            first = False
            try:
                conn["client"].sendall(raw)
            except OSError:
                break
        self._shut(conn)


def set_conf(state_dir, settings):
    """carebot.conf with each key = value (replaced, or added at the end)."""
    text = read_conf(state_dir)
    for key, value in settings.items():
        line = f"{key} = {value}"
        text, n = re.subn(rf"(?m)^{key}[ \t]*=.*$", lambda _, line=line: line, text)
        if not n:
            text += line + "\n"
    (state_dir / "carebot.conf").write_text(text)


@pytest.fixture(scope="module", params=["host", "database"])
def proxied(request, api, pool_pids, state_dir):
    """The workers on the proxy, with the chats' mutexes of either kind; yields (proxy, mutex)."""
    path = conf_value(state_dir, "chat_mutex_file")
    if request.param == "host" and not path:
        pytest.skip("this instance has no chat_mutex_file")
    original = read_conf(state_dir)
    proxy = LostCommitProxy(str(state_dir / "run" / "mysqld.sock"))
    settings = {"db_socket": "", "db_host": "127.0.0.1", "db_port": proxy.port}
    if request.param == "database":
        settings["chat_mutex_file"] = ""
    set_conf(state_dir, settings)
    mutex = None
    try:
        replace_workers(api, pool_pids)
        mutex = HostMutex(path) if request.param == "host" else NamedMutex(state_dir)
        assert proxy.plain > 0, "no worker reached MariaDB through the proxy in plain text"
        yield proxy, mutex
    finally:
        if mutex is not None:
            mutex.close()
        proxy.disarm()
        (state_dir / "carebot.conf").write_text(original)
        replace_workers(api, pool_pids)
        proxy.close()


@pytest.fixture
def w(api, admin_token, token_for):
    return World(api, admin_token, token_for)


def root_sql(state_dir, text):
    done = subprocess.run(
        ["mariadb", "--no-defaults", f"--socket={state_dir / 'run' / 'mysqld.sock'}", "-uroot",
         "carebot", "-N", "-e", text], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def every_worker_keeps_the_state(base_url, mutex, chat, customer, workers):
    """One post per worker, all at once while the test holds the chat's mutex:
    each waits in its own worker, then reads the chat's state and keeps it."""
    out = []

    def post(i):
        r = requests.post(f"{base_url}/api/chats/{chat['id']}/messages", timeout=15,
                          headers={"Authorization": f"Bearer {customer['token']}"},
                          json={"content": f"warm {i}"})
        out.append(r.status_code)

    mutex.take(chat["id"])
    try:
        threads = [threading.Thread(target=post, args=(i,), daemon=True) for i in range(workers)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        assert out == [], "a post went ahead while its chat's mutex was held"
    finally:
        mutex.release(chat["id"])
    for t in threads:
        t.join(timeout=15)
    assert out == [201] * workers, out


def lost(resp):
    """The 503 of a change whose COMMIT lost its answer."""
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["code"] == "unavailable", resp.text
    assert MAY_HAVE in resp.text, resp.text


def test_a_close_whose_answer_was_lost_refuses_posts(w, api, base_url, state_dir, pool_pids,
                                                     proxied):
    proxy, mutex = proxied
    dept = w.department()
    agent = w.agent(dept["id"], presence="available")
    customer = w.customer()
    chat = w.chat(customer, department_id=dept["id"], message="hello")
    assert chat["status"] == "active" and chat["agent"]["id"] == agent["id"], chat
    every_worker_keeps_the_state(base_url, mutex, chat, customer, len(pool_pids()))

    proxy.arm()
    try:
        lost(api.put(f"/api/chats/{chat['id']}/close", token=agent["token"]))
        assert proxy.cut.is_set(), "the 503 did not come from the cut COMMIT"
    finally:
        proxy.disarm()
    assert root_sql(state_dir, f"SELECT status FROM chats WHERE id = {chat['id']}") == "closed"

    # Every worker kept the chat active; the close may have been done, so none may use that.
    for i in range(len(pool_pids())):
        assert_error(api.post(f"/api/chats/{chat['id']}/messages", token=customer["token"],
                              json={"content": f"after the close {i}"}), 409, "chat_closed")
    assert ok(api.get(f"/api/chats/{chat['id']}", token=agent["token"]))["status"] == "closed"


def test_a_transfer_whose_answer_was_lost_shows_in_the_newest_page(w, api, state_dir, proxied):
    proxy, _ = proxied
    first, second = w.department(), w.department()
    agent = w.agent(first["id"], presence="available")
    w.agent(second["id"], presence="available")
    customer = w.customer()
    chat = w.chat(customer, department_id=first["id"], message="hello")
    assert chat["agent"]["id"] == agent["id"], chat
    before = w.messages(chat["id"])  # the newest page, kept for every worker

    proxy.arm()
    try:
        lost(api.post(f"/api/chats/{chat['id']}/transfer", token=agent["token"],
                      json={"department_id": second["id"]}))
        assert proxy.cut.is_set(), "the 503 did not come from the cut COMMIT"
    finally:
        proxy.disarm()
    stored = root_sql(state_dir, f"SELECT id FROM messages WHERE chat_id = {chat['id']} ORDER BY id")
    stored = [int(i) for i in stored.split()]
    assert len(stored) > len(before), "the transfer wrote no system message"

    r = api.get(f"/api/chats/{chat['id']}/messages", token=w.admin)
    assert [m["id"] for m in ok(r)] == stored
    assert int(r.headers["X-Total-Count"]) == len(stored)
