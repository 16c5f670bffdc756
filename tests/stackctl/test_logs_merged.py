#!/usr/bin/env python3
"""`stackctl stack logs`: every component's log merged, each line prefixed with
its role, with real daemons from a stack file. Checks that every line arrives
once, whole and in order per component (also lines written in two halves),
--tail, --no-prefix, --timestamps, colour only on a terminal, usage errors, and
that killing the follower leaves the stack running.

usage: test_logs_merged.py --stackctl PATH [unittest options]
"""
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

STACKCTL = None

LINES = 20000
HALVES = 40
HALF = "a" * 4096

# `num` writes numbered lines as fast as sh can; `long` writes lines of 8 KiB in
# two separately flushed halves. Both then stay up.
STACK = f"""\
    [components.num]
    flavor = "local_daemon"
    command = ["sh", "-c", "sleep 1; i=0; while [ $i -lt {LINES} ]; do echo \\"n $i\\"; i=$((i+1)); done; sleep 1000"]

    [components.long]
    flavor = "local_daemon"
    command = ["sh", "-c", "h=$(head -c 4096 /dev/zero | tr '\\\\0' a); i=0; while [ $i -lt {HALVES} ]; do printf '%s' \\"L$i:$h\\"; sleep 0.05; printf '%s\\\\n' \\"$h:end$i\\"; i=$((i+1)); done; sleep 1000"]

    [components.store]
    flavor = "local_directory"
    path = "data"
    """


def long_line(i):
    return f"L{i}:{HALF}{HALF}:end{i}"


