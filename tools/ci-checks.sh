#!/usr/bin/env bash
# stackup's reliability checks, the ones a user does not run every day:
#
#   asan      the full test suite (unit tests, the demo_stack demo tests, crash and
#             concurrency tests) built with clang++, AddressSanitizer + UndefinedBehavior-
#             Sanitizer and warnings as errors; any report, from any process
#             (daemons included), fails. It is also the suite's clang build:
#             tools/test.sh runs only the compile-time checks with clang.
#   tsan      the parallel and multi-process tests under ThreadSanitizer: the
#             parallel, fault-injection, events, stop and run-time stack suites
#             (both kinds of stack), LocalDaemon's concurrent up, LocalDirectory's
#             racing threads and processes, and concurrent demo_stack processes
#   valgrind  the core tests under valgrind --error-exitcode=1 --leak-check=full
#   fuzz      every libFuzzer target in tests/fuzz for FUZZ_SECONDS each; any
#             crash, leak or hang fails
#
# usage: tools/ci-checks.sh [asan] [tsan] [valgrind] [fuzz]     (default: all four)
# Each part builds in its own directory under build-ci/ and prints one PASS or
# FAIL line (with the end of its log on failure); the exit status is non-zero
# if any part failed. Environment:
#   FUZZ_SECONDS  seconds per fuzz target (default 40)
#   CI_JOBS       parallel build and test jobs (default 2)
#   CI_CXX        compiler for the sanitizer and fuzz builds (default clang++)
#   BUILD_CI      where the build directories go (default <repo>/build-ci)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${BUILD_CI:-$root/build-ci}
jobs=${CI_JOBS:-2}
cxx=${CI_CXX:-clang++}
fuzz_seconds=${FUZZ_SECONDS:-40}
mkdir -p "$out"

failed=()
say() { printf '%s\n' "$*"; }

# run_part NAME FUNCTION: runs FUNCTION with its output in build-ci/NAME.log.
run_part() {
  local name=$1 fn=$2 log="$out/$1.log" start=$SECONDS
  say "== $name (log: $log)"
  if "$fn" >"$log" 2>&1; then
    say "PASS  $name ($((SECONDS - start))s)"
  else
    say "FAIL  $name ($((SECONDS - start))s); end of $log:"
    tail -n 60 "$log" | sed 's/^/    /'
    failed+=("$name")
  fi
}

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "missing tool '$1': $2"; return 1; }
}

fmt_flags() { pkg-config --cflags --libs fmt 2>/dev/null || echo -lfmt; }

