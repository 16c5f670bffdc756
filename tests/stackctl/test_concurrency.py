#!/usr/bin/env python3
"""stackctl under concurrent commands and closed outputs, as real processes:
several commands on one stack take turns (the stack file's lock), and an
operation whose output goes away still finishes (or rolls back) and says so
with its exit status.

usage: test_concurrency.py --stackctl PATH [unittest options]
"""
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

STACKCTL = None
ROUNDS = 6


def processes(*argv):
    """Pids of live processes whose command line is exactly argv."""
    want = "\0".join(argv) + "\0"
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline") as f:
                if f.read() != want:
                    continue
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    continue
        except (FileNotFoundError, ProcessLookupError):
            continue
        found.append(int(pid))
    return found


class Case(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="stackctl-concurrency-")
        self.dir = os.path.realpath(self._tmp.name)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STACKUP_")}
        self.env["NO_COLOR"] = "1"
        self.file = None

    def tearDown(self):
        if self.file:
            self.ctl("stack", "down", "--force")
        self._tmp.cleanup()

    def write(self, text):
        self.file = os.path.join(self.dir, "stackup.toml")
        with open(self.file, "w") as f:
            f.write(textwrap.dedent(text))
        return self.file

    def ctl(self, *args, **kw):
        return subprocess.run([STACKCTL, "-f", self.file, *args], cwd=self.dir, env=self.env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, **kw)

    def start(self, *args):
        return subprocess.Popen([STACKCTL, "-f", self.file, *args], cwd=self.dir, env=self.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class OneTransitionAtATime(Case):
    def test_concurrent_ups_of_a_non_idempotent_provision_all_succeed_with_one_daemon(self):
        # Without the lock, every process sees 'setup' unprovisioned, all run its
        # mkdir, all but one fail, and a failing one's rollback may stop the daemon
        # another one started.
        self.write("""\
            [components.setup]
            flavor = "command"
            provision = "sleep 0.2; mkdir marker"
            deprovision = "rmdir marker"
            is_provisioned = "test -d marker"

            [components.server]
            flavor = "local_daemon"
            command = ["sleep", "31337"]
            depends_on = ["setup"]
            """)
        for n in range(ROUNDS):
            with self.subTest(round=n):
                racers = [self.start("stack", "up") for _ in range(4)]
                results = [(p.wait(timeout=120), *p.communicate()) for p in racers]
                for code, out, err in results:
                    self.assertEqual(code, 0, out + err)
                self.assertEqual(len(processes("sleep", "31337")), 1)
                status = self.ctl("stack", "status", "--json")
                self.assertEqual(status.returncode, 0, status.stderr)
                self.assertEqual(status.stdout.count('"running"'), 2, status.stdout)
                # Exactly one of them did the work; the others found it done.
                self.assertEqual(sum("is up" in out for _, out, _ in results), 1, results)
                down = self.ctl("stack", "down", "--force")
                self.assertEqual(down.returncode, 0, down.stdout + down.stderr)
                self.assertEqual(processes("sleep", "31337"), [])
                self.assertFalse(os.path.exists(os.path.join(self.dir, "marker")))

    def test_up_racing_down_force_never_leaves_a_dependent_running_over_a_removed_dependency(self):
        self.write("""\
            [components.base]
            flavor = "command"
            provision = "mkdir base"
            deprovision = "rm -rf base"
            is_provisioned = "test -d base"

            [components.mid]
            flavor = "command"
            provision = "sleep 0.3; touch mid"
            deprovision = "rm -f mid"
            is_provisioned = "test -f mid"
            depends_on = ["base"]

            [components.app]
            flavor = "local_daemon"
            command = ["sleep", "31338"]
            depends_on = ["mid"]
            """)
        base = os.path.join(self.dir, "base")
        # Without the lock, a down that finds 'app' and 'mid' not provisioned yet
        # removes 'base' while the up of 'app' is provisioning 'mid', then the up
        # starts 'app' over nothing.
        for n in range(16):
            with self.subTest(round=n):
                up = self.start("app", "up")
                time.sleep(0.02 * n)  # down starts at a different point of up each round
                down = self.start("stack", "down", "--force")
                for p in (up, down):
                    p.wait(timeout=120)
                    p.communicate()
                app_running = len(processes("sleep", "31338")) > 0
                mid = os.path.exists(os.path.join(self.dir, "mid"))
                # Some serial order explains the end: all up, or all down.
                self.assertEqual((app_running, mid), (os.path.isdir(base),) * 2,
                                 f"app running: {app_running}, mid: {mid}, base provisioned: {os.path.isdir(base)}")
                self.assertEqual(self.ctl("stack", "down", "--force").returncode, 0)

    def test_status_waits_for_a_transition_and_a_follow_holds_nothing(self):
        self.write("""\
            [components.slow]
            flavor = "command"
            provision = "touch started; sleep 1; mkdir done"
            deprovision = "rm -rf done started"
            is_provisioned = "test -d done"

            [components.server]
            flavor = "local_daemon"
            command = ["sh", "-c", "echo hello; exec sleep 31339"]
            """)
        self.assertEqual(self.ctl("server", "up").returncode, 0)
        follower = self.start("server", "logs", "--follow")
        try:
            up = self.start("slow", "up")
            started = os.path.join(self.dir, "started")
            deadline = time.monotonic() + 30
            while not os.path.exists(started) and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertTrue(os.path.exists(started))
            # The status waits for the up that holds the lock, so it sees it done.
            status = self.ctl("stack", "status", "--json")
            self.assertEqual(status.returncode, 0, status.stderr)
            self.assertNotIn('"deprovisioned"', status.stdout)
            self.assertIn("waiting for another command on this stack", status.stderr)
            self.assertEqual(up.wait(timeout=60), 0)
            up.communicate()
            # A following `logs` never held the lock: a down goes ahead while it runs.
            self.assertIsNone(follower.poll())
            down = self.ctl("stack", "down", "--force")
            self.assertEqual(down.returncode, 0, down.stdout + down.stderr)
            self.assertNotIn("waiting", down.stderr)
        finally:
            follower.terminate()
            follower.communicate()

    def test_ctrl_c_while_waiting_for_the_lock_ends_having_done_nothing(self):
        self.write("""\
            [components.slow]
            flavor = "command"
            provision = "touch started; sleep 3; mkdir done"
            deprovision = "rm -rf done started"
            is_provisioned = "test -d done"

            [components.other]
            flavor = "command"
            provision = "mkdir other"
            deprovision = "rm -rf other"
            is_provisioned = "test -d other"
            """)
        holder = self.start("slow", "up")
        started = os.path.join(self.dir, "started")
        deadline = time.monotonic() + 30
        while not os.path.exists(started) and time.monotonic() < deadline:
            time.sleep(0.01)
        waiter = self.start("other", "up")
        deadline = time.monotonic() + 30
        line = ""
        while "waiting" not in line and time.monotonic() < deadline:
            line = waiter.stderr.readline()
        self.assertIn("waiting for another command on this stack", line)
        waiter.send_signal(2)
        out, err = waiter.communicate(timeout=30)
        self.assertEqual(waiter.returncode, 130, out + err)
        self.assertIn("nothing was done", err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "other")))
        self.assertEqual(holder.wait(timeout=60), 0)
        holder.communicate()


