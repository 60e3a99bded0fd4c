"""Operations: health, the worker pool, the database going away, the private
publisher, nginx's own error bodies, `tools/carebot down` and two
`carebot-admin seed` at once (contract sections 1, 2, 7, 8 and 9)."""

import collections
import contextlib
import datetime
import fcntl
import http.client
import hashlib
import json
import os
import pathlib
import pty
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import termios
import threading
import time
import uuid

import pytest
import requests

import rt
from conftest import children
from test_chat_mutex import HostMutex, in_background

HEALTHY = {"status": "ok", "database": "ok", "realtime": "ok"}


def wait_for(predicate, timeout, interval=0.1):
    """Polls predicate until it returns a true value or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == code


def department_names(api, token):
    names, offset = set(), 0
    while True:
        r = api.get(f"/api/departments/?limit=200&offset={offset}", token=token)
        assert r.status_code == 200, r.text
        names |= {d["name"] for d in r.json()}
        offset += len(r.json())
        if not r.json() or offset >= int(r.headers["X-Total-Count"]):
            return names


def health_ok(api):
    try:
        r = api.get("/api/health")
    except requests.RequestException:
        return False
    return r.status_code == 200 and r.json() == HEALTHY


def test_health_reports_every_part_ok(api):
    r = api.get("/api/health")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == HEALTHY


def test_killed_worker_is_replaced_and_costs_at_most_one_request(api, pool_pids):
    before = pool_pids()
    assert len(before) >= 2, f"expected a pool of workers, found {before}"
    failures, done = [], threading.Event()

    def stream():
        for _ in range(200):
            try:
                r = api.get("/api/health")
                if r.status_code != 200:
                    failures.append(r.status_code)
            except requests.RequestException as e:
                failures.append(repr(e))
        done.set()

    streamer = threading.Thread(target=stream)
    streamer.start()
    time.sleep(0.2)
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    streamer.join(60)
    assert done.is_set(), "the request stream did not finish"
    assert len(failures) <= 1, failures

    def replaced():
        now = pool_pids()
        return len(now) == len(before) and victim not in now and set(now) - set(before)
    assert wait_for(replaced, 2), f"pool before {before}, now {pool_pids()}"
    assert health_ok(api)


def test_database_outage_is_503_and_recovers_without_restart(api, pool_pids, db_stop, db_start,
                                                             admin_token):
    # Reads a worker has cached (README, "Caching") may be answered for up to
    # cache_max_age_ms into an outage; these two always ask the database.
    calls = [("/api/chats/?limit=1", admin_token), ("/api/auth/me", admin_token)]
    assert health_ok(api)
    name = "Outage " + uuid.uuid4().hex[:8]
    customers_before = api.get("/api/users/?role=customer&limit=1", token=admin_token).headers["X-Total-Count"]
    workers = pool_pids()
    db_stop()
    try:
        r = api.get("/api/health")
        assert_error(r, 503, "unavailable")
        body = r.json()
        assert body["database"] == "down" and body["status"] == "degraded", body
        for path, token in calls:
            assert_error(api.get(path, token=token), 503, "unavailable")
        # Writes are refused too, and do nothing: nothing is left half done for later.
        assert_error(api.post("/api/departments/", token=admin_token, json={"name": name}), 503, "unavailable")
        assert_error(api.post("/api/auth/guest", json={"full_name": name}), 503, "unavailable")
        assert pool_pids() == workers, "a worker died or restarted while the database was down"
    finally:
        db_start()
    assert wait_for(lambda: health_ok(api), 15, 0.5), api.get("/api/health").text
    users = api.get("/api/users/?role=customer&limit=1", token=admin_token)
    assert users.status_code == 200 and users.headers["X-Total-Count"] == customers_before
    assert name not in department_names(api, admin_token)
    for path, token in calls:
        r = wait_for(lambda: (lambda r: r if r.status_code == 200 else None)(
            api.get(path, token=token)), 15, 0.5)
        assert r is not None, f"{path} did not come back: {api.get(path, token=token).text}"
    assert pool_pids() == workers, "recovery must not need a restart"


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over the publisher's unix socket (the way the workers reach it)."""

    def __init__(self, path):
        super().__init__("localhost", timeout=5)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.path)


