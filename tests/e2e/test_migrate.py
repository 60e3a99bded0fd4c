"""Upgrades (README 9, "Upgrading"): migrations that may run again after they
stopped halfway, a migration that gives up on a table another transaction
holds instead of holding up every request behind it, and workers that say
so, with a 503 and in health, when the schema is older than they are."""

import pathlib
import re
import shutil
import subprocess
import tempfile
import time

from chathelp import assert_error
from test_history_age import sql
from test_ops import root_sql, scratch_database

LOCK_WAIT_S = 5  # CB_MIGRATE_LOCK_WAIT_S (fcgi/migrate.h)


def migrations(repo_root):
    return sorted(p for p in (repo_root / "schema").iterdir() if p.suffix == ".sql")


def test_the_workers_need_the_newest_migration(repo_root):
    header = (repo_root / "fcgi" / "migrate.h").read_text()
    version = re.search(r'#define CB_SCHEMA_VERSION "([^"]+)"', header)[1]
    assert version == migrations(repo_root)[-1].name


def test_every_migration_may_run_again_after_it_stopped_halfway(repo_root, state_dir):
    """MariaDB commits each DDL statement on its own: a migration stopped after
    its first statement had to be mended by hand before it could run again."""
    db = "carebot_rerun_test"
    with scratch_database(repo_root, state_dir, db):
        for path in migrations(repo_root):
            for _ in range(2):
                root_sql(state_dir, f"USE {db}; {path.read_text()}")
        schema = root_sql(state_dir, f"SHOW CREATE TABLE {db}.chats")
        assert "ix_chats_department_status" in schema