class ClosedOutput(Case):
    STACK = """\
        [components.files]
        flavor = "local_directory"
        path = "data"

        [components.setup]
        flavor = "command"
        provision = "mkdir -p data/setup"
        deprovision = "rm -rf data/setup"
        is_provisioned = "test -d data/setup"
        depends_on = ["files"]

        [components.server]
        flavor = "local_daemon"
        command = ["sleep", "31340"]
        depends_on = ["setup"]
        """

    def closed_pipe_run(self, *args, close_stderr=False):
        """Runs stackctl with its output (and its errors) into a pipe nobody reads."""
        r_out, w_out = os.pipe()
        os.close(r_out)  # every write fails with EPIPE (and SIGPIPE) from the first one on
        stderr = subprocess.PIPE
        if close_stderr:
            r_err, w_err = os.pipe()
            os.close(r_err)
            stderr = w_err
        try:
            p = subprocess.Popen([STACKCTL, "-f", self.file, *args], cwd=self.dir, env=self.env,
                                 stdin=subprocess.DEVNULL, stdout=w_out, stderr=stderr, text=True)
        finally:
            os.close(w_out)
            if close_stderr:
                os.close(w_err)
        _, err = p.communicate(timeout=120)
        return p.returncode, err or ""

    def test_an_up_whose_output_is_closed_still_comes_up_and_exits_non_zero(self):
        self.write(self.STACK)
        for close_stderr in (False, True):
            with self.subTest(close_stderr=close_stderr):
                code, err = self.closed_pipe_run("stack", "up", close_stderr=close_stderr)
                self.assertEqual(code, 1, err)  # not killed by SIGPIPE (-13), not a silent success
                if not close_stderr:
                    self.assertIn("could not all be written", err)
                status = self.ctl("stack", "status", "--json")
                self.assertEqual(status.stdout.count('"running"'), 3, status.stdout)
                self.assertEqual(len(processes("sleep", "31340")), 1)
                code, err = self.closed_pipe_run("stack", "down", "--force", close_stderr=close_stderr)
                self.assertEqual(code, 1, err)
                self.assertEqual(processes("sleep", "31340"), [])
                self.assertFalse(os.path.exists(os.path.join(self.dir, "data")))

    def test_a_failed_up_whose_output_is_closed_is_rolled_back_whole(self):
        self.write(self.STACK.replace('command = ["sleep", "31340"]', 'command = ["sleep", "31340"]\n'
                                      'ready = { tcp = 1 }\nstart_timeout = "200ms"'))
        code, err = self.closed_pipe_run("stack", "up")
        self.assertEqual(code, 1, err)
        self.assertIn("rollback", err)
        self.assertEqual(processes("sleep", "31340"), [])
        self.assertFalse(os.path.exists(os.path.join(self.dir, "data")))


if __name__ == "__main__":
    if "--stackctl" not in sys.argv:
        sys.exit(__doc__)
    at = sys.argv.index("--stackctl")
    STACKCTL = os.path.abspath(sys.argv[at + 1])
    del sys.argv[at:at + 2]
    unittest.main(verbosity=2)