def publisher(state_dir, method, target, body=None):
    conn = UnixHTTPConnection(str(state_dir / "run" / "nchan-pub.sock"))
    try:
        conn.request(method, target, body=body, headers={"Accept": "application/json"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def raw_status(base_url, method, target, body=b""):
    """One request with the target sent verbatim (no client-side ../ folding)."""
    host, port = base_url.split("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, target, body=body, headers={"Content-Type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_health_publishes_an_event_to_check_the_real_time_part(api, state_dir):
    """Health's check is a publish Nchan must store, to a channel no
    subscriber can name (README 9, "Monitoring"), not a bare 204 that
    answered "ok" while Nchan refused every event."""
    status, body = publisher(state_dir, "GET", "/ping")
    before = json.loads(body) if status == 200 else {}
    assert api.get("/api/health").status_code == 200
    status, body = publisher(state_dir, "GET", "/ping")
    assert status == 200, (status, body)
    info = json.loads(body)
    assert info["messages"] == 1 and info.get("last_message_id") != before.get("last_message_id"), info


def test_sockets_and_logs_are_the_users_alone(state_dir):
    """run/ holds the sockets; log/ can quote a subscriber's ?token= (nginx's error log)."""
    for sub in ("run", "log"):
        mode = (state_dir / sub).stat().st_mode & 0o777
        assert mode == 0o700, f"{sub}/ is {oct(mode)}"


def test_publisher_is_not_reachable_from_outside(base_url, state_dir):
    n = random.randrange(10**8, 10**9)  # channels outlive a run: fresh ones each time
    channel = f"chat/{n}"
    assert publisher(state_dir, "GET", f"/pub?id={channel}")[0] == 404, "the channel must not exist yet"
    attempts = [
        ("POST", f"/pub?id={channel}"),
        ("POST", f"/pub/chat%2F{n}"),
        ("POST", f"/ws/../pub?id={channel}"),
        ("POST", f"/ws/chat/../../pub?id={channel}"),
        ("POST", f"/ws/chat/{n}"),
        ("PUT", f"/ws/chat/{n}"),
        ("GET", f"/_auth?id={channel}"),
        ("GET", "/ping"),
        ("POST", "/ping"),
        ("POST", f"/api/../pub?id={channel}"),
    ]
    for method, target in attempts:
        status = raw_status(base_url, method, target, b'{"type":"forged"}')
        assert not 200 <= status < 300, f"{method} {target} answered {status}"
    # Subscribing is all a /ws URL does: HEAD is refused too, not left hanging.
    r = requests.head(f"{base_url}/ws/chat/{n}", timeout=5)
    assert r.status_code == 405, r.status_code
    status, body = publisher(state_dir, "GET", f"/pub?id={channel}")
    assert status == 404, f"something was published to {channel}: {body!r}"
    # The check above can see a publication: the workers' way in works.
    assert publisher(state_dir, "POST", f"/pub?id=chat/{n + 1}", b"{}")[0] in (201, 202)
    status, body = publisher(state_dir, "GET", f"/pub?id=chat/{n + 1}")
    assert status == 200 and json.loads(body)["messages"] == 1


def test_nginx_errors_are_json(api):
    r = api.post("/api/auth/login", data=b"x" * (70 * 1024),
                 headers={"Content-Type": "application/json"})
    assert_error(r, 413, "too_large")
    assert_error(api.get("/nope"), 404, "not_found")
    assert_error(api.get("/ws/nope/1"), 404, "not_found")
    assert_error(api.post("/ws/chat/1"), 405, "method_not_allowed")
    assert_error(api.get("/" + "a" * 9000), 400, "bad_request")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_mentioning(text):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline or holds_a_file_in(entry, text):
            found.append(f"{entry}: {cmdline}")
    return found


def holds_a_file_in(pid, directory):
    """An open file under directory: an nginx worker names no path on its
    command line, but has the instance's logs open."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}").startswith(directory + "/")
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def up_spare(repo_root, state, workers):
    """A second instance, in the state dir given and on a port of its own: its base URL."""
    port = free_port()
    up = subprocess.run([str(repo_root / "tools" / "carebot"), "up", "--state", state,
                         "--port", str(port), "--workers", str(workers)],
                        capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    return f"http://127.0.0.1:{port}"


def down_spare(repo_root, state):
    """tools/carebot down on a spare instance: (its result, what still names the state dir)."""
    down = subprocess.run([str(repo_root / "tools" / "carebot"), "down", "--state", state],
                          capture_output=True, text=True, timeout=120)
    left = processes_mentioning(state)
    if not left:
        shutil.rmtree(state, ignore_errors=True)
    return down, left


def test_down_leaves_nothing_running(repo_root):
    state = tempfile.mkdtemp(prefix="carebot-down-")
    try:
        up_spare(repo_root, state, 2)
        assert processes_mentioning(state), "up started nothing that names its state dir"
    finally:
        down, left = down_spare(repo_root, state)
    assert down.returncode == 0, down.stderr
    assert left == [], left


def as_a_terminal_starts(repo_root, args, env=None):
    """tools/carebot ARGS as a terminal starts it: its own process group,
    SIGINT not ignored; stderr piped (text), stdout dropped."""
    return subprocess.Popen([str(repo_root / "tools" / "carebot"), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def interrupted_up(repo_root, state, port, at, env=None, then=lambda: True, twice=False):
    """tools/carebot up as a terminal runs it (its own process group, SIGINT
    not ignored), Ctrl-C'd once its stderr has a line with `at` and then()
    holds (twice: and again once its cleanup has begun): (status, stderr)."""
    up = as_a_terminal_starts(repo_root, ["up", "--state", state, "--port", str(port)], env)
    lines = []
    # its stderr is read without a timeout: an up that hung would hang the suite
    watchdog = threading.Timer(300, os.killpg, (up.pid, signal.SIGKILL))
    watchdog.start()
    try:
        for line in up.stderr:
            lines.append(line)
            if at in line:
                assert wait_for(then, 30), f"{then} never held after {at!r}"
                os.killpg(up.pid, signal.SIGINT)
                break
        for line in up.stderr if twice else ():
            lines.append(line)
            if "stopping what it started" in line:
                os.killpg(up.pid, signal.SIGINT)
                break
        lines += up.stderr.readlines()
        up.wait(timeout=60)
    finally:
        watchdog.cancel()
        if up.poll() is None:
            up.kill()
    return up.returncode, "".join(lines)


def test_an_interrupted_up_leaves_nothing_running_nor_a_half_made_datadir(repo_root, tmp_path):
    state = tempfile.mkdtemp(prefix="carebot-int-")
    port = free_port()
    # a mariadb-install-db Ctrl-C'd midway: mysql/mysql made, the rest not
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mariadb-install-db").write_text(
        '#!/bin/sh\nfor a; do case $a in --datadir=*) d=${a#--datadir=};; esac; done\n'
        'mkdir -p "$d/mysql" && : >"$d/ibdata1" && echo half-made >&2 && exec sleep 60\n')
    (fake / "mariadb-install-db").chmod(0o755)
    try:
        env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}")
        rc, err = interrupted_up(repo_root, state, port, "creating the MariaDB datadir", env,
                                 then=lambda: os.path.exists(f"{state}/mysql/ibdata1"))
        assert rc == 130, err
        assert processes_mentioning(state) == [], err
        # interrupted once MariaDB runs: up stops what it started
        rc, err = interrupted_up(repo_root, state, port, " workers\n")
        assert rc == 130, err
        assert "whose creation did not finish" in err, err
        assert "up failed; stopping what it started (db" in err, err
        assert processes_mentioning(state) == [], err
        # a second Ctrl-C while it cleans up (an impatient user) ended the
        # cleanup there, and MariaDB ran on
        rc, err = interrupted_up(repo_root, state, port, " workers\n", twice=True)
        assert rc == 130 and "stopping MariaDB" in err, err
        assert processes_mentioning(state) == [], err
        # once the workers run: their history file goes with them, as on down
        rc, err = interrupted_up(repo_root, state, port, "starting nginx")
        assert rc == 130 and "stopping what it started (db pool" in err, err
        assert processes_mentioning(state) == [], err
        physical = os.path.realpath(state)
        shm = f"/dev/shm/carebot-{hashlib.md5(physical.encode()).hexdigest()[:16]}.history"
        assert not os.path.exists(shm), shm
        up = carebot(repo_root, "up", "--state", state, "--port", str(port))
        assert up.returncode == 0, up.stderr
        assert os.path.exists(shm), shm  # (the name is the instance's)
        sys_schema = subprocess.run(["mariadb", f"--socket={state}/run/mysqld.sock", "-uroot", "-N", "-e",
                                     "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'sys'"],
                                    capture_output=True, text=True, timeout=30)
        assert sys_schema.stdout.strip() == "1", sys_schema.stdout + sys_schema.stderr
    finally:
        down, left = down_spare(repo_root, state)
    assert down.returncode == 0, down.stderr
    assert left == [], left


def test_an_up_whose_terminal_hangs_up_stops_what_it_started(repo_root):
    """A dropped ssh session: up, on a terminal of its own, gets SIGHUP, and
    every message its cleanup then writes fails (EIO). The first one ended
    the cleanup (set -e): up exited 1 and left MariaDB and the pool running."""
    state = tempfile.mkdtemp(prefix="carebot-hup-")
    master, slave = pty.openpty()
    up = subprocess.Popen([str(repo_root / "tools" / "carebot"), "up", "--state", state,
                           "--port", str(free_port())],
                          stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                          preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    said = b""
    try:
        while b" workers" not in said:  # MariaDB runs, the pool is starting
            chunk = os.read(master, 4096)  # EIO once up has gone
            assert chunk, said
            said += chunk
        os.close(master)  # the terminal goes away
        master = None
        assert up.wait(timeout=120) == 129, said.decode(errors="replace")
        assert processes_mentioning(state) == [], said.decode(errors="replace")
    finally:
        if master is not None:
            os.close(master)
        if up.poll() is None:
            up.kill()
        down, left = down_spare(repo_root, state)
    assert left == [], left


def test_a_sigterm_to_the_script_alone_stops_its_running_step_at_once(repo_root):
    """`kill PID` on tools/carebot fuzz (test and bench run their steps the
    same way). Before, fuzz died at once and left the fuzzer running; test
    and bench, which trap TERM, waited for the running step to end, since
    bash runs a trap only once the foreground command has ended. Now the
    step runs in the background, in its own process group, and the script
    passes the interrupt on to it at once."""
    fuzzer = f"{repo_root}/build-fuzz/tests/fuzz/fuzz-input"
    fuzz = as_a_terminal_starts(repo_root, ["fuzz", "--seconds", "600"])
    lines = []
    # its stderr is read without a timeout: a build that hung would hang the suite
    watchdog = threading.Timer(900, os.killpg, (fuzz.pid, signal.SIGKILL))
    watchdog.start()
    try:
        for line in fuzz.stderr:  # the build may come first
            lines.append(line)
            if "fuzz-input -max_total_time=600" in line:
                break
        assert wait_for(lambda: processes_mentioning(fuzzer), 60), "".join(lines)
        os.kill(fuzz.pid, signal.SIGTERM)  # the script alone, not its group
        try:
            fuzz.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("the script waited for its step: " + "".join(lines))
        lines += fuzz.stderr.readlines()
    finally:
        watchdog.cancel()
        if fuzz.poll() is None:
            os.killpg(fuzz.pid, signal.SIGKILL)
        for entry in processes_mentioning(fuzzer):
            os.kill(int(entry.split(":")[0]), signal.SIGKILL)
    assert fuzz.returncode == 143, "".join(lines)
    assert processes_mentioning(fuzzer) == [], "".join(lines)


def test_a_signal_just_after_a_step_is_started_still_stops_it(repo_root, tmp_path):
    """run_step's functions from tools/carebot, with a TERM that arrives
    between the step's fork and `STEP=$!` (a DEBUG trap sends it there, where
    bash may run a trap): its cleanup found no step, and the step, in a
    process group of its own, ran on."""
    marker = str(tmp_path / "step-that-must-stop")
    script = tmp_path / "race.sh"
    script.write_text(f"""set -euo pipefail
source <(sed -n '/^defer_signals()/,/^DEFERRED=$/p; /^exit_on_signals()/,/^# lock_state/p' \\
	"{repo_root}/tools/carebot")
trap cleanup_begins EXIT
exit_on_signals
set -T
trap '[ "$BASH_COMMAND" != "STEP=\\$!" ] || kill -TERM $$' DEBUG
run_step bash -c 'exec -a "$0" sleep 600' "{marker}" >/dev/null 2>&1
""")
    try:
        done = subprocess.run(["/bin/bash", str(script)], capture_output=True, text=True, timeout=60,
                              start_new_session=True)
        assert done.returncode == 143, done.stderr
        assert wait_for(lambda: processes_mentioning(marker) == [], 10), processes_mentioning(marker)
    finally:
        for entry in processes_mentioning(marker):
            os.kill(int(entry.split(":")[0]), signal.SIGKILL)


def carebot(repo_root, *args):
    return subprocess.run([str(repo_root / "tools" / "carebot"), *args], capture_output=True, text=True,
                          timeout=300)


def kill_parents(state):
    """kill -9 the pool's multiwatch and nginx's master: their children live on."""
    for name in ("pool.pid", "nginx.pid"):
        os.kill(int(pathlib.Path(state, "run", name).read_text()), signal.SIGKILL)
    time.sleep(0.5)


def test_up_keeps_the_users_data_and_settings_and_strays_are_stopped(repo_root):
    state = tempfile.mkdtemp(prefix="carebot-again-")
    try:
        base = up_spare(repo_root, state, 2)
        token = carebot(repo_root, "admin", "--state", state, "token", "admin").stdout.strip()
        renamed = "root_" + uuid.uuid4().hex[:6]
        r = requests.put(f"{base}/api/users/1", json={"username": renamed},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200, r.text
        conf = pathlib.Path(state, "carebot.conf")
        conf.write_text(conf.read_text() + "offline_after = 77\n")
        # a new port that someone holds: refused before anything changes
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with taken:
            moved = carebot(repo_root, "up", "--state", state, "--port", str(taken.getsockname()[1]))
        assert moved.returncode == 1 and "stays on" in moved.stderr, moved.stderr
        assert f"PORT={base.rsplit(':', 1)[1]}\n" in pathlib.Path(state, "instance.env").read_text()
        assert requests.get(f"{base}/api/health", timeout=10).json() == HEALTHY
        kill_parents(state)
        again = carebot(repo_root, "up", "--state", state)
        assert again.returncode == 0, again.stderr
        assert "stray carebot-fcgi" in again.stderr and "stray nginx" in again.stderr, again.stderr
        assert requests.get(f"{base}/api/health", timeout=10).json() == HEALTHY
        # no sample admin came back, the setting stayed, and the pool kept its size
        assert carebot(repo_root, "admin", "--state", state, "token", "admin").returncode != 0
        assert carebot(repo_root, "admin", "--state", state, "token", renamed).returncode == 0
        assert "offline_after = 77" in conf.read_text()
        workers = [p for p in processes_mentioning(state) if "multiwatch" not in p and "carebot-fcgi -c" in p]
        assert len(workers) == 2, workers
        # a template newer than the running nginx.conf (a pull brought a new
        # one): a running, healthy instance's nginx.conf is rendered again
        nginx_conf = pathlib.Path(state, "nginx.conf")
        nginx_conf.write_text(nginx_conf.read_text() + "# from an older template\n")
        os.utime(nginx_conf, (0, 0))
        again = carebot(repo_root, "up", "--state", state)
        assert again.returncode == 0 and "reloading nginx" in again.stderr, again.stderr
        assert "# from an older template" not in nginx_conf.read_text()
        again = carebot(repo_root, "up", "--state", state)
        assert again.returncode == 0 and "reloading nginx" not in again.stderr, again.stderr
        # a changed carebot.conf: the workers read it when they start, so up puts
        # new workers in the running pool (once), refusing no request meanwhile,
        # and nginx stays as it is
        conf.write_text(conf.read_text() + "token_ttl = 600\n")
        pool = pathlib.Path(state, "run", "pool.pid").read_text()
        old_workers = children(int(pool))
        statuses, stop = [], threading.Event()

        def load():
            with requests.Session() as s:
                while not stop.is_set():
                    statuses.append(s.get(f"{base}/api/departments/active", timeout=10).status_code)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        again = carebot(repo_root, "up", "--state", state)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        assert again.returncode == 0 and "reloading the worker pool" in again.stderr, again.stderr
        assert "starting" not in again.stderr and "nginx" not in again.stderr, again.stderr
        assert pathlib.Path(state, "run", "pool.pid").read_text() == pool
        new_workers = children(int(pool))
        assert len(new_workers) == 2 and not set(new_workers) & set(old_workers), (old_workers, new_workers)
        assert len(statuses) > 50 and set(statuses) == {200}, collections.Counter(statuses)
        guest = requests.post(f"{base}/api/auth/guest", json={"full_name": "Short"}, timeout=10)
        left = (datetime.datetime.fromisoformat(guest.json()["expires_at"].replace("Z", "+00:00"))
                - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        assert 590 < left <= 601, guest.text
        again = carebot(repo_root, "up", "--state", state)
        assert again.returncode == 0 and "starting" not in again.stderr, again.stderr
        # a database password of the user's own, with the characters SQL quotes
        password = "Rot\\at'ed\"42"
        conf.write_text(re.sub(r"(?m)^db_password\s*=.*$", lambda _: f"db_password = {password}",
                               conf.read_text()))
        again = carebot(repo_root, "up", "--state", state)
        assert again.returncode == 0 and "reloading the worker pool" in again.stderr, again.stderr
        assert f"db_password = {password}\n" in conf.read_text()
        assert carebot(repo_root, "admin", "--state", state, "token", renamed).returncode == 0
        assert requests.get(f"{base}/api/health", timeout=10).json() == HEALTHY
        # --fresh seeds the wiped database, and a new nginx forgets the old chats' events
        nginx_before = pathlib.Path(state, "run", "nginx.pid").read_text()
        fresh = carebot(repo_root, "up", "--state", state, "--fresh")
        assert fresh.returncode == 0, fresh.stderr
        assert pathlib.Path(state, "run", "nginx.pid").read_text() != nginx_before
        assert carebot(repo_root, "admin", "--state", state, "token", "admin").returncode == 0
        assert carebot(repo_root, "admin", "--state", state, "token", renamed).returncode != 0
        kill_parents(state)
    finally:
        down, left = down_spare(repo_root, state)
    assert down.returncode == 0, down.stderr
    assert left == [], left


def test_strays_are_only_the_instances_own(repo_root):
    """An instance whose state directory lies inside another's: the outer
    one's down must not take the inner one's orphaned workers for its own."""
    outer = tempfile.mkdtemp(prefix="carebot-outer-")
    inner = os.path.join(outer, "inner")
    try:
        up_spare(repo_root, inner, 1)
        pathlib.Path(outer, "run").mkdir(mode=0o700)
        os.kill(int(pathlib.Path(inner, "run", "pool.pid").read_text()), signal.SIGKILL)
        time.sleep(0.5)
        orphans = [p for p in processes_mentioning(inner) if "carebot-fcgi -c" in p]
        assert len(orphans) == 1, orphans
        down = carebot(repo_root, "down", "--state", outer)
        assert down.returncode == 0 and "stray" not in down.stderr, down.stderr
        assert [p for p in processes_mentioning(inner) if "carebot-fcgi -c" in p] == orphans
    finally:
        down, left = down_spare(repo_root, inner)
        shutil.rmtree(outer, ignore_errors=True)
    assert down.returncode == 0 and "stray carebot-fcgi" in down.stderr, down.stderr
    assert left == [], left


def test_up_checks_its_arguments_and_the_port_before_starting_anything(repo_root):
    state = tempfile.mkdtemp(prefix="carebot-refused-")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        for args, says in [(["--port", str(taken.getsockname()[1])], "is taken by another program"),
                           (["--port", "abc"], "--port must be"), (["--port", "70000"], "--port must be"),
                           (["--workers", "0"], "--workers must be")]:
            up = carebot(repo_root, "up", "--state", state, *args)
            assert up.returncode == 1 and says in up.stderr, (args, up.stderr)
            assert processes_mentioning(state) == [], args
            assert not pathlib.Path(state, "mysql").exists(), args
        spaced = carebot(repo_root, "up", "--state", state + "/with space")
        assert spaced.returncode == 1 and "pick another path" in spaced.stderr, spaced.stderr
        # the same for the path a symbolic link leads to, which is the one that goes in
        os.mkdir(state + "/with space")
        os.symlink(state + "/with space", state + "/plain")
        for via in (state + "/plain", state + "/plain/new"):
            linked = carebot(repo_root, "up", "--state", via)
            assert linked.returncode == 1 and "pick another path" in linked.stderr, linked.stderr
            assert os.listdir(state + "/with space") == [], via
        # STATE/run/nchan-pub.sock must fit a unix socket's 107 bytes: an 88-character
        # state directory is the longest taken, and up makes no longer one
        longest, longer = state + "/" + "l" * (87 - len(state)), state + "/" + "l" * (88 - len(state))
        up = carebot(repo_root, "up", "--state", longer)
        assert up.returncode == 1 and "too long for the sockets" in up.stderr, up.stderr
        assert not os.path.exists(longer)
        for named, fits in [(longest, True), (longer, False)]:
            os.mkdir(named)
            down = carebot(repo_root, "down", "--state", named)
            assert ("too long for the sockets" not in down.stderr) == fits, (len(named), down.stderr)
            assert down.returncode == (0 if fits else 1), down.stderr
        missing = state + "/never-made"
        down = carebot(repo_root, "down", "--state", missing)
        assert down.returncode == 0 and "nothing to stop" in down.stderr, down.stderr
        assert not os.path.exists(missing)
        # an unknown argument is refused before the state directory is made
        up = carebot(repo_root, "up", "--state", missing, "--bogus")
        assert up.returncode == 1 and "unknown argument --bogus" in up.stderr, up.stderr
        assert not os.path.exists(missing)
        # a directory that holds no instance: nothing stopped, nothing written
        os.mkdir(missing)
        down = carebot(repo_root, "down", "--state", missing)
        assert down.returncode == 0 and "nothing to stop" in down.stderr, down.stderr
        assert os.listdir(missing) == []
    finally:
        taken.close()
        shutil.rmtree(state, ignore_errors=True)


def test_stale_pid_files_never_name_a_stranger(repo_root):
    """After a reboot, or once a pid is reused, run/*.pid may name a process
    that is not the instance's: up must start the instance all the same, and
    neither up nor down may signal that process."""
    stranger = subprocess.Popen(["sleep", "300"])
    state = tempfile.mkdtemp(prefix="carebot-stale-")
    try:
        os.mkdir(os.path.join(state, "run"), 0o700)
        for name in ("mysqld.pid", "pool.pid", "nginx.pid"):
            pathlib.Path(state, "run", name).write_text(f"{stranger.pid}\n")
        base = up_spare(repo_root, state, 1)
        assert requests.get(f"{base}/api/health", timeout=10).json() == HEALTHY
        assert stranger.poll() is None, "up signalled the process a stale pid file named"
    finally:
        down, left = down_spare(repo_root, state)
        spared = stranger.poll() is None
        stranger.kill()
        stranger.wait()
    assert down.returncode == 0, down.stderr
    assert spared, "down signalled the process a stale pid file named"
    assert left == [], left


def test_stopping_the_pool_lets_a_busy_worker_finish_its_request(repo_root):
    """README 2: TERM to the pool (what `down` and a restart send) ends an idle
    worker at once and a busy one after its request. Debian's multiwatch passes
    the stop on as SIGQUIT, so a worker that handled only SIGTERM died at once,
    in the middle of its request. Neither leaves MariaDB an aborted connection."""
    state = tempfile.mkdtemp(prefix="carebot-stop-")
    try:
        base = up_spare(repo_root, state, 2)
        login = requests.post(f"{base}/api/auth/login", timeout=10,
                              json={"username": "customer1", "password": "password123"})
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['token']}"}
        chat = requests.post(f"{base}/api/chats/", headers=auth, timeout=10,
                             json={"department_id": 1, "subject": "stop", "message": "hello"})
        assert chat.status_code == 201, chat.text
        chat_id = chat.json()["id"]
        pool = int(pathlib.Path(state, "run", "pool.pid").read_text())
        workers = children(pool)
        assert len(workers) == 2, workers

        def alive():
            return [pid for pid in children(pool) if pid in workers]

        # A post that waits for its chat's mutex keeps one worker busy.
        held = HostMutex(os.path.join(state, "run", "chat-mutexes"))
        held.take(chat_id)
        try:
            post, out = in_background(lambda: requests.post(
                f"{base}/api/chats/{chat_id}/messages", headers=auth, timeout=30,
                json={"content": "sent before the stop"}))
            # The stop must find the post in a worker: until one waits for the
            # chat's lock, both are idle and both would end at once.
            assert wait_for(lambda: waits_for_lock(held.path, chat_id, workers) or not post.is_alive(), 30)
            assert post.is_alive(), f"the post did not wait for its chat: {out}"
            os.kill(pool, signal.SIGTERM)
            assert wait_for(lambda: len(alive()) == 1, 30), f"workers left: {alive()} of {workers}"
            time.sleep(0.3)
            assert len(alive()) == 1 and post.is_alive(), "the busy worker did not wait for its request"
        finally:
            held.release(chat_id)
            held.close()
        post.join(30)
        assert out and out[0].status_code == 201, out and out[0].text
        assert out[0].json()["content"] == "sent before the stop"
        assert wait_for(lambda: not alive(), 30), f"the busy worker did not stop after its request: {alive()}"
        # Idle or busy, each closed its MariaDB connection on the way out: an
        # idle one that just exited left MariaDB an aborted connection to log.
        time.sleep(0.5)
        log = pathlib.Path(state, "log", "mariadb.log").read_text().splitlines()
        assert [line for line in log if "Aborted connection" in line] == []
    finally:
        down_spare(repo_root, state)


def test_a_subscription_without_a_worker_to_ask_is_a_json_503_and_nginx_keeps_its_subscribers(repo_root):
    """Nchan 1.3.6 crashed nginx's worker on every subscription while the pool
    was gone (its authorization subrequest ended before Nchan was ready for
    it), and every open subscriber was dropped with it; a pool that did not
    answer gave a bare 504. Both are the API's JSON 503 now (the checker server
    of nginx/carebot.conf.in)."""
    state = tempfile.mkdtemp(prefix="carebot-nopool-")
    try:
        base = up_spare(repo_root, state, 2)
        token = carebot(repo_root, "admin", "--state", state, "token", "admin").stdout.strip()
        nginx_workers = children(int(pathlib.Path(state, "run", "nginx.pid").read_text()))
        live = rt.EventSource(base, "department/1", token=token).start()
        pool = int(pathlib.Path(state, "run", "pool.pid").read_text())
        workers = children(pool)

        def refused(transport, wait):
            sub = transport(base, "department/1", token=token).start(wait=False)
            assert sub.done.wait(wait), f"{transport.transport}: no answer"
            assert sub.status == 503, (transport.transport, sub.status, sub.error_body)
            if transport is not rt.WebSocket:  # websocket-client keeps no body of a refusal
                assert json.loads(sub.error_body)["error"]["code"] == "unavailable"

        for pid in workers:  # stalled: the checker stops waiting after 10 s
            os.kill(pid, signal.SIGSTOP)
        try:
            refused(rt.EventSource, 30)
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        for pid in [pool, *workers]:  # gone: nobody takes the connection
            os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: not [pid for pid in workers if os.path.exists(f"/proc/{pid}")], 5)
        for transport in rt.TRANSPORTS.values():
            refused(transport, 10)
        # A resume from an event id goes through /_resume, whose auth_request
        # gets nginx's own 503: JSON, with the CORS headers of Nchan's refusals
        # (as /_auth's 503 has them), so a page on another site can read it.
        for headers, query in [({"Last-Event-ID": "1:0", "Accept": "text/event-stream"}, {}),
                               ({}, {"last_event_id": "1:0"})]:
            for origin in ("https://elsewhere.example", None):
                r = requests.get(f"{base}/ws/department/1", params={"token": token, **query}, timeout=15,
                                 headers={**headers, **({"Origin": origin} if origin else {})})
                assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable", r.text
                assert r.headers.get("Access-Control-Allow-Origin") == origin, (origin, r.headers)
                assert r.headers.get("Access-Control-Allow-Credentials") == ("true" if origin else None)
                assert re.fullmatch("[0-9a-f]{32}", r.headers.get("X-Request-Id", "")), r.headers
        health = requests.get(base + "/api/health", headers={"Origin": "https://elsewhere.example"}, timeout=10)
        assert "Access-Control-Allow-Origin" not in health.headers, health.headers
        # health still speaks health's fields (contract 8), as far as nginx knows them
        for path in ("/api/health", "/api/health/"):
            health = requests.get(base + path, timeout=10)
            assert health.status_code == 503, health.text
            assert health.json()["status"] == "degraded" and health.json()["workers"] == "down"
            assert health.json()["error"]["code"] == "unavailable"
            assert re.fullmatch("[0-9a-f]{32}", health.headers.get("X-Request-Id", "")), health.headers
        # nginx's own 503 of the API names its request too (README 9, "Following one request")
        r = requests.get(base + "/api/chats/", timeout=10)
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable", r.text
        assert re.fullmatch("[0-9a-f]{32}", r.headers.get("X-Request-Id", "")), r.headers
        assert children(int(pathlib.Path(state, "run", "nginx.pid").read_text())) == nginx_workers
        assert not live.done.is_set(), "the open subscription was dropped"
        nginx_pid = pathlib.Path(state, "run", "nginx.pid").read_text()
        assert carebot(repo_root, "up", "--state", state).returncode == 0
        assert rt.subscription_status(rt.EventSource, base, "department/1", token=token) == 200
        # up mends a dead database without a new nginx, which would drop every
        # subscriber and forget the events kept for reconnecting ones
        os.kill(int(pathlib.Path(state, "run", "mysqld.pid").read_text()), signal.SIGKILL)
        assert wait_for(lambda: requests.get(f"{base}/api/health", timeout=10).status_code == 503, 10)
        again = carebot(repo_root, "up", "--state", state)
        assert again.returncode == 0 and "restarting nginx" not in again.stderr, again.stderr
        assert pathlib.Path(state, "run", "nginx.pid").read_text() == nginx_pid
        assert requests.get(f"{base}/api/health", timeout=10).json() == HEALTHY
        assert not live.done.is_set(), "the open subscription was dropped"
        live.close()
    finally:
        down_spare(repo_root, state)


def test_connections_killed_under_posts_a_503_says_whether_it_may_have_been_done(
        base_url, api, state_dir, pool_pids):
    """Contract 2: 503 is "the request did nothing". Killing the workers' MariaDB
    connections under a stream of posts (a black-box chaos audit): a post whose
    INSERT lost its answer may have been stored, and its 503 must say so; one
    that says "nothing was done" is not stored; every 201 is stored and reached
    the chat's subscriber (the reads after the write retry on a new connection)."""
    workers = pool_pids()
    guest = api.post("/api/auth/guest", json={"full_name": "Killed Connections"}).json()
    token = guest["token"]
    chat = api.post("/api/chats/", token=token, json={"subject": "kills"}).json()
    sub = rt.WebSocket(base_url, f"chat/{chat['id']}", token=token).start()
    stop, answers = threading.Event(), []

    def killer():
        while not stop.is_set():
            for conn_id in root_sql(state_dir, "SELECT id FROM information_schema.processlist "
                                               "WHERE user = 'carebot'").split():
                root_sql(state_dir, f"KILL {conn_id}")
            time.sleep(random.uniform(0.05, 0.2))

    def poster():
        session = requests.Session()
        while not stop.is_set():
            content = uuid.uuid4().hex
            r = session.post(f"{base_url}/api/chats/{chat['id']}/messages", json={"content": content},
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
            answers.append((content, r.status_code, r.json()))

    threads = [threading.Thread(target=killer)] + [threading.Thread(target=poster) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(8)
    stop.set()
    for t in threads:
        t.join(60)
    try:
        history, after = [], 0
        while page := api.get(f"/api/chats/{chat['id']}/messages?after_id={after}&limit=500",
                              token=token).json():
            history, after = history + page, page[-1]["id"]
        stored = {m["content"]: m["id"] for m in history if m["sender_role"] == "customer"}
        created = [c for c, status, _ in answers if status == 201]
        unknown = [c for c, status, body in answers
                   if status == 503 and "may have been done" in body["error"]["message"]]
        refused = [c for c, status, body in answers
                   if status == 503 and "nothing was done" in body["error"]["message"]]
        assert len(created) + len(unknown) + len(refused) == len(answers), \
            {s for _, s, _ in answers}
        print(f"{len(answers)} posts: {len(created)} created, {len(unknown)} 503 'may have been "
              f"done' ({len([c for c in unknown if c in stored])} stored), {len(refused)} 503 "
              "'nothing was done'")
        assert unknown or refused, "no kill landed on a post"
        assert all(c in stored for c in created)
        assert not [c for c in refused if c in stored], "a 503 said nothing was done, but it was"
        assert not [c for c in stored if c not in created and c not in unknown]
        ids = [stored[c] for c in created]
        events = sub.wait_for(lambda evs: {e["data"]["id"] for e in evs} >= set(ids), timeout=10)
        assert not set(ids) - {e["data"]["id"] for e in events}, "a created message was never published"
    finally:
        sub.close()
    assert pool_pids() == workers
    assert wait_for(lambda: health_ok(api), 10)


def waits_for_lock(path, offset, pids):
    """Does one of pids wait for the record lock on byte offset of path? (a
    blocked request is a "->" line of /proc/locks: id, ->, POSIX, ADVISORY,
    WRITE, pid, major:minor:inode, start, end)"""
    st = os.stat(path)
    file = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if (len(fields) >= 9 and fields[1] == "->" and int(fields[5]) in pids
                    and fields[6] == file and fields[7] == str(offset)):
                return True
    return False


@contextlib.contextmanager
def chats_table_held(state_dir):
    """MariaDB's root holds the chats table (LOCK TABLES) for the block: a
    worker's read of it waits. Yields wait(), which returns once one does."""
    holder = subprocess.Popen(["mariadb", f"--socket={state_dir / 'run' / 'mysqld.sock'}", "-uroot",
                               "--unbuffered", "-N", "-B", "carebot"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    holder.stdin.write("LOCK TABLES chats WRITE; SELECT 'held';\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "held"
    waiting = "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'carebot' " \
              "AND state LIKE '%metadata lock%'"

    def wait():
        assert wait_for(lambda: root_sql(state_dir, waiting).strip() == "1", 10), "no worker waited"
    try:
        yield wait
    finally:
        holder.stdin.write("UNLOCK TABLES;\n")
        holder.stdin.close()
        holder.wait(10)


def test_a_worker_that_reconnects_mid_request_keeps_its_chats_mutex(repo_root):
    """A worker whose connection died while it was idle retries the request's
    first read on a new one. When that read came after the chat's mutex was
    taken (its session still cached, the chat's state not), the old code had
    let the mutex go with the connection and went on without it (a white-box
    review found it): a close in another worker could slip in before the post."""
    state = tempfile.mkdtemp(prefix="carebot-reconnect-")
    try:
        base = up_spare(repo_root, state, 1)  # one worker: it serves every request below
        sql = pathlib.Path(state)
        token = carebot(repo_root, "admin", "--state", state, "token", "customer1").stdout.strip()
        admin = carebot(repo_root, "admin", "--state", state, "token", "admin").stdout.strip()
        auth = {"Authorization": f"Bearer {token}"}
        chat = requests.post(f"{base}/api/chats/", headers=auth, timeout=10, json={"department_id": 2})
        assert chat.status_code == 201, chat.text
        chat_id = chat.json()["id"]
        # a change elsewhere moves the state generation; the customer's next
        # request caches the session again, not the chat's state
        r = requests.put(f"{base}/api/departments/3", headers={"Authorization": f"Bearer {admin}"},
                         json={"description": uuid.uuid4().hex}, timeout=10)
        assert r.status_code == 200, r.text
        assert requests.get(f"{base}/api/auth/me", headers=auth, timeout=10).status_code == 200
        # the worker's connection dies while it is idle, and the chats table is held,
        # so that the retried read of the chat's state waits
        for conn_id in root_sql(sql, "SELECT id FROM information_schema.processlist "
                                     "WHERE user = 'carebot'").split():
            root_sql(sql, f"KILL {conn_id}")
        mutex = HostMutex(os.path.join(state, "run", "chat-mutexes"))
        try:
            with chats_table_held(sql) as wait:
                post, out = in_background(lambda: requests.post(
                    f"{base}/api/chats/{chat_id}/messages", headers=auth, timeout=30,
                    json={"content": "after the reconnect"}))
                wait()
                with pytest.raises(OSError):  # the worker still holds the chat
                    mutex.take(chat_id)
        finally:
            mutex.close()
        post.join(30)
        assert out and out[0].status_code == 201, out and out[0].text
    finally:
        down_spare(repo_root, state)


def test_a_stop_while_a_worker_waits_for_mariadb_lets_its_request_finish(repo_root):
    """README 2: a busy worker stops after its request. The stop signal must
    not cut short what the request is waiting for (a MariaDB answer here):
    an interrupted read would turn the request into an error."""
    state = tempfile.mkdtemp(prefix="carebot-stopwait-")
    try:
        base = up_spare(repo_root, state, 1)
        sql = pathlib.Path(state)
        token = carebot(repo_root, "admin", "--state", state, "token", "customer1").stdout.strip()
        auth = {"Authorization": f"Bearer {token}"}
        with chats_table_held(sql) as wait:
            create, out = in_background(lambda: requests.post(
                f"{base}/api/chats/", headers=auth, timeout=30, json={"department_id": 2}))
            wait()
            os.kill(int(pathlib.Path(state, "run", "pool.pid").read_text()), signal.SIGTERM)
            time.sleep(0.5)
        create.join(30)
        assert out and out[0].status_code == 201, out and out[0].text
    finally:
        down_spare(repo_root, state)


def root_sql(state_dir, statement):
    """statement run by MariaDB's root on the instance's server: its output, tab-separated."""
    done = subprocess.run(["mariadb", f"--socket={state_dir / 'run' / 'mysqld.sock'}", "-uroot",
                           "--batch", "--skip-column-names", "-e", statement],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextlib.contextmanager
def scratch_database(repo_root, state_dir, db, **settings):
    """An empty database db on the instance's server, the carebot user's too,
    dropped afterwards: yields the carebot-admin command line for it (the
    instance's carebot.conf with db_name and the settings given)."""
    work = pathlib.Path(tempfile.mkdtemp(prefix="carebot-scratch-"))
    conf_text = (state_dir / "carebot.conf").read_text()
    for key, value in {"db_name": db, **settings}.items():
        conf_text = re.sub(rf"(?m)^{key}\s*=.*\n?", "", conf_text) + f"\n{key} = {value}\n"
    (work / "carebot.conf").write_text(conf_text)
    root_sql(state_dir, f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; "
                        f"GRANT ALL PRIVILEGES ON {db}.* TO 'carebot'@'localhost'; "
                        f"GRANT ALL PRIVILEGES ON {db}.* TO 'carebot'@'127.0.0.1';")
    try:
        yield [str(repo_root / os.environ.get("CAREBOT_BUILD_DIR", "build") / "carebot-admin"),
               "-c", str(work / "carebot.conf")]
    finally:
        root_sql(state_dir, f"DROP DATABASE IF EXISTS {db}")
        shutil.rmtree(work, ignore_errors=True)


def assert_sample_data(state_dir, db):
    """Database db holds contract 9's sample data, each row once."""
    names = root_sql(state_dir, f"SELECT name FROM {db}.departments ORDER BY name").splitlines()
    assert names == ["Billing", "Customer Care", "Sales", "Technical Support"]
    users = root_sql(state_dir, f"SELECT username FROM {db}.users ORDER BY username").split()
    assert users == sorted(["admin", "alice_cc", "bob_cc", "charlie_tech", "diana_tech",
                            "eve_sales", "frank_billing", "customer1"])


def test_two_seeds_at_once_both_succeed_and_add_the_sample_data_once(repo_root, state_dir):
    """seed looked for each sample row and then added it, unlocked: two at
    once both found a row missing, and the one that added it second failed on
    the duplicate, with exit status 1 and no message. It runs under migrate's
    named lock now, and says what it added. On a database of its own, so that
    the sample data is missing at first."""
    db = "carebot_seed_race_test"
    with scratch_database(repo_root, state_dir, db) as admin:
        migrate = subprocess.run([*admin, "migrate"], capture_output=True, text=True, timeout=120)
        assert migrate.returncode == 0, migrate.stderr
        seeds = [subprocess.Popen([*admin, "seed"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        done = [(seed.wait(timeout=120), *seed.communicate()) for seed in seeds]
        assert [rc for rc, _, _ in done] == [0, 0], done
        assert sorted(out for _, out, _ in done) == [
            "seed: 0 departments and 0 users added (the sample data was there already)\n",
            "seed: 4 departments and 8 users added\n"], done
        assert_sample_data(state_dir, db)


def open_files_limit(pid):
    """The soft 'Max open files' of a process, from /proc/PID/limits."""
    for line in pathlib.Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError(f"no open files limit for {pid}")


def test_nginx_may_hold_as_many_connections_as_it_is_configured_for(repo_root):
    """nginx/carebot.conf.in: 16,384 connections a worker, 65,536 open files,
    or what the hard limit allows (an audit's 1,000 WebSockets crashed an
    nginx that `up` had started from a shell's 1,024): up raises its limit
    as far as the hard limit allows."""
    hard = int(subprocess.run(["bash", "-c", "ulimit -H -n"], capture_output=True,
                              text=True).stdout)
    if hard <= 1024:
        pytest.skip(f"the hard limit of open files here is {hard}")
    state = tempfile.mkdtemp(prefix="carebot-nofile-")
    try:
        port = free_port()
        up = subprocess.run(["bash", "-c", 'ulimit -S -n 1024 && exec "$0" "$@"',
                             str(repo_root / "tools" / "carebot"), "up", "--state", state,
                             "--port", str(port), "--workers", "1"],
                            capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stderr
        want = min(65536, hard)
        conf = pathlib.Path(state, "nginx.conf").read_text()
        assert re.search(rf"(?m)^\s*worker_connections {min(16384, want - 1024)};", conf), conf
        assert re.search(rf"(?m)^worker_rlimit_nofile {want};", conf)
        master = int(pathlib.Path(state, "run", "nginx.pid").read_text())
        pool = int(pathlib.Path(state, "run", "pool.pid").read_text())
        for pid in children(master) + children(pool):
            assert open_files_limit(pid) >= want, (pid, open_files_limit(pid), want)
        assert "setrlimit" not in pathlib.Path(state, "log", "nginx-error.log").read_text()
    finally:
        down, left = down_spare(repo_root, state)
    assert down.returncode == 0, down.stderr
    assert left == [], left


def test_add_admin_makes_an_admin_from_a_password_on_stdin_and_refuses_bad_input(
        repo_root, state_dir, api):
    """README 9: the first admin of a production database, without seed's
    sample accounts (admin/admin123 among them)."""
    admin = [str(repo_root / os.environ.get("CAREBOT_BUILD_DIR", "build") / "carebot-admin"),
             "-c", str(state_dir / "carebot.conf"), "add-admin"]
    name = "boss_" + uuid.uuid4().hex[:8]

    def run(*args, stdin):
        return subprocess.run([*admin, *args], input=stdin, capture_output=True, text=True,
                              timeout=60)

    def users_named(username):
        return int(root_sql(state_dir, "SELECT COUNT(*) FROM carebot.users "
                                       f"WHERE username = '{username}'"))

    for args, stdin, says in [
            ((name,), "", "reads the password from standard input"),
            ((name,), "seven77\n", "password must be 8 to 1024 characters"),
            ((name + " x",), "long enough\n", "username may only hold"),
            (("ab",), "long enough\n", "username must be 3 to 50 characters"),
            ((name, " \t "), "long enough\n", "full_name must not be only white space"),
            ((name, "x" * 101), "long enough\n", "full_name must be 1 to 100 characters")]:
        done = run(*args, stdin=stdin)
        assert done.returncode == 1 and says in done.stderr, (args, done.stderr)
        assert done.stdout == "", done.stdout
    assert users_named(name) == 0 and users_named("ab") == 0

    done = run(name, "The Boss", stdin="correct horse 9\nignored\n")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(rf"added admin {name} \(id (\d+)\)\n", done.stdout), done.stdout
    login = api.post("/api/auth/login", json={"username": name, "password": "correct horse 9"})
    assert login.status_code == 200, login.text
    user = login.json()["user"]
    assert (user["role"], user["full_name"], user["is_active"]) == ("admin", "The Boss", True)
    assert api.get("/api/users/", token=login.json()["token"]).status_code == 200

    done = run(name, stdin="another password\n")
    assert done.returncode == 1 and f"the username '{name}' is taken" in done.stderr, done.stderr
    assert users_named(name) == 1

    # Arguments that are not UTF-8 are refused, and a password line from a
    # CRLF file is the password without its \r.
    done = subprocess.run([*admin, (name + "x").encode(), b"Bad \xff name"], input=b"long enough\n",
                          capture_output=True, timeout=60)
    assert done.returncode == 1 and b"full_name must be UTF-8" in done.stderr, done.stderr
    assert users_named(name + "x") == 0
    done = run(name + "_crlf", stdin="carriage return 9\r\n")
    assert done.returncode == 0, done.stderr
    login = api.post("/api/auth/login", json={"username": name + "_crlf", "password": "carriage return 9"})
    assert login.status_code == 200, login.text


def test_admin_token_takes_a_ttl(admin_cli, api, state_dir):
    """README 4: `token USER [TTL]`; without TTL the config's token_ttl."""
    def seconds_left(token):
        me = api.get("/api/auth/me", token=token)
        assert me.status_code == 200, me.text
        digest = hashlib.sha256(token.encode()).hexdigest()  # sessions keep the token's SHA-256
        return int(root_sql(state_dir, "SELECT TIMESTAMPDIFF(SECOND, NOW(3), expires_at) "
                                       f"FROM carebot.sessions WHERE token_hash = UNHEX('{digest}')"))

    done = admin_cli("token", "customer1", "120")
    assert done.returncode == 0, done.stderr
    assert 100 <= seconds_left(done.stdout.strip()) <= 120
    done = admin_cli("token", "customer1")
    assert done.returncode == 0, done.stderr
    assert seconds_left(done.stdout.strip()) > 3600


class RootSessions:
    """Root sessions over the instance's socket, opened until MariaDB lets
    nobody else in: max_connections lowered to what is open, and its one
    extra connection for SUPER taken too. Closing puts the limit back."""

    def __init__(self, state_dir):
        self.socket = state_dir / "run" / "mysqld.sock"
        self.sessions = []

    def open(self):
        session = subprocess.Popen(["mariadb", f"--socket={self.socket}", "-uroot", "--ssl=0",
                                    "-N", "-B", "--unbuffered"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        session.stdin.write("SELECT 'in';\n")
        session.stdin.flush()
        if session.stdout.readline().strip() != "in":
            session.wait(timeout=10)
            return session.stderr.read()
        self.sessions.append(session)
        return None

    def sql(self, statement):
        self.sessions[0].stdin.write(statement + ";\n")
        self.sessions[0].stdin.flush()
        return self.sessions[0].stdout.readline().strip()

    def __enter__(self):
        assert self.open() is None
        self.limit = self.sql("SELECT @@GLOBAL.max_connections")
        # A failure from here on puts the limit back and closes the sessions
        # (with does not call __exit__ when __enter__ raises): a MariaDB left
        # full failed every test after this one.
        try:
            count = int(self.sql("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                 "WHERE VARIABLE_NAME = 'THREADS_CONNECTED'"))
            self.sql(f"SET GLOBAL max_connections = {max(10, count - 1)}; SELECT 1")
            for _ in range(20):
                refused = self.open()
                if refused:
                    assert "Too many connections" in refused, refused
                    return self
            raise AssertionError("MariaDB still lets root in")
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, *exc):
        if self.sessions and self.sessions[0].poll() is None:
            self.sql(f"SET GLOBAL max_connections = {self.limit}; SELECT 1")
        for session in self.sessions:
            session.stdin.close()
            session.wait(timeout=10)


def test_root_sessions_that_fail_to_fill_mariadb_leave_it_as_it_was(state_dir):
    """RootSessions meeting another refusal than "Too many connections" (say,
    a root that cannot log in) fails the test that uses it, and no other: the
    limit is back and no session of it stays open."""
    class OtherRefusal(RootSessions):
        def open(self):
            return super().open() if not self.sessions else "ERROR 1045: Access denied"

    before = root_sql(state_dir, "SELECT @@GLOBAL.max_connections").strip()
    sessions = OtherRefusal(state_dir)
    try:
        with pytest.raises(AssertionError, match="Access denied"):
            with sessions:
                pass
        assert root_sql(state_dir, "SELECT @@GLOBAL.max_connections").strip() == before
        assert [s.poll() is None for s in sessions.sessions] == [False]
    finally:
        for session in sessions.sessions:
            if session.poll() is None:
                session.stdin.close()
                session.wait(timeout=10)
        root_sql(state_dir, f"SET GLOBAL max_connections = {before}")


def running(pid):
    """A live process (a zombie that nobody reaps is gone too)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_up_while_mariadb_lets_nobody_in_leaves_it_running(repo_root, state_dir, api, pool_pids):
    """All of MariaDB's connections taken by another client: up's check of it
    failed, so up started a second server on the datadir, which died on its
    locks, and then stopped the running one as if it had started it."""
    pid_file = state_dir / "run" / "mysqld.pid"
    pid = pid_file.read_text().strip()
    try:
        with RootSessions(state_dir):
            # --workers takes up past "running and healthy, nothing to do".
            up = carebot(repo_root, "up", "--state", str(state_dir),
                         "--workers", str(len(pool_pids())))
            assert up.returncode == 1, up.stderr
            assert "is running but does not answer: Too many connections" in up.stderr, up.stderr
            assert "starting MariaDB" not in up.stderr
            assert pid_file.read_text().strip() == pid and running(pid)
        assert wait_for(lambda: health_ok(api), 10)
    finally:
        if not running(pid):
            # Without the fix: the instance's MariaDB is gone; bring it back for the next tests.
            restored = carebot(repo_root, "up", "--state", str(state_dir))
            assert restored.returncode == 0, restored.stderr
