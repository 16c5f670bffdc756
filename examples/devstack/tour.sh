#!/usr/bin/env bash
# A tour of the devstack (PostgreSQL, Redis and an app server, described in
# stackup.toml beside this script) with stackctl: up, status, queries proving each
# service serves, Redis killed and restarted by the stack's supervisor, the cache
# down (the app, which needs it, first), `stack up --attach`, down --force,
# and a check that no process and no data is left. Each command is echoed with
# its output.
#
#   examples/devstack/tour.sh [STACKCTL]     (default: build/stackctl/stackctl)
#
# Environment: as for stackup.toml (DEVSTACK_DIR, PG_USER, PG_PORT, REDIS_PORT,
# APP_PORT, PG_BIN). Not root: Postgres runs as you (PG_USER defaults to you here).
set -u

here=$(cd "$(dirname "$0")" && pwd)
file=$here/stackup.toml
stackctl=${1:-build/stackctl/stackctl}
if [ ! -x "$stackctl" ]; then
  echo "tour.sh: no stackctl at '$stackctl': build it first, e.g." >&2
  echo "  cmake -S . -B build && cmake --build build -j2 --target stackctl" >&2
  exit 2
fi
export NO_COLOR=${NO_COLOR:-1}
pg_bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
if [ "$(id -u)" -ne 0 ]; then
  export PG_USER=${PG_USER:-$(id -un)}
fi
pg_user=${PG_USER:-postgres}
# As root, Postgres runs as PG_USER, which must enter the state directory: a
# checkout it cannot enter (under /root, say) gets a directory of its own.
own_dir=""
if [ -z "${DEVSTACK_DIR:-}" ] && [ "$(id -u)" -eq 0 ] && ! runuser -u "$pg_user" -- test -x "$here"; then
  own_dir=$(mktemp -d /var/tmp/stackup-devstack.XXXXXX) && chmod 0711 "$own_dir" || exit 1
  export DEVSTACK_DIR=$own_dir
  echo "($pg_user cannot enter $here: the state goes to $own_dir)"
fi
state=${DEVSTACK_DIR:-$here}
case $state in /*) ;; *) state=$here/$state ;; esac
pg_port=${PG_PORT:-5433} redis_port=${REDIS_PORT:-6390} app_port=${APP_PORT:-8090}
for p in PG_PORT:$pg_port REDIS_PORT:$redis_port APP_PORT:$app_port; do
  if (exec 3<>"/dev/tcp/127.0.0.1/${p#*:}") 2>/dev/null; then
    echo "tour.sh: port ${p#*:} is in use: choose another with ${p%%:*}=..." >&2
    exit 1
  fi
done

finished=0
# Whatever happens (a failed step, Ctrl-C), leave nothing running.
cleanup() {
  if [ "$finished" -ne 1 ]; then
    echo "tour.sh: stopped early; removing the devstack" >&2
    "$stackctl" -f "$file" stack down --force >/dev/null 2>&1
  fi
  if [ -n "$own_dir" ]; then rmdir "$own_dir" 2>/dev/null; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "tour.sh: $*" >&2
  exit 1
}
# Echoes a command (stackctl by its name, arguments with spaces quoted) and its
# output; stops the tour when it fails.
show() {
  local shown=() a
  for a in "$@"; do
    case $a in
      "$stackctl") shown+=(stackctl) ;;
      "$file") shown+=("${file#"$PWD"/}") ;;
      *[[:space:]]*) shown+=("'$a'") ;;
      *) shown+=("$a") ;;
    esac
  done
  printf '$ %s\n' "${shown[*]}"
  "$@"
  local rc=$?
  [ "$rc" -eq 0 ] || fail "'$*' exited with status $rc"
  echo
}
stackctl() { show "$stackctl" -f "$file" "$@"; }

stackctl stack up
stackctl stack status
pids="$(head -n1 "$state/.stackup/postgres/data/postmaster.pid") $(cut -d' ' -f1 "$state/.stackup/cache/pid") $(cut -d' ' -f1 "$state/.stackup/app/pid")"

echo "# Postgres, over its own socket directory and port:"
show "$pg_bin/psql" -X -h "$state/.stackup/postgres" -p "$pg_port" -U "$pg_user" -d postgres \
  -c "select 1 as answer, current_user, version()"
echo "# Redis:"
show redis-cli -p "$redis_port" PING
show redis-cli -p "$redis_port" INCR tour:visits
echo "# the app, which answers only when both work:"
if command -v curl >/dev/null; then
  show curl -sS "http://127.0.0.1:$app_port/"
else
  show python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode(), end="")' \
    "http://127.0.0.1:$app_port/"
fi

echo "# Redis killed with SIGKILL: its supervisor restarts it (restart = \"on-failure\"),"
echo "# and the app with it (on_dependency_restart = \"restart\"):"
redis_pid=$(cut -d' ' -f1 "$state/.stackup/cache/pid")
show kill -9 "$redis_pid"
for _ in $(seq 100); do
  new_pid=$(cut -d' ' -f1 "$state/.stackup/cache/pid" 2>/dev/null)
  [ -n "$new_pid" ] && [ "$new_pid" != "$redis_pid" ] && redis-cli -p "$redis_port" PING >/dev/null 2>&1 && break
  sleep 0.1
done
show redis-cli -p "$redis_port" PING
for _ in $(seq 100); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "http://127.0.0.1:$app_port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
stackctl stack status
pids="$pids $(cut -d' ' -f1 "$state/.stackup/cache/pid") $(cut -d' ' -f1 "$state/.stackup/app/pid")"

stackctl cache down
stackctl stack status

echo "# attached: every component's output after its role; Ctrl-C (here: SIGINT after 3 s) takes the stack down"
( sleep 2; python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1]).read()' \
    "http://127.0.0.1:$app_port/health" ) >/dev/null 2>&1 &
show timeout --preserve-status -s INT 3 "$stackctl" -f "$file" stack up --attach
stackctl stack down --force

finished=1
for pid in $pids; do
  [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && fail "process $pid is still running"
done
[ -e "$state/.stackup" ] && fail "$state/.stackup is still there"
echo "done: postgres, redis and the app (pids $pids) are gone, and so is $state/.stackup"
