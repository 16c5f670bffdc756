#!/usr/bin/env bash
# The stackctl tour: a real local stack brought up, inspected, partly stopped,
# brought up again and removed, each command echoed with its output. It ends
# with nothing running and nothing left in the state directory.
#
#   examples/stackctl/tour.sh [WHERE]
#
# WHERE is the stackctl binary, the directory holding it, or a build directory
# (default: build). Environment: STACKCTL (the binary, instead of WHERE),
# STACKCTL_STATE_DIR (default ./.stackup-demo), STACKCTL_PORT_BASE (default 18731).
set -u

where=${1:-build}
if [ -n "${STACKCTL:-}" ]; then
  stackctl=$STACKCTL
elif [ -f "$where" ]; then
  stackctl=$where
elif [ -f "$where/stackctl" ]; then
  stackctl=$where/stackctl
else
  stackctl=$where/examples/stackctl/stackctl
fi
if [ ! -x "$stackctl" ]; then
  echo "tour.sh: no stackctl at '$stackctl': build it first, e.g." >&2
  echo "  cmake -S . -B build && cmake --build build -j2 --target stackctl" >&2
  exit 2
fi
state=${STACKCTL_STATE_DIR:-./.stackup-demo}
export STACKCTL_STATE_DIR=$state

finished=0
# Whatever happens (a failed step, Ctrl-C), leave nothing running.
cleanup() {
  if [ "$finished" -ne 1 ]; then
    echo "tour.sh: stopped early; removing the demo stack" >&2
    "$stackctl" stack down --force >/dev/null 2>&1
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() {
  printf '$ stackctl %s\n' "$*"
  "$stackctl" "$@"
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "tour.sh: 'stackctl $*' exited with status $rc" >&2
    exit "$rc"
  fi
  echo
}

step stack up
step stack status
step orchestrator down
step stack status
step stack up
step stack down --force
step stack status

finished=1
if [ -n "$(ls -A "$state" 2>/dev/null)" ]; then
  echo "tour.sh: the state directory $state is not empty:" >&2
  ls -A "$state" >&2
  exit 1
fi
echo "done: nothing is running and the state directory $state is empty"
