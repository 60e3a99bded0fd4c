#!/usr/bin/python3
"""bench.py - the driver behind `tools/carebot bench` (issue 6).

tools/carebot boots a throwaway instance (its own state dir, free ports, the
optimized build), adds the bench-only nginx server of bench/nginx-bench.conf.in,
starts the fcgi-hello pool, then runs

    bench.py run    --state DIR --port N --bench-port N [--massif-port N] ...
    bench.py report --results FILE [--massif FILE] --output RESULTS.md --command "..."

`run` loads the dataset (bench/dataset.sql, tokens from carebot-admin), runs
the ceilings and the workloads and reads the resident sizes; it writes one
JSON file. `report` turns that (and the massif output of the one worker run
under valgrind, once its pool is stopped) into the table, printed and
written as Markdown. Exit status of `run`: 1 when a workload could not run
at all (its probe request failed, its tool failed, more than 1 % of its
requests were errors, or it did not do what its label says: c with no
chat assigned, e with duplicate or misrouted deliveries) or a FastCGI or
nginx worker died during the run, never because of a timing.
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

FULL = dict(chats=2000, per_chat=100, open=200, agents_per_dept=10)
SMOKE = dict(chats=40, per_chat=20, open=20, agents_per_dept=10)
ERROR_BUDGET = 0.01  # more errors than this and a workload "did not run"
PAUSE_MS = 5  # the pause meter notes every CPU that stood still this long or longer


def say(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# --- the instance ---------------------------------------------------------------


class Instance:
    def __init__(self, a):
        self.state = a.state
        self.port = a.port
        self.admin = a.admin
        self.conf = {}
        with open(os.path.join(a.state, "carebot.conf")) as f:
            for line in f:
                m = re.match(r"^\s*(\w+)\s*=\s*(.*?)\s*$", line)
                if m and not line.lstrip().startswith("#"):
                    self.conf[m.group(1)] = m.group(2)

    def sql(self, text, timeout=600):
        """Runs SQL text as the application's user; returns the rows (tab-separated)."""
        c = self.conf
        out = subprocess.run(
            ["mariadb", f"--socket={c['db_socket']}", f"-u{c['db_user']}", f"-p{c['db_password']}",
             "--batch", "--skip-column-names", c["db_name"]],
            input=text, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"mariadb: {out.stderr.strip()}")
        return [line.split("\t") for line in out.stdout.splitlines() if line]

    def token(self, username):
        out = subprocess.run([self.admin, "-c", os.path.join(self.state, "carebot.conf"), "token", username],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f"carebot-admin token {username}: {out.stderr.strip()}")
        return out.stdout.strip()

    def tokens(self, usernames):
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            return dict(zip(usernames, ex.map(self.token, usernames)))


def load_dataset(inst, sizes):
    t = time.time()
    with open(os.path.join(HERE, "dataset.sql")) as f:
        body = f.read()
    head = "SET @chats = {chats}, @per_chat = {per_chat}, @open = {open}, " \
           "@agents_per_dept = {agents_per_dept};\n".format(**sizes)
    row = inst.sql(head + body)[-1]
    counts = dict(zip(["departments", "agents", "chats", "open_chats", "messages"], map(int, row)))
    counts["seconds"] = round(time.time() - t, 2)
    say("dataset: {departments} departments, {agents} agents, {chats} chats ({open_chats} open), "
        "{messages} messages in {seconds} s".format(**counts))
    return counts


def make_targets(inst, workdir):
    """Tokens and the wrk target files; returns what the workloads need."""
    chats = inst.sql("SELECT c.id, c.status, c.department_id, a.username, u.username "
                     "FROM chats c JOIN users a ON a.id = c.agent_id JOIN users u ON u.id = c.customer_id "
                     "WHERE c.subject LIKE 'Bench chat %' ORDER BY c.id")
    agents = sorted({r[3] for r in chats})
    open_chats = [r for r in chats if r[1] != "closed"]
    t = time.time()
    tok = inst.tokens(agents + [r[4] for r in open_chats])
    say(f"{len(tok)} tokens from carebot-admin in {time.time() - t:.1f} s")
    depts = sorted({r[2] for r in chats}, key=int)
    files = {
        "a": [f"{tok[r[3]]} {r[0]}" for r in chats],
        "b": [f"{tok[r[4]]} {r[0]}" for r in open_chats],
        "c": [f"{tok[r[4]]} {depts[i % len(depts)]}" for i, r in enumerate(open_chats)],
        "pub": [f"x {i}" for i in range(1, 201)],
    }
    paths = {}
    for name, lines in files.items():
        paths[name] = os.path.join(workdir, f"targets-{name}.txt")
        with open(paths[name], "w") as f:
            f.write("\n".join(lines) + "\n")
    return dict(paths=paths, chats=chats, open_chats=open_chats, tok=tok)


# --- running the tools -----------------------------------------------------------------


def bench_json(text):
    for line in text.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    return None