# Sanitizer reports written to files by any process (log_path=...): none allowed.
no_reports() {
  local dir=$1
  if compgen -G "$dir/*" >/dev/null; then
    echo "sanitizer reports in $dir:"
    for f in "$dir"/*; do echo "--- $f"; head -n 40 "$f"; done
    return 1
  fi
}

# Compiles sources (in parallel, CI_JOBS at a time) and links them into one program.
# usage: build_program OUT "FLAGS" SOURCE...
build_program() {
  local exe=$1 flags=$2
  shift 2
  local objdir="$exe.objects" objs=() pids=() src obj status=0
  mkdir -p "$objdir"
  for src in "$@"; do
    obj="$objdir/$(basename "$src" .cpp).o"
    objs+=("$obj")
    # shellcheck disable=SC2086 # FLAGS is a list
    "$cxx" $flags -c "$src" -o "$obj" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$jobs" ]; then wait "${pids[0]}" || status=1; pids=("${pids[@]:1}"); fi
  done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
  [ "$status" -eq 0 ] || return 1
  # shellcheck disable=SC2086
  # shellcheck disable=SC2046 # fmt's flags are a list
  "$cxx" $flags "${objs[@]}" $(fmt_flags) -o "$exe"
}

# The helper programs of the tests (tests/programs/*.cpp), built with FLAGS into
# DIR; prints the -D definitions through which the tests find them.
build_test_programs() {
  local dir=$1 flags=$2 src name defs=""
  for src in "$root"/tests/programs/*.cpp; do
    name=$(basename "$src" .cpp)
    # shellcheck disable=SC2086,SC2046 # lists of flags
    "$cxx" $flags "$src" $(fmt_flags) -o "$dir/$name" >&2 || return 1
    defs+=" -DSTACKUP_$(echo "$name" | tr '[:lower:]' '[:upper:]')_PATH=\"$dir/$name\""
  done
  echo "$defs"
}

part_asan() {
  need "$cxx" "install clang (or set CI_CXX)" || return 1
  local dir=$out/asan san="-fsanitize=address,undefined"
  local reports=$dir/sanitizer-reports
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_CXX_FLAGS="$san -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1" \
    -DCMAKE_EXE_LINKER_FLAGS="$san" -DSTACKUP_BUILD_BENCHMARKS=OFF -DSTACKUP_WERROR=ON || return 1
  cmake --build "$dir" -j "$jobs" --target stackup_tests demo_stack_tests custom_component custom_flavor dynamic_stack supervised stackctl || return 1
  rm -rf "$reports" && mkdir -p "$reports"
  # Compile-only checks (compile-fail, headers, consumers, single header) have
  # nothing to sanitize; everything that runs code is here.
  ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:check_initialization_order=1:log_path=$reports/asan" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan" \
    ctest --test-dir "$dir" -j "$jobs" --output-on-failure \
    -E '^(compile_fail|consumer|header|header_cxx17|single_header)[.]' || { no_reports "$reports"; return 1; }
  no_reports "$reports"
}

part_tsan() {
  need "$cxx" "install clang (or set CI_CXX)" || return 1
  need python3 "install python3" || return 1
  local dir=$out/tsan flags defs
  local reports=$dir/sanitizer-reports
  mkdir -p "$dir"
  flags="-std=c++20 -g -O1 -fsanitize=thread -fno-omit-frame-pointer -I$root/include $(pkg-config --cflags fmt 2>/dev/null)"
  defs=$(build_test_programs "$dir" "$flags") || return 1
  # The suites with threads or several processes, in one doctest binary.
  local sources=() src
  for src in main test_parallel test_fault_injection test_local_daemon test_local_directory test_events test_stop \
             test_dynamic_stack test_supervise; do
    [ -f "$root/tests/$src.cpp" ] && sources+=("$root/tests/$src.cpp")
  done
  build_program "$dir/stackup_tests" "$flags $defs" "${sources[@]}" || return 1
  build_program "$dir/demo_stack" "$flags" "$root/examples/demo_stack/demo_stack.cpp" || return 1
  build_program "$dir/demo_server" "$flags" "$root/examples/demo_stack/demo_server.cpp" || return 1
  rm -rf "$reports" && mkdir -p "$reports"
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$reports/tsan"
  local status=0
  # LocalDaemon's suite in a process of its own: under TSan only, a daemon's
  # waiter forked after the fault-injection suites' threads loses what the
  # daemon wrote to its log (no report; every other build passes them together).
  # The supervisor's suite forks its components' processes: in a process of its own too.
  "$dir/stackup_tests" --no-version --source-file-exclude='*test_local_daemon*,*test_supervise*' || status=1
  "$dir/stackup_tests" --no-version --source-file='*test_local_daemon*' || status=1
  "$dir/stackup_tests" --no-version --source-file='*test_supervise*' || status=1
  python3 "$root/tests/reliability/demo_stack_reliability.py" --demo-stack "$dir/demo_stack" \
    --demo-server "$dir/demo_server" || status=1
  unset TSAN_OPTIONS
  no_reports "$reports" || status=1
  return $status
}

part_valgrind() {
  need valgrind "install valgrind (apt-get install valgrind)" || return 1
  local dir=$out/valgrind src sources=() cxx=${CI_VALGRIND_CXX:-g++}
  mkdir -p "$dir"
  # The core: the Stack's semantics, errors, events, formatting, parallel mode
  # and the CLI grammar — everything that runs in one process without spawning;
  # and the supervisor's loop (its components are children of its own).
  # (test_allocations replaces operator new to count calls, as valgrind does to
  # check them: the two cannot share a process, so it runs under ASan only.)
  for src in main test_semantics test_rollback test_events test_concepts test_format \
             test_second_unit test_parallel test_cli test_fault_injection test_dynamic_stack test_supervise; do
    [ -f "$root/tests/$src.cpp" ] && sources+=("$root/tests/$src.cpp")
  done
  build_program "$dir/core_tests" "-std=c++20 -g -O1 -I$root/include $(pkg-config --cflags fmt 2>/dev/null)" \
    "${sources[@]}" || return 1
  # The exhaustive fault matrices, and the parallel fault suites, run under the
  # sanitizers; here the smaller sequential ones (k-th call, failing undo,
  # everything fails) stand in for them, to keep valgrind's run short. The
  # supervisor's hot-loop check counts starts within a time: not under valgrind.
  valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
    --track-origins=yes --quiet "$dir/core_tests" --no-version \
    --test-case-exclude='*one fault at every*,parallel: fault injection*,*never in a hot loop*'
}

# Waits for one fuzz run; says how it ended.
fuzz_result() {
  if wait "$1"; then
    echo "fuzz $2: no crash"
  else
    echo "fuzz $2: FAILED (reproduce: build-ci/fuzz/fuzz_$2 build-ci/fuzz/artifacts/$2-*)"
    tail -n 40 "$out/fuzz/$2.log"
    return 1
  fi
}

part_fuzz() {
  need "$cxx" "install clang (or set CI_CXX)" || return 1
  local dir=$out/fuzz t status=0 pids=() names=()
  cmake -S "$root/tests/fuzz" -B "$dir" -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_COMPILER="$cxx" || return 1
  cmake --build "$dir" -j "$jobs" || return 1
  local targets=()
  for t in "$root"/tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$t" .cpp)"); done
  # One target per core at a time; new inputs go to a scratch corpus, the seeds stay as they are.
  for t in "${targets[@]}"; do
    local name=${t#fuzz_}
    mkdir -p "$dir/work/$name" "$dir/artifacts"
    (
      "$dir/$t" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$dir/artifacts/$name-" "$dir/work/$name" "$root/tests/fuzz/corpus/$name" \
        >"$dir/$name.log" 2>&1
    ) &
    pids+=($!)
    names+=("$name")
    if [ "${#pids[@]}" -ge "$jobs" ]; then
      fuzz_result "${pids[0]}" "${names[0]}" || status=1
      pids=("${pids[@]:1}")
      names=("${names[@]:1}")
    fi
  done
  for i in "${!pids[@]}"; do
    fuzz_result "${pids[$i]}" "${names[$i]}" || status=1
  done
  grep -h "stat::number_of_executed_units" "$dir"/*.log
  return $status
}

parts=("$@")
[ "${#parts[@]}" -gt 0 ] || parts=(asan tsan valgrind fuzz)
for p in "${parts[@]}"; do
  case $p in
  asan | tsan | valgrind | fuzz) run_part "$p" "part_$p" ;;
  *) say "unknown part '$p': choose from asan, tsan, valgrind, fuzz"; exit 2 ;;
  esac
done

if [ "${#failed[@]}" -gt 0 ]; then
  say "ci-checks: FAILED: ${failed[*]}"
  exit 1
fi
say "ci-checks: all passed (${parts[*]})"
