#!/usr/bin/env python3
"""Crash recovery and cross-process concurrency of the demo_stack demo.

Every demo_stack run is a separate process, as a user's would be:

  crash-up     SIGKILL `stack up` while a slow daemon is starting (after the
               orchestrator is up); `stack status` must tell the truth, `stack
               down --force` must leave no process and no state, and a fresh
               `stack up` must work.
  crash-down   the same with SIGKILL in the middle of `stack down --force`,
               while a daemon is slow to stop.
  concurrent   4 x `stack up` at once: all exit 0, exactly one daemon per
               component; 4 x `stack down --force` at once: all exit 0, nothing
               left. Then up and down racing each other: no crash, and a final
               `stack down --force` leaves nothing.
  directory    the artifact store (a LocalDirectory holding a few thousand
               files) under contention, round after round, with busy processes
               loading the CPU: 4 x `artifact_store down --force` at once all
               exit 0 and leave nothing; `up` and `down --force` racing leave
               the directory provisioned or gone, never an unmarked or
               half-removed one; a writer adding files during `down --force`
               leaves it removed or still provisioned, and a later `down
               --force` removes it; so does a `down --force` killed with
               SIGKILL while it removes the contents.

The daemons run through a small wrapper (DEMO_STACK_SERVER) around demo_server
that can hold a daemon before it starts serving, or hold its exit after SIGTERM,
until the driver says so: the driver waits for conditions, never for a time.
Every process the test starts carries a token in its environment; whatever
happens, all of them are killed at the end.

usage: demo_stack_reliability.py --demo-stack PATH --demo-server PATH [SCENARIO...]
Exit status 0 when every check passed, 1 otherwise.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

ROLES = ["artifact_store", "orchestrator", "model_deployer", "experiment_tracker"]
# A ceiling for one demo_stack run or one awaited condition: it only stops a hung
# test; nothing is asserted about how long anything takes.
CEILING = float(os.environ.get("RELIABILITY_CEILING", "120"))
# Files put in the artifact store before it is removed, so that removal takes long enough to race.
DIRECTORY_FILES = int(os.environ.get("RELIABILITY_DIRECTORY_FILES", "300"))

WRAPPER = r"""#!/bin/sh
# demo_server, slowed down on demand for the model deployer ("deployer"):
#   SLOW_MODE=start  wait for $GATE_DIR/open before serving (slow to start)
#   SLOW_MODE=stop   on SIGTERM (which a stop sends to this main process
#                    only), stop the server, note it in $GATE_DIR/term and
#                    keep running until SIGKILL (slow to stop)
name=""; prev=""
for a in "$@"; do
  [ "$prev" = "--name" ] && name=$a
  prev=$a
done
if [ "$name" != "deployer" ] || [ -z "$SLOW_MODE" ] || [ "$SLOW_MODE" = none ]; then
  exec "$DEMO_SERVER" "$@"
fi
if [ "$SLOW_MODE" = start ]; then
  : > "$GATE_DIR/starting"
  while [ ! -e "$GATE_DIR/open" ]; do sleep 0.02; done
  exec "$DEMO_SERVER" "$@"
