"""Contract 6.2.7 under load: chats created from 16 threads while agents
toggle presence, chats close and `carebot-admin reassign` runs, then the
invariants (capacity, one agent per chat, counts agree, no idle agent beside
a waiting chat); an agent's heartbeats and presence racing its assignments,
and its posts racing its presence and the reassign sweep (no 5xx); and 200
messages posted at once into one chat.

Every test runs twice, once for each kind of chat mutex (README 6,
"Order"): the host's record locks on chat_mutex_file, which tools/carebot
configures, and MariaDB named locks, the kind for several hosts sharing one
database, whose waits, release (sent without waiting for its answer) and
deadlock detection are MariaDB's. The module empties the setting and
replaces the workers for the second run (test_chat_mutex.named_locks), and
puts both back afterwards."""

import collections
import concurrent.futures
import random
import threading
import time

import pytest

from chathelp import World, ok, reassign_counts
from test_chat_mutex import conf_value, named_locks

AGENTS = 4
MAX_CHATS = 2
THREADS = 16
CHATS_PER_THREAD = 4  # 64 chats


@pytest.fixture(scope="module", autouse=True, params=["host", "database"])
def mutex_kind(request, api, pool_pids, state_dir):
    if request.param == "host":
        if not conf_value(state_dir, "chat_mutex_file"):
            pytest.skip("this instance has no chat_mutex_file")
        yield request.param
        return
    with named_locks(api, pool_pids, state_dir):
        yield request.param


def test_assignment_invariants_under_concurrency(api, admin_token, token_for, admin_cli):
    w = World(api, admin_token, token_for)
    dept = w.department()
    agents = [w.agent(dept["id"], max_chats=MAX_CHATS, presence="available") for _ in range(AGENTS)]
    customers = [w.customer() for _ in range(THREADS)]
    done = threading.Event()
    errors = []
    created = []
    toggles, sweeps = [], []

    def customer_loop(cust):
        rnd = random.Random(cust["id"])
        for _ in range(CHATS_PER_THREAD):
            r = api.post("/api/chats/", token=cust["token"],
                         json={"department_id": dept["id"], "message": "help"})
            if r.status_code != 201:
                errors.append(r.text)
                continue
            chat = r.json()
            created.append(chat["id"])
            if rnd.random() < 0.5:
                r = api.put(f"/api/chats/{chat['id']}/close", token=cust["token"])
                # The agent may have closed it first: that is a 409 chat_closed, not a fault.
                if r.status_code != 200 and not (r.status_code == 409 and "chat_closed" in r.text):
                    errors.append(r.text)

    def agent_loop(agent):
        rnd = random.Random(agent["id"])
        while not done.is_set():
            status = rnd.choice(["available", "available", "busy", "offline"])
            r = api.put(f"/api/users/{agent['id']}/status", token=agent["token"], json={"status": status})
            if r.status_code != 200:
                errors.append(r.text)
            toggles.append(status)
            # Agents also close some of their chats, so capacity comes and goes.
            mine = api.get(f"/api/chats/?agent_id={agent['id']}&status=active", token=agent["token"]).json()
            if mine and rnd.random() < 0.5:
                r = api.put(f"/api/chats/{mine[0]['id']}/close", token=agent["token"])
                if r.status_code not in (200, 409):
                    errors.append(r.text)

    def reassign_loop():
        while not done.is_set():
            sweeps.append(reassign_counts(admin_cli, "--offline-after", "3600"))

    with concurrent.futures.ThreadPoolExecutor(THREADS + AGENTS + 2) as pool:
        side = [pool.submit(agent_loop, a) for a in agents] + [pool.submit(reassign_loop) for _ in range(2)]
        for f in [pool.submit(customer_loop, c) for c in customers]:
            f.result()
        done.set()
        for f in side:
            f.result()
    assert not errors, errors[:5]
    assert len(created) == THREADS * CHATS_PER_THREAD
    assert sweeps and len(toggles) >= AGENTS  # the chaos did happen

    # Everyone comes back: the waiting chats must now be served up to capacity.
    for a in agents:
        w.presence(a["id"], "available")
    chats = w.chats(department_id=dept["id"], limit=200)
    assert {c["id"] for c in chats} >= set(created)
    waiting = [c for c in chats if c["status"] == "waiting"]
    spare = 0
    for a in agents:
        user = w.user(a["id"])
        held = w.chats(agent_id=a["id"], status="active", limit=200)
        assert user["active_chats"] == len(held) <= MAX_CHATS, (user, held)
        assert all(c["department_id"] == dept["id"] for c in held)
        spare += MAX_CHATS - user["active_chats"]
    assert not (waiting and spare), f"{len(waiting)} waiting while {spare} seats are free"
    # FIFO: whatever still waits is younger than everything that was assigned after it queued.
    positions = sorted(c["queue_position"] for c in waiting)
    assert positions == list(range(1, len(waiting) + 1))

    # One agent per chat, ever: each "joined" is followed by a "left" before the next "joined".
    for c in chats:
        held = 0
        for m in w.messages(c["id"], limit=500):
            if m["sender_role"] != "system":
                continue
            if m["content"].endswith(" joined the chat."):
                held += 1
            elif m["content"].endswith(" left; you are back in the queue."):
                held -= 1
            assert held in (0, 1), (c["id"], m)
        assert held == {"active": 1, "waiting": 0}.get(c["status"], held), c