def page_bytes(api, tg, n=20):
    """The mean size of a page of workload a (over its first n chats)."""
    sizes = []
    for chat in tg["chats"][:n]:
        req = urllib.request.Request(f"{api}/api/chats/{chat[0]}/messages?limit=50",
                                     headers={"Authorization": f"Bearer {tg['tok'][chat[3]]}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                sizes.append(len(r.read()))
        except OSError:
            pass
    return int(sum(sizes) / len(sizes)) if sizes else 0


def http_probe(method, url, token=None, body=None):
    """One request before a workload, so a missing endpoint is reported as such."""
    headers = {}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(300).decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read(300).decode(errors="replace")
    except OSError as e:
        return 0, str(e)


def steal_ticks():
    """Time the host ran something else on this machine's CPUs, all CPUs, in USER_HZ ticks."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) if len(fields) > 8 else 0


def disk_counters(diskstats, dev):
    """From /proc/diskstats text, device dev's (major, minor) sectors written, discards
    completed and flushes completed; None if the kernel does not count them."""
    for line in diskstats.splitlines():
        x = line.split()
        if len(x) >= 20 and (int(x[0]), int(x[1])) == dev:
            return dict(sectors_written=int(x[9]), discards=int(x[14]), flushes=int(x[18]))
    return None


def read_disk(path):
    """disk_counters of the block device holding path (None for a filesystem without one)."""
    dev = os.stat(path).st_dev
    try:
        with open("/proc/diskstats") as f:
            return disk_counters(f.read(), (os.major(dev), os.minor(dev)))
    except OSError:
        return None


def timed_run(a, cmd, **kw):
    """subprocess.run, and the window it ran in: wall-clock start and end, steal ticks over it,
    and what the disk under MariaDB's datadir did meanwhile."""
    datadir = os.path.join(a.state, "mysql")
    start, steal, disk = time.time(), steal_ticks(), read_disk(datadir)
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    end, after = time.time(), read_disk(datadir)
    delta = {k: after[k] - disk[k] for k in disk} if disk and after else None
    return out, dict(start=start, end=end, steal_ticks=steal_ticks() - steal, disk=delta)


def run_wrk(a, url, mode, targets=None, connections=None, duration=None, warm=True):
    """wrk for the duration; first, unmeasured, for a.warmup seconds unless warm is False."""
    conns = connections or a.connections
    dur = duration or a.duration
    threads = max(1, min(os.cpu_count() or 1, conns))
    env = dict(os.environ, BENCH_MODE=mode, BENCH_TARGETS=targets or "")

    def command(seconds):
        return ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s",
                "-s", os.path.join(HERE, "wrk", "api.lua"), url]
    if warm and a.warmup > 0:
        # Steady state: connections open, caches and MariaDB's buffer pool warm.
        subprocess.run(command(a.warmup), capture_output=True, env=env, timeout=a.warmup + 60)
    try:
        out, window = timed_run(a, command(dur), env=env, timeout=dur + 60)
    except subprocess.TimeoutExpired:
        return dict(ok=False, why="wrk did not finish")
    r = bench_json(out.stdout)
    if out.returncode != 0 or r is None:
        return dict(ok=False, why=f"wrk failed: {(out.stderr or out.stdout).strip()[-300:]}")
    res = judge_wrk(r)
    res.update(connections=conns, window=window)
    return res


def judge_wrk(r):
    """The figures of one wrk run (its BENCH_JSON) and whether it ran: only answers under 400
    that came within wrk's timeout count as throughput. wrk counts an answer of 400 or more as
    a status error, and a request slower than its --timeout as a timeout, which it leaves out of
    the latencies while still counting the request: both are errors here."""
    secs = r["duration_us"] / 1e6
    socket = r["connect_errors"] + r["read_errors"] + r["write_errors"]
    errors = socket + r["status_errors"] + r["timeouts"]
    good = max(0, r["requests"] - r["status_errors"] - r["timeouts"])
    res = dict(ok=True, rps=good / secs if secs else 0, p50=r["p50_us"] / 1000, p99=r["p99_us"] / 1000,
               max=r["max_us"] / 1000, requests=r["requests"], errors=errors, timeouts=r["timeouts"],
               seconds=round(secs, 2), raw=r)
    if good <= 0 or errors > ERROR_BUDGET * max(1, r["requests"]):
        res.update(ok=False, why=f"{errors} errors in {r['requests']} requests "
                                 f"(non-2xx {r['status_errors']}, socket {socket}, timeouts {r['timeouts']})")
    return res


def run_sql(a, inst, mode):
    c = inst.conf
    cmd = [os.path.join(a.bin, "sql-bench"), "--socket", c["db_socket"], "--user", c["db_user"],
           "--password", c["db_password"], "--db", c["db_name"], "--mode", mode,
           "--threads", str(a.workers), "--duration", str(a.duration)]
    try:
        out, window = timed_run(a, cmd, timeout=a.duration + 60)
    except subprocess.TimeoutExpired:
        return dict(ok=False, why="sql-bench did not finish")
    if out.returncode != 0:
        return dict(ok=False, why=f"sql-bench failed: {out.stderr.strip()[-300:]}")
    r = json.loads(out.stdout)
    res = dict(ok=r["ops"] > 0, rps=r["ops_per_s"], p50=r["p50_ms"], p99=r["p99_ms"], max=r["max_ms"],
               requests=r["ops"], errors=r["errors"], connections=r["threads"], seconds=r["seconds"],
               window=window, raw=r)
    if not res["ok"] or r["errors"] > ERROR_BUDGET * max(1, r["ops"]):
        res.update(ok=False, why=f"{r['errors']} errors in {r['ops']} operations")
    return res


def run_deliver(a, inst, tg, workdir):
    open_chats = tg["open_chats"]
    nchats = max(1, min(200, len(open_chats), a.subscribers // 5 or 1))
    per = [a.subscribers // nchats + (1 if i < a.subscribers % nchats else 0) for i in range(nchats)]
    chats = []
    for (cid, _st, _d, agent, cust), n in zip(open_chats[:nchats], per):
        # The chat's customer and its agent, in turn (a few tabs each).
        subs = [tg["tok"][cust] if i % 2 == 0 else tg["tok"][agent] for i in range(n)]
        chats.append(dict(id=int(cid), post_token=tg["tok"][cust], sub_tokens=subs))
    cfg_path = os.path.join(workdir, "deliver.json")
    with open(cfg_path, "w") as f:
        json.dump(dict(port=a.port, rate=a.rate, duration=a.duration, chats=chats), f)
    try:
        out, window = timed_run(a, ["node", os.path.join(HERE, "deliver.js"), cfg_path],
                                timeout=a.duration + 120, cwd=HERE)
    except subprocess.TimeoutExpired:
        return dict(ok=False, why="deliver.js did not finish")
    r = bench_json(out.stdout)
    if out.returncode != 0 or r is None:
        return dict(ok=False, why=f"deliver.js failed: {out.stderr.strip()[-300:]}")
    res = dict(ok=True, rps=r["rate_achieved"], p50=r["p50_ms"], p99=r["p99_ms"], max=r["max_ms"],
               requests=r["sent"], errors=r["post_errors"] + r["subscribe_errors"], chats=nchats,
               connections=r["subscribers_open"], seconds=a.duration, window=window, raw=r)
    why = deliver_problems(r)
    if why:
        res.update(ok=False, why="; ".join(why))
    return res


def deliver_problems(r):
    """Why e did not run as it says (deliver.js's BENCH_JSON), if it did not."""
    why = []
    if r["subscribe_errors"]:
        why.append(f"{r['subscribe_errors']} of {r['subscribers']} subscriptions failed "
                   f"({r['subscribe_error_sample']})")
    if r["post_errors"] > ERROR_BUDGET * max(1, r["sent"]):
        why.append(f"{r['post_errors']} of {r['sent']} POSTs failed ({r['post_error_sample']})")
    if r["lost"] > ERROR_BUDGET * max(1, r["expected"]) or r["delivered"] == 0:
        why.append(f"{r['lost']} of {r['expected']} deliveries missing")
    # Nchan sends each message once on a WebSocket, and only to its channel's subscribers.
    if r.get("duplicates"):
        why.append(f"{r['duplicates']} messages arrived twice at one subscriber")
    if r.get("misrouted"):
        why.append(f"{r['misrouted']} messages arrived at a subscriber of another chat")
    return why


# --- c: create + assign, with agents available --------------------------------------------

C_SUBJECT = "bench chat"  # the subject of every chat workload c creates (bench/wrk/api.lua)
C_SEAT_SHARE = 0.7  # of the free seats c's measured run may expect to take, at its warm-up's rate


def free_seats(inst):
    """Per department, the seats the assignment can fill: max_chats less active chats of every
    agent it considers (active, available, in an active department; fcgi/db-assign.c)."""
    rows = inst.sql(
        "SELECT u.department_id, SUM(GREATEST(0, u.max_chats - (SELECT COUNT(*) FROM chats c "
        "  WHERE c.agent_id = u.id AND c.status = 'active'))) "
        "FROM users u JOIN departments d ON d.id = u.department_id "
        "WHERE u.role = 'agent' AND u.is_active AND u.presence = 'available' "
        "  AND d.is_active AND d.deleted_at IS NULL GROUP BY u.department_id")
    return {int(d): int(n) for d, n in rows}


def created_by_c(inst):
    """c's chats in the database, per department and status."""
    out = {}
    for d, status, n in inst.sql(f"SELECT department_id, status, COUNT(*) FROM chats "
                                 f"WHERE subject = '{C_SUBJECT}' AND status <> 'closed' "
                                 f"GROUP BY department_id, status"):
        out.setdefault(int(d), {})[status] = int(n)
    return out


def fit_duration(duration, seats, created, seconds):
    """c's measured seconds: the asked duration, or less when at the rate of its warm-up (created
    chats in seconds) it would take more than C_SEAT_SHARE of the free seats. A chat that finds
    every agent full waits in the queue instead, which is not what c measures."""
    if not created or not seconds:
        return duration
    return max(1, min(duration, int(C_SEAT_SHARE * seats * seconds / created)))


def judge_c(res, before, after, made):
    """Workload c measures creating a chat that an agent takes at once. It did not run when no
    created chat found an agent, or when one waited in a department whose agents had a free
    seat after the run (the seats of before, after and made by department: free_seats and
    created_by_c). Chats that waited because every seat was taken are counted, not hidden."""
    raw = res.get("raw") or {}
    waited = sum(m.get("waiting", 0) for m in made.values())
    res.update(seats=sum(before.values()), db_assigned=sum(m.get("active", 0) for m in made.values()),
               db_waiting=waited)
    if not res.get("ok"):
        return res
    if not raw.get("assigned") or not res["db_assigned"]:
        res.update(ok=False, why=f"no created chat found an agent ({raw.get('created', 0)} created, "
                                 f"{waited} waiting; the agents had {res['seats']} free seats)")
        return res
    stuck = [f"{m['waiting']} waited in department {d} while its agents had {after.get(d, 0)} free seats"
             for d, m in sorted(made.items()) if m.get("waiting") and after.get(d, 0) > 0]
    if stuck:
        res.update(ok=False, why="created chats waited though agents were free: " + "; ".join(stuck))
    return res


def run_create(a, inst, api, tg):
    """Workload c. Warmed up like the others, and the warm-up's chats closed again (in SQL)
    so their seats are free for the measured run, whose length fits the seats (fit_duration)."""
    path = tg["paths"]["c"]
    duration = a.duration
    if a.warmup > 0:
        seats = sum(free_seats(inst).values())
        w = run_wrk(a, api, "chats_post", path, duration=a.warmup, warm=False)
        inst.sql(f"UPDATE chats SET status = 'closed', closed_at = NOW(3), closed_by = agent_id "
                 f"WHERE subject = '{C_SUBJECT}' AND status <> 'closed'")
        if w.get("ok"):
            duration = fit_duration(a.duration, seats, w["raw"].get("created", 0), w["seconds"])
    before = free_seats(inst)
    res = run_wrk(a, api, "chats_post", path, duration=duration, warm=False)
    res["asked_seconds"] = a.duration
    return judge_c(res, before, free_seats(inst), created_by_c(inst))


# --- memory -----------------------------------------------------------------------


def children(ppid):
    kids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
            kids.append(int(pid))
    return sorted(kids)


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def pidfile(state, name):
    """The pid in the state directory's file name (e.g. run/pool.pid)."""
    with open(os.path.join(state, name)) as f:
        return int(f.read().strip())


def pool_pids(state):
    """The processes a death of which would pass unseen: the FastCGI workers of the instance and
    of the hello pool (multiwatch starts a new one in its place, and the failed request is one
    error within the budget), and nginx's workers (its master starts a new one)."""
    out = {}
    for group, name in (("carebot-fcgi worker", "run/pool.pid"), ("fcgi-hello worker", "hello/run/pool.pid"),
                        ("nginx worker", "run/nginx.pid")):
        try:
            out[group] = children(pidfile(state, name))
        except (OSError, ValueError):
            pass
    return out


def deaths(before, after):
    """What died during the run, from pool_pids before and after it: a pid that is new (a
    process replaced one that died) or, in a FastCGI pool, one that is gone (multiwatch gave up
    on it). An nginx worker may be gone legitimately: the old one, still closing its
    connections after the bench's reload when the run began."""
    out = []
    for group, pids in sorted(after.items()):
        old = set(before.get(group, []))
        new = [p for p in pids if p not in old]
        gone = [] if group.startswith("nginx") else sorted(old - set(pids))
        if new or gone:
            what = ([f"pids gone: {', '.join(map(str, gone))}"] if gone else []) + \
                   ([f"new pids: {', '.join(map(str, new))}"] if new else [])
            out.append(f"{group}s died during the run ({'; '.join(what)}): their failed requests "
                       f"counted as errors within the budget, and the resident sizes are of their successors")
    return out


def memory(state):
    pool = pidfile(state, "run/pool.pid")
    master = pidfile(state, "run/nginx.pid")
    return dict(
        workers=[dict(pid=p, rss_kib=rss_kib(p)) for p in children(pool)],
        nginx=[dict(pid=p, rss_kib=rss_kib(p), role="master" if p == master else "worker")
               for p in [master] + children(master)],
    )


# --- the machine's pauses ------------------------------------------------------------


def start_pause_meter(a):
    """bench/pause-meter over the whole run (None if it was not built)."""
    path = os.path.join(a.bin, "pause-meter")
    if not os.access(path, os.X_OK):
        say("no pause meter: machine pauses are not measured")
        return None
    # The fsync probe's file sits beside MariaDB's datadir, on the same disk.
    probe = os.path.join(a.state, "tmp", "pause-meter.fsync")
    return subprocess.Popen([path, "--threshold-ms", str(PAUSE_MS), "--fsync-file", probe],
                            stdout=subprocess.PIPE, text=True)


def stop_pause_meter(meter):
    if meter is None:
        return None
    meter.send_signal(signal.SIGTERM)
    try:
        out, _ = meter.communicate(timeout=10)
        m = json.loads(out)
    except (subprocess.TimeoutExpired, ValueError) as e:
        meter.kill()
        meter.communicate()
        say(f"the pause meter failed: {e}")
        return None
    m["hz"] = os.sysconf("SC_CLK_TCK")
    return m


def pauses_in(machine, start, end):
    """Within start..end (epoch seconds): the spans in which every CPU stood still, as
    (start, ms), and the longest pause of any one CPU, in ms."""
    edges = []
    longest = 0.0
    for _cpu, t, ms in machine["pauses"]:
        lo, hi = max(t, start), min(t + ms / 1000, end)
        if hi > lo:
            edges += [(lo, 1), (hi, -1)]
            longest = max(longest, (hi - lo) * 1000)
    # At the same instant an end comes before a start: touching pauses do not overlap.
    edges.sort()
    spans, still, since = [], 0, None
    for t, step in edges:
        still += step
        if step == 1 and still == machine["cpus"]:
            since = t
        elif since is not None and still < machine["cpus"]:
            spans.append((since, (t - since) * 1000))
            since = None
    return spans, longest


def slow_fsyncs_in(machine, start, end):
    """The fsync probe's fsyncs of PAUSE_MS or longer that overlap start..end, in ms."""
    return [ms for t, ms in machine.get("slow_fsyncs", []) if t < end and t + ms / 1000 > start]


# --- run --------------------------------------------------------------------------


def best_of(first, second):
    """The run with more requests/s; "runs" keeps both figures."""
    runs = [r for r in (first, second) if r and r.get("ok")]
    if not runs:
        return first or second
    best = dict(max(runs, key=lambda r: r["rps"]))
    best["runs"] = [r["rps"] for r in runs]
    return best


def cmd_run(a):
    inst = Instance(a)
    workdir = os.path.join(a.state, "bench")
    os.makedirs(workdir, exist_ok=True)
    sizes = SMOKE if a.smoke else FULL
    results = dict(settings=dict(duration=a.duration, warmup=a.warmup, connections=a.connections, rate=a.rate,
                                 subscribers=a.subscribers, workers=a.workers, smoke=a.smoke),
                   rows={}, order=[], failures=[])
    results["dataset"] = load_dataset(inst, sizes)
    tg = make_targets(inst, workdir)
    api = f"http://127.0.0.1:{a.port}"
    bench = f"http://127.0.0.1:{a.bench_port}"
    meter = start_pause_meter(a)
    pids = pool_pids(a.state)
    try:
        run_all(a, inst, tg, workdir, api, bench, results)
    finally:
        results["machine"] = stop_pause_meter(meter)
    results["memory"] = memory(a.state)
    # A worker that crashed under a workload is a failure even if its requests fit the error
    # budget, and the memory figures would be those of the fresh workers that replaced it.
    results["memory"]["died"] = deaths(pids, pool_pids(a.state))
    for d in results["memory"]["died"]:
        say(f"FAILED: {d}")
        results["failures"].append(d)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=1)
    return 1 if results["failures"] else 0


def run_all(a, inst, tg, workdir, api, bench, results):
    """The ceilings and the workloads, in order, into results."""
    first_open = tg["open_chats"][0]
    cust_tok = tg["tok"][first_open[4]]
    agent_tok = tg["tok"][first_open[3]]

    def record(key, res):
        results["rows"][key] = res
        results["order"].append(key)
        if res.get("ok"):
            say(f"{key}: {res['rps']:.0f}/s p50 {fmt_ms(res['p50'])} ms p99 {fmt_ms(res['p99'])} ms")
        else:
            say(f"{key}: FAILED: {res.get('why')}")
            results["failures"].append(f"{key}: {res.get('why')}")

    def probed(key, probe, run):
        status, body = probe()
        if not 200 <= status < 300:
            record(key, dict(ok=False, why=f"probe answered HTTP {status}: {body.strip()[:160]}"))
            return
        record(key, run())

    # The ceilings.
    record("ceil_static", run_wrk(a, f"{bench}/static", "get"))
    record("ceil_fcgi", run_wrk(a, f"{bench}/hello", "get"))
    # For reference, not a target: the same round trip carrying a body as large as a's pages.
    results["page_bytes"] = page_bytes(api, tg)
    record("ceil_fcgi_page", run_wrk(a, f"{bench}/hello?bytes={results['page_bytes']}", "get"))
    record("ceil_publish", run_wrk(a, f"{bench}/pub", "publish", tg["paths"]["pub"]))
    record("ceil_insert", run_sql(a, inst, "insert"))
    inst.sql("DELETE FROM messages WHERE content LIKE 'sql-bench:%'")
    record("ceil_select", run_sql(a, inst, "select"))
    # For reference, not a target: workload a's own query, MariaDB alone, no HTTP at all.
    record("ceil_page", run_sql(a, inst, "page"))

    # The workloads.
    probed("d", lambda: http_probe("GET", f"{api}/api/departments/active"),
           lambda: run_wrk(a, f"{api}/api/departments/active", "get"))
    probed("a", lambda: http_probe("GET", f"{api}/api/chats/{first_open[0]}/messages?limit=50", agent_tok),
           lambda: run_wrk(a, api, "messages_get", tg["paths"]["a"]))
    probed("b", lambda: http_probe("POST", f"{api}/api/chats/{first_open[0]}/messages", cust_tok,
                                   {"content": "bench probe"}),
           lambda: run_wrk(a, api, "messages_post", tg["paths"]["b"]))
    probed("e", lambda: http_probe("GET", f"{api}/api/chats/{first_open[0]}/messages?limit=1", cust_tok),
           lambda: run_deliver(a, inst, tg, workdir))
    # Room for created chats to find an agent (max_chats at the contract's maximum).
    inst.sql("UPDATE users SET max_chats = 100 WHERE role = 'agent' AND is_active")
    probed("c", lambda: http_probe("POST", f"{api}/api/chats/", cust_tok,
                                   {"department_id": int(first_open[2]), "subject": "bench probe"}),
           lambda: run_create(a, inst, api, tg))

    # The two ceilings with targets against them, again after the workloads: each ratio is
    # taken against the higher of the two runs, so a slow spell during the first one cannot
    # flatter a ratio (the harder test).
    record("ceil_fcgi_again", run_wrk(a, f"{bench}/hello", "get"))
    record("ceil_insert_again", run_sql(a, inst, "insert"))
    inst.sql("DELETE FROM messages WHERE content LIKE 'sql-bench:%'")
    for key in ("ceil_fcgi", "ceil_insert"):
        results["rows"][key] = best_of(results["rows"].get(key), results["rows"].pop(key + "_again"))

    # The worker's heap under workload a: one worker under valgrind massif.
    if a.massif_port and results["rows"]["a"].get("ok"):
        say("workload a against the one worker under valgrind massif")
        r = run_wrk(a, f"http://127.0.0.1:{a.massif_port}", "messages_get", tg["paths"]["a"],
                    connections=min(a.connections, 4), duration=min(a.duration, 10), warm=False)
        results["massif_load"] = dict(requests=r.get("requests"), ok=r.get("ok"), why=r.get("why"))


# --- report -------------------------------------------------------------------------


def massif_peak(path):
    """Peak heap (useful + allocator overhead) in a massif.out file, bytes."""
    peak = None
    heap = extra = 0
    with open(path) as f:
        for line in f:
            if line.startswith("mem_heap_B="):
                heap = int(line.split("=")[1])
            elif line.startswith("mem_heap_extra_B="):
                extra = int(line.split("=")[1])
                peak = max(peak or 0, heap + extra)
    return peak


def machine():
    mem = 0
    model = platform.processor() or platform.machine()
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1])
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), {mem / 1048576:.1f} GiB memory, {platform.system()} {platform.release()}"


