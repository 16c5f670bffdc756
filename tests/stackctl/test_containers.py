#!/usr/bin/env python3
"""stackctl with `flavor = "container"`: a real container (podman, the tests'
busybox image) brought up, served, reported, stopped and removed by separate
stackctl processes; and a file error at its line and column. Every test removes
its containers, even when it fails.

usage: test_containers.py --stackctl PATH [unittest options]
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import unittest
import urllib.request

STACKCTL = None
HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = "localhost/stackup-test/busybox:1"


def test_image():
    """The tests' image (as tests/support/podman.hpp builds it), built if absent."""
    if subprocess.run(["podman", "image", "exists", IMAGE]).returncode == 0:
        return IMAGE
    with tempfile.TemporaryDirectory(prefix="stackup-image-") as d:
        root = os.path.join(d, "root")
        for sub in ("bin", "www", "tmp"):
            os.makedirs(os.path.join(root, sub))
        shutil.copy("/bin/busybox", os.path.join(root, "bin/busybox"))
        for applet in ("sh", "httpd", "sleep", "cat", "echo", "ls", "true", "false", "kill", "ps", "nc", "env",
                       "mkdir", "touch", "rm", "test", "wget", "date", "id"):
            os.symlink("busybox", os.path.join(root, "bin", applet))
        with open(os.path.join(root, "www/index.html"), "w") as f:
            f.write("stackup test image\n")
        tar = os.path.join(d, "root.tar")
        subprocess.run(["tar", "-C", root, "-cf", tar, "."], check=True)
        subprocess.run(["podman", "import", "--quiet", "--change", 'CMD ["/bin/sh"]', tar, IMAGE],
                       check=True, stdout=subprocess.DEVNULL)
    return IMAGE


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Containers(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="stackctl-containers-")
        self.dir = os.path.realpath(self._tmp.name)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STACKUP_")}
        self.env.setdefault("CONTAINERS_CONF", os.path.join(HERE, "..", "support", "containers.conf"))
        os.environ.setdefault("CONTAINERS_CONF", self.env["CONTAINERS_CONF"])
        self.stack = f"sc{os.getpid()}-{self._testMethodName[-12:].replace('_', '-')}"
        self.file = os.path.join(self.dir, "stackup.toml")
        test_image()

    def tearDown(self):
        ids = subprocess.run(["podman", "ps", "-aq", "--filter", f"label=io.stackup.stack={self.stack}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["podman", "rm", "-f", "-t", "0", *ids], capture_output=True)
        vols = subprocess.run(["podman", "volume", "ls", "-q", "--filter", f"label=io.stackup.stack={self.stack}"],
                              capture_output=True, text=True).stdout.split()
        if vols:
            subprocess.run(["podman", "volume", "rm", "-f", *vols], capture_output=True)
        self._tmp.cleanup()

    def write(self, text):
        with open(self.file, "w") as f:
            f.write(textwrap.dedent(text))

    def run_ctl(self, *args, check=True):
        p = subprocess.run([STACKCTL, "-f", self.file, *args], env=self.env, capture_output=True, text=True,
                           timeout=120)
        if check:
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p

    def status(self):
        return {c["role"]: c for c in json.loads(self.run_ctl("stack", "status", "--json").stdout)}

    def test_up_status_down(self):
        port = free_port()
        self.write(f"""\
            name = "{self.stack}"

            [components.web]
            flavor = "container"
            image = "{IMAGE}"
            engine = "podman"
            command = ["httpd", "-f", "-p", "80", "-h", "/site"]
            ports = ["127.0.0.1:{port}:80"]
            volumes = ["./site:/site:ro", "{self.stack}-data:/data"]
            ready = {{ http = {port}, path = "/" }}
            stop_timeout = "2s"
            """)
        os.makedirs(os.path.join(self.dir, "site"))
        with open(os.path.join(self.dir, "site", "index.html"), "w") as f:
            f.write("served from the stack's directory\n")

        self.run_ctl("stack", "up")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            self.assertIn("served from the stack's directory", r.read().decode())
        web = self.status()["web"]
        self.assertEqual(web["flavor"], "container")
        self.assertEqual(web["state"], "running")
        self.assertIn("container ", web["detail"])
        name = f"stackup-{self.stack}-web"
        labels = subprocess.run(["podman", "inspect", "--format", '{{index .Config.Labels "io.stackup.role"}}', name],
                                capture_output=True, text=True).stdout.strip()
        self.assertEqual(labels, "web")

        self.run_ctl("stack", "down")
        self.assertEqual(self.status()["web"]["state"], "suspended")
        with self.assertRaises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)

        self.run_ctl("stack", "down", "--force")
        self.assertEqual(self.status()["web"]["state"], "deprovisioned")
        self.assertNotEqual(subprocess.run(["podman", "container", "exists", name]).returncode, 0)
        self.assertNotEqual(subprocess.run(["podman", "volume", "exists", f"{self.stack}-data"]).returncode, 0)

    def test_status_asks_the_engine_once_for_all_containers(self):
        roles = ("a", "b", "c")
        self.write(f'name = "{self.stack}"\n' + "".join(f"""
            [components.{r}]
            flavor = "container"
            image = "{IMAGE}"
            engine = "podman"
            command = ["sleep", "600"]
            stop_timeout = "1s"
            """ for r in roles))
        self.run_ctl("stack", "up", "-p")
        # A podman first on PATH that logs each call, then runs the real one.
        bin_dir = os.path.join(self.dir, "bin")
        os.makedirs(bin_dir)
        log = os.path.join(self.dir, "calls")
        wrapper = os.path.join(bin_dir, "podman")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\necho "$*" >> {log}\nexec {shutil.which("podman")} "$@"\n')
        os.chmod(wrapper, 0o755)
        env = dict(self.env, PATH=bin_dir + os.pathsep + self.env.get("PATH", ""))
        for args in (["stack", "status"], ["stack", "status", "--json"]):
            if os.path.exists(log):
                os.remove(log)
            p = subprocess.run([STACKCTL, "-f", self.file, *args], env=env, capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            with open(log) as f:
                calls = [c for c in f.read().splitlines() if c.startswith("ps ")]
            self.assertEqual(len(calls), 1, calls)
        self.assertEqual([self.status()[r]["state"] for r in roles], ["running"] * 3)
        self.run_ctl("stack", "down", "--force")

    def test_file_error(self):
        self.write(f"""\
            name = "{self.stack}"
            [components.web]
            flavor = "container"
            image = "{IMAGE}"
            ports = ["80:eighty"]
            """)
        p = self.run_ctl("stack", "up", check=False)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("stackup.toml:5:9: port \"80:eighty\" of component 'web' is not", p.stderr)


if __name__ == "__main__":
    if "--stackctl" not in sys.argv:
        sys.exit(__doc__)
    at = sys.argv.index("--stackctl")
    STACKCTL = os.path.abspath(sys.argv[at + 1])
    del sys.argv[at:at + 2]
    unittest.main(verbosity=2)