def test_heartbeats_racing_assignments_never_fail(api, admin_token, token_for):
    """An assignment holds a shared lock on the agent's row (the foreign key
    of chats.agent_id) and then updates the row; a heartbeat's update between
    the two was InnoDB's deadlock victim and came back as a 500."""
    w = World(api, admin_token, token_for)
    dept = w.department()
    agent = w.agent(dept["id"], max_chats=100, presence="available")
    cust = w.customer()
    stop = threading.Event()
    answers = collections.Counter()
    failures = []

    def note(kind, r, expected):
        answers[kind, r.status_code] += 1
        if r.status_code != expected:
            failures.append((kind, r.status_code, r.text))

    def heartbeats(token):
        while not stop.is_set():
            note("heartbeat", api.post(f"/api/users/{agent['id']}/heartbeat", token=token), 204)

    def chats():
        while not stop.is_set():
            r = api.post("/api/chats/", token=cust["token"], json={"department_id": dept["id"]})
            note("create", r, 201)
            if r.status_code == 201:
                note("close", api.put(f"/api/chats/{r.json()['id']}/close", token=agent["token"]), 200)

    def presence():
        while not stop.is_set():
            note("presence", api.put(f"/api/users/{agent['id']}/status", token=agent["token"],
                                     json={"status": "available"}), 200)

    def ran_enough():
        return answers["heartbeat", 204] > 100 and answers["create", 201] > 100

    loops = [(heartbeats, agent["token"])] * 3 + [(heartbeats, admin_token)] * 3 + [(chats,)] * 6 + [(presence,)] * 2
    with concurrent.futures.ThreadPoolExecutor(len(loops)) as pool:
        running = [pool.submit(*loop) for loop in loops]
        # 8 s, and on a slower machine on until the race has run as often as
        # it must (below); the deadline only ends a run that is stuck.
        deadline = time.monotonic() + 120
        time.sleep(8)
        while not ran_enough() and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        for f in running:
            f.result()
    assert ran_enough(), answers  # the race did run
    assert not failures, (len(failures), failures[:3], answers)


def an_agent_with_a_chat(api, admin_token, token_for):
    """A fresh department whose one available agent holds one chat."""
    w = World(api, admin_token, token_for)
    dept = w.department()
    agent = w.agent(dept["id"], presence="available")
    chat = w.chat(w.customer(), department_id=dept["id"])
    assert chat["agent_id"] == agent["id"]
    return w, agent, chat


def agent_posts(api, agent, chat, more, answers, failures):
    """The agent posts into its chat while more(number of posts so far) is true,
    every other post with an Idempotency-Key (its claim reads the poster's row
    too). A 403 is no failure: the chat is waiting for the agent to come back."""
    i = 0
    while more(i):
        key = {"Idempotency-Key": f"{chat['id']}-{i}"} if i % 2 else None
        r = api.post(f"/api/chats/{chat['id']}/messages", token=agent["token"], json={"content": f"m{i}"},
                     headers=key)
        answers["post", r.status_code] += 1
        if r.status_code not in (201, 403):
            failures.append(("post", r.status_code, r.text))
        i += 1


def test_an_agent_posting_while_its_presence_flips(api, admin_token, token_for):
    """A post holds its chat's mutex and then reads the poster's row (the
    foreign key of messages.sender_id); going offline held the agent's row
    and then waited for the mutexes of its chats, to requeue them. Each
    waited for the other until one gave up after 10 s, with a 500."""
    w, agent, chat = an_agent_with_a_chat(api, admin_token, token_for)
    answers = collections.Counter()
    failures = []

    def post():
        agent_posts(api, agent, chat, lambda i: i < 60, answers, failures)

    def flip():
        for _ in range(12):
            for presence in ("offline", "available"):
                r = api.put(f"/api/users/{agent['id']}/status", token=admin_token, json={"status": presence})
                answers["flip", r.status_code] += 1
                if r.status_code != 200:
                    failures.append(("flip", r.status_code, r.text))

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(post), pool.submit(flip)]:
            f.result()
    assert answers["post", 201] > 0 and answers["flip", 200] == 24, answers
    assert not failures, (failures[:3], answers)
    stored = [m["content"] for m in w.messages(chat["id"], limit=500) if m["sender_role"] == "agent"]
    assert len(stored) == answers["post", 201]


