"""Operator mistakes on the worker's command line and in -c (README 3): the
worker and carebot-admin refuse them before they start, with the reason on
stderr, rather than start on the built-in defaults (a worker that says
"worker ready" while pointed at 127.0.0.1:3306 with no password, caching
off and MariaDB's mutexes, beside workers that share a mutex file)."""

import os
import subprocess

import pytest


@pytest.fixture(scope="module")
def build(repo_root):
    return repo_root / os.environ.get("CAREBOT_BUILD_DIR", "build")


def worker(build, *args):
    """carebot-fcgi with no FastCGI socket: one that starts says "worker ready"
    and, its accept failing on /dev/null, stops again at once."""
    return subprocess.run([str(build / "carebot-fcgi"), *map(str, args)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)


def test_the_worker_refuses_a_config_named_without_c(build, state_dir):
    """`carebot-fcgi carebot.conf` (the -c forgotten) ignored the file."""
    done = worker(build, state_dir / "carebot.conf")
    assert done.returncode == 2, done.stderr
    assert "unexpected argument" in done.stderr and "usage: carebot-fcgi" in done.stderr, done.stderr
    assert "worker ready" not in done.stderr
    started = worker(build, "-c", state_dir / "carebot.conf")
    assert started.returncode == 0 and "worker ready" in started.stderr, started.stderr


def test_a_directory_given_as_the_config_is_refused(build, tmp_path):
    """fopen opens a directory and reading it fails: that was read as an empty
    file, and both programs ran on the defaults."""
    done = worker(build, "-c", tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"carebot: cannot read {tmp_path}: Is a directory" in done.stderr, done.stderr
    assert "worker ready" not in done.stderr
    admin = subprocess.run([str(build / "carebot-admin"), "-c", str(tmp_path), "token", "admin"],
                           capture_output=True, text=True, timeout=30)
    assert admin.returncode == 1 and admin.stdout == "", admin.stdout
    assert f"carebot: cannot read {tmp_path}: Is a directory" in admin.stderr, admin.stderr


def test_the_config_comes_from_carebot_config_without_c_and_a_missing_one_is_refused(
        build, state_dir, tmp_path):
    """README 3: -c FILE, else $CAREBOT_CONFIG, else the installed one."""
    admin = [str(build / "carebot-admin"), "token", "admin"]
    env = {**os.environ, "CAREBOT_CONFIG": str(state_dir / "carebot.conf")}
    done = subprocess.run(admin, capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 0 and len(done.stdout.strip()) >= 22, done.stderr
    missing = tmp_path / "nowhere.conf"
    env["CAREBOT_CONFIG"] = str(missing)
    done = subprocess.run(admin, capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 1 and done.stdout == "", done.stdout
    assert f"carebot: cannot read {missing}: No such file or directory" in done.stderr, done.stderr
    done = worker(build, "-c", missing)
    assert done.returncode == 1 and "worker ready" not in done.stderr, done.stderr
    assert f"carebot: cannot read {missing}: No such file or directory" in done.stderr, done.stderr


def test_a_worker_or_admin_that_cannot_open_the_mutex_file_refuses_to_start(
        build, state_dir, tmp_path):
    """main.c: a worker that cannot share the chats' mutexes of the others
    must not serve; carebot-admin takes them too (reassign, add-admin)."""
    conf = tmp_path / "carebot.conf"
    conf.write_text((state_dir / "carebot.conf").read_text() +
                    f"\nchat_mutex_file = {tmp_path / 'no-such-dir' / 'mutexes'}\n")
    done = worker(build, "-c", conf)
    assert done.returncode == 1 and "worker ready" not in done.stderr, done.stderr
    assert "chat mutexes: cannot open" in done.stderr, done.stderr
    admin = subprocess.run([str(build / "carebot-admin"), "-c", str(conf), "token", "admin"],
                           capture_output=True, text=True, timeout=30)
    assert admin.returncode == 1 and admin.stdout == "", admin.stdout
    assert "chat mutexes: cannot open" in admin.stderr, admin.stderr


def test_a_worker_starts_without_its_database_and_says_so(build, state_dir, tmp_path):
    """A worker whose MariaDB is not up yet serves anyway (503s until it is):
    it says so, and still starts; carebot-admin says so and exits 1 (README
    4). An unknown worker option is a usage error."""
    conf = tmp_path / "carebot.conf"
    conf.write_text((state_dir / "carebot.conf").read_text() +
                    f"\ndb_socket = {tmp_path / 'no-mysqld.sock'}\n")
    done = worker(build, "-c", conf)
    assert done.returncode == 0, done.stderr
    assert "starting without a database connection" in done.stderr, done.stderr
    assert "worker ready" in done.stderr, done.stderr
    admin = subprocess.run([str(build / "carebot-admin"), "-c", str(conf), "token", "admin"],
                           capture_output=True, text=True, timeout=60)
    assert admin.returncode == 1 and admin.stdout == "", admin.stdout
    assert "carebot-admin: the database cannot be reached" in admin.stderr, admin.stderr
    done = worker(build, "-x")
    assert done.returncode == 2 and "usage: carebot-fcgi" in done.stderr, done.stderr


def test_a_carebot_variable_that_names_no_setting_is_said(build, state_dir):
    """README 3: a misspelled override (CAREBOT_DB_PASWORD) was ignored
    without a word. It is said, and the program goes on; the names the
    tools and tests use, and a real key's, are not."""
    env = {**os.environ, "CAREBOT_DB_PASWORD": "secret", "CAREBOT_db_name": "lower",
           "CAREBOT_URL": "http://127.0.0.1:1", "CAREBOT_TOKEN_TTL": "600"}
    admin = [str(build / "carebot-admin"), "-c", str(state_dir / "carebot.conf"), "token", "admin"]
    done = subprocess.run(admin, capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 0 and len(done.stdout.strip()) >= 22, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert sorted(warnings) == [
        "carebot: warning: CAREBOT_DB_PASWORD names no setting (README 3); ignored",
        "carebot: warning: CAREBOT_db_name names no setting (README 3); ignored",
    ], done.stderr
    started = worker(build, "-c", state_dir / "carebot.conf")  # the suite's own environment: no warning
    assert started.returncode == 0 and "warning" not in started.stderr, started.stderr
    mistyped = subprocess.run([str(build / "carebot-fcgi"), "-c", str(state_dir / "carebot.conf")],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                              env={**os.environ, "CAREBOT_LOG_LEVL": "debug"})
    assert mistyped.returncode == 0 and "worker ready" in mistyped.stderr, mistyped.stderr
    assert "CAREBOT_LOG_LEVL names no setting" in mistyped.stderr, mistyped.stderr
