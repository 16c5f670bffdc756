#!/usr/bin/env python3
"""stackctl's bash completion (`stackctl --completion bash`) in a real bash:
the script is sourced, COMP_WORDS set as bash sets them for a line, and the
completion function's COMPREPLY checked: verbs, options, and the roles of the
stack file in use (found by the search, or named with -f / --file=).

usage: test_completion.py --stackctl PATH [unittest options]
"""
import os
import shlex
import subprocess
import sys
import tempfile
import textwrap
import unittest

STACKCTL = None

STACK = """\
    [components.store]
    flavor = "local_directory"
    path = "data/store"

    [components.cache]
    flavor = "command"
    resume = "true"
    is_running = "false"
    depends_on = ["store"]
    """


class Completion(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="stackctl-completion-")
        self.dir = os.path.realpath(self._tmp.name)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STACKUP_")}
        r = subprocess.run([STACKCTL, "--completion", "bash"], capture_output=True, text=True, env=self.env,
                           cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.script = os.path.join(self.dir, "stackctl.bash")
        with open(self.script, "w") as f:
            f.write(r.stdout)

    def tearDown(self):
        self._tmp.cleanup()

    def write_stack(self, relative):
        path = os.path.join(self.dir, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(STACK))
        os.chmod(path, 0o644)
        return path

    def complete(self, *words, cwd=None):
        """COMPREPLY for a line whose last word is being completed; `words` as
        bash splits them (COMP_WORDBREAKS: '--file=x' is '--file' '=' 'x')."""
        words = [STACKCTL, *words]
        line = " ".join(words)
        code = "\n".join([
            f"source {shlex.quote(self.script)}",
            "COMP_WORDS=(" + " ".join(shlex.quote(w) for w in words) + ")",
            f"COMP_CWORD={len(words) - 1}",
            f"COMP_LINE={shlex.quote(line)}",
            "COMP_POINT=${#COMP_LINE}",
            "_stackctl",
            "printf '%s\\n' \"${COMPREPLY[@]}\"",
        ])
        r = subprocess.run(["bash", "--norc", "--noprofile", "-c", code], cwd=cwd or self.dir, env=self.env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return sorted(w for w in r.stdout.split("\n") if w)

    def test_the_script_registers_itself_for_stackctl(self):
        with open(self.script) as f:
            self.assertIn("complete -F _stackctl stackctl\n", f.read())

    def test_targets_without_a_stack_file(self):
        self.assertEqual(self.complete("st"), ["stack"])
        self.assertEqual(self.complete("x"), [])

    def test_verbs_of_the_stack_and_of_a_role(self):
        self.assertEqual(self.complete("stack", ""), ["config", "down", "logs", "status", "supervise", "up"])
        self.assertEqual(self.complete("stack", "st"), ["status"])
        self.assertEqual(self.complete("store", ""), ["down", "logs", "status", "up"])

    def test_options_of_a_verb(self):
        self.assertEqual(self.complete("stack", "down", "-"), ["--force", "--help", "--parallel", "-f", "-h", "-p"])
        self.assertEqual(self.complete("stack", "up", "--"), ["--abort-on-exit", "--attach", "--help", "--no-prefix",
                                                              "--no-rollback", "--parallel", "--timestamps"])
        self.assertEqual(self.complete("store", "up", "--"), ["--help", "--no-rollback", "--parallel"])
        self.assertEqual(self.complete("store", "logs", "--"), ["--follow", "--help", "--tail"])
        self.assertEqual(self.complete("stack", "logs", "--"), ["--follow", "--help", "--no-prefix", "--tail", "--timestamps"])
        self.assertEqual(self.complete("stack", "config", "-"), ["--help", "-h"])
        self.assertEqual(self.complete("store", "logs", "--tail", ""), [])  # a number: nothing to offer
        self.assertEqual(self.complete("stack", "down", ""), [])  # no more words but options
        self.assertEqual(self.complete("--"), ["--completion", "--file", "--help", "--version"])

    def test_roles_of_the_stack_file_found_by_the_search(self):
        self.write_stack("stackup.toml")
        deep = os.path.join(self.dir, "a", "b")
        os.makedirs(deep)
        for cwd in (self.dir, deep):
            self.assertEqual(self.complete("", cwd=cwd), ["cache", "stack", "store"])
            self.assertEqual(self.complete("st", cwd=cwd), ["stack", "store"])

    def test_roles_of_the_file_named_on_the_line(self):
        named = self.write_stack("elsewhere/dev.toml")
        other = os.path.join(self.dir, "other")
        os.makedirs(other)
        self.assertEqual(self.complete("", cwd=other), ["stack"])
        self.assertEqual(self.complete("-f", named, "", cwd=other), ["cache", "stack", "store"])
        self.assertEqual(self.complete("--file", named, "c", cwd=other), ["cache"])
        self.assertEqual(self.complete("--file", "=", named, "s", cwd=other), ["stack", "store"])
        self.assertEqual(self.complete("-f", named, "store", "", cwd=other), ["down", "logs", "status", "up"])
        # and the file itself: file names after -f
        self.assertEqual(self.complete("-f", "elsewhere/d", cwd=self.dir), ["elsewhere/dev.toml"])


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--stackctl" not in args or args.index("--stackctl") + 1 >= len(args):
        sys.exit(__doc__)
    at = args.index("--stackctl")
    STACKCTL = os.path.realpath(args[at + 1])
    del args[at:at + 2]
    unittest.main(argv=[sys.argv[0], *args])