def test_an_agent_posting_while_reassign_times_it_out(api, admin_token, token_for, admin_cli):
    """As above, with `reassign` setting the silent agent offline: its sweep
    locked the agent's row before the mutexes of the agent's chats."""
    _, agent, chat = an_agent_with_a_chat(api, admin_token, token_for)
    stop = threading.Event()
    answers = collections.Counter()
    failures = []

    def post():
        agent_posts(api, agent, chat, lambda i: not stop.is_set(), answers, failures)

    def come_back():
        while not stop.is_set():
            r = api.put(f"/api/users/{agent['id']}/status", token=admin_token, json={"status": "available"})
            if r.status_code != 200:
                failures.append(("back", r.status_code, r.text))
            time.sleep(0.05)

    sweeps = []
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        side = [pool.submit(post), pool.submit(come_back)]
        for _ in range(12):
            sweeps.append(reassign_counts(admin_cli, "--offline-after", "0"))
        stop.set()
        for f in side:
            f.result()
    assert sum(s["timed_out"] for s in sweeps) > 0 and answers["post", 201] > 0, (sweeps, answers)
    assert not failures, (failures[:3], answers)


def test_two_hundred_messages_at_once(api, admin_token, token_for):
    w = World(api, admin_token, token_for)
    dept = w.department()
    agent = w.agent(dept["id"], presence="available")
    cust = w.customer()
    chat = w.chat(cust, department_id=dept["id"])
    senders = [cust, agent, {"token": admin_token}, cust] * 2

    def send(t):
        ids = []
        for i in range(25):
            r = api.post(f"/api/chats/{chat['id']}/messages", token=senders[t]["token"],
                         json={"content": f"t{t}-{i}"})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        return ids

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        per_thread = list(pool.map(send, range(8)))
    for ids in per_thread:
        assert ids == sorted(ids)
    history = [m for m in w.messages(chat["id"], limit=500) if m["sender_role"] != "system"]
    assert len(history) == 200
    assert sorted(m["id"] for m in history) == sorted(i for ids in per_thread for i in ids)
    assert {m["content"] for m in history} == {f"t{t}-{i}" for t in range(8) for i in range(25)}
    for t, ids in enumerate(per_thread):
        got = [m["content"] for m in history if m["content"].startswith(f"t{t}-")]
        assert got == [f"t{t}-{i}" for i in range(25)]  # ascending ids keep each sender's order


def test_a_list_and_its_total_are_one_snapshot(api, admin_token, token_for):
    """X-Total-Count was counted by one statement and the page read by
    another, so a chat created or closed (or an agent's presence changed) in
    between made the header disagree with the page it came with (an audit:
    a third of the reads while chats came and went). Both now come from one
    statement; on a page that holds the whole list they must agree."""
    w = World(api, admin_token, token_for)
    dept = w.department()  # no agent: every chat waits
    agents = [w.agent(dept["id"], max_chats=1) for _ in range(3)]
    customers = [w.customer() for _ in range(4)]
    stop = threading.Event()
    errors = []

    def churn(cust):
        while not stop.is_set():
            r = api.post("/api/chats/", token=cust["token"], json={"department_id": dept["id"]})
            if r.status_code != 201:
                errors.append(r.text)
                return
            if api.put(f"/api/chats/{r.json()['id']}/close", token=cust["token"]).status_code != 200:
                errors.append("close")
                return

    def flip(agent):
        presence = ["available", "busy"]
        while not stop.is_set():
            presence.reverse()
            api.put(f"/api/users/{agent['id']}/status", token=agent["token"], json={"status": presence[0]})

    lists = [f"/api/chats/?department_id={dept['id']}&status=waiting",
             f"/api/users/?department_id={dept['id']}&status=available",
             f"/api/users/agents/available?department_id={dept['id']}"]
    reads, wrong = 0, []
    with concurrent.futures.ThreadPoolExecutor(len(customers) + len(agents)) as pool:
        workers = [pool.submit(churn, c) for c in customers] + [pool.submit(flip, a) for a in agents]
        try:
            # 4 s, and on a slower machine on until 30 reads (the deadline
            # only ends a run that is stuck)
            start = time.monotonic()
            while (time.monotonic() < start + 4 or reads < 30) and time.monotonic() < start + 120:
                for path in lists:
                    r = api.get(path, token=admin_token)
                    assert r.status_code == 200, r.text
                    reads += 1
                    if int(r.headers["X-Total-Count"]) != len(r.json()):
                        wrong.append((path, r.headers["X-Total-Count"], len(r.json())))
        finally:
            stop.set()
            for f in workers:
                f.result()
    assert not errors, errors[:3]
    assert reads >= 30 and not wrong, (reads, wrong[:5])