fi
trap 'kill "$server"; wait "$server"; : > "$GATE_DIR/term"; while :; do sleep 0.05; done' TERM
"$DEMO_SERVER" "$@" &
server=$!
wait
"""

failures = []


def check(ok, what, detail=""):
    print(("PASS  " if ok else "FAIL  ") + what + ("" if ok or not detail else "\n      " + detail.replace("\n", "\n      ")))
    sys.stdout.flush()
    if not ok:
        failures.append(what)
    return ok


def free_port_pair():
    """Two consecutive free loopback ports (the demo uses base and base + 1)."""
    for _ in range(200):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            base = a.getsockname()[1]
            if base < 1024 or base > 65533:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", base + 1))
                except OSError:
                    continue
                return base
    raise RuntimeError("no two consecutive free loopback ports")


def port_answers(port):
    """True when GET /health on 127.0.0.1:port answers 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.split(b"\r\n", 1)[0].split(b" ")[1:2] == [b"200"]
    except OSError:
        return False


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def session_leader(pid):
    """The process leads its own session, as every daemon stackup starts does."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[3]) == pid
    except (OSError, IndexError, ValueError):
        return False


class Env:
    """One scenario's world: a temp dir, a state dir, ports, a token, the wrapper."""

    def __init__(self, demo_stack, demo_server):
        self.demo_stack = demo_stack
        self.tmp = tempfile.mkdtemp(prefix="stackup-reliability-")
        self.state = os.path.join(self.tmp, "state")
        self.gate = os.path.join(self.tmp, "gate")
        os.mkdir(self.gate)
        self.token = uuid.uuid4().hex
        self.port = free_port_pair()
        self.wrapper = os.path.join(self.tmp, "slow_server")
        with open(self.wrapper, "w") as f:
            f.write(WRAPPER)
        os.chmod(self.wrapper, 0o755)
        self.base_env = dict(os.environ)
        self.base_env.update({
            "DEMO_STACK_STATE_DIR": self.state,
            "DEMO_STACK_PORT_BASE": str(self.port),
            "DEMO_STACK_SERVER": self.wrapper,
            "DEMO_SERVER": demo_server,
            "GATE_DIR": self.gate,
            "STACKUP_RELIABILITY_TOKEN": self.token,
            "NO_COLOR": "1",
        })

    def env(self, slow="none"):
        e = dict(self.base_env)
        e["SLOW_MODE"] = slow
        return e

    def start(self, *args, slow="none"):
        return subprocess.Popen([self.demo_stack, *args], env=self.env(slow), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def run(self, *args, slow="none"):
        p = self.start(*args, slow=slow)
        try:
            out, _ = p.communicate(timeout=CEILING)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            out += "\n[killed: still running after the ceiling]"
        return p.returncode, out

    def processes(self):
        """Live processes carrying this scenario's token (the daemons, their helpers)."""
        needle = ("STACKUP_RELIABILITY_TOKEN=" + self.token).encode()
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if needle in f.read().split(b"\0") and alive(int(name)):
                        with open(f"/proc/{name}/cmdline", "rb") as c:
                            found.append((int(name), c.read().replace(b"\0", b" ").decode(errors="replace").strip()))
            except OSError:
                pass
        return sorted(found)

    def daemons(self, name):
        """Live demo_server processes named `name` (scheduler or deployer)."""
        return [pid for pid, cmd in self.processes()
                if "demo_server" in cmd.split(" ")[0] and f"--name {name} " in cmd + " "]

    def state_entries(self):
        """Everything left under the state directory."""
        if not os.path.exists(self.state):
            return []
        out = []
        for root, dirs, files in os.walk(self.state):
            for n in dirs + files:
                out.append(os.path.relpath(os.path.join(root, n), self.state))
        return sorted(out)

    def pid_file(self, role):
        try:
            with open(os.path.join(self.state, role, "pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def status(self):
        """`stack status` as {role: (state, detail)}, with its exit code and output."""
        code, out = self.run("stack", "status")
        rows = {}
        for line in out.splitlines():
            words = line.split()
            if len(words) >= 4 and words[0] in ROLES:
                rows[words[0]] = (words[3], " ".join(words[4:]))
        return code, out, rows

    def wait_for(self, condition):
        end = time.monotonic() + CEILING
        while not condition():
            if time.monotonic() > end:
                return False
            time.sleep(0.01)
        return True

    def cleanup(self):
        for _ in range(200):
            procs = self.processes()
            if not procs:
                break
            for pid, _ in procs:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.02)
        shutil.rmtree(self.tmp, ignore_errors=True)


def clean_after_force_down(env, what):
    """`stack down --force` leaves no process and no state; a fresh up then works."""
    code, out = env.run("stack", "down", "--force")
    check(code == 0, f"{what}: stack down --force exits 0", out)
    check(env.wait_for(lambda: not env.processes()), f"{what}: no daemon process is left",
          repr(env.processes()))
    check(env.state_entries() == [], f"{what}: no state is left", repr(env.state_entries()))
    code, out = env.run("stack", "up")
    check(code == 0, f"{what}: a fresh stack up works", out)
    code, out, rows = env.status()
    check(code == 0 and all(rows.get(r, ("?",))[0] == "running" for r in ROLES),
          f"{what}: after the fresh up every component runs", out)
    check(port_answers(env.port) and port_answers(env.port + 1), f"{what}: both daemons answer /health")
    code, out = env.run("stack", "down", "--force")
    check(code == 0, f"{what}: final stack down --force exits 0", out)
    check(env.wait_for(lambda: not env.processes()), f"{what}: nothing left at the end", repr(env.processes()))
    check(env.state_entries() == [], f"{what}: no state left at the end", repr(env.state_entries()))


def status_is_truthful(env, what, expected):
    """status reports `expected` states, matches what the processes show, and changes nothing."""
    def snapshot():  # the daemons lead their sessions; the wrapper's short-lived helpers do not
        return env.state_entries(), [p for p in env.processes() if session_leader(p[0])]
    before = snapshot()
    code, out, rows = env.status()
    check(code == 0, f"{what}: stack status exits 0", out)
    got = {r: rows.get(r, ("missing", ""))[0] for r in ROLES}
    check(got == expected, f"{what}: stack status shows {expected}", out)
    after = snapshot()
    check(after == before, f"{what}: stack status changes nothing", f"before {before}\nafter  {after}")
    return rows


def scenario_crash_up(env):
    what = "crash during up"
    p = env.start("stack", "up", slow="start")
    started = env.wait_for(lambda: os.path.exists(os.path.join(env.gate, "starting")) or p.poll() is not None)
    if not check(started and p.poll() is None, f"{what}: the deployer is starting while stack up runs",
                 (p.communicate()[0] if p.poll() is not None else "")):
        p.kill()
        p.wait()
        return
    p.send_signal(signal.SIGKILL)
    p.communicate()
    check(p.returncode == -signal.SIGKILL, f"{what}: demo_stack was killed by SIGKILL")

    # The truth, seen independently of demo_stack.
    orchestrator = env.pid_file("orchestrator")
    deployer = env.pid_file("model_deployer")
    check(orchestrator is not None and alive(orchestrator) and port_answers(env.port),
          f"{what}: the orchestrator daemon was started and answers")
    check(deployer is not None and alive(deployer), f"{what}: the deployer's process was recorded before it ran",
          f"pid file: {deployer}")
    check(not port_answers(env.port + 1), f"{what}: the deployer does not answer (not ready)")

    rows = status_is_truthful(env, what, {"artifact_store": "running", "orchestrator": "running",
                                          "model_deployer": "suspended", "experiment_tracker": "suspended"})
    check(f"pid {orchestrator}" in rows.get("orchestrator", ("", ""))[1], f"{what}: status shows the orchestrator's pid")
    check(f"pid {deployer}" in rows.get("model_deployer", ("", ""))[1],
          f"{what}: status shows the deployer's live, unready process")
    clean_after_force_down(env, what)
    check(not alive(deployer) and not alive(orchestrator), f"{what}: the recorded processes are gone")


def scenario_crash_down(env):
    what = "crash during down"
    code, out = env.run("stack", "up", slow="stop")
    if not check(code == 0, f"{what}: stack up exits 0", out):
        return
    orchestrator = env.pid_file("orchestrator")
    deployer = env.pid_file("model_deployer")
    p = env.start("stack", "down", "--force")
    term = env.wait_for(lambda: os.path.exists(os.path.join(env.gate, "term")) or p.poll() is not None)
    if not check(term and p.poll() is None, f"{what}: the deployer is stopping while stack down runs",
                 (p.communicate()[0] if p.poll() is not None else "")):
        p.kill()
        p.wait()
        return
    p.send_signal(signal.SIGKILL)
    p.communicate()
    check(p.returncode == -signal.SIGKILL, f"{what}: demo_stack was killed by SIGKILL")

    check(alive(orchestrator) and port_answers(env.port), f"{what}: the orchestrator still runs")
    check(alive(deployer) and not port_answers(env.port + 1),
          f"{what}: the deployer's process lingers but no longer serves")
    rows = status_is_truthful(env, what, {"artifact_store": "running", "orchestrator": "running",
                                          "model_deployer": "suspended", "experiment_tracker": "deprovisioned"})
    check(f"pid {deployer}" in rows.get("model_deployer", ("", ""))[1],
          f"{what}: status shows the lingering deployer process")
    clean_after_force_down(env, what)
    check(not alive(deployer) and not alive(orchestrator), f"{what}: the recorded processes are gone")


def race(env, commands, what):
    procs = [env.start(*c) for c in commands]
    results = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=CEILING)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            out += "\n[killed: still running after the ceiling]"
        results.append((p.returncode, out))
    return results


def scenario_concurrent(env, rounds=int(os.environ.get("RELIABILITY_ROUNDS", "6"))):
    for r in range(1, rounds + 1):
        what = f"concurrency round {r}"
        # Two of the four use parallel mode, so threads race too.
        ups = race(env, [("stack", "up"), ("stack", "up", "-p"), ("stack", "up"), ("stack", "up", "--parallel")],
                   what)
        for i, (code, out) in enumerate(ups):
            check(code == 0, f"{what}: concurrent stack up #{i + 1} exits 0", out)
        schedulers, deployers = env.daemons("scheduler"), env.daemons("deployer")
        check(len(schedulers) == 1 and len(deployers) == 1, f"{what}: exactly one daemon per component",
              f"scheduler {schedulers}, deployer {deployers}: {env.processes()}")
        check(schedulers == [env.pid_file("orchestrator")] and deployers == [env.pid_file("model_deployer")],
              f"{what}: the pid files name those daemons")
        code, out, rows = env.status()
        check(code == 0 and all(rows.get(x, ("?",))[0] == "running" for x in ROLES), f"{what}: everything runs",
              out)

        downs = race(env, [("stack", "down", "--force"), ("stack", "down", "--force", "-p"),
                           ("stack", "down", "--force"), ("stack", "down", "-f")], what)
        for i, (code, out) in enumerate(downs):
            check(code == 0, f"{what}: concurrent stack down --force #{i + 1} exits 0", out)
        check(env.wait_for(lambda: not env.processes()), f"{what}: no daemon is left", repr(env.processes()))
        check(env.state_entries() == [], f"{what}: no state is left", repr(env.state_entries()))

    what = "up racing down"
    for r in range(1, rounds + 1):
        results = race(env, [("stack", "up"), ("stack", "down", "--force"), ("stack", "up", "-p"),
                             ("stack", "down", "-f", "-p")], what)
        for i, (code, out) in enumerate(results):
            # Either may win; neither may crash or misreport.
            check(code in (0, 1), f"{what} round {r}: racer #{i + 1} exits 0 or 1 (no crash, no usage error)", out)
            check("internal error" not in out, f"{what} round {r}: racer #{i + 1} reports no internal error", out)
        schedulers, deployers = env.daemons("scheduler"), env.daemons("deployer")
        check(len(schedulers) <= 1 and len(deployers) <= 1, f"{what} round {r}: never two daemons for one component",
              repr(env.processes()))
        code, out = env.run("stack", "down", "--force")
        check(code == 0, f"{what} round {r}: a final stack down --force exits 0", out)
        check(env.wait_for(lambda: not env.processes()), f"{what} round {r}: no daemon is left",
              repr(env.processes()))
        check(env.state_entries() == [], f"{what} round {r}: no state is left", repr(env.state_entries()))


def fill(directory, files=DIRECTORY_FILES):
    """A directory full of artifacts: subdirectories of small files, so removal takes a while."""
    for i in range(files):
        sub = os.path.join(directory, f"run-{i % 20}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"artifact-{i}"), "w") as f:
            f.write("data\n")


def marked(directory):
    return os.path.isfile(os.path.join(directory, ".stackup-directory")) and not os.path.islink(directory)


class Busy:
    """Processes spinning on the CPU (as many as there are cores), so that racers
    are preempted at arbitrary points. They spin only inside `with busy:` (the
    races), not while the driver prepares a round; killed by stop()."""

    def __init__(self, env):
        code = "import time\nend = time.monotonic() + %f\nwhile time.monotonic() < end: pass\n" % CEILING
        self.procs = [subprocess.Popen([sys.executable, "-c", code], env=env.env())
                      for _ in range(os.cpu_count() or 2)]
        self._signal(signal.SIGSTOP)

    def _signal(self, sig):
        for p in self.procs:
            p.send_signal(sig)

    def __enter__(self):
        self._signal(signal.SIGCONT)
        return self

    def __exit__(self, *exc):
        self._signal(signal.SIGSTOP)

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


def scenario_directory(env, rounds=int(os.environ.get("RELIABILITY_DIRECTORY_ROUNDS", "15"))):
    artifacts = os.path.join(env.state, "artifacts")
    no_marker = "no stackup marker"
    busy = Busy(env)
    try:
        for r in range(1, rounds + 1):
            what = f"directory round {r}"
            code, out = env.run("artifact_store", "up")
            if not check(code == 0 and marked(artifacts), f"{what}: artifact_store up creates the marked directory",
                         out):
                return
            fill(artifacts)
            with busy:
                downs = race(env, [("artifact_store", "down", "--force"), ("artifact_store", "down", "-f", "-p"),
                                   ("artifact_store", "down", "--force"), ("artifact_store", "down", "-f")], what)
            for i, (code, out) in enumerate(downs):
                check(code == 0 and no_marker not in out, f"{what}: concurrent down --force #{i + 1} exits 0", out)
            check(env.state_entries() == [], f"{what}: the directory is gone, nothing left beside it",
                  repr(env.state_entries()[:5]))

            # up and down --force racing: either order, never a directory left half-removed or unmarked.
            env.run("artifact_store", "up")
            fill(artifacts, DIRECTORY_FILES // 4)
            with busy:
                results = race(env, [("artifact_store", "down", "-f"), ("artifact_store", "up"),
                                     ("artifact_store", "down", "--force", "-p"), ("artifact_store", "up", "-p")],
                               what)
            for i, (code, out) in enumerate(results):
                # An up whose check saw the directory before a down removed it
                # reports it not provisioned (exit 1); nothing else may fail.
                check(code in (0, 1) and no_marker not in out and "internal error" not in out,
                      f"{what}: up/down racer #{i + 1} exits 0 or 1 and refuses nothing", out)
            left = env.state_entries()
            check(left == [] or (marked(artifacts) and all(e.startswith("artifacts") for e in left)
                                 and not any(".removing-" in e for e in left)),
                  f"{what}: after up racing down the directory is provisioned or gone", repr(left[:5]))
            code, out = env.run("artifact_store", "down", "--force")
            check(code == 0 and env.state_entries() == [], f"{what}: a final down --force leaves nothing",
                  out + repr(env.state_entries()[:5]))

        # A writer adding files while down --force removes the directory.
        what = "directory with a writer"
        for r in range(1, 4):
            env.run("artifact_store", "up")
            fill(artifacts, DIRECTORY_FILES // 4)
            writer = subprocess.Popen([sys.executable, "-c", WRITER, artifacts], env=env.env(),
                                      stdout=subprocess.PIPE, text=True)
            writer.stdout.readline()  # it has started writing
            with busy:
                code, out = env.run("artifact_store", "down", "--force")
            writer.kill()
            writer.wait()
            check(code in (0, 1) and no_marker not in out, f"{what} {r}: down --force exits 0 or 1", out)
            check(not os.path.exists(artifacts) or marked(artifacts),
                  f"{what} {r}: the directory is removed or still provisioned (marked)",
                  repr(env.state_entries()[:5]))
            code, out = env.run("artifact_store", "down", "--force")
            check(code == 0 and env.state_entries() == [], f"{what} {r}: a later down --force removes it all",
                  out + repr(env.state_entries()[:5]))

        # down --force killed while it removes the contents: the directory is
        # still provisioned, and the next down --force removes everything.
        what = "directory removal killed"
        killed = False
        for _ in range(5):  # until the kill lands during the removal, not after it
            env.run("artifact_store", "up")
            fill(artifacts, DIRECTORY_FILES * 10)
            p = env.start("artifact_store", "down", "--force")
            aside = f"{artifacts}.removing-{p.pid}"
            # Marked, not just there: a kill between its mkdir and its marker
            # would leave an empty unmarked directory, not contents moved aside.
            while p.poll() is None and not marked(aside):
                time.sleep(0.001)
            if p.poll() is None:
                p.kill()
            p.communicate()
            if p.returncode == -signal.SIGKILL:
                killed = True
                break
        if check(killed, f"{what}: demo_stack was killed by SIGKILL while it removed the contents"):
            check(marked(aside), f"{what}: the contents moved aside keep the marker", repr(env.state_entries()[:5]))
            status_is_truthful(env, what, {"artifact_store": "running", "orchestrator": "deprovisioned",
                                                  "model_deployer": "deprovisioned",
                                                  "experiment_tracker": "deprovisioned"})
            code, out = env.run("artifact_store", "down", "--force")
            check(code == 0 and env.state_entries() == [], f"{what}: the next down --force removes it all",
                  out + repr(env.state_entries()[:5]))
    finally:
        busy.stop()


# Adds files to the directory given as argv[1], by path, until killed.
WRITER = r"""
import os, sys
d = sys.argv[1]
n = 0
print("writing", flush=True)
while True:
    try:
        with open(os.path.join(d, "new-%d" % n), "w") as f:
            f.write("x")
    except OSError:
        pass
    n += 1
"""


SCENARIOS = {"crash-up": scenario_crash_up, "crash-down": scenario_crash_down, "concurrent": scenario_concurrent,
             "directory": scenario_directory}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo-stack", required=True)
    parser.add_argument("--demo-server", required=True)
    parser.add_argument("scenarios", nargs="*", help="any of: " + ", ".join(SCENARIOS) + " (default: all)")
    args = parser.parse_args()
    unknown = [n for n in args.scenarios if n not in SCENARIOS]
    if unknown:
        parser.error("unknown scenario(s): " + ", ".join(unknown) + "; choose from " + ", ".join(SCENARIOS))
    for name in args.scenarios or list(SCENARIOS):
        env = Env(os.path.abspath(args.demo_stack), os.path.abspath(args.demo_server))
        print(f"== {name}  (state {env.state}, ports {env.port}-{env.port + 1})")
        try:
            SCENARIOS[name](env)
        except Exception as e:  # a broken driver is a failure too, never a silent pass
            check(False, f"{name}: the driver itself failed", repr(e))
        finally:
            leftover = env.processes()
            env.cleanup()
            check(not leftover, f"{name}: no process of the test outlives it", repr(leftover))
    print(f"{'FAILED' if failures else 'PASSED'}: {len(failures)} failed check(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
