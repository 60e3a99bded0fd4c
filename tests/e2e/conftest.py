"""Fixtures shared by every end-to-end test file.

The suite runs against a live instance started by `tools/carebot test` (or by
hand: `tools/carebot up --state DIR --port N`, then CAREBOT_URL, CAREBOT_STATE
and CAREBOT_ROOT in the environment). It never starts the stack itself.

    base_url     http://127.0.0.1:PORT           (CAREBOT_URL)
    state_dir    the instance's state directory  (CAREBOT_STATE)
    repo_root    the repository                  (CAREBOT_ROOT)
    api          api.get/post/put/delete(path, token=None, json=None,
                 headers=None, data=None) -> requests.Response (10 s timeout)
    admin_cli    admin_cli(*args) -> CompletedProcess of
                 `tools/carebot admin --state STATE args...`
    token_for    token_for(username) -> a fresh bearer token (carebot-admin
                 token; login itself is rate-limited to 10 a minute)
    admin_token  a token for "admin"
    pool_pids    pool_pids() -> sorted pids of the FastCGI workers
    db_stop / db_start   stop / start only the instance's MariaDB
"""

import os
import pathlib
import subprocess

import pytest
import requests

TIMEOUT = 10


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the suite with tools/carebot test", returncode=2)
    return value


@pytest.fixture(scope="session")
def base_url():
    return _env("CAREBOT_URL").rstrip("/")


@pytest.fixture(scope="session")
def state_dir():
    return pathlib.Path(_env("CAREBOT_STATE"))


@pytest.fixture(scope="session")
def repo_root():
    return pathlib.Path(os.environ.get("CAREBOT_ROOT") or pathlib.Path(__file__).resolve().parents[2])


class Api:
    """requests with the instance's base URL, an optional bearer token and a timeout."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.session = requests.Session()

    def request(self, method, path, token=None, json=None, headers=None, data=None):
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        # The API never redirects; following one would hide it from the tests.
        return self.session.request(method, self.base_url + path, json=json, data=data,
                                    headers=headers, timeout=TIMEOUT, allow_redirects=False)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


@pytest.fixture(scope="session")
def api(base_url):
    return Api(base_url)


def _carebot(repo_root, *args, timeout=120):
    return subprocess.run([str(repo_root / "tools" / "carebot"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def admin_cli(repo_root, state_dir):
    def run(*args):
        return _carebot(repo_root, "admin", "--state", state_dir, *args)
    return run


@pytest.fixture(scope="session")
def token_for(admin_cli):
    def token(username):
        done = admin_cli("token", username)
        assert done.returncode == 0, f"carebot-admin token {username}: {done.stderr}"
        return done.stdout.strip().splitlines()[-1]
    return token


@pytest.fixture(scope="session")
def admin_token(token_for):
    return token_for("admin")


def children(pid):
    """Pids of the live direct children of pid, from /proc/*/stat."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after ")".
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append(int(entry))
    return sorted(found)


@pytest.fixture(scope="session")
def pool_pids(state_dir):
    """The workers are multiwatch's children; multiwatch's pid is in run/pool.pid."""
    def pids():
        return children(int((state_dir / "run" / "pool.pid").read_text()))
    return pids


@pytest.fixture(scope="session")
def db_stop(repo_root, state_dir):
    def stop():
        done = _carebot(repo_root, "db-stop", "--state", state_dir)
        assert done.returncode == 0, done.stderr
    return stop


@pytest.fixture(scope="session")
def db_start(repo_root, state_dir):
    def start():
        done = _carebot(repo_root, "db-start", "--state", state_dir)
        assert done.returncode == 0, done.stderr
    return start