def git_commit():
    def git(*args):
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return head + (" (with uncommitted changes)" if dirty else "")


ROWS = [
    # key, label, ceiling key, target ratio, target text
    ("ceil_static", "ceiling: nginx `return 200`", None, None, ""),
    ("ceil_fcgi", "ceiling: FastCGI hello (same pool, no keepalive)", "ceil_static", None, ""),
    ("ceil_fcgi_page", "reference: FastCGI hello sending a body the size of a's pages", "ceil_fcgi", None, ""),
    ("ceil_publish", "ceiling: raw Nchan publish (wrk → publisher)", None, None, ""),
    ("ceil_insert", "ceiling: SQL single-row INSERT (autocommit)", None, None, ""),
    ("ceil_select", "ceiling: SQL primary-key SELECT", None, None, ""),
    ("ceil_page", "reference: SQL newest page of 50 messages (a's own query)", "ceil_fcgi", None, ""),
    ("a", "a. GET /api/chats/{id}/messages?limit=50 (agent)", "ceil_fcgi", 0.50, "≥ 50 % of FastCGI"),
    ("b", "b. POST /api/chats/{id}/messages (customer)", "ceil_insert", 0.60, "≥ 60 % of INSERT"),
    ("c", "c. POST /api/chats/ (create + assign)", "ceil_fcgi", None, ""),
    ("d", "d. GET /api/departments/active (no token)", "ceil_fcgi", 0.70, "≥ 70 % of FastCGI"),
]


