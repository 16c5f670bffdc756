#!/usr/bin/env python3
"""The container examples and what they stand on:

  images     tools/stand-in-images.sh builds docker.io/library/redis:7 and
             docker.io/library/postgres:15 from this machine's binaries (when absent)
             and --check runs each, publishes its port on 127.0.0.1 and talks to it;
             a second run builds nothing
  examples   examples/containers/stackup.toml and examples/zenml-kubeflow's two stack
             files are accepted by `stackctl stack config`; the Kubeflow manifests
             (k8s/) play with `podman kube play`, one pod per Deployment, and go with
             `podman kube down`

usage: test_container_examples.py --stackctl PATH (images|examples)
Exit status 0 when every check passed, 1 when one failed, 77 (skipped) when podman,
busybox-static, Redis or PostgreSQL 15 is not installed. CONTAINERS_CONF: the tests'
settings unless set.
"""
import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = 77


def need(*programs):
    missing = [p for p in programs if not (shutil.which(p) or Path(p).exists())]
    if missing:
        print(f"skipped: {', '.join(missing)} not installed", file=sys.stderr)
        sys.exit(SKIP)


def run(cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited with {p.returncode}:\n{p.stdout}{p.stderr}")
    return p


def images():
    need("podman", "/bin/busybox", "redis-server", "redis-cli", "/usr/lib/postgresql/15/bin/postgres")
    script = ROOT / "tools" / "stand-in-images.sh"
    out = run([script, "--check"]).stdout
    for image in ("docker.io/library/redis:7", "docker.io/library/postgres:15"):
        assert f"{image} answers on 127.0.0.1:" in out, out
        label = run(["podman", "image", "inspect", "--format", '{{index .Labels "io.stackup.stand-in"}}', image])
        assert label.stdout.strip() == "1", f"{image} is not a stand-in: {label.stdout!r}"
    again = run([script]).stdout
    assert again.count("exists (tools/stand-in-images.sh --force rebuilds it)") == 2, again
    bad = subprocess.run([script, "--nonsense"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage:" in bad.stderr, bad


def examples(stackctl):
    files = [ROOT / "examples" / "containers" / "stackup.toml", ROOT / "examples" / "zenml-kubeflow" / "stackup.toml",
             ROOT / "examples" / "zenml-kubeflow" / "stackup.podman.toml"]
    for f in files:
        out = run([stackctl, "-f", f, "stack", "config"], env=dict(os.environ, NO_COLOR="1")).stdout
        assert "flavor = " in out, out
    need("podman")
    manifests = sorted((ROOT / "examples" / "zenml-kubeflow" / "k8s").glob("*.yaml"))
    assert [m.name for m in manifests] == ["api-server.yaml", "ui.yaml"], manifests
    image = "localhost/stackup-test/busybox:1"
    if subprocess.run(["podman", "image", "exists", image]).returncode != 0:
        print(f"skipped: the tests' image {image} is absent (any podman test builds it)", file=sys.stderr)
        sys.exit(SKIP)
    try:
        for m in manifests:
            run(["podman", "kube", "play", "--start=false", m])
        pods = run(["podman", "pod", "ps", "--format", "{{.Name}}"]).stdout.split()
        for name in ("ml-pipeline-pod-0", "ml-pipeline-ui-pod-0"):
            assert name in pods, pods
    finally:
        for m in manifests:
            subprocess.run(["podman", "kube", "down", m], capture_output=True)
    pods = run(["podman", "pod", "ps", "--format", "{{.Name}}"]).stdout.split()
    assert not [p for p in pods if p.startswith("ml-pipeline")], pods


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stackctl", required=True)
    ap.add_argument("part", choices=("images", "examples"))
    args = ap.parse_args()
    os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "tests" / "support" / "containers.conf"))
    try:
        images() if args.part == "images" else examples(args.stackctl)
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    print(f"{args.part}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
