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
# two separately flushed halves. Both then stay up. DELAY: before they start writing.
STACK = f"""\
    [components.num]
    flavor = "local_daemon"
    command = ["sh", "-c", "sleep DELAY; i=0; while [ $i -lt {LINES} ]; do echo \\"n $i\\"; i=$((i+1)); done; sleep 1000"]

    [components.long]
    flavor = "local_daemon"
    command = ["sh", "-c", "sleep DELAY; h=$(head -c 4096 /dev/zero | tr '\\\\0' a); i=0; while [ $i -lt {HALVES} ]; do printf '%s' \\"L$i:$h\\"; sleep 0.05; printf '%s\\\\n' \\"$h:end$i\\"; i=$((i+1)); done; sleep 1000"]

    [components.store]
    flavor = "local_directory"
    path = "data"
    """


def long_line(i):
    return f"L{i}:{HALF}{HALF}:end{i}"


class StackCase(unittest.TestCase):
    DELAY = "1"

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="stackctl-logs-")
        self.dir = os.path.realpath(self._tmp.name)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STACKUP_") and k != "NO_COLOR"}
        self.file = os.path.join(self.dir, "stackup.toml")
        with open(self.file, "w") as f:
            f.write(textwrap.dedent(STACK).replace("DELAY", self.DELAY))

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


class MergedLogs(StackCase):
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


def running(pid, within):
    """Whether pid still runs (not a zombie) after waiting up to `within` seconds for it to go."""
    deadline = time.monotonic() + within
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                alive = f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            alive = False
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def states(case):
    return [r["state"] for r in json.loads(case.ok("stack", "status", "--json").stdout)]