def test_a_migration_gives_up_on_a_held_table_and_runs_again(repo_root, state_dir):
    db = "carebot_lockwait_test"
    schema = pathlib.Path(tempfile.mkdtemp(prefix="carebot-schema-"))
    try:
        for path in migrations(repo_root):
            shutil.copy(path, schema)
        with scratch_database(repo_root, state_dir, db, schema_dir=schema) as admin:
            done = subprocess.run([*admin, "migrate"], capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            (schema / "999-probe.sql").write_text(
                "ALTER TABLE departments ADD COLUMN IF NOT EXISTS probe INT NULL;\n"
                "ALTER TABLE users ADD COLUMN IF NOT EXISTS probe INT NULL;\n")
            holder = subprocess.Popen(
                ["mariadb", "-n", f"--socket={state_dir / 'run' / 'mysqld.sock'}", "-uroot", db],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                # A report's open transaction on users: the migration's second statement waits.
                holder.stdin.write("START TRANSACTION; SELECT COUNT(*) FROM users;\n")
                holder.stdin.flush()
                holder.stdout.readline()
                started = time.monotonic()
                done = subprocess.run([*admin, "migrate"], capture_output=True, text=True, timeout=120)
                waited = time.monotonic() - started
                assert done.returncode == 1, done.stderr
                assert "999-probe.sql waited 5 s" in done.stderr and "run migrate again" in done.stderr
                assert LOCK_WAIT_S <= waited < LOCK_WAIT_S + 20, waited
                applied = root_sql(state_dir, f"SELECT version FROM {db}.schema_migrations").split()
                assert "999-probe.sql" not in applied
                # Halfway: the first statement is done.
                assert "probe" in root_sql(state_dir, f"SHOW COLUMNS FROM {db}.departments")
            finally:
                holder.stdin.close()
                holder.wait(timeout=30)
            done = subprocess.run([*admin, "migrate"], capture_output=True, text=True, timeout=120)
            assert done.returncode == 0 and done.stdout == "applied 999-probe.sql\n", done
            assert "probe" in root_sql(state_dir, f"SHOW COLUMNS FROM {db}.users")
    finally:
        shutil.rmtree(schema, ignore_errors=True)


def test_a_migration_that_cannot_be_read_is_not_run(repo_root, state_dir):
    """A read error was taken for the end of the file: what had been read
    (nothing, for a directory) ran as the migration, and MariaDB's "Query was
    empty" was the only clue."""
    db = "carebot_unreadable_test"
    schema = pathlib.Path(tempfile.mkdtemp(prefix="carebot-schema-"))
    try:
        for path in migrations(repo_root):
            shutil.copy(path, schema)
        (schema / "999-unreadable.sql").mkdir()
        with scratch_database(repo_root, state_dir, db, schema_dir=schema) as admin:
            done = subprocess.run([*admin, "migrate"], capture_output=True, text=True, timeout=120)
            assert done.returncode == 1, done
            assert f"cannot read {schema}/999-unreadable.sql: Is a directory" in done.stderr, done.stderr
            applied = root_sql(state_dir, f"SELECT version FROM {db}.schema_migrations").split()
            assert "999-unreadable.sql" not in applied
    finally:
        shutil.rmtree(schema, ignore_errors=True)


def test_a_failed_migration_stops_migrate_and_is_not_recorded(repo_root, state_dir):
    """README 4: a failed command exits 1 with the reason on stderr; the
    migrations after the failed one are not tried, and it is not recorded
    as applied. A schema directory that is not there is said too."""
    db = "carebot_failed_migration_test"
    schema = pathlib.Path(tempfile.mkdtemp(prefix="carebot-schema-"))
    try:
        (schema / "001-ok.sql").write_text("CREATE TABLE IF NOT EXISTS first_one (id INT);\n")
        (schema / "002-broken.sql").write_text("THIS IS NOT SQL;\n")
        (schema / "003-later.sql").write_text("CREATE TABLE IF NOT EXISTS later_one (id INT);\n")
        with scratch_database(repo_root, state_dir, db, schema_dir=schema) as admin:
            done = subprocess.run([*admin, "migrate"], capture_output=True, text=True, timeout=120)
            assert done.returncode == 1, done.stderr
            assert "migration 002-broken.sql failed" in done.stderr, done.stderr
            assert done.stdout == "applied 001-ok.sql\n", done.stdout
            applied = root_sql(state_dir, f"SELECT version FROM {db}.schema_migrations").split()
            assert applied == ["001-ok.sql"]
            assert root_sql(state_dir, f"SHOW TABLES IN {db} LIKE 'later_one'") == ""
        with scratch_database(repo_root, state_dir, db, schema_dir=schema / "gone") as admin:
            done = subprocess.run([*admin, "migrate"], capture_output=True, text=True, timeout=120)
            assert done.returncode == 1, done.stderr
            assert f"cannot list {schema / 'gone'}: No such file or directory" in done.stderr, done.stderr
    finally:
        shutil.rmtree(schema, ignore_errors=True)


def test_workers_on_an_older_schema_answer_503_and_health_says_so(api, state_dir):
    """An operator who installs new workers and forgets `migrate` used to get
    500s from the requests that met what was missing, and health said ok."""
    try:
        sql(state_dir, "RENAME TABLE login_limits TO login_limits_gone")
        r = api.post("/api/auth/login", json={"username": "admin", "password": "wrong-password"})
        assert_error(r, 503, "unavailable")
        assert "carebot-admin migrate" in r.json()["error"]["message"]
    finally:
        sql(state_dir, "RENAME TABLE login_limits_gone TO login_limits")
    version = migrations_version(state_dir)
    try:
        sql(state_dir, f"DELETE FROM schema_migrations WHERE version = '{version}'")
        r = api.get("/api/health")
        assert r.status_code == 503, r.text
        body = r.json()
        assert (body["status"], body["database"], body["realtime"]) == ("degraded", "down", "ok")
        assert "carebot-admin migrate" in body["error"]["message"]
    finally:
        sql(state_dir, f"INSERT IGNORE INTO schema_migrations (version) VALUES ('{version}')")
    assert api.get("/api/health").status_code == 200


def migrations_version(state_dir):
    return sql(state_dir, "SELECT MAX(version) FROM schema_migrations").strip()
