#!/usr/bin/env python3
"""The devstack (examples/devstack: PostgreSQL, Redis, an app server) end to end
through the built stackctl, every command a separate process, each step checked:
exit codes, status lines and `status --json`, the real processes (alive, owned by
the right user, gone), the ports (listening, closed), Postgres's data directory
(created, removed), and queries proving both backends serve.

  up -> status -> psql, RESP and HTTP queries -> logs -> SIGKILL of Redis, which
  its supervisor restarts (and the app with it) -> `cache down` (the app, its
  dependent, first; not restarted) -> up again -> `up --attach`, Ctrl-C ->
  `down --force` -> nothing left

Free ports and a temporary state directory (DEVSTACK_DIR), so it runs next to
other tests and to a devstack a developer has up. As root Postgres runs as
`postgres`, else as the caller. Every process the stack starts carries a token in
its environment; whatever happens, any left at the end is killed.

usage: devstack_tour.py --stackctl PATH [--file STACK_FILE]
Exit status 0 when every check passed, 1 when one failed, 77 (skipped) when the
PostgreSQL or Redis programs are not installed.
"""

import argparse
import json
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

SKIP = 77
ROLES = ["state", "database", "cache", "app"]
# A ceiling for one stackctl run or one awaited condition: it only stops a hung
# test; nothing is asserted about how long anything takes.
CEILING = float(os.environ.get("DEVSTACK_CEILING", "180"))
ROOT = Path(__file__).resolve().parents[2]


class Failed(Exception):
    pass


def check(ok, what):
    if not ok:
        raise Failed(what)
    print(f"  ok: {what}")


