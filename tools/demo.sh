#!/usr/bin/env bash
# Builds stackctl and the examples, and runs a demo tour:
#   devstack    (default) stackctl runs examples/devstack/stackup.toml — PostgreSQL,
#               Redis and an app server from one stack file: up, status, queries
#               against each, the cache down (the app first), down --force,
#               nothing left
#   containers  stackctl runs examples/containers/stackup.toml — PostgreSQL and Redis
#               in containers (images built from this machine's binaries by
#               tools/stand-in-images.sh when absent) and the app as a local
#               process: up, status, queries through the published ports, down,
#               down --force, nothing left
#   demo_stack  the compiled demo that embeds stackup::cli::run (examples/demo_stack)
# Usage: tools/demo.sh [devstack|containers|demo_stack]   (installs missing Debian packages first)
set -euo pipefail
cd "$(dirname "$0")/.."
tour=${1:-devstack}
case $tour in
  devstack | containers | demo_stack) ;;
  *) echo "usage: tools/demo.sh [devstack|containers|demo_stack]" >&2; exit 2 ;;
esac
tools/bootstrap.sh
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DSTACKUP_BUILD_TESTS=OFF >/dev/null
cmake --build build/demo -j "$(nproc)"
if [ "$tour" = devstack ]; then
  examples/devstack/tour.sh build/demo/stackctl/stackctl
  echo "(the compiled demo, which embeds stackup::cli::run: tools/demo.sh demo_stack)"
elif [ "$tour" = containers ]; then
  examples/containers/tour.sh build/demo/stackctl/stackctl
else
  examples/demo_stack/tour.sh build/demo/examples/demo_stack
fi
