#!/usr/bin/env python3
"""stackctl as a user runs it: each command a separate process on stack files
written to temporary directories. Checks exit codes, output, and the real
effects (directories, daemon processes, ports).

usage: test_stackctl.py --stackctl PATH [unittest options]
"""
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

STACKCTL = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class StackctlCase(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="stackctl-test-")
        self.dir = os.path.realpath(self._tmp.name)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STACKUP_")}
        self.env["NO_COLOR"] = "1"
        self.files = []

    def tearDown(self):
        for path in self.files:  # whatever a failed test left running
            self.run_ctl("-f", path, "stack", "down", "--force")
        self._tmp.cleanup()

    def write(self, relative, text, mode=0o644):
        path = os.path.join(self.dir, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        os.chmod(path, mode)
        if path.endswith(".toml"):
            self.files.append(path)
        return path

    def run_ctl(self, *args, cwd=None, env=None, timeout=60):
        return subprocess.run([STACKCTL, *args], cwd=cwd or self.dir, env=env or self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    def ok(self, *args, **kw):
        r = self.run_ctl(*args, **kw)
        self.assertEqual(r.returncode, 0, f"stackctl {' '.join(args)}:\n{r.stdout}{r.stderr}")
        return r

    DIRECTORY = """\
        [components.store]
        flavor = "local_directory"
        path = "data/store"
        """


class FileLookup(StackctlCase):
    def test_the_current_directory_then_parents(self):
        self.write("stackup.toml", self.DIRECTORY)
        deep = os.path.join(self.dir, "a", "b")
        os.makedirs(deep)
        for cwd in (self.dir, deep):
            r = self.ok("--help", cwd=cwd)
            self.assertIn(os.path.join(self.dir, "stackup.toml"), r.stdout)
            self.assertIn("store", r.stdout)
        self.ok("stack", "up", cwd=deep)
        # relative paths are against the file's directory, not the current one
        self.assertTrue(os.path.isdir(os.path.join(self.dir, "data", "store")))
        self.assertFalse(os.path.exists(os.path.join(deep, "data")))
        self.ok("stack", "down", "--force", cwd=deep)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "data", "store")))

    def test_dash_f_wins_over_the_environment_which_wins_over_the_search(self):
        self.write("stackup.toml", 'name = "searched"\n' + textwrap.dedent(self.DIRECTORY))
        env_file = self.write("env/stack.toml", 'name = "from-env"\n' + textwrap.dedent(self.DIRECTORY))
        named = self.write("named/stack.toml", 'name = "named"\n' + textwrap.dedent(self.DIRECTORY))
        self.assertIn("stack 'searched'", self.ok("stack", "status").stdout)
        env = dict(self.env, STACKUP_FILE=env_file)
        self.assertIn("stack 'from-env'", self.ok("stack", "status", env=env).stdout)
        self.assertIn("from $STACKUP_FILE", self.ok("--help", env=env).stdout)
        for flag in (["-f", named], ["--file", named], [f"--file={named}"]):
            r = self.ok(*flag, "stack", "status", env=env)
            self.assertIn("stack 'named'", r.stdout)
        self.assertIn("named with -f", self.ok("-f", named, "--help", env=env).stdout)

    def test_no_file(self):
        r = self.run_ctl("stack", "status")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("no stack file", r.stderr)
        self.assertIn("-f FILE", r.stderr)
        r = self.ok("--help")
        self.assertIn("none: no stackup.toml", r.stdout)
        r = self.run_ctl("-f", os.path.join(self.dir, "missing.toml"), "stack", "status")
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing.toml: cannot read", r.stderr)
        r = self.run_ctl("-f")
        self.assertEqual(r.returncode, 2)
        self.assertIn("needs the stack file", r.stderr)
        r = self.run_ctl("--file=", "stack", "status")
        self.assertEqual(r.returncode, 2)
        self.assertIn("option '--file=' got an empty file name", r.stderr)

    def test_a_dangling_symlink_ends_the_search_instead_of_a_parents_file(self):
        self.write("stackup.toml", 'name = "parent"\n' + textwrap.dedent(self.DIRECTORY))
        deep = os.path.join(self.dir, "proj")
        os.makedirs(deep)
        os.symlink(os.path.join(self.dir, "gone", "stackup.toml"), os.path.join(deep, "stackup.toml"))
        r = self.run_ctl("stack", "status", cwd=deep)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(os.path.join(deep, "stackup.toml") + ": refusing it", r.stderr)
        self.assertIn("it is a symlink", r.stderr)
        self.assertNotIn("parent", r.stdout)
        self.assertIn(os.path.join(deep, "stackup.toml"), self.ok("--help", cwd=deep).stdout)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to give the symlink to another user")
    def test_a_searched_symlink_is_refused_whoever_owns_it(self):
        target = self.write("mine/stack.toml", self.DIRECTORY)
        deep = os.path.join(self.dir, "shared")
        os.makedirs(deep)
        link = os.path.join(deep, "stackup.toml")
        os.symlink(target, link)
        nobody = pwd.getpwnam("nobody")
        os.lchown(link, nobody.pw_uid, nobody.pw_gid)
        r = self.run_ctl("stack", "up", cwd=deep)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("it is a symlink", r.stderr)
        self.assertIn("with -f", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(deep, "data")))
        os.lchown(link, 0, 0)  # a symlink of root's own: refused too (where it points is not checked)
        r = self.run_ctl("stack", "up", cwd=deep)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("it is a symlink", r.stderr)
        self.ok("-f", link, "stack", "status", cwd=deep)  # named explicitly: the caller vouches for it

    def test_a_searched_file_others_can_write_is_refused(self):
        path = self.write("stackup.toml", self.DIRECTORY, mode=0o646)
        r = self.run_ctl("stack", "up")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("refusing", r.stderr)
        self.assertIn("chmod go-w", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "data")))
        r = self.ok("--help")  # the help still comes, saying why the file is refused
        self.assertIn("refusing", r.stdout)
        self.assertIn("-f FILE", r.stdout)
        self.ok("-f", path, "stack", "status")  # named explicitly: the caller vouches for it
        os.chmod(path, 0o644)
        self.write(".env", "X=1\n", mode=0o666)
        r = self.run_ctl("stack", "status")
        self.assertEqual(r.returncode, 2)
        self.assertIn(".env", r.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to give the file to another user")
    def test_a_searched_file_another_user_owns_is_refused(self):
        path = self.write("stackup.toml", self.DIRECTORY)
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
        r = self.run_ctl("stack", "status")
        self.assertEqual(r.returncode, 2)
        self.assertIn("another user", r.stderr)
        self.ok("-f", path, "stack", "status")


class Config(StackctlCase):
    def test_prints_the_stack_as_it_will_run_and_starts_nothing(self):
        port = free_port()
        self.write(".env", "GREETING=from-dotenv\nPORT=1\n")
        path = self.write("stackup.toml", """\
            name = "cfg"
            [components.web]
            flavor = "local_daemon"
            command = ["python3", "-c", "print('${GREETING}')", "$${HOME}"]
            ready = { tcp = "${PORT}" }
            depends_on = ["store"]
            [components.store]
            flavor = "local_directory"
            path = "data/../data/store/"
            """)
        env = dict(self.env, PORT=str(port))  # the environment wins over .env
        r = self.ok("stack", "config", env=env)
        text = r.stdout
        self.assertLess(text.index("[components.store]"), text.index("[components.web]"))  # action order
        self.assertIn('''"print('from-dotenv')"''', text)
        self.assertIn(f"tcp = {port}", text)
        self.assertIn(f'path = "{self.dir}/data/store"', text)
        self.assertIn(f'state_dir = "{self.dir}/.stackup/web"', text)
        self.assertIn('"$${HOME}"', text)  # still a literal once read back
        self.assertFalse(os.path.exists(os.path.join(self.dir, "data")))
        self.assertFalse(os.path.exists(os.path.join(self.dir, ".stackup")))
        # It is itself a stack file that gives the same stack.
        again = self.write("again/stack.toml", text)
        r2 = self.ok("-f", again, "stack", "config", env=self.env)
        strip = lambda s: [line for line in s.splitlines() if not line.startswith("#")]
        self.assertEqual(strip(r2.stdout), strip(text))
        self.assertEqual(self.run_ctl("stack", "config", "extra").returncode, 2)
        del path


class Errors(StackctlCase):
    def test_a_file_error_exits_2_at_its_line_and_column_and_creates_nothing(self):
        self.write("stackup.toml", """\
            [components.store]
            flavor = "local_directory"
            path = "data/store"
            colour = "blue"
            """)
        for args in (["stack", "up"], ["stack", "status"], ["stack", "config"], ["--help"]):
            r = self.run_ctl(*args)
            if args == ["--help"]:  # the help still comes, naming the file and what is wrong with it
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("usage: stackctl [-f FILE]", r.stdout)
                self.assertIn("stackup.toml:4:1: unknown key 'colour'", r.stdout)
                continue
            self.assertEqual(r.returncode, 2, args)
            self.assertIn("stackup.toml:4:1: unknown key 'colour'", r.stderr)
            self.assertIn("valid keys:", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "data")))

    def test_unset_variable_and_cycle(self):
        self.write("stackup.toml", """\
            [components.a]
            flavor = "command"
            resume = "echo ${NOT_SET_ANYWHERE}"
            """)
        r = self.run_ctl("stack", "up")
        self.assertEqual(r.returncode, 2)
        self.assertIn("stackup.toml:3:10: variable 'NOT_SET_ANYWHERE' is not set", r.stderr)
        self.write("stackup.toml", """\
            [components.a]
            flavor = "command"
            depends_on = ["b"]
            [components.b]
            flavor = "command"
            depends_on = ["a"]
            """)
        r = self.run_ctl("stack", "up")
        self.assertEqual(r.returncode, 2)
        self.assertIn("dependency cycle", r.stderr)
        self.assertRegex(r.stderr, r"stackup\.toml:\d+:\d+: ")

    def test_usage_and_action_failures_keep_cli_exit_codes(self):
        self.write("stackup.toml", """\
            [components.broken]
            flavor = "command"
            is_running = "false"
            resume = "echo about to fail >&2; exit 3"
            """)
        r = self.run_ctl("nosuchrole", "up")
        self.assertEqual(r.returncode, 2)
        self.assertIn("valid roles: broken", r.stderr)
        r = self.run_ctl("stack", "up")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("about to fail", r.stderr)

    def test_version_needs_no_stack_file(self):
        for args in (["--version"], ["-f", os.path.join(self.dir, "missing.toml"), "--version"]):
            r = self.ok(*args)
            self.assertEqual(r.stdout, "stackctl 0.2.0\n")
            self.assertEqual(r.stderr, "")
        self.write("stackup.toml", self.DIRECTORY)
        self.assertEqual(self.ok("--version").stdout, "stackctl 0.2.0\n")
        r = self.run_ctl("--version", "now")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unexpected argument 'now' after '--version'", r.stderr)
        r = self.run_ctl("--bogus")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown option '--bogus'; valid options before the command: --file FILE (-f FILE), "
                      "--help (-h), --version, --completion SHELL", r.stderr)

    def test_stack_config_is_a_verb_of_the_command_table(self):
        self.write("stackup.toml", self.DIRECTORY)
        for cwd in (self.dir, os.path.join(self.dir, "..")):
            env = dict(self.env, STACKUP_FILE=os.path.join(self.dir, "stackup.toml")) if cwd != self.dir else None
            r = self.ok("--help", cwd=cwd, env=env)
            self.assertIn("  stack config                        print the stack as it will run", r.stdout)
            self.assertIn("  store  local_directory", r.stdout)
        r = self.ok("--help", cwd=os.path.join(self.dir, ".."))  # no file: the same verbs, no roles
        self.assertIn("  stack config  ", r.stdout)
        self.assertNotIn("roles of stack", r.stdout)
        r = self.run_ctl("stack", "config", "--json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("error: unknown option '--json' for 'stack config': it takes no options", r.stderr)
        r = self.run_ctl("stack", "config", "extra")
        self.assertIn("error: unexpected argument 'extra' after 'stack config'", r.stderr)
        self.assertIn("usage: stackctl [-f FILE] <stack|role> <command> [options]", r.stderr)
        r = self.run_ctl("store", "config")
        self.assertEqual(r.returncode, 2)
        self.assertIn("'store config' is not a command: 'config' is for the whole stack; try 'stack config'", r.stderr)
        self.assertEqual(self.ok("stack", "roles").stdout, "store\n")


class Running(StackctlCase):
    def test_status_json_is_valid_json_with_one_object_per_component(self):
        port = free_port()
        odd = 'we"ird\\dir\tx'
        self.write("stackup.toml", f"""\
            name = "json"
            [components.web]
            flavor = "local_daemon"
            name = "the web"
            command = ["python3", "-m", "http.server", "--bind", "127.0.0.1", "{port}"]
            ready = {{ http = {port}, path = "/" }}
            depends_on = ["store"]
            [components.store]
            flavor = "local_directory"
            path = {json.dumps(odd)}
            """)
        self.ok("stack", "up")
        rows = json.loads(self.ok("stack", "status", "--json").stdout)
        self.assertEqual([r["role"] for r in rows], ["web", "store"])  # the file's order
        for r in rows:
            self.assertEqual(set(r), {"role", "name", "flavor", "state", "detail", "restarts", "exit", "supervision", "current"})
            self.assertIs(r["current"], True)
            self.assertEqual(r["state"], "running")
            self.assertEqual((r["restarts"], r["exit"], r["supervision"]), (0, None, "none"))
        web, store = rows
        self.assertEqual(web["name"], "the web")
        self.assertEqual(web["flavor"], "local_daemon")
        pid = int(web["detail"].split("pid ")[1].split(",")[0])
        self.assertTrue(alive(pid))
        self.assertTrue(listening(port))
        self.assertEqual(store["detail"], os.path.join(self.dir, odd))
        one = json.loads(self.ok("web", "status", "--json").stdout)
        self.assertEqual(len(one), 1)
        self.assertEqual(one[0]["role"], "web")
        self.ok("stack", "down", "--force")
        rows = json.loads(self.ok("stack", "status", "--json").stdout)
        self.assertEqual([r["state"] for r in rows], ["deprovisioned", "deprovisioned"])
        self.assertFalse(alive(pid))
        self.assertFalse(listening(port))

    def test_logs_follow_prints_what_is_appended_until_interrupted(self):
        self.write("stackup.toml", """\
            [components.ticker]
            flavor = "local_daemon"
            command = ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"]
            """)
        self.ok("stack", "up")
        follower = subprocess.Popen([STACKCTL, "ticker", "logs", "--tail", "1", "--follow"], cwd=self.dir,
                                    env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        try:
            seen = []
            deadline = time.monotonic() + 20
            while len(seen) < 8 and time.monotonic() < deadline:
                line = follower.stdout.readline()
                if line:
                    seen.append(line.strip())
            ticks = [int(line.split()[1]) for line in seen if line.startswith("tick ")]
            self.assertGreaterEqual(len(ticks), 8, seen)
            self.assertEqual(ticks, list(range(ticks[0], ticks[0] + len(ticks))))  # nothing lost or repeated
            self.assertIsNone(follower.poll())  # still following
            follower.send_signal(signal.SIGINT)
            self.assertEqual(follower.wait(timeout=10), 0)
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.wait()
            follower.stdout.close()
            follower.stderr.close()
        r = self.run_ctl("ticker", "logs", "-f")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--follow", r.stderr)
        self.ok("stack", "down", "--force")


def nobody():
    return pwd.getpwnam("nobody")


def as_nobody():
    """preexec_fn: become nobody (uid, gid, no supplementary groups but nogroup)."""
    n = nobody()
    os.setgroups([n.pw_gid])
    os.setgid(n.pw_gid)
    os.setuid(n.pw_uid)


def python_for_nobody():
    """A python3 that nobody can run (a root-only pyenv is not one), or skip."""
    for path in ("/usr/bin/python3", "/usr/local/bin/python3", sys.executable):
        probe = subprocess.run([path, "-c", "pass"], preexec_fn=as_nobody, capture_output=True) if os.path.exists(path) else None
        if probe is not None and probe.returncode == 0:
            return path
    raise unittest.SkipTest("no python3 that nobody can run")


def run_watching_memory(cmd, limit=1 << 30, timeout=60, **kwargs):
    """Runs cmd, killing it once its resident memory passes `limit` (a read that
    grows dies there, not the machine). Returns (exit status, stderr, peak
    resident bytes). Watched rather than capped with RLIMIT_AS, which a
    sanitizer build's shadow memory cannot live under."""
    import tempfile
    import time
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, text=True, **kwargs)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            try:
                with open(f"/proc/{p.pid}/status") as st:
                    rss = next((int(l.split()[1]) * 1024 for l in st if l.startswith("VmRSS:")), 0)
            except OSError:
                rss = 0
            if rss > limit or time.monotonic() > deadline:
                p.kill()
            time.sleep(0.005)
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return p.returncode, err.read(), usage.ru_maxrss * 1024


@unittest.skipUnless(os.geteuid() == 0, "needs root: another real user (nobody) attacks the files root runs")
class FoundFileAttacks(StackctlCase):
    """A found stackup.toml decides what runs as root: another user must not get theirs run."""

    def setUp(self):
        super().setUp()
        os.chmod(self.dir, 0o755)  # nobody may reach the directories below
        self.marker = os.path.join(self.dir, "ran-as-root")  # nobody cannot create it: only a root command can

    def evil(self, path):
        """A stack file whose status query, run as root, leaves the marker."""
        with open(path, "w") as f:
            f.write(textwrap.dedent(f"""\
                [components.x]
                flavor = "command"
                is_provisioned = "touch {self.marker}"
                is_running = "touch {self.marker}"
                """))

    def test_a_file_renamed_in_and_out_of_a_sticky_directory_is_never_run(self):
        shared = os.path.join(self.dir, "shared")
        os.mkdir(shared)
        os.chmod(shared, 0o1777)  # as /tmp: nobody can create and rename their own files here
        planted = os.path.join(shared, "planted.toml")
        self.evil(planted)
        os.chown(planted, nobody().pw_uid, nobody().pw_gid)
        target = os.path.join(shared, "stackup.toml")
        # When nothing is in place the search goes on to the parent: give it root's own
        # file there, so what a run finds is known (never a stray file further up).
        self.write("stackup.toml", 'name = "decoy"\n' + textwrap.dedent(self.DIRECTORY))
        # nobody swaps their file in and out as fast as they can, so that a check
        # by path sees nothing while the open finds their file
        swapper = subprocess.Popen([python_for_nobody(), "-c", textwrap.dedent(f"""\
            import os
            while True:
                try:
                    os.rename({planted!r}, {target!r})
                    os.rename({target!r}, {planted!r})
                except OSError:
                    pass
            """)], preexec_fn=as_nobody)
        try:
            results = []
            for _ in range(300):  # bounded
                r = self.run_ctl("stack", "status", cwd=shared)
                results.append(r)
                if os.path.exists(self.marker):
                    break
            self.assertFalse(os.path.exists(self.marker),
                             f"nobody's stack file ran as root (run {len(results)}):\n{r.stdout}{r.stderr}")
            for r in results:  # each run refused the file, or found root's own in the parent
                if r.returncode == 0:
                    self.assertIn("stack 'decoy'", r.stdout)
                    continue
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertTrue("refusing" in r.stderr or "cannot read" in r.stderr, r.stderr)
            # The attack really ran: nobody's loop was alive and its file was in place for some runs
            # (else every run finds the decoy and this test proves nothing).
            self.assertIsNone(swapper.poll(), "nobody's rename loop died")
            self.assertTrue(any("refusing" in r.stderr for r in results),
                            "no run ever found nobody's file in place: the attack did not happen")
        finally:
            swapper.kill()
            swapper.wait()

    def test_a_group_writable_file_is_refused_though_root_owns_it(self):
        path = self.write("stackup.toml", self.DIRECTORY, mode=0o664)
        os.chown(path, 0, nobody().pw_gid)  # nobody's group can write it
        # nobody really can: appends a component that runs what they like as root
        evil = f'\n[components.x]\nflavor = "command"\nis_running = "touch {self.marker}"\n'
        subprocess.run([python_for_nobody(), "-c", f"open({path!r}, 'a').write({evil!r})"], preexec_fn=as_nobody, check=True)
        r = self.run_ctl("stack", "status")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertFalse(os.path.exists(self.marker))
        self.assertIn("its group can write it (mode 0664)", r.stderr)
        self.assertIn("chmod go-w", r.stderr)
        os.chmod(path, 0o644)
        env = self.write(".env", "X=1\n", mode=0o664)
        os.chown(env, 0, nobody().pw_gid)
        r = self.run_ctl("stack", "status")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(env + ": refusing it", r.stderr)

    def test_a_group_writable_directory_is_refused_unless_sticky(self):
        project = os.path.join(self.dir, "project")
        os.mkdir(project)
        os.chown(project, 0, nobody().pw_gid)
        os.chmod(project, 0o775)  # nobody's group may rename root's stackup.toml away and put theirs
        self.write("project/stackup.toml", self.DIRECTORY)
        r = self.run_ctl("stack", "status", cwd=project)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(f"its directory {project}: its group can write it (mode 0775)", r.stderr)
        self.assertIn("name the file with -f", r.stderr)
        os.chmod(project, 0o1775)  # sticky: nobody cannot rename or remove root's entries
        self.ok("stack", "status", cwd=project)


class BadFiles(StackctlCase):
    """Files that hang, grow or crash a reader: each refused at once, exit 2, saying why."""

    def test_a_fifo_stackup_toml_or_env_does_not_hang(self):
        os.mkfifo(os.path.join(self.dir, "stackup.toml"))
        r = self.run_ctl("stack", "status", timeout=20)  # the old code waited for a writer for ever
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("it is a FIFO (named pipe), not a regular file", r.stderr)
        os.unlink(os.path.join(self.dir, "stackup.toml"))
        path = self.write("stackup.toml", self.DIRECTORY)
        os.mkfifo(os.path.join(self.dir, ".env"))
        for args in (["stack", "status"], ["-f", path, "stack", "status"]):
            r = self.run_ctl(*args, timeout=20)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn(".env: cannot read: it is a FIFO (named pipe), not a regular file", r.stderr)

    def test_dev_zero_does_not_grow_memory(self):
        for args, env in ((["stack", "status"], dict(self.env, STACKUP_FILE="/dev/zero")),
                          (["-f", "/dev/zero", "stack", "status"], self.env)):
            code, stderr, peak = run_watching_memory([STACKCTL, *args], cwd=self.dir, env=env)
            self.assertEqual(code, 2, stderr)
            self.assertIn("/dev/zero: cannot read: it holds more than 1 MiB", stderr)
            self.assertLess(peak, 256 << 20, f"stackctl reached {peak >> 20} MiB reading /dev/zero")

    def test_a_named_pipe_and_standard_input_are_read(self):
        text = 'name = "piped"\n' + textwrap.dedent(self.DIRECTORY)
        r = subprocess.run([STACKCTL, "-f", "-", "stack", "config"], cwd=self.dir, env=self.env, input=text,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('name = "piped"', r.stdout)
        self.assertIn(f'path = "{self.dir}/data/store"', r.stdout)  # against the current directory
        r = subprocess.run(["bash", "-c", f'"{STACKCTL}" -f <(cat) stack status'], cwd=self.dir, env=self.env,
                           input=text, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("stack 'piped'", r.stdout)

    def test_a_key_of_50000_dotted_parts_is_an_error_not_a_crash(self):
        self.write("stackup.toml", "a" + ".a" * 50000 + " = 1\n")
        r = self.run_ctl("stack", "status")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("stackup.toml:1:256: nests deeper than 128 levels", r.stderr)

    def test_nested_defaults_never_give_a_wrong_value(self):
        self.write("stackup.toml", """\
            [components.store]
            flavor = "local_directory"
            path = "${A:-${B:-6379}}"
            """)
        env = {k: v for k, v in self.env.items() if k not in ("A", "B")}
        self.assertIn(f'path = "{self.dir}/6379"', self.ok("stack", "config", env=env).stdout)
        self.assertIn(f'path = "{self.dir}/6390"', self.ok("stack", "config", env=dict(env, A="6390")).stdout)
        self.write("stackup.toml", """\
            [components.store]
            flavor = "local_directory"
            path = "${A:-${B}}"
            """)
        r = self.run_ctl("stack", "up", env=env)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("stackup.toml:3:8: variable 'B' is not set", r.stderr)
        self.assertEqual(sorted(os.listdir(self.dir)), ["stackup.toml"])

    def test_values_the_command_line_or_exec_cannot_take_are_file_errors_and_nothing_is_created(self):
        cases = {
            'env = { "" = "x" }': "stackup.toml:4:9: 'env' of component 'x' (local_daemon) has the key \"\"",
            'env = { "A=B" = "x" }': "stackup.toml:4:9: 'env' of component 'x' (local_daemon) has the key \"A=B\"",
            'state_dir = "s\\u0000t"': "stackup.toml:4:13: 'state_dir' of component 'x' (local_daemon) holds a NUL byte",
            'working_dir = "w\\u0000"': "stackup.toml:4:15: 'working_dir' of component 'x' (local_daemon) holds a NUL byte",
        }
        for line, message in cases.items():
            self.write("stackup.toml", f'[components.x]\nflavor = "local_daemon"\ncommand = ["sleep", "60"]\n{line}\n')
            r = self.run_ctl("stack", "up")
            self.assertEqual(r.returncode, 2, line + "\n" + r.stdout + r.stderr)
            self.assertIn(message, r.stderr)
            self.assertEqual(sorted(os.listdir(self.dir)), ["stackup.toml"], line)
        for text, message in (
                ('[components.x]\nflavor = "local_daemon"\ncommand = ["", "60"]\n',
                 "stackup.toml:3:11: 'command' of component 'x' starts with an empty program name"),
                ('[components.x]\nflavor = "local_daemon"\ncommand = ["sleep", "6\\u00000"]\n',
                 "stackup.toml:3:21: 'command' of component 'x' (local_daemon) holds a NUL byte"),
                ('[components.stack]\nflavor = "local_directory"\npath = "d"\n',
                 "stackup.toml:1:13: a component cannot be named 'stack'"),
                ('[components.-d]\nflavor = "local_directory"\npath = "d"\n',
                 "stackup.toml:1:13: component '-d': a role cannot start with '-'")):
            self.write("stackup.toml", text)
            r = self.run_ctl("stack", "up")
            self.assertEqual(r.returncode, 2, text + "\n" + r.stdout + r.stderr)
            self.assertIn(message, r.stderr)
            self.assertEqual(sorted(os.listdir(self.dir)), ["stackup.toml"], text)

    def test_dotenv_follows_compose_and_config_never_writes_what_does_not_read_back(self):
        with open(os.path.join(self.dir, ".env"), "wb") as f:
            f.write(b'\xef\xbb\xbfexport\tFIRST="a" # a comment\nSECOND=b # a comment\n')
        self.write("stackup.toml", """\
            [components.store]
            flavor = "local_directory"
            path = "${FIRST}-${SECOND}"
            """)
        env = {k: v for k, v in self.env.items() if k not in ("FIRST", "SECOND")}
        self.assertIn(f'path = "{self.dir}/a-b"', self.ok("stack", "config", env=env).stdout)
        with open(os.path.join(self.dir, ".env"), "wb") as f:
            f.write(b"FIRST=caf\xe9\nSECOND=b\n")
        r = self.run_ctl("stack", "config", env=env)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("stackup.toml:3:8: 'path' of component 'store' (local_directory) holds bytes that are not UTF-8",
                      r.stderr)
        self.assertEqual(r.stdout, "")


if __name__ == "__main__":
    if "--stackctl" not in sys.argv:
        sys.exit(__doc__)
    at = sys.argv.index("--stackctl")
    STACKCTL = os.path.abspath(sys.argv[at + 1])
    del sys.argv[at:at + 2]
    unittest.main(verbosity=2)