def c_notes(r):
    """What c's figure is made of: how long it ran against what was asked, and whether the
    agents' seats ran out (then the last of its chats waited in the queue)."""
    notes = []
    raw = r["raw"]
    asked = r.get("asked_seconds")
    if asked and r["seconds"] < asked - 0.5:
        notes.append(f"note: c ran {r['seconds']:.0f} s of the {asked} asked: at its warm-up's rate a longer "
                     f"run would have filled more than {C_SEAT_SHARE:.0%} of the agents' {r.get('seats', 0):,} "
                     f"free seats, and a chat that finds every agent full waits instead of being assigned")
    if raw.get("waiting"):
        notes.append(f"note: c: {raw['waiting']:,} of its {raw['created']:,} chats waited in the queue: the "
                     f"agents' {r.get('seats', 0):,} free seats ran out, so its figure is partly create + queue")
    return notes


def error_notes(rows):
    """A run that ran despite errors (up to ERROR_BUDGET of its requests) says how many: its
    rate leaves them out; wrk's latencies are of every answer, the failed ones too (all but
    timeouts), sql-bench's of the statements that succeeded."""
    labels = dict((k, l) for k, l, *_ in ROWS)
    notes = []
    for key, r in rows.items():
        if not r or not r.get("ok") or not r.get("errors") or key == "e":
            continue
        raw = r.get("raw") or {}
        label = labels.get(key, key)
        if "status_errors" not in raw:  # sql-bench: ops counts the statements that succeeded
            notes.append(f"note: {label}: {r['errors']:,} of {r['requests'] + r['errors']:,} statements "
                         f"failed; left out of its rate and latencies")
            continue
        parts = [f"{raw[k]:,} {name}" for k, name in (("status_errors", "answers of 400 or more"),
                                                      ("timeouts", "timeouts"),
                                                      ("connect_errors", "connect errors"),
                                                      ("read_errors", "read errors"),
                                                      ("write_errors", "write errors")) if raw.get(k)]
        notes.append(f"note: {label}: {r['errors']:,} errors in {r['requests']:,} requests "
                     f"({', '.join(parts)}); left out of its req/s, not of its p50/p99")
    return notes


