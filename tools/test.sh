#!/usr/bin/env bash
# Builds and runs every stackup test: the g++ build of the whole suite (unit,
# compile-fail, header, consumer, stackctl, example and scenario tests); the
# compile-time checks again with clang++ (compile-fail cases and each public
# header alone); and the suite again against the generated single header (after
# checking that it is up to date), optimised (-O2, RelWithDebInfo): warnings are
# errors in all, and some of GCC's (-Wrestrict, -Wstringop-overflow) appear only
# when optimising. The suite built with clang++ and run is CI's (tools/ci-checks.sh
# asan: every test that runs code, under AddressSanitizer, warnings as errors),
# so it is not built twice.
# Usage: tools/test.sh        (installs missing Debian packages first)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh clang
jobs=$(nproc)

daemons() { pgrep -f -c -- '(test_daemon|demo_server)( |$)' || true; }
before=$(daemons)

# name, build type, what to build ('all', or 'none' for tests that compile as
# they run), the tests to run (a ctest -R regex, or ''), cmake options...
run_suite() {
  local name=$1 type=$2 build=$3 only=$4 start=$SECONDS
  shift 4
  echo "=== $name ($type)"
  cmake -S . -B "build/$name" -DCMAKE_BUILD_TYPE="$type" -DSTACKUP_WERROR=ON "$@" >/dev/null
  [ "$build" = none ] || cmake --build "build/$name" -j "$jobs"
  (cd "build/$name" && ctest --output-on-failure -j "$jobs" --timeout 300 ${only:+-R "$only"})
  echo "=== $name: $((SECONDS - start)) s"
}

python3 tools/amalgamate.py --check
run_suite gcc Debug all '' -DCMAKE_CXX_COMPILER=g++
run_suite clang Debug none '^(compile_fail[.]|header[.]|header_cxx17[.]|consumer[.]warnings$)' -DCMAKE_CXX_COMPILER=clang++
run_suite single-header RelWithDebInfo all '' -DCMAKE_CXX_COMPILER=g++ -DSTACKUP_SINGLE_HEADER=ON

after=$(daemons)
if [ "$after" -gt "$before" ]; then
  echo "stackup: $((after - before)) test daemon(s) outlived the tests:" >&2
  pgrep -a -f -- '(test_daemon|demo_server)( |$)' >&2 || true
  exit 1
fi
echo "stackup: all test suites passed"
