#!/usr/bin/env bash
# Builds stackup's examples and runs the demo: a tour of demo_stack, ZenML's command
# line over a real local stack (daemons, a directory, shell commands).
# Usage: tools/demo.sh        (installs missing Debian packages first)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DSTACKUP_BUILD_TESTS=OFF >/dev/null
cmake --build build/demo -j "$(nproc)"
if [ -x examples/demo_stack/tour.sh ]; then
  examples/demo_stack/tour.sh build/demo/examples/demo_stack
else
  build/demo/examples/custom_component
fi