class Attached(StackCase):
    """`stack up --attach`: up, then the merged output and supervision until Ctrl-C."""
    DELAY = "4"  # the output starts once the follower has (it shows no history)

    def setUp(self):
        super().setUp()
        self._pending = {}  # read_until's bytes read past a line it returned, by pid

    def attach(self, *args):
        return subprocess.Popen([STACKCTL, "stack", "up", "--attach", *args], cwd=self.dir, env=self.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def read_until(self, p, predicate, timeout=60):
        """Lines of p's stdout until predicate(line, lines so far) holds; all of them.
        Read with os.read into a buffer of our own: select() on a buffered file
        would not see lines already in its buffer."""
        lines = []
        pending = self._pending.setdefault(p.pid, b"")
        deadline = time.monotonic() + timeout
        fd = p.stdout.fileno()
        while time.monotonic() < deadline:
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                lines.append(line.decode() + "\n")
                if predicate(lines[-1], lines):
                    self._pending[p.pid] = pending
                    return lines
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
        self._pending[p.pid] = pending
        self.fail(f"not seen; got {len(lines)} lines: {lines[-5:]}")

    def finish(self, p):
        try:
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        return (self._pending.pop(p.pid, b"") + out).decode(), err.decode()

    def test_lines_prefixed_then_ctrl_c_takes_the_stack_down_exit_0(self):
        p = self.attach()
        try:
            before = self.read_until(p, lambda line, _: line.startswith("stack '") and " is up" in line)
            self.assertTrue(any(line.startswith("+ num 'num' resumed") for line in before), before)
            # from the current end of each log: what comes next, prefixed, whole and in order
            last_num, last_long = f"num | n {LINES - 1}\n", f"long | {long_line(HALVES - 1)}\n"
            lines = self.read_until(p, lambda _, lines: last_num in lines and last_long in lines)
            for line in lines:
                self.assertRegex(line, r"^(num|long) \| ", line[:80])
            nums = [int(line.split()[3]) for line in lines if line.startswith("num | n ")]
            self.assertEqual(nums, list(range(nums[0], LINES)))
            longs = [line[len("long | "):-1] for line in lines if line.startswith("long | L")]
            first = int(longs[0][1:longs[0].index(":")])
            self.assertEqual(longs, [long_line(i) for i in range(first, HALVES)])
            self.assertEqual(states(self), ["running"] * 3)
            p.send_signal(signal.SIGINT)
            out, err = self.finish(p)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertIn("stack 'stackctl-logs-", out)
        self.assertIn(" is down", out)
        self.assertIn("- long 'long' suspending ...", out)
        self.assertNotIn("\x1b", out)
        self.assertEqual(states(self), ["suspended", "suspended", "running"])  # a directory does not suspend
        self.assertEqual(p.returncode, 0, err)

    def test_sigterm_too_and_the_look_options(self):
        p = self.attach("--no-prefix", "--timestamps")
        try:
            self.read_until(p, lambda line, _: " is up" in line)
            stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
            lines = self.read_until(p, lambda line, _: re.match(rf"^{stamp} L\d+:a+:end\d+\n$", line) is not None)
            self.assertRegex(lines[-1], rf"^{stamp} L\d+:a{{8192}}:end\d+\n$")
            p.send_signal(signal.SIGTERM)
            out, err = self.finish(p)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(states(self), ["suspended", "suspended", "running"])
        self.assertEqual(p.returncode, 0, err)

    def test_a_second_ctrl_c_kills_what_is_left_and_ends_it_at_once_with_130(self):
        with open(self.file, "w") as f:
            f.write(textwrap.dedent("""\
                [components.stubborn]
                flavor = "local_daemon"
                command = ["sh", "-c", "trap '' TERM; echo started; while true; do sleep 0.1; done"]
                stop_timeout = "60s"
                """))
        p = self.attach()
        pid = None
        try:
            self.read_until(p, lambda line, _: " is up" in line)
            pid = int(json.loads(self.ok("stack", "status", "--json").stdout)[0]["detail"].split()[1].rstrip(","))
            p.send_signal(signal.SIGINT)
            self.read_until(p, lambda line, _: line.startswith("- stubborn 'stubborn' suspending"))
            p.send_signal(signal.SIGINT)  # while the down waits for it
            out, err = self.finish(p)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
            gone = pid is None or not running(pid, 10)
            if not gone:
                os.kill(pid, signal.SIGKILL)  # not worth the minute of its stop_timeout
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("interrupted again: what was left was killed", err)
        self.assertTrue(gone, "the daemon outlived the second Ctrl-C")
        self.assertEqual(states(self), ["suspended"])

    def test_look_and_abort_options_need_attach_and_are_the_stacks(self):
        for option in ("--no-prefix", "--timestamps", "--abort-on-exit"):
            r = self.run_ctl("stack", "up", option)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"option '{option}' is for 'stack up --attach': add --attach (-a)", r.stderr)
        r = self.run_ctl("num", "up", "--attach")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("unknown option '--attach' for 'num up'", r.stderr)
        self.assertEqual(states(self), ["deprovisioned"] * 3)  # nothing was started

    def test_abort_on_exit_takes_the_stack_down_and_exits_with_its_code(self):
        with open(self.file, "w") as f:
            f.write(textwrap.dedent("""\
                [components.steady]
                flavor = "local_daemon"
                command = ["sh", "-c", "echo steady; exec sleep 1000"]

                [components.short]
                flavor = "local_daemon"
                command = ["sh", "-c", "sleep 2; echo bye; exit 7"]
                """))
        p = self.attach("--abort-on-exit")
        try:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGINT)  # it did not end by itself: take the stack down, then look why
            out, err = self.finish(p)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(states(self), ["suspended", "suspended"])
        self.assertEqual(p.returncode, 7, out + err)
        self.assertIn("short | bye\n", out)


if __name__ == "__main__":
    if "--stackctl" not in sys.argv:
        sys.exit(__doc__)
    at = sys.argv.index("--stackctl")
    STACKCTL = os.path.abspath(sys.argv[at + 1])
    del sys.argv[at:at + 2]
    unittest.main(verbosity=2)