class MergedLogs(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="stackctl-logs-")
        self.dir = os.path.realpath(self._tmp.name)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STACKUP_") and k != "NO_COLOR"}
        self.file = os.path.join(self.dir, "stackup.toml")
        with open(self.file, "w") as f:
            f.write(textwrap.dedent(STACK))

    def tearDown(self):
        self.run_ctl("stack", "down", "--force")
        self._tmp.cleanup()

    def run_ctl(self, *args, env=None, timeout=60):
        return subprocess.run([STACKCTL, *args], cwd=self.dir, env=env or self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    def ok(self, *args, **kw):
        r = self.run_ctl(*args, **kw)
        self.assertEqual(r.returncode, 0, f"stackctl {' '.join(args)}:\n{r.stdout}{r.stderr}")
        return r

    def follower(self, *args, **kw):
        return subprocess.Popen([STACKCTL, "stack", "logs", "--follow", *args], cwd=self.dir, env=self.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)

    def wait_written(self):
        """Until both daemons have written everything (read with `<role> logs`)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            num = self.run_ctl("num", "logs", "--tail", "1").stdout
            long = self.run_ctl("long", "logs", "--tail", "1").stdout
            if num == f"n {LINES - 1}\n" and long.endswith(f":end{HALVES - 1}\n"):
                return
            time.sleep(0.2)
        self.fail("the daemons did not write their lines")

    def check_merged(self, text):
        """Every line of each role once, whole, in order; nothing else but stackup's own lines."""
        nums, longs = [], []
        for line in text.split("\n")[:-1]:
            role, sep, rest = line.partition(" | ")
            self.assertEqual(sep, " | ", repr(line[:100]))
            self.assertIn(role, ("num", "long"), repr(line[:100]))
            if rest.startswith("--- stackup "):
                continue
            (nums if role == "num" else longs).append(rest)
        self.assertTrue(text.endswith("\n"))
        self.assertEqual(nums, [f"n {i}" for i in range(LINES)])
        self.assertEqual(len(longs), HALVES, [x[:20] + "..." + x[-10:] for x in longs if x != long_line(0)][:5])
        self.assertEqual(longs, [long_line(i) for i in range(HALVES)])

    def test_follow_shows_every_line_once_whole_and_in_order_per_role(self):
        # Started before the stack: the logs do not exist yet, and are picked up when they appear.
        follower = self.follower()
        try:
            self.ok("stack", "up")
            self.wait_written()
            time.sleep(0.5)  # past the follower's longest wait (it wakes every 250 ms at least)
            follower.send_signal(signal.SIGINT)
            out, err = follower.communicate(timeout=20)
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.communicate()
        self.assertEqual(follower.returncode, 0, err)
        self.assertIn(b"has no log yet", err)
        self.check_merged(out.decode())

    def test_without_follow_prints_what_exists_then_exits(self):
        self.ok("stack", "up")
        self.wait_written()
        r = self.ok("stack", "logs")
        self.check_merged(r.stdout)
        self.assertEqual(r.stderr, "")
        # the last N lines of each log, in the stack's order
        r = self.ok("stack", "logs", "--tail", "2")
        self.assertEqual(r.stdout, f"num | n {LINES - 2}\nnum | n {LINES - 1}\n"
                                   f"long | {long_line(HALVES - 2)}\nlong | {long_line(HALVES - 1)}\n")
        self.assertEqual(self.ok("stack", "logs", "-n", "0").stdout, "")
        r = self.ok("stack", "logs", "--no-prefix", "--tail=1")
        self.assertEqual(r.stdout, f"n {LINES - 1}\n{long_line(HALVES - 1)}\n")
        r = self.ok("stack", "logs", "--timestamps", "--tail", "1")
        stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
        self.assertRegex(r.stdout, rf"^{stamp} num \| n {LINES - 1}\n{stamp} long \| L{HALVES - 1}:a+:end{HALVES - 1}\n$")
        r = self.ok("stack", "logs", "--timestamps", "--no-prefix", "-n1")
        self.assertRegex(r.stdout, rf"^{stamp} n {LINES - 1}\n{stamp} L{HALVES - 1}:a+:end{HALVES - 1}\n$")
        # --tail, then following: the tail once, then what is appended
        follower = self.follower("--tail", "1")
        try:
            first = follower.stdout.readline()
            self.assertEqual(first, f"num | n {LINES - 1}\n".encode())
            self.assertEqual(follower.stdout.readline(), f"long | {long_line(HALVES - 1)}\n".encode())
            follower.send_signal(signal.SIGTERM)
            out, err = follower.communicate(timeout=20)
            self.assertEqual(follower.returncode, 0, err)
            self.assertEqual(out, b"")
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.communicate()

    def test_colour_only_on_a_terminal_without_no_color(self):
        self.ok("stack", "up")
        self.wait_written()
        self.assertNotIn("\x1b", self.ok("stack", "logs", "--tail", "3").stdout)  # a pipe

        def on_terminal(env):
            main, sub = pty.openpty()
            p = subprocess.Popen([STACKCTL, "stack", "logs", "--tail", "3"], cwd=self.dir, env=env,
                                 stdin=subprocess.DEVNULL, stdout=sub, stderr=subprocess.PIPE)
            os.close(sub)
            chunks = []
            while True:
                ready, _, _ = select.select([main], [], [], 20)
                if not ready:
                    break
                try:
                    data = os.read(main, 65536)
                except OSError:  # EIO: the other side closed
                    break
                if not data:
                    break
                chunks.append(data)
            os.close(main)
            self.assertEqual(p.wait(timeout=20), 0)
            p.stderr.close()
            return b"".join(chunks).decode().replace("\r\n", "\n")

        plain = on_terminal(dict(self.env, NO_COLOR="1"))
        self.assertNotIn("\x1b", plain)
        self.assertIn(f"num | n {LINES - 1}\n", plain)
        coloured = on_terminal(self.env)
        self.assertIn("\x1b[", coloured)
        # one colour per role, the same on every line (and again in another run)
        prefixes = {}
        for line in coloured.split("\n")[:-1]:
            prefix = line[:line.index(" |")]
            role = re.sub(r"\x1b\[[0-9;]*m", "", prefix)
            prefixes.setdefault(role, set()).add(prefix)
        self.assertEqual(sorted(prefixes), ["long", "num"])
        self.assertTrue(all(len(p) == 1 and "\x1b[" in next(iter(p)) for p in prefixes.values()), prefixes)
        self.assertEqual(coloured, on_terminal(self.env))

    def test_usage_errors(self):
        for args, message in ((["--tail", "x"], "option '--tail' needs a whole number of lines (0 or more), not 'x'"),
                              (["--tail"], "option '--tail' needs a number of lines"),
                              (["--bogus"], "unknown option '--bogus' for 'stack logs'; valid options: --tail N (-n N), "
                                            "--follow, --no-prefix, --timestamps")):
            r = self.run_ctl("stack", "logs", *args)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(message, r.stderr)
            self.assertEqual(r.stdout, "")
        # the look of merged lines is for the stack's merged logs only
        r = self.run_ctl("num", "logs", "--no-prefix")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("unknown option '--no-prefix' for 'num logs'; valid options: --tail N (-n N), --follow", r.stderr)
        with open(self.file, "w") as f:
            f.write('[components.store]\nflavor = "local_directory"\npath = "data"\n')
        r = self.run_ctl("stack", "logs")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("no component of stack", r.stderr)
        self.assertIn("keeps a log", r.stderr)

    def test_sigkill_of_the_follower_leaves_every_component_running(self):
        self.ok("stack", "up")
        before = json.loads(self.ok("stack", "status", "--json").stdout)
        follower = self.follower()
        try:
            self.assertTrue(follower.stdout.readline().startswith(b"num | "))
            follower.kill()
            follower.communicate(timeout=20)
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.communicate()
        after = json.loads(self.ok("stack", "status", "--json").stdout)
        self.assertEqual([r["state"] for r in after], ["running"] * 3)
        self.assertEqual([r["detail"] for r in after], [r["detail"] for r in before])  # the same processes
        self.ok("stack", "down")  # and manageable
        self.assertEqual([r["state"] for r in json.loads(self.ok("stack", "status", "--json").stdout)],
                         ["suspended", "suspended", "running"])


if __name__ == "__main__":
    if "--stackctl" not in sys.argv:
        sys.exit(__doc__)
    at = sys.argv.index("--stackctl")
    STACKCTL = os.path.abspath(sys.argv[at + 1])
    del sys.argv[at:at + 2]
    unittest.main(verbosity=2)