def fmt(x, nd=2):
    return "—" if x is None else f"{x:,.{nd}f}"


def fmt_ms(x):
    """A delivery percentile of e: None where it falls on a delivery that never came."""
    return "lost" if x is None else f"{x:,.2f}"


def table(results, massif):
    rows = results["rows"]
    lines = ["| figure | req/s | p50 ms | p99 ms | ceiling | ceiling req/s | ratio | target | where we stand |",
             "|---|---:|---:|---:|---|---:|---:|---|---|"]
    verdicts = []
    for key, label, ceil, target, ttext in ROWS:
        r = rows.get(key)
        if r is None or not r.get("ok"):
            why = (r or {}).get("why", "not run").replace("|", "\\|")
            lines.append(f"| {label} | — | — | — | | | | {ttext} | NOT RUN: {why} |")
            if ttext:
                verdicts.append(f"{key}: not run ({why})")
            continue
        c = rows.get(ceil) if ceil else None
        ratio = r["rps"] / c["rps"] if c and c.get("ok") and c["rps"] else None
        stand = ""
        if target is not None and ratio is not None:
            stand = "meets" if ratio >= target else "below"
            verdicts.append(f"{key}: {ratio:.0%} of its ceiling, target {ttext}: {stand}")
        extra = ""
        if key == "c" and "created" in r["raw"]:
            extra = f" ({r['raw']['assigned']} assigned at once, {r['raw']['waiting']} waited)"
            verdicts += c_notes(r)
        cname = dict((k, l) for k, l, *_ in ROWS).get(ceil, "").replace("ceiling: ", "") if ceil else ""
        if key == "ceil_fcgi_page":
            label += f" ({results.get('page_bytes', 0):,} bytes)"
        lines.append(f"| {label} | {fmt(r['rps'], 0)} | {fmt(r['p50'])} | {fmt(r['p99'])} | {cname} | "
                     f"{fmt(c['rps'], 0) if c and c.get('ok') else '—'} | "
                     f"{'—' if ratio is None else f'{ratio:.0%}'} | {ttext} | {stand}{extra} |")
    verdicts += error_notes(rows)
    page, a_row = rows.get("ceil_fcgi_page"), rows.get("a")
    if page and page.get("ok") and a_row and a_row.get("ok") and page["rps"]:
        verdicts.append(f"note: a is {a_row['rps'] / page['rps']:.0%} of the FastCGI hello sending a body "
                        f"as large as its pages ({results.get('page_bytes', 0):,} bytes); the target "
                        f"stays against the plain hello")
    for key in ("ceil_fcgi", "ceil_insert"):
        r = rows.get(key) or {}
        if len(r.get("runs", [])) == 2:
            label = dict((k, l) for k, l, *_ in ROWS)[key].replace("ceiling: ", "")
            verdicts.append(f"note: {label} measured before and after the workloads: "
                            f"{r['runs'][0]:,.0f} and {r['runs'][1]:,.0f}/s; ratios use the higher")
    sql_page = rows.get("ceil_page")
    fcgi = rows.get("ceil_fcgi")
    if sql_page and sql_page.get("ok") and fcgi and fcgi.get("ok") and fcgi["rps"]:
        verdicts.append(f"note: a's database query alone (no HTTP, no JSON, {sql_page['connections']} "
                        f"connections) runs {sql_page['rps']:,.0f}/s, {sql_page['rps'] / fcgi['rps']:.0%} "
                        f"of the FastCGI hello: what a could reach if every page came from MariaDB "
                        f"(the newest pages are kept: README 2, \"History pages\")")
    e = rows.get("e")
    lines.append("")
    lines.append("| publish → deliver (e) | msgs/s sent | subscribers (chats) | p50 ms | p99 ms | max ms | "
                 "POST p50 / p99 ms | delivered / expected | target | where we stand |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    if e and e.get("ok"):
        raw = e["raw"]
        stand = "meets" if e["p99"] is not None and e["p99"] <= 10 else "below"
        lost = f" ({raw['lost']} of {raw['expected']} deliveries never came)" if raw.get("lost") else ""
        verdicts.append(f"e: p99 {fmt_ms(e['p99'])} ms at {raw['rate_achieved']:.0f} msg/s with "
                        f"{raw['subscribers_open']} subscribers{lost}, target ≤ 10 ms: {stand}")
        lines.append(f"| e. POST → WebSocket | {raw['rate_achieved']:.0f} (target {raw['rate_target']}) | "
                     f"{raw['subscribers_open']} ({e['chats']}) | {fmt_ms(e['p50'])} | {fmt_ms(e['p99'])} | "
                     f"{fmt_ms(e['max'])} | {fmt(raw['post_p50_ms'])} / {fmt(raw['post_p99_ms'])} | "
                     f"{raw['delivered']} / {raw['expected']} | p99 ≤ 10 ms | {stand} |")
    else:
        why = (e or {}).get("why", "not run").replace("|", "\\|")
        verdicts.append(f"e: not run ({why})")
        lines.append(f"| e. POST → WebSocket | — | — | — | — | — | — | — | p99 ≤ 10 ms | NOT RUN: {why} |")

    mem = results.get("memory", {})
    lines.append("")
    lines.append("| process | pid | VmRSS after the run |")
    lines.append("|---|---:|---:|")
    worst = 0
    for w in mem.get("workers", []):
        worst = max(worst, w["rss_kib"] or 0)
        lines.append(f"| carebot-fcgi worker | {w['pid']} | {fmt((w['rss_kib'] or 0) / 1024, 1)} MiB |")
    for n in mem.get("nginx", []):
        lines.append(f"| nginx {n['role']} | {n['pid']} | {fmt((n['rss_kib'] or 0) / 1024, 1)} MiB |")
    if mem.get("died"):
        verdicts.append(f"memory: not measured: {'; '.join(mem['died'])}")
    elif mem.get("workers"):
        stand = "meets" if worst <= 16 * 1024 else "below"
        verdicts.append(f"memory: largest worker {worst / 1024:.1f} MiB resident, target ≤ 16 MiB: {stand}")
    if massif is not None:
        lines.append(f"| one worker's peak heap under workload a (valgrind massif) | | "
                     f"{massif / 1048576:.2f} MiB |")
    return "\n".join(lines), verdicts


def machine_table(results):
    """The machine during each run: steal time and pauses, beside the run's slowest request."""
    m = results.get("machine")
    if not m:
        return [], ["note: machine pauses were not measured (no pause meter)"]
    labels = dict((k, l) for k, l, *_ in ROWS)
    labels["e"] = "e. POST → WebSocket (slowest delivery)"
    lines = [f"| run | seconds | steal, % of CPU time | every CPU still at once: times, longest ms | "
             f"one CPU's longest pause ms | fsyncs ≥ {PAUSE_MS} ms: times, slowest ms | "
             f"the disk: MB written, flushes, discards | slowest request ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    notes = []
    # In the order they ran; a ceiling run twice has one row, the run the ratios use.
    for key in results.get("order", []):
        r = results["rows"].get(key) or {}
        w = r.get("window")
        if not r.get("ok") or not w:
            continue
        secs = w["end"] - w["start"]
        steal = w["steal_ticks"] / m["hz"] / (secs * m["cpus"]) if secs > 0 else 0
        spans, one = pauses_in(m, w["start"], w["end"])
        still = f"{len(spans)}, {max(ms for _t, ms in spans):.1f}" if spans else "0, —"
        slow = slow_fsyncs_in(m, w["start"], w["end"])
        probe = f"{len(slow)}, {max(slow):.1f}" if slow else "0, —"
        d = w.get("disk")
        disk = (f"{d['sectors_written'] * 512 / 1e6:,.1f}, {d['flushes']:,}, {d['discards']:,}"
                if d else "—")
        lines.append(f"| {labels.get(key, key)} | {secs:.1f} | {steal:.1%} | {still} | "
                     f"{one:.1f} | {probe} | {disk} | {fmt(r.get('max'))} |")
    e = results["rows"].get("e") or {}
    raw = e.get("raw") or {}
    if e.get("ok") and raw.get("slowest_sent_at"):
        sent = raw["slowest_sent_at"]
        spans, _ = pauses_in(m, sent, sent + raw["slowest_ms"] / 1000)
        slow = slow_fsyncs_in(m, sent, sent + raw["slowest_ms"] / 1000)
        at = datetime.datetime.fromtimestamp(sent, datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        notes.append(f"note: e's slowest delivery ({raw['slowest_ms']:.1f} ms) was sent at {at} UTC; during "
                     f"it every CPU stood still for {sum(ms for _t, ms in spans):.1f} ms and the slowest "
                     f"probe fsync took {max(slow, default=0):.1f} ms (0: none ≥ {PAUSE_MS} ms); the "
                     f"client's own longest stalls: event loop {raw.get('loop_max_gap_ms', 0):.1f} ms, "
                     f"garbage collection {raw.get('gc_max_ms', 0):.1f} ms")
    if e.get("ok") and raw.get("slow") is not None:
        # Each delivery over 10 ms beside the machine: was the disk or every CPU held meanwhile?
        held = sum(1 for sent, ms in raw["slow"]
                   if slow_fsyncs_in(m, sent, sent + ms / 1000) or pauses_in(m, sent, sent + ms / 1000)[0])
        total = raw.get("slow_total", len(raw["slow"]))
        kept = "" if total == len(raw["slow"]) else f" (of the first {len(raw['slow']):,})"
        notes.append(f"note: e had {total:,} deliveries over 10 ms of {raw['delivered']:,}; "
                     f"{held:,}{kept} were under way while a probe fsync took {PAUSE_MS} ms or more "
                     f"or every CPU stood still")
    if not m.get("realtime"):
        notes.append("note: the pause meter ran without real-time priority, so its pauses include waits "
                     "for other processes")
    return lines, notes


def massif_summary(results, path):
    """The peak heap of the worker under valgrind (None unless it served workload a: a peak
    taken while it answered errors is not a's) and the note that says what it is."""
    load = results.get("massif_load") or {}
    if results["settings"]["smoke"]:
        return None, "the massif peak-heap run is skipped in --smoke mode"
    if not load.get("requests"):
        return None, "no massif peak: workload a did not run, or its run under valgrind did not"
    if not load.get("ok"):
        return None, (f"no massif peak: the worker under valgrind did not serve workload a "
                      f"({load.get('why')})")
    if not path or not os.path.exists(path):
        return None, "no massif output (valgrind failed)"
    return massif_peak(path), (f"massif: one carebot-fcgi under valgrind served {load['requests']} requests "
                               f"of workload a (4 connections, its own pool and port); peak heap = useful "
                               f"+ allocator overhead")


def cmd_report(a):
    with open(a.results) as f:
        results = json.load(f)
    massif, massif_note = massif_summary(results, a.massif)
    tbl, verdicts = table(results, massif)
    mtbl, mnotes = machine_table(results)
    s = results["settings"]
    d = results["dataset"]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md = [
        "# carebot bench results" + (" (smoke)" if s["smoke"] else ""),
        "",
        f"- date: {when}",
        f"- machine: {machine()}",
        f"- git commit: {git_commit()}",
        f"- command: `{a.command}`",
        f"- settings: {s['duration']} s per workload"
        + (f" after {s['warmup']} s unmeasured (every wrk run)" if s.get("warmup") else "")
        + f", {s['connections']} connections (wrk), "
        f"{s['workers']} FastCGI workers, SQL ceilings with {s['workers']} threads (one connection "
        f"per worker), e at {s['rate']} msg/s with {s['subscribers']} subscribers",
        f"- dataset: {d['departments']} departments, {d['agents']} agents, {d['chats']} chats "
        f"({d['open_chats']} open), {d['messages']} messages (loaded in {d['seconds']} s)",
        "",
        "Every figure and its ceiling come from the same run and the same nginx; the HTTP ones with the",
        "same connection count, the SQL ones with one connection per FastCGI worker (as many as the",
        "workloads' requests reach MariaDB through), the same server and its durability settings.",
        "wrk, node and the servers share the machine's cores, so absolute numbers are lower than on a",
        "separate load generator; the ratios are what to watch. Latencies are wrk's (closed loop).",
        "",
        tbl,
        "",
        "## Where we stand against the targets",
        "",
    ]
    md += [f"- {v}" for v in verdicts]
    if massif_note:
        md += [f"- note: {massif_note}"]
    md += ["", "## The machine during each run", ""]
    if mtbl:
        md += [f"Steal time is the time the host gave this machine's CPUs to something else "
               f"(/proc/stat). bench/pause-meter keeps one real-time thread per CPU waking every "
               f"5 ms and notes each wake-up {PAUSE_MS} ms or more late: no process can delay such "
               f"a thread, so a late one means the CPU did not run. When every CPU stood still at once, "
               f"every request in flight waited with it. Its fsync probe overwrites 4 KiB beside "
               f"MariaDB's datadir and fdatasyncs it every 10 ms: a durable commit waits for the same "
               f"disk, so a slow fsync there holds every commit in flight. The disk column is the kernel's "
               f"count for the device under the datadir (/proc/diskstats), from every process: megabytes "
               f"written, flushes (one per group of durable commits, and 100 a second for the probe) and "
               f"discards (blocks handed back as files free them; bench/RESULTS.md, round 9).", ""] + mtbl + [""]
    md += [f"- {n}" for n in mnotes]
    if results["failures"]:
        md += ["", "## Workloads that could not run", ""] + [f"- {f}" for f in results["failures"]]
    text = "\n".join(md) + "\n"
    print(text)
    if a.output:
        with open(a.output, "w") as f:
            f.write(text)
        say(f"wrote {a.output}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--state", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--bench-port", type=int, required=True)
    r.add_argument("--massif-port", type=int, default=0)
    r.add_argument("--admin", required=True, help="the carebot-admin binary")
    r.add_argument("--bin", required=True, help="where fcgi-hello and sql-bench were built")
    r.add_argument("--workers", type=int, required=True)
    r.add_argument("--duration", type=int, required=True)
    r.add_argument("--warmup", type=int, default=0,
                   help="seconds of each wrk workload run unmeasured first (c's chats then closed)")
    r.add_argument("--connections", type=int, required=True)
    r.add_argument("--rate", type=int, required=True)
    r.add_argument("--subscribers", type=int, required=True)
    r.add_argument("--smoke", action="store_true")
    r.add_argument("--out", required=True)
    q = sub.add_parser("report")
    q.add_argument("--results", required=True)
    q.add_argument("--massif")
    q.add_argument("--output")
    q.add_argument("--command", default="tools/carebot bench")
    a = p.parse_args()
    return cmd_run(a) if a.cmd == "run" else cmd_report(a)


if __name__ == "__main__":
    sys.exit(main())