def free_ports(n):
    """n distinct loopback ports that are free now (bound at once, so distinct)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def listening(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid):
    """A process that exists and is not a zombie (an orphan nobody reaped yet is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def owner(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise Failed(f"no Uid line for pid {pid}")


def wait_until(condition, what):
    deadline = time.monotonic() + CEILING
    while not condition():
        if time.monotonic() > deadline:
            raise Failed(f"timed out waiting until {what}")
        time.sleep(0.02)


def with_token(token):
    """Pids of the processes whose environment holds the token."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if token.encode() in (d / "environ").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


class Tour:
    def __init__(self, stackctl, file, env):
        self.stackctl, self.file, self.env = stackctl, file, env

    def run(self, *args, expect=0):
        """Runs `stackctl -f FILE args...`, echoed with its output; checks its exit status."""
        print(f"$ stackctl {' '.join(args)}")
        p = subprocess.run([self.stackctl, "-f", self.file, *args], env=self.env, capture_output=True, text=True,
                           timeout=CEILING)
        out = p.stdout + p.stderr
        print("    " + out.rstrip().replace("\n", "\n    "))
        check(p.returncode == expect, f"'stackctl {' '.join(args)}' exited with {p.returncode} (expected {expect})")
        return p.stdout, p.stderr

    def states(self):
        """{role: (state, detail)} from `stack status --json`, which must be valid JSON."""
        out, _ = self.run("stack", "status", "--json")
        try:
            rows = json.loads(out)
        except json.JSONDecodeError as e:
            raise Failed(f"`stack status --json` is not JSON ({e}): {out!r}")
        check([r["role"] for r in rows] == ROLES, f"--json lists {ROLES} in the file's order")
        check(all(set(r) >= {"role", "name", "flavor", "state", "detail"} for r in rows),
              "--json objects have role, name, flavor, state, detail")
        return {r["role"]: (r["state"], r["detail"]) for r in rows}

    def status_lines(self):
        """{role: state} from the table of `stack status`."""
        out, _ = self.run("stack", "status")
        found = {}
        for line in out.splitlines():
            words = line.split()
            if words and words[0] in ROLES:
                found[words[0]] = next((w for w in words if w in ("running", "suspended", "provisioned",
                                                                 "deprovisioned")), None)
        return found, out


def psql(pg_bin, socket_dir, port, user, sql):
    p = subprocess.run([str(Path(pg_bin) / "psql"), "-X", "-A", "-t", "-h", str(socket_dir), "-p", str(port), "-U",
                        user, "-d", "postgres", "-c", sql], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise Failed(f"psql -c {sql!r} exited with {p.returncode}: {p.stderr.strip()}")
    return p.stdout.strip()


def redis(port, *command):
    """One RESP command; the reply's first line."""
    req = f"*{len(command)}\r\n" + "".join(f"${len(c)}\r\n{c}\r\n" for c in command)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(req.encode())
        return s.recv(256).decode().split("\r\n")[0]


def http_get(port, path="/"):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def tour(t, pg_bin, pg_user, state, ports):
    pg_port, redis_port, app_port = ports
    pg_dir = state / ".stackup" / "postgres"
    data = pg_dir / "data"
    uid = pwd.getpwnam(pg_user).pw_uid

    print("== a file that is fine: stack config starts nothing")
    out, _ = t.run("stack", "config")
    check(all(r in out for r in ROLES), "stack config names every component")
    check(not (state / ".stackup").exists(), "stack config created nothing")

    print("== before: nothing is provisioned")
    states = t.states()
    check(all(s == "deprovisioned" for s, _ in states.values()), "every component is deprovisioned")
    t.run("nosuchrole", "up", expect=2)

    print("== stack up")
    out, _ = t.run("stack", "up")
    order = [out.find(f"{r} '") for r in ROLES]
    check(-1 not in order and order == sorted(order), "up acts on state, database, cache, app in that order")
    lines, _ = t.status_lines()
    check(lines == {r: "running" for r in ROLES}, "stack status: every component running")
    states = t.states()
    check(all(s == "running" for s, _ in states.values()), "--json: every component running")
    check((data / "PG_VERSION").is_file(), f"Postgres's data directory {data} was created")
    check(os.stat(data).st_uid == uid, f"the data directory belongs to {pg_user}")
    pg_pid = int((data / "postmaster.pid").read_text().split()[0])
    check(alive(pg_pid) and owner(pg_pid) == uid, f"postgres (pid {pg_pid}) runs as {pg_user}")
    daemon_pids = {}
    for role, port in (("cache", redis_port), ("app", app_port)):
        pid = int((state / ".stackup" / role / "pid").read_text().split()[0])
        check(alive(pid), f"{role} (pid {pid}) is alive")
        check(f"pid {pid}" in states[role][1] and f"port {port}" in states[role][1],
              f"--json detail of {role} names pid {pid} and port {port}")
        daemon_pids[role] = pid
    for name, port in (("postgres", pg_port), ("redis", redis_port), ("app", app_port)):
        check(listening(port), f"{name} listens on {port}")

    print("== the backends serve")
    check(psql(pg_bin, pg_dir, pg_port, pg_user, "select 1") == "1", "psql: select 1 answers 1")
    psql(pg_bin, pg_dir, pg_port, pg_user, "create table visits (at timestamptz default now())")
    psql(pg_bin, pg_dir, pg_port, pg_user, "insert into visits default values")
    check(psql(pg_bin, pg_dir, pg_port, pg_user, "select count(*) from visits") == "1", "psql: a table written and read")
    check(redis(redis_port, "PING") == "+PONG", "redis: PING answers PONG")
    check(redis(redis_port, "INCR", "tour") == ":1", "redis: INCR answers 1")
    status, body = http_get(app_port, "/")
    check(status == 200, f"app: GET / answers 200 ({body.strip()})")
    reply = json.loads(body)
    check(isinstance(reply["redis"]["hits"], int) and reply["postgres"]["select"] == 1,
          "app: its reply carries a Redis counter and Postgres's answer")
    out, _ = t.run("cache", "logs")
    check("Ready to accept connections" in out, "cache logs: Redis's own log")

    print("== supervised: Redis killed with SIGKILL comes back, and the app restarts with it")
    lines, table = t.status_lines()
    found = re.search(r"^supervisor: pid (\d+)$", table, re.M)
    check(found is not None, "stack status ends with the stack's supervisor (the file has restart policies)")
    supervisor = int(found.group(1))
    check(alive(supervisor), f"the supervisor (pid {supervisor}) is alive")
    os.kill(daemon_pids["cache"], signal.SIGKILL)
    pid_of = lambda role: int((state / ".stackup" / role / "pid").read_text().split()[0]) \
        if (state / ".stackup" / role / "pid").exists() else 0
    wait_until(lambda: pid_of("cache") not in (0, daemon_pids["cache"]) and listening(redis_port), "redis is back")
    check(redis(redis_port, "PING") == "+PONG", f"redis answers again, as pid {pid_of('cache')}")
    def healthy():
        try:
            return http_get(app_port, "/health")[0] == 200
        except (urllib.error.URLError, OSError):
            return False
    wait_until(lambda: pid_of("app") not in (0, daemon_pids["app"]) and healthy(),
               "the app is back (on_dependency_restart = restart)")
    check(True, f"the app was restarted with it, as pid {pid_of('app')}")
    out, _ = t.run("stack", "status", "--json")
    rows = {r["role"]: r for r in json.loads(out)}
    check(rows["cache"]["restarts"] == 1 and rows["cache"]["exit"]["signal"] == "SIGKILL",
          "--json: the cache has restarts 1 and its exit, killed by SIGKILL")
    check(rows["cache"]["state"] == "running" and rows["cache"]["supervision"] == "watching",
          "--json: the cache is running again, watched")
    daemon_pids = {r: pid_of(r) for r in ("cache", "app")}

    print("== cache down: the app, which depends on it, goes down first")
    out, _ = t.run("cache", "down")
    app_at, cache_at = out.find("app 'app' suspended"), out.find("cache 'redis' suspended")
    check(-1 < app_at < cache_at, "the app is suspended before the cache")
    for role in ("cache", "app"):
        wait_until(lambda: not alive(daemon_pids[role]), f"{role} (pid {daemon_pids[role]}) is gone")
        check(not alive(daemon_pids[role]), f"{role} (pid {daemon_pids[role]}) is gone")
    check(not listening(redis_port) and not listening(app_port), "the Redis and app ports are closed")
    check(alive(pg_pid) and listening(pg_port), "postgres still runs")
    time.sleep(3)  # past the supervisor's poll: a down wins, nothing comes back
    check(not listening(redis_port) and not listening(app_port), "the supervisor restarted neither (a down wins)")
    check(alive(supervisor), "the supervisor still runs")
    lines, _ = t.status_lines()
    check(lines == {"state": "running", "database": "running", "cache": "suspended", "app": "suspended"},
          "stack status: state and database running, cache and app suspended")

    print("== stack up again: only the cache and the app start")
    out, _ = t.run("stack", "up")
    check("already running" in out and "database 'postgres' resuming" not in out, "the database is left as it was")
    check(http_get(app_port, "/health")[0] == 200, "app: GET /health answers 200 again")
    check(psql(pg_bin, pg_dir, pg_port, pg_user, "select count(*) from visits") == "1", "psql: the table is still there")
    daemon_pids = {r: int((state / ".stackup" / r / "pid").read_text().split()[0]) for r in ("cache", "app")}

    print("== stack up --attach: every line prefixed by its role; Ctrl-C takes the stack down")
    print(f"$ stackctl stack up --attach")
    p = subprocess.Popen([t.stackctl, "-f", t.file, "stack", "up", "--attach"], env=t.env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        fd, seen, deadline = p.stdout.fileno(), b"", time.monotonic() + CEILING
        while b"is already running" not in seen and b" is up" not in seen and time.monotonic() < deadline:
            if select.select([fd], [], [], 1)[0]:
                seen += os.read(fd, 65536) or b""
        wait_until(lambda: not alive(supervisor), f"the detached supervisor (pid {supervisor}) is gone")
        check(not alive(supervisor), f"the attached up took over from the detached supervisor (pid {supervisor})")
        http_get(app_port, "/health")
        while b"app | " not in seen and time.monotonic() < deadline:
            if select.select([fd], [], [], 1)[0]:
                seen += os.read(fd, 65536) or b""
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=CEILING)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    out = (seen + out).decode()
    print("    " + (out + err.decode()).rstrip().replace("\n", "\n    "))
    check(re.search(r"^app \| .*GET /health", out, re.M) is not None, "the app's request log, after 'app | '")
    check(p.returncode == 0, f"Ctrl-C: the stack went down, exit 0 (got {p.returncode})")
    lines, _ = t.status_lines()
    check(all(lines[r] == "suspended" for r in ("database", "cache", "app")), "every daemon is suspended")

    print("== stack down --force: nothing left")
    t.run("stack", "down", "--force")
    for name, pid in (("postgres", pg_pid), *daemon_pids.items()):
        wait_until(lambda: not alive(pid), f"{name} (pid {pid}) is gone")
        check(not alive(pid), f"{name} (pid {pid}) is gone")
    for name, port in (("postgres", pg_port), ("redis", redis_port), ("app", app_port)):
        check(not listening(port), f"{name}'s port {port} is closed")
    check(not (state / ".stackup").exists(), f"the state directory {state / '.stackup'} is removed, data included")
    states = t.states()
    check(all(s == "deprovisioned" for s, _ in states.values()), "every component is deprovisioned")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stackctl", required=True)
    ap.add_argument("--file", default=str(ROOT / "examples" / "devstack" / "stackup.toml"))
    args = ap.parse_args()

    pg_bin = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
    missing = [p for p in (f"{pg_bin}/initdb", f"{pg_bin}/pg_ctl", f"{pg_bin}/postgres", f"{pg_bin}/psql")
               if not os.access(p, os.X_OK)]
    if not shutil.which("redis-server"):
        missing.append("redis-server")
    if missing:
        print(f"not installed: {', '.join(missing)} (tools/bootstrap.sh installs postgresql and redis-server)")
        # CI installs them: there a missing one is a failure, never a silent skip.
        return 1 if os.environ.get("CI") else SKIP
    # Postgres refuses to run as root: root runs it as the postgres user (made by Debian's package).
    pg_user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    token = f"stackup-devstack-tour-{uuid.uuid4().hex}"
    state = Path(tempfile.mkdtemp(prefix="stackup-devstack-"))
    state.chmod(0o711)  # the postgres user must be able to enter it
    ports = free_ports(3)
    env = dict(os.environ, NO_COLOR="1", DEVSTACK_DIR=str(state), PG_USER=pg_user, PG_BIN=pg_bin,
               PG_PORT=str(ports[0]), REDIS_PORT=str(ports[1]), APP_PORT=str(ports[2]), STACKUP_DEVSTACK_TOUR=token)
    env.pop("STACKUP_FILE", None)
    t = Tour(args.stackctl, args.file, env)
    print(f"state directory {state}, ports {ports}, Postgres runs as {pg_user}")
    failed = False
    try:
        tour(t, pg_bin, pg_user, state, ports)
    except Exception as e:  # any failure: report it, and still take the stack down
        failed = True
        print(f"FAIL: {type(e).__name__}: {e}")
        subprocess.run([args.stackctl, "-f", args.file, "stack", "down", "--force"], env=env, capture_output=True,
                       timeout=CEILING)
    finally:
        left = with_token(token)
        if left:
            failed = True
            print(f"FAIL: processes left running: {left}; killing them")
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(state, ignore_errors=True)
    print("FAILED" if failed else "devstack tour: every check passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
