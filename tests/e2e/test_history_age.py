"""The history pages' maximum age (README 2, "History pages"): what carebot cannot
see, a change made by hand in MariaDB, shows once a kept page is older than
history_cache_max_age_ms. An old page is not read again: MariaDB is asked
whether the chat's newest message and state are still those of the page, and
only a changed chat is read anew.

The module shortens the age to one second (in carebot.conf, which the workers
read when they start), replaces the workers, and puts both back afterwards.
"""

import contextlib
import os
import re
import signal
import subprocess
import time

import pytest

from chathelp import World, assert_error, ok

AGE_MS = 1000
ROUNDS = 24


def read_conf(state_dir):
    return (state_dir / "carebot.conf").read_text()


def replace_workers(api, pool_pids):
    """TERM every worker (idle ones end at once); multiwatch starts new ones, which read the conf."""
    before = pool_pids()
    for pid in before:
        os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 30
    while time.time() < deadline:
        now = pool_pids()
        if len(now) == len(before) and not set(now) & set(before):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the workers were not replaced: before {before}, now {pool_pids()}")
    while time.time() < deadline:
        if api.get("/api/health").status_code == 200:
            return
        time.sleep(0.1)
    pytest.fail("the new workers do not answer")


@contextlib.contextmanager
def conf_setting(api, pool_pids, state_dir, key, value):
    """key = value in carebot.conf for new workers, then the conf and workers as they were."""
    if os.environ.get(f"CAREBOT_{key.upper()}") is not None:
        pytest.skip(f"the environment fixes {key}; the conf cannot change it")
    original = read_conf(state_dir)
    line = f"{key} = {value}"
    changed, n = re.subn(rf"(?m)^{key}\s*=.*$", lambda _: line, original)
    (state_dir / "carebot.conf").write_text(changed if n else original + line + "\n")
    replace_workers(api, pool_pids)
    try:
        yield
    finally:
        (state_dir / "carebot.conf").write_text(original)
        replace_workers(api, pool_pids)


@pytest.fixture(scope="module")
def short_age(api, pool_pids, state_dir):
    with conf_setting(api, pool_pids, state_dir, "history_cache_max_age_ms", AGE_MS):
        yield AGE_MS


@pytest.fixture
def w(api, admin_token, token_for):
    return World(api, admin_token, token_for)


def sql(state_dir, text):
    """Runs text in the mariadb client as the instance's user; its output, without headers."""
    conf = dict(re.findall(r"(?m)^(\w+)[ \t]*=[ \t]*(.*?)[ \t]*$", read_conf(state_dir)))
    done = subprocess.run(
        ["mariadb", f"--socket={conf['db_socket']}", f"-u{conf['db_user']}",
         f"-p{conf['db_password']}", conf["db_name"], "-N", "-e", text],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def sql_value(state_dir, query):
    """The one integer query answers."""
    return int(sql(state_dir, query))


def newest(api, chat_id, token):
    r = api.get(f"/api/chats/{chat_id}/messages", token=token)
    assert r.status_code == 200, r.text
    return [m["content"] for m in r.json()], int(r.headers["X-Total-Count"])


def after_the_age(age_ms):
    time.sleep(age_ms / 1000 * 1.5)


def test_a_message_written_by_hand_shows_after_the_age(w, api, state_dir, short_age):
    dept = w.department()
    agent = w.agent(dept["id"], presence="available")
    customer = w.customer()
    chat = w.chat(customer, department_id=dept["id"], message="typed in the widget")
    first = [newest(api, chat["id"], agent["token"]) for _ in range(ROUNDS)]
    assert all(p == first[0] for p in first), first
    after_the_age(short_age)
    # An unchanged page, confirmed rather than read again, is still the same page.
    assert all(newest(api, chat["id"], agent["token"]) == first[0] for _ in range(ROUNDS))
    sql(state_dir, "INSERT INTO messages (chat_id, sender_id, sender_role, content) "
                   f"VALUES ({chat['id']}, NULL, 'system', 'written by hand')")
    after_the_age(short_age)
    expected = (first[0][0] + ["written by hand"], first[0][1] + 1)
    assert all(newest(api, chat["id"], agent["token"]) == expected for _ in range(ROUNDS))


def test_a_chat_moved_by_hand_is_checked_after_the_age(w, api, state_dir, short_age):
    dept, other = w.department(), w.department()
    w.agent(dept["id"], presence="available")
    colleague = w.agent(dept["id"])
    customer = w.customer()
    chat = w.chat(customer, department_id=dept["id"], message="hello")
    assert all(newest(api, chat["id"], colleague["token"])[0][0] == "hello" for _ in range(ROUNDS))
    # The page's messages stay; only the state the access check needs changes.
    sql(state_dir, f"UPDATE chats SET department_id = {other['id']}, agent_id = NULL, "
                   f"status = 'waiting' WHERE id = {chat['id']}")
    after_the_age(short_age)
    path = f"/api/chats/{chat['id']}/messages"
    for _ in range(ROUNDS):
        assert_error(api.get(path, token=colleague["token"]), 403, "forbidden")
    ok(api.get(path, token=customer["token"]))
