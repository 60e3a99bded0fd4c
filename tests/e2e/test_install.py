"""The production install of contract section 1: `make install` puts
carebot-fcgi, carebot-admin, the schema and the examples (nginx site, worker
config, crontab) on the host, the examples naming the configured paths, and
each of them works as installed (README 9).

The installed carebot-admin migrates and seeds a database of its own on the
test instance's MariaDB from the installed schema, and the installed nginx
config, with only its host paths pointed at this instance, is served by an
nginx of its own in front of the test instance's workers. `make distcheck`
passes, and its tarball holds the tracked files and what autotools made."""

import grp
import json
import os
import pathlib
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import tempfile

import pytest
import requests

import rt
from test_ops import HEALTHY, UnixHTTPConnection, assert_error, free_port, assert_sample_data, root_sql, wait_for

NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"


@pytest.fixture(scope="module")
def installed(repo_root):
    """make install DESTDIR=...: the installed tree's prefix directory."""
    build = repo_root / os.environ.get("CAREBOT_BUILD_DIR", "build")
    dest = pathlib.Path(tempfile.mkdtemp(prefix="carebot-install-"))
    dest.chmod(0o755)  # as a host's /usr/local: the unit's user runs what is installed
    try:
        done = subprocess.run(["make", "-C", str(build), "install", f"DESTDIR={dest}"],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        admins = list(dest.glob("**/bin/carebot-admin"))
        assert len(admins) == 1, admins
        yield admins[0].parent.parent
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def configured(repo_root, *names):
    """The build's installation directories (bindir, ...), as make expands them."""
    build = repo_root / os.environ.get("CAREBOT_BUILD_DIR", "build")
    show = "show:\n\t@echo " + " ".join(f"$({name})" for name in names) + "\n"
    done = subprocess.run(["make", "-s", "-C", str(build), "-f", "Makefile", "-f", "-", "show"],
                          input=show, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return dict(zip(names, done.stdout.split()))


def test_make_install_puts_the_binaries_the_schema_and_the_examples(installed, repo_root):
    for name in ("carebot-fcgi", "carebot-admin"):
        binary = installed / "bin" / name
        assert binary.is_file() and os.access(binary, os.X_OK), binary
    schema = sorted(p.name for p in (installed / "share" / "carebot" / "schema").iterdir())
    assert schema == sorted(p.name for p in (repo_root / "schema").glob("*.sql"))
    # The examples are their templates with the configured paths written in;
    # the nginx site's workers and the crontab's sweep read the very file the
    # programs look for without -c (an audit found /etc/carebot.conf there).
    dirs = configured(repo_root, "bindir", "sysconfdir", "datadir", "pkgdatadir")
    conf = f"{dirs['sysconfdir']}/carebot/carebot.conf"
    examples = [  # template, where it is installed under <datadir>/carebot, a line it must hold
        ("nginx/carebot.conf.example.in", "nginx/carebot.conf.example",
         f"{dirs['bindir']}/carebot-fcgi -c {conf}\n"),
        ("etc/carebot.conf.example.in", "carebot.conf.example",
         f"#schema_dir = {dirs['datadir']}/carebot/schema\n"),
        ("tools/crontab.example.in", "crontab.example",
         f"{dirs['bindir']}/carebot-admin -c {conf} reassign "),
    ]
    for source, target, named in examples:
        installed_as = installed / "share" / "carebot" / target
        text = installed_as.read_text()
        template = (repo_root / source).read_text()
        for name, path in dirs.items():
            template = template.replace(f"@{name}@", path)
        assert text == template, installed_as
        assert not re.search(r"@\w+@", text), installed_as
        assert named in text and conf in text, installed_as


def test_make_distcheck_passes_and_the_tarball_holds_the_sources_only(repo_root):
    """STYLE.md's "EXTRA_DIST so make distcheck passes": the release tarball
    builds out of tree with warnings as errors, passes make check, installs
    and uninstalls cleanly, and holds every tracked file and nothing a run left
    beside them (npm ci's node_modules, Python's caches), which a tree that has
    run the tests has."""
    build = repo_root / os.environ.get("CAREBOT_BUILD_DIR", "build")
    top = subprocess.run(["git", "-C", str(repo_root), "rev-parse", "--show-toplevel"],
                         capture_output=True, text=True)
    if top.returncode != 0 or pathlib.Path(top.stdout.strip()).resolve() != repo_root.resolve():
        pytest.skip("not a git checkout (a tarball's tree): nothing to compare the tarball with")
    tracked = subprocess.run(["git", "-C", str(repo_root), "ls-files"], capture_output=True, text=True, check=True)
    assert (repo_root / "tests" / "e2e" / "node_modules").is_dir()  # the case the check is for
    tarballs = []
    try:
        done = subprocess.run(["make", "-j2", "-C", str(build), "distcheck",
                               "DISTCHECK_CONFIGURE_FLAGS=--enable-werror"],
                              capture_output=True, text=True, timeout=900)
        tarballs = sorted(build.glob("carebot-*.tar.gz"))
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        assert len(tarballs) == 1, tarballs
        listed = subprocess.run(["tar", "tzf", str(tarballs[0])], capture_output=True, text=True, check=True)
        top = tarballs[0].name[:-len(".tar.gz")] + "/"
        shipped = {name[len(top):] for name in listed.stdout.splitlines()
                   if name.startswith(top) and not name.endswith("/")}
        sources = set(tracked.stdout.splitlines()) - {".ci/run", ".gitignore"}
        assert sorted(sources - shipped) == []
        generated = re.compile(r"(configure|aclocal\.m4|Makefile\.in|build-aux/[\w.-]+|m4/[\w.~-]+\.m4)")
        assert sorted(name for name in shipped - sources if not generated.fullmatch(name)) == []
    finally:
        for tarball in tarballs:
            tarball.unlink()
        for left in build.glob("carebot-*/"):  # a failed distcheck leaves its tree, read-only
            subprocess.run(["chmod", "-R", "u+w", str(left)])
            shutil.rmtree(left, ignore_errors=True)


def test_installed_config_example_has_every_key_and_parses(installed, state_dir, repo_root):
    """Each key of config.c, commented out at its default: uncommented, with
    only the database settings pointed at the test instance, carebot-admin
    takes it and works."""
    example = (installed / "share" / "carebot" / "carebot.conf.example").read_text()
    settings = dict(re.findall(r"(?m)^#(\w+) =[ ]?(.*)$", example))
    source = (repo_root / "fcgi" / "config.c").read_text()
    keys = re.findall(r'(?m)^\s+(?:STR|STR_NONEMPTY|INT)\((\w+)|^\s+\{"(\w+)", K_', source)
    assert sorted(settings) == sorted(a or b for a, b in keys)
    instance = dict(re.findall(r"(?m)^(db_\w+)\s*=\s*(.*?)\s*$", (state_dir / "carebot.conf").read_text()))
    settings.update(instance)
    work = pathlib.Path(tempfile.mkdtemp(prefix="carebot-conf-example-"))
    try:
        conf = work / "carebot.conf"
        conf.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        done = subprocess.run([str(installed / "bin" / "carebot-admin"), "-c", str(conf), "token", "admin"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert re.fullmatch(r"[0-9a-f]{64}\n", done.stdout), done.stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_installed_admin_migrates_and_seeds_from_the_installed_schema(installed, state_dir):
    db = "carebot_install_test"
    conf_text = (state_dir / "carebot.conf").read_text()
    conf_text = re.sub(r"(?m)^db_name\s*=.*$", f"db_name = {db}", conf_text)
    conf_text = re.sub(r"(?m)^schema_dir\s*=.*$", "", conf_text)
    conf_text += f"\nschema_dir = {installed / 'share' / 'carebot' / 'schema'}\n"
    work = pathlib.Path(tempfile.mkdtemp(prefix="carebot-install-conf-"))
    conf = work / "carebot.conf"
    conf.write_text(conf_text)
    root_sql(state_dir, f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; "
                        f"GRANT ALL PRIVILEGES ON {db}.* TO 'carebot'@'localhost'; "
                        f"GRANT ALL PRIVILEGES ON {db}.* TO 'carebot'@'127.0.0.1';")
    admin = str(installed / "bin" / "carebot-admin")
    try:
        migrate = subprocess.run([admin, "-c", str(conf), "migrate"],
                                 capture_output=True, text=True, timeout=120)
        assert migrate.returncode == 0, migrate.stderr
        applied = [line.split()[1] for line in migrate.stdout.splitlines() if line.startswith("applied ")]
        assert applied == sorted(p.name for p in (installed / "share" / "carebot" / "schema").iterdir())
        seed = subprocess.run([admin, "-c", str(conf), "seed"],
                              capture_output=True, text=True, timeout=120)
        assert seed.returncode == 0, seed.stderr
        assert_sample_data(state_dir, db)
    finally:
        root_sql(state_dir, f"DROP DATABASE IF EXISTS {db}")
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def example_nginx(installed, state_dir):
    """An nginx serving the installed carebot.conf.example, its host paths
    (the workers' socket, the publisher's socket, the logs, the port) pointed
    at a scratch directory and at the test instance's workers: its base URL
    and its publisher socket."""
    work = pathlib.Path(tempfile.mkdtemp(prefix="carebot-example-"))
    try:
        yield from serve_example(installed, state_dir, work)
    finally:
        pid_file = work / "nginx.pid"
        if pid_file.exists():  # nginx started: stop it, by the pid it wrote
            pid = int(pid_file.read_text())
            try:
                os.kill(pid, signal.SIGQUIT)
            except ProcessLookupError:
                pass
            wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10)
        shutil.rmtree(work, ignore_errors=True)


def serve_example(installed, state_dir, work):
    """The body of example_nginx: renders and starts the nginx in work, yields once."""
    for sub in ("log", "tmp"):
        (work / sub).mkdir()
    port = free_port()
    site = (installed / "share" / "carebot" / "nginx" / "carebot.conf.example").read_text()
    replaced = {
        "listen 80;": f"listen 127.0.0.1:{port};",
        "/run/carebot/fcgi.sock": str(state_dir / "run" / "fcgi.sock"),
        "/run/carebot/nchan-pub.sock": str(work / "pub.sock"),
        "/run/carebot/auth.sock": str(work / "auth.sock"),
        "/var/log/carebot/": f"{work / 'log'}/",
    }
    for old, new in replaced.items():
        assert old in site, f"the example no longer has {old}"
        site = site.replace(old, new)
    (work / "carebot.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(f"\t{kind}_temp_path {work / 'tmp' / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (work / "nginx.conf").write_text(
        f"load_module {NCHAN_MODULE};\n{user}worker_processes 1;\n"
        f"pid {work / 'nginx.pid'};\nerror_log {work / 'log' / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n{temp}\tinclude {work / 'carebot.conf'};\n}}\n")
    nginx = ["nginx", "-p", str(work), "-c", str(work / "nginx.conf"), "-e", str(work / "log" / "error.log")]
    check = subprocess.run([*nginx, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    started = subprocess.run(nginx, capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started.stderr
    assert wait_for(lambda: (work / "nginx.pid").exists(), 10)
    yield f"http://127.0.0.1:{port}", work / "pub.sock"


def test_installed_nginx_config_serves_the_api(example_nginx, admin_token):
    base, pub_sock = example_nginx

    def health():
        try:
            return requests.get(f"{base}/api/health", timeout=5).json() == HEALTHY
        except requests.RequestException:
            return False

    assert wait_for(health, 10), "the example's /api/health never answered ok"
    # Every page: the instance may hold more than a page of departments that
    # sort before it (runs before this one leave theirs, test_caches.py's "000-").
    names = []
    while True:
        r = requests.get(f"{base}/api/departments/active/?limit=200&offset={len(names)}", timeout=5)
        assert r.status_code == 200, r.text
        names += [d["name"] for d in r.json()]
        if not r.json() or len(names) >= int(r.headers["X-Total-Count"]):
            break
    assert "Customer Care" in names
    r = requests.get(f"{base}/api/auth/me", timeout=5, headers={"Authorization": f"Bearer {admin_token}"})
    assert r.status_code == 200 and r.json()["username"] == "admin", r.text
    assert_error(requests.get(f"{base}/api/auth/me", timeout=5), 401, "unauthorized")
    assert_error(requests.get(f"{base}/nowhere", timeout=5), 404, "not_found")
    assert_error(requests.post(f"{base}/api/auth/login", timeout=5, data=b"x" * (64 * 1024 + 1),
                               headers={"Content-Type": "application/json"}), 413, "too_large")
    assert_error(requests.post(f"{base}/pub?id=chat/1", timeout=5, data=b"{}"), 404, "not_found")
    # Each answer names its request, and so does the access log (README 9, "Following one request").
    answers = [requests.get(f"{base}/api/health", timeout=5), requests.get(f"{base}/nowhere", timeout=5),
               requests.get(f"{base}/api/auth/me", timeout=5, headers={"X-Request-Id": "0" * 32})]
    ids = [r.headers.get("X-Request-Id", "") for r in answers]
    assert all(re.fullmatch("[0-9a-f]{32}", i) for i in ids) and len(set(ids) | {"0" * 32}) == 4, ids
    access = pub_sock.parent / "log" / "nginx-access.log"
    assert wait_for(lambda: all(f" {i}\n" in access.read_text() for i in ids), 5), ids


def test_installed_nginx_config_authorizes_and_delivers_subscriptions(example_nginx, api, admin_token):
    base, pub_sock = example_nginx
    customer = api.post("/api/auth/guest", json={"full_name": "Install Test"})
    assert customer.status_code == 201, customer.text
    chat = api.post("/api/chats/", token=customer.json()["token"], json={"subject": "install"})
    assert chat.status_code == 201, chat.text
    channel = f"chat/{chat.json()['id']}/"
    assert rt.subscription_status(rt.EventSource, base, channel) == 401
    assert rt.subscription_status(rt.EventSource, base, channel, token="0" * 64) == 401
    # The example's own publisher socket reaches the example's subscribers.
    sub = rt.EventSource(base, channel, token=admin_token).start()
    try:
        event = {"type": "message.created", "chat_id": chat.json()["id"], "at": "2026-11-25T00:00:00.000Z",
                 "data": {"content": "through the installed config"}}
        conn = UnixHTTPConnection(str(pub_sock))
        try:
            conn.request("POST", f"/pub?id=chat/{chat.json()['id']}", body=json.dumps(event),
                         headers={"Content-Type": "application/json"})
            assert conn.getresponse().status in (201, 202)
        finally:
            conn.close()
        got = sub.wait_for(lambda evs: len(evs) >= 1, timeout=5)
    finally:
        sub.close()
    assert got == [event]
    # A reconnecting EventSource goes through the example's /_resume location and gets it again.
    again = rt.EventSource(base, channel, token=admin_token, last_event_id="1:0").start()
    try:
        assert again.wait_for(lambda evs: len(evs) >= 1, timeout=5) == [event]
    finally:
        again.close()


def example_host_setup(installed):
    """What the nginx example's header tells a host to make: the systemd
    unit of the pool ({key: value}) and the tmpfiles.d lines ({path: (mode,
    owner, group)})."""
    site = (installed / "share" / "carebot" / "nginx" / "carebot.conf.example").read_text()
    header = site[:site.index("\n\n")]
    unit = dict(re.findall(r"(?m)^# {7}([A-Z]\w+)=(.*)$", header))
    dirs = {path: (int(mode, 8), owner, group)
            for path, mode, owner, group in re.findall(r"(?m)^#\s+d (/\S+) (0[0-7]{3}) (\S+) (\S+) -$", header)}
    return unit, dirs


@pytest.mark.skipif(os.geteuid() != 0, reason="plays the unit's user, nginx's and cron's: needs root")
def test_example_unit_and_tmpfiles_let_nginx_and_cron_in(installed, repo_root):
    """The pool started as the example's unit says, in the directories its
    tmpfiles.d lines make, with nobody standing in for the carebot user:
    nginx's workers (www-data, as Debian's nginx.conf runs them) can connect
    to the workers' socket, and cron's line, run as that user, can write its
    log. An audit followed the header of before: spawn-fcgi ignores -U and
    -G when not started as root, so the socket was the user's own group and
    every request a 503; and /var/log/carebot "writable by www-data" left
    cron's shell unable to open reassign.log, so reassign never ran."""
    for name in ("nobody", "www-data"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            pytest.skip(f"no user {name} on this host")
    unit, dirs = example_host_setup(installed)
    assert {"User", "ExecStart", "ExecReload"} <= set(unit), unit
    # Not RuntimeDirectory=: systemd removes it, with nginx's sockets in it,
    # when the pool stops, and nginx cannot start before the pool made it.
    assert not any(key.startswith("RuntimeDirectory") for key in unit), unit
    # The stop's TERM to multiwatch alone (as below): to the whole group, it
    # raced multiwatch's respawning and left workers behind (now and then).
    assert unit.get("KillMode") == "mixed", unit
    assert sorted(dirs) == ["/run/carebot", "/var/log/carebot"], dirs
    stand_in = {"carebot": "nobody"}
    user = pwd.getpwnam(stand_in.get(unit["User"], unit["User"]))
    group = grp.getgrnam(unit["Group"]).gr_gid if "Group" in unit else user.pw_gid
    work = pathlib.Path(tempfile.mkdtemp(prefix="carebot-host-"))
    work.chmod(0o755)
    pool = None
    try:
        def host(path):
            return str(work / path.lstrip("/"))
        for path, (mode, owner, group_name) in dirs.items():
            os.makedirs(host(path))
            os.chown(host(path), pwd.getpwnam(stand_in.get(owner, owner)).pw_uid, grp.getgrnam(group_name).gr_gid)
            os.chmod(host(path), mode)
        conf = work / "carebot.conf"  # no database: the workers start without one
        conf.write_text(f"db_socket = {work / 'no-mysqld.sock'}\n")
        os.chown(conf, user.pw_uid, -1)
        conf.chmod(0o600)
        dirs_of = configured(repo_root, "bindir", "sysconfdir")

        def on_host(line):
            for program in ("carebot-fcgi", "carebot-admin"):
                line = line.replace(f"{dirs_of['bindir']}/{program}", str(installed / "bin" / program))
            line = line.replace(f"{dirs_of['sysconfdir']}/carebot/carebot.conf", str(conf))
            for path in dirs:
                line = line.replace(f"{path}/", f"{host(path)}/")
            return line

        log = open(work / "pool.log", "w")
        pool = subprocess.Popen(shlex.split(on_host(unit["ExecStart"])), user=user.pw_uid, group=group,
                                extra_groups=[], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
        log.close()
        sock = f"{host('/run/carebot')}/fcgi.sock"
        assert wait_for(lambda: os.path.exists(sock) or pool.poll() is not None, 10)
        assert pool.poll() is None, (work / "pool.log").read_text()
        connect = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"
        done = subprocess.run(["/usr/bin/python3", "-c", connect, sock], user="www-data", group="www-data",
                              extra_groups=[], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"nginx's user cannot reach {sock}: {done.stderr}"
        cron = (installed / "share" / "carebot" / "crontab.example").read_text()
        line = re.search(r"(?m)^(?!#)(?:\S+ ){5}(.+)$", cron).group(1)
        done = subprocess.run(["/bin/sh", "-c", on_host(line)], user=user.pw_uid, group=user.pw_gid,
                              extra_groups=[], capture_output=True, text=True, timeout=60)
        assert done.stderr == "", done.stderr  # the shell's "cannot create ..."
        # carebot-admin ran (and, without a database, said so in the log).
        assert "database" in (pathlib.Path(host("/var/log/carebot")) / "reassign.log").read_text()
    finally:
        if pool is not None:
            # multiwatch stops its workers; a TERM to the whole group within
            # a second of the start left a respawned worker, and multiwatch
            # waiting on it, behind. Then KILL whatever is left of the group.
            pool.terminate()
            try:
                pool.wait(timeout=10)
                assert wait_for(lambda: subprocess.run(["pgrep", "-g", str(pool.pid)]).returncode == 1, 10)
            finally:
                try:
                    os.killpg(pool.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(work, ignore_errors=True)
