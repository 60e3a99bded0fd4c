"""Issue 5, stability under load: about a minute of publishing at full speed
through the API into chats that have hundreds of WebSocket subscribers.
nginx (one process, Nchan's in-memory store) must not grow without bound and
must not crash; no FastCGI worker may die. Bounded in time; no timing is
asserted."""

import threading
import time

from conftest import children
from test_realtime import Org

import rt

SUBSCRIBERS_PER_CHAT = 100
CHATS = 3
PUBLISH_SECONDS = 45
WARMUP_SECONDS = 15


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_soak_memory_flat_and_nobody_dies(base_url, api, admin_token, token_for, state_dir, pool_pids):
    org = Org(api, admin_token, token_for)
    dept = org.department()
    agent = org.agent(dept, max_chats=10)
    customers = [org.customer() for _ in range(CHATS)]
    chats = [org.chat(c, dept) for c in customers]
    master = int((state_dir / "run" / "nginx.pid").read_text())
    nginx_workers = children(master)
    assert len(nginx_workers) == 1, nginx_workers
    workers = pool_pids()

    subs = [rt.WebSocket(base_url, f"chat/{chat['id']}", token=admin_token).start()
            for chat in chats for _ in range(SUBSCRIBERS_PER_CHAT)]
    stop = time.monotonic() + PUBLISH_SECONDS
    sent = [0] * (CHATS * 2)
    failures = []

    def publish(n):
        chat, customer = chats[n % CHATS], customers[n % CHATS]
        token = customer["token"] if n < CHATS else agent["token"]
        while time.monotonic() < stop:
            r = api.post(f"/api/chats/{chat['id']}/messages", token=token, json={"content": f"soak {n} {sent[n]}"})
            if r.status_code != 201:
                failures.append(r.status_code)
            sent[n] += 1

    samples = []
    threads = [threading.Thread(target=publish, args=(n,)) for n in range(CHATS * 2)]
    start = time.monotonic()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        samples.append((time.monotonic() - start, rss_kib(nginx_workers[0])))
        time.sleep(1)
    for t in threads:
        t.join()
    time.sleep(1)
    received = [len(s.events) for s in subs]
    for s in subs:
        s.close()

    print(f"\nsoak: {sum(sent)} messages in {PUBLISH_SECONDS}s to {len(subs)} subscribers; "
          f"nginx RSS {samples[0][1]} -> {samples[-1][1]} KiB; min/max received {min(received)}/{max(received)}")
    assert failures == []
    assert sum(sent) > 0 and min(received) > 0
    assert children(master) == nginx_workers, "the nginx worker process died and was replaced"
    assert pool_pids() == workers
    # Flat: after the warm-up (buffers of 200 messages per channel filling), the
    # resident size may wobble but not keep growing with the message count.
    settled = [kib for t, kib in samples if t >= WARMUP_SECONDS]
    assert settled, samples
    assert max(settled) - settled[0] < 16 * 1024, samples
    assert api.get("/api/health").json()["status"] == "ok"
