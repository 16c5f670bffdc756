#!/usr/bin/env bash
# Builds and runs every stackup test: g++ and clang++ builds of the test suite,
# compile-fail, header and consumer tests, and the suite again against the
# generated single header (after checking that it is up to date), that one
# optimised (-O2, RelWithDebInfo): warnings are errors in all three, and some of
# GCC's (-Wrestrict, -Wstringop-overflow) appear only when optimising. The clang
# suite leaves out what does not depend on the compiler of the tests: the CMake
# consumers (packaging) and the tests that drive the programs from Python
# (stackctl, the examples, the crash and concurrency scenarios), which the g++
# suite runs (and CI again under clang's sanitizers).
# Usage: tools/test.sh        (installs missing Debian packages first)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh clang
jobs=$(nproc)

daemons() { pgrep -f -c -- '(test_daemon|demo_server)( |$)' || true; }
before=$(daemons)

run_suite() { # name, build type, tests to leave out (a ctest -E regex, or ''), cmake options...
  local name=$1 type=$2 skip=$3
  shift 3
  echo "=== $name ($type)"
  cmake -S . -B "build/$name" -DCMAKE_BUILD_TYPE="$type" -DSTACKUP_WERROR=ON "$@" >/dev/null
  cmake --build "build/$name" -j "$jobs"
  (cd "build/$name" && ctest --output-on-failure -j "$jobs" --timeout 300 ${skip:+-E "$skip"})
}

python3 tools/amalgamate.py --check
run_suite gcc Debug '' -DCMAKE_CXX_COMPILER=g++
run_suite clang Debug '^(consumer[.]|stackctl|devstack|reliability[.]|example[.]demo_stack|container_)' \
  -DCMAKE_CXX_COMPILER=clang++
run_suite single-header RelWithDebInfo '' -DCMAKE_CXX_COMPILER=g++ -DSTACKUP_SINGLE_HEADER=ON

after=$(daemons)
if [ "$after" -gt "$before" ]; then
  echo "stackup: $((after - before)) test daemon(s) outlived the tests:" >&2
  pgrep -a -f -- '(test_daemon|demo_server)( |$)' >&2 || true
  exit 1
fi
echo "stackup: all test suites passed"
