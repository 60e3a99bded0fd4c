"""The operator's environment, which the rest of the suite never varies:
`tools/carebot up` from cron's PATH (no /usr/sbin), another working
directory, no HOME, umask 000 and a TZ far from UTC; a ~/.my.cnf that names
another server; the state path check in a UTF-8 locale (contract section 1;
README 1)."""

import datetime
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest
import requests

from test_ops import down_spare, free_port, processes_mentioning


def up(repo_root, state, port, env, cwd=None, umask=None):
    """tools/carebot up with exactly env (and umask, if given): the CompletedProcess."""
    script = str(repo_root / "tools" / "carebot")
    args = [script, "up", "--state", state, "--port", str(port), "--workers", "1"]
    if umask is not None:
        args = ["/bin/bash", "-c", f'umask {umask} && exec "$0" "$@"', *args]
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def logs_in(base_url, username, password):
    r = requests.post(base_url + "/api/auth/login", json={"username": username, "password": password},
                      timeout=10)
    return r.status_code == 200


def writable_by_others(state):
    """What another user may write (or connect to) in state: the files and
    directories up made, where group or others can reach them (run/, log/
    and MariaDB's datadir are the user's alone)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(state):
        if os.stat(dirpath).st_mode & 0o011 == 0:
            dirnames.clear()
            continue
        for name in [dirpath] + [os.path.join(dirpath, f) for f in filenames]:
            mode = os.lstat(name).st_mode
            if mode & 0o022:
                found.append(f"{oct(mode & 0o777)} {name}")
    return found


def test_up_works_from_crons_bare_environment_and_makes_nothing_writable_by_others(repo_root):
    """cron runs a job with PATH=/usr/bin:/bin, which leaves out /usr/sbin
    (nginx, mariadbd); here also without HOME or a locale, from /, at umask
    000, in a zone 13:45 off UTC (a POSIX TZ: a zone name is UTC where
    tzdata is missing, and the test could not fail). up must start the instance all the same,
    its times must be UTC, and nothing it makes may be writable by another
    user (instance.env names the binaries it runs)."""
    base = tempfile.mkdtemp(prefix="carebot-env-")
    state, port = base + "/instance", free_port()
    try:
        # the suite's own settings (tools/carebot test: the build tree, the sanitizers) pass
        env = {k: v for k, v in os.environ.items() if k.startswith(("CAREBOT_", "ASAN_", "UBSAN_"))}
        done = up(repo_root, state, port, dict(env, PATH="/usr/bin:/bin", TZ="<+1345>-13:45"),
                  cwd="/", umask="000")
        assert done.returncode == 0, done.stderr
        login = requests.post(f"http://127.0.0.1:{port}/api/auth/login",
                              json={"username": "admin", "password": "admin123"}, timeout=10)
        assert login.status_code == 200, login.text
        expires = datetime.datetime.strptime(login.json()["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        utc = datetime.timezone.utc
        lifetime = expires.replace(tzinfo=utc) - datetime.datetime.now(utc)
        assert abs(lifetime - datetime.timedelta(hours=12)) < datetime.timedelta(minutes=1), lifetime
        # MariaDB's own default zone is UTC too, not the shell's: a session that
        # sets none (the mariadb client, the tests' SQL) agrees with the API
        offset = subprocess.run(["mariadb", "--no-defaults", f"--socket={state}/run/mysqld.sock", "-uroot",
                                 "-N", "-e", "SELECT TIMESTAMPDIFF(MINUTE, UTC_TIMESTAMP(), NOW())"],
                                capture_output=True, text=True, timeout=30)
        assert offset.stdout.strip() == "0", offset.stdout + offset.stderr
        assert writable_by_others(state) == []
    finally:
        down, left = down_spare(repo_root, state)
        shutil.rmtree(base, ignore_errors=True)
    assert down.returncode == 0, down.stderr
    assert left == [], left


def test_up_ignores_the_users_mariadb_option_files(repo_root):
    """A ~/.my.cnf whose [client] names another server (a developer's remote
    database) must not send up's clients there: its ping, its provisioning,
    its shutdown of the instance's MariaDB all go to the instance's socket.
    Nor must MYSQL_HOST, which the mariadb client reads from the environment."""
    base = tempfile.mkdtemp(prefix="carebot-mycnf-")
    state, port, elsewhere = base + "/instance", free_port(), free_port()
    home = pathlib.Path(base, "home")
    home.mkdir()
    (home / ".my.cnf").write_text(
        f"[client]\nhost=127.0.0.1\nport={elsewhere}\nprotocol=tcp\nuser=dev\npassword=devpw\n")
    env = dict(os.environ, HOME=str(home), MYSQL_HOST="127.0.0.1", MYSQL_TCP_PORT=str(elsewhere))
    try:
        done = up(repo_root, state, port, env)
        assert done.returncode == 0, done.stderr
        assert logs_in(f"http://127.0.0.1:{port}", "customer1", "password123")
        down = subprocess.run([str(repo_root / "tools" / "carebot"), "down", "--state", state],
                              env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        assert processes_mentioning(state) == []
    finally:
        down, left = down_spare(repo_root, state)
        shutil.rmtree(base, ignore_errors=True)
    assert left == [], left


def private_utf8_locale(where):
    """de_DE.UTF-8 compiled into where (the `locales` package's sources,
    which tools/carebot test installs; nothing of the system's changes): the
    environment that selects it, or None without those sources."""
    made = subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", f"{where}/de_DE.UTF-8"],
                          capture_output=True, text=True, timeout=120)
    if made.returncode != 0 or not os.path.isdir(f"{where}/de_DE.UTF-8"):
        return None
    return {"LOCPATH": str(where), "LC_ALL": "de_DE.UTF-8"}


def test_the_state_path_check_is_the_same_in_every_locale(repo_root, tmp_path):
    """In de_DE.UTF-8 "[A-Za-z]" takes "é": a state path that LC_ALL=C
    refuses at once got a datadir and failed at nginx -t, and its socket
    paths, counted in characters, passed the length check."""
    loc = private_utf8_locale(tmp_path)
    if loc is None:
        pytest.skip("localedef cannot make de_DE.UTF-8 here (apt-get install locales)")
    base = tempfile.mkdtemp(prefix="carebot-locale-")
    state = base + "/" + "é" * 40
    try:
        done = up(repo_root, state, free_port(), dict(os.environ, **loc))
        assert done.returncode == 1 and "pick another path" in done.stderr, done.stderr
        assert not os.path.exists(state)
    finally:
        down, left = down_spare(repo_root, state)
        shutil.rmtree(base, ignore_errors=True)
    assert left == [], left
