#!/usr/bin/env python3
"""stackctl's detached supervisor (DESIGN §10 "Detached"): a `stack up` of a
stack with a restart policy leaves one supervisor per stack, `stack status`
names it, a daemon killed is restarted, a down wins, `stack down` stops it,
killing it leaves the stack running. Real processes; waits are polls with a
generous limit, never timing asserts.

usage: test_supervisor.py --stackctl PATH [unittest options]
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

STACKCTL = None
LIMIT = 30  # seconds a poll may wait for what must happen


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def processes_with(tag):
    """Live pids whose command line holds `tag`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if tag in cmdline and alive(int(entry)):
            found.append(int(entry))
    return found


def supervisors(file):
    """Live `stackctl -f FILE stack supervise` processes."""
    return [pid for pid in processes_with(file) if open(f"/proc/{pid}/cmdline", "rb").read().endswith(b"\0supervise\0")]


def poll(what, check):
    deadline = time.monotonic() + LIMIT
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {LIMIT}s: {what}")
        time.sleep(0.05)


class SupervisorCase(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="stackctl-supervisor-")
        self.dir = os.path.realpath(self._tmp.name)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STACKUP_")}
        self.env["NO_COLOR"] = "1"
        self.file = os.path.join(self.dir, "stackup.toml")
        self.tag = f"stackup-supervisor-test-{os.getpid()}-{self.id().rsplit('.', 1)[-1]}"

    def tearDown(self):
        self.run_ctl("stack", "down", "--force")
        for pid in processes_with(self.tag):  # what a failed test left running
            os.kill(pid, signal.SIGKILL)
        self._tmp.cleanup()

    def write(self, policy='restart = { policy = "always", backoff = "50ms" }'):
        with open(self.file, "w") as f:
            f.write(textwrap.dedent(f"""\
                name = "sv"
                [components.cache]
                flavor = "local_daemon"
                command = ["python3", "-c", "import time; time.sleep(1000)", "{self.tag}"]
                {policy}
                [components.store]
                flavor = "local_directory"
                path = "data"
                """))

    def run_ctl(self, *args, input=None, timeout=60):
        return subprocess.run([STACKCTL, "-f", self.file, *args], cwd=self.dir, env=self.env,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    def ok(self, *args, **kw):
        r = self.run_ctl(*args, **kw)
        self.assertEqual(r.returncode, 0, f"stackctl {' '.join(args)}:\n{r.stdout}{r.stderr}")
        return r

    def supervisor(self):
        """The pid `stack status` names, or None for `supervisor: none`."""
        last = self.ok("stack", "status").stdout.splitlines()[-1]
        if last == "supervisor: none":
            return None
        m = re.fullmatch(r"supervisor: pid (\d+)", last)
        self.assertIsNotNone(m, last)
        return int(m.group(1))

    def cache(self):
        rows = json.loads(self.ok("stack", "status", "--json").stdout)
        return next(r for r in rows if r["role"] == "cache")

    def daemon_pid(self):
        row = self.cache()
        m = re.search(r"pid (\d+)", row["detail"])
        return int(m.group(1)) if m and row["state"] == "running" else None

    def up(self):
        r = self.ok("stack", "up")
        m = re.search(r"^supervisor: pid (\d+)$", r.stdout, re.M)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        return int(m.group(1))


class Detached(SupervisorCase):
    def test_a_detached_up_leaves_one_supervisor_that_status_names(self):
        self.write()
        pid = self.up()
        self.assertTrue(alive(pid))
        self.assertEqual(self.supervisor(), pid)
        self.assertEqual(self.cache()["supervision"], "watching")
        # Another up changes nothing: the same supervisor.
        self.assertEqual(self.up(), pid)
        self.assertEqual(supervisors(self.file), [pid])

    def test_a_killed_daemon_is_restarted_and_status_says_how_it_ended(self):
        self.write()
        self.up()
        first = self.daemon_pid()
        os.kill(first, signal.SIGKILL)
        second = poll("a new daemon", lambda: (p := self.daemon_pid()) and p != first and p)
        self.assertTrue(alive(second))
        row = poll("the restart recorded", lambda: (r := self.cache())["restarts"] >= 1 and r)
        self.assertEqual(row["exit"]["signal"], "SIGKILL")
        self.assertRegex(row["exit"]["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        table = self.ok("stack", "status").stdout
        self.assertRegex(table, r"killed by SIGKILL at \d\d:\d\d:\d\d, restarts \d+; pid \d+")

    def test_a_role_down_stays_down(self):
        self.write()
        supervisor = self.up()
        pid = self.daemon_pid()
        self.ok("cache", "down")
        self.assertFalse(alive(pid))
        poll("the supervisor sees it down", lambda: self.cache()["supervision"] == "none")
        # A restart would come within ~50 ms: give it many times that, then look.
        time.sleep(1.5)
        self.assertEqual(self.cache()["state"], "suspended")
        self.assertEqual(processes_with(self.tag), [])
        self.assertEqual(self.supervisor(), supervisor)  # still running, for the rest of the stack
        # An up clears the mark: killed again, it comes back.
        self.ok("cache", "up")
        pid = self.daemon_pid()
        poll("the supervisor watches it again", lambda: self.cache()["supervision"] == "watching")
        os.kill(pid, signal.SIGKILL)
        poll("a new daemon after the up", lambda: (p := self.daemon_pid()) and p != pid)

    def test_stack_down_stops_the_supervisor_first_and_leaves_nothing_running(self):
        self.write()
        supervisor = self.up()
        r = self.ok("stack", "down")
        self.assertIn(f"stopped the stack's supervisor (pid {supervisor})", r.stdout)
        self.assertFalse(alive(supervisor))
        self.assertIsNone(self.supervisor())
        self.assertEqual(processes_with(self.tag), [])
        self.assertEqual(supervisors(self.file), [])
        self.assertEqual(self.cache()["supervision"], "none")
        # --force removes the supervision state with the stack.
        self.up()
        self.ok("stack", "down", "--force")
        self.assertFalse(os.path.exists(os.path.join(self.dir, ".stackup")))
        self.assertEqual(supervisors(self.file), [])

    def test_a_supervisor_killed_leaves_the_stack_running_and_the_next_up_starts_another(self):
        self.write()
        supervisor = self.up()
        pid = self.daemon_pid()
        os.kill(supervisor, signal.SIGKILL)
        poll("the supervisor gone", lambda: not alive(supervisor))
        self.assertTrue(alive(pid))
        self.assertIsNone(self.supervisor())
        self.assertEqual(self.cache()["state"], "running")
        again = self.up()
        self.assertNotEqual(again, supervisor)
        self.assertTrue(alive(again))
        self.assertEqual(self.daemon_pid(), pid)  # the up found it running

    def test_two_concurrent_ups_leave_one_supervisor(self):
        self.write()
        results = [None, None]

        def up(i):
            results[i] = self.run_ctl("stack", "up")

        threads = [threading.Thread(target=up, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pids = set()
        for r in results:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            pids.update(int(p) for p in re.findall(r"^supervisor: pid (\d+)$", r.stdout, re.M))
        self.assertEqual(len(pids), 1, results)
        self.assertEqual(self.supervisor(), pids.pop())
        poll("one supervisor process", lambda: len(supervisors(self.file)) == 1)

    def test_a_stack_without_restart_policies_starts_no_supervisor(self):
        self.write(policy="")
        r = self.ok("stack", "up")
        self.assertNotIn("supervisor", r.stdout)
        self.assertIsNone(self.supervisor())
        self.assertFalse(os.path.exists(os.path.join(self.dir, ".stackup", "stack")))
        self.assertEqual(self.cache()["supervision"], "none")
        self.ok("stack", "down")
        self.assertFalse(os.path.exists(os.path.join(self.dir, ".stackup", "stack")))

    def test_a_stack_read_from_standard_input_gets_a_note_instead(self):
        self.write()
        with open(self.file) as f:
            text = f.read()
        r = subprocess.run([STACKCTL, "-f", "-", "stack", "up"], cwd=self.dir, env=self.env, input=text,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("no supervisor started", r.stdout)
        self.assertIn("stack supervise", r.stdout)
        self.assertIsNone(self.supervisor())


class Foreground(SupervisorCase):
    def test_stack_supervise_is_one_per_stack_and_sigterm_leaves_the_stack_running(self):
        self.write()
        detached = self.up()
        r = self.run_ctl("stack", "supervise")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"already supervised by pid {detached}", r.stderr)
        os.kill(detached, signal.SIGTERM)
        poll("the detached supervisor gone", lambda: not alive(detached))
        pid = self.daemon_pid()
        self.assertTrue(alive(pid))
        p = subprocess.Popen([STACKCTL, "-f", self.file, "stack", "supervise"], cwd=self.dir, env=self.env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            poll("the foreground supervisor watching",
                 lambda: self.supervisor() == p.pid and self.cache()["supervision"] == "watching")
            os.kill(pid, signal.SIGKILL)
            poll("a new daemon", lambda: (q := self.daemon_pid()) and q != pid)
            # Its restart done (a stop during one would end it as an interrupted up does).
            poll("the restart done", lambda: (r := self.cache())["restarts"] == 1 and r["supervision"] == "watching")
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=LIMIT)
        finally:
            if p.poll() is None:
                p.kill()
        self.assertEqual(p.returncode, 0, out + err)
        self.assertIn("~ cache 'cache' exited (killed by SIGKILL)", out)
        self.assertIn("~ cache 'cache' restarting in 50ms (1st)", out)
        self.assertEqual(self.cache()["state"], "running")
        self.assertIsNone(self.supervisor())


if __name__ == "__main__":
    if "--stackctl" not in sys.argv:
        sys.exit(__doc__)
    at = sys.argv.index("--stackctl")
    STACKCTL = os.path.abspath(sys.argv[at + 1])
    del sys.argv[at:at + 2]
    unittest.main(verbosity=2)
