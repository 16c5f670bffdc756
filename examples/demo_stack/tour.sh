#!/usr/bin/env bash
# The demo_stack tour: a real local stack brought up, inspected, partly stopped,
# brought up again and removed, each command echoed with its output. It ends
# with nothing running and nothing left in the state directory.
#
#   examples/demo_stack/tour.sh [WHERE]
#
# WHERE is the demo_stack binary, the directory holding it, or a build directory
# (default: build). Environment: DEMO_STACK (the binary, instead of WHERE),
# DEMO_STACK_STATE_DIR (default ./.stackup-demo), DEMO_STACK_PORT_BASE (default 18731).
set -u

where=${1:-build}
if [ -n "${DEMO_STACK:-}" ]; then
  demo_stack=$DEMO_STACK
elif [ -f "$where" ]; then
  demo_stack=$where
elif [ -f "$where/demo_stack" ]; then
  demo_stack=$where/demo_stack
else
  demo_stack=$where/examples/demo_stack/demo_stack
fi
if [ ! -x "$demo_stack" ]; then
  echo "tour.sh: no demo_stack at '$demo_stack': build it first, e.g." >&2
  echo "  cmake -S . -B build && cmake --build build -j2 --target demo_stack" >&2
  exit 2
fi
state=${DEMO_STACK_STATE_DIR:-./.stackup-demo}
export DEMO_STACK_STATE_DIR=$state

finished=0
# Whatever happens (a failed step, Ctrl-C), leave nothing running.
cleanup() {
  if [ "$finished" -ne 1 ]; then
    echo "tour.sh: stopped early; removing the demo stack" >&2
    "$demo_stack" stack down --force >/dev/null 2>&1
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() {
  printf '$ demo_stack %s\n' "$*"
  "$demo_stack" "$@"
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "tour.sh: 'demo_stack $*' exited with status $rc" >&2
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
