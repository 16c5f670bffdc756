#!/usr/bin/env bash
# A tour of examples/containers (PostgreSQL and Redis in containers, the
# devstack's app as a local process beside them) with stackctl: the images (built
# from this machine's binaries when no registry has them), up, status, the
# containers and their labels, queries through the published ports, down (the
# containers stopped, kept), down --force, and a check that no container and no
# volume is left. Each command is echoed with its output.
#
#   examples/containers/tour.sh [STACKCTL]     (default: build/stackctl/stackctl)
#
# Environment: as for stackup.toml (CONTAINER_ENGINE, PG_PORT, REDIS_PORT,
# APP_PORT). Podman reads CONTAINERS_CONF; when it is unset, the tour uses the
# tests' settings, tests/support/containers.conf (runc, no default ulimits).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
file=$here/stackup.toml
stackctl=${1:-build/stackctl/stackctl}
if [ ! -x "$stackctl" ]; then
  echo "tour.sh: no stackctl at '$stackctl': build it first, e.g." >&2
  echo "  cmake -S . -B build && cmake --build build -j2 --target stackctl" >&2
  exit 2
fi
export NO_COLOR=${NO_COLOR:-1}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/tests/support/containers.conf}
engine=${CONTAINER_ENGINE:-podman}
command -v "$engine" >/dev/null || { echo "tour.sh: $engine is not installed (apt-get install $engine)" >&2; exit 1; }
pg_port=${PG_PORT:-5434} redis_port=${REDIS_PORT:-6391} app_port=${APP_PORT:-8091}
for p in PG_PORT:$pg_port REDIS_PORT:$redis_port APP_PORT:$app_port; do
  if (exec 3<>"/dev/tcp/127.0.0.1/${p#*:}") 2>/dev/null; then
    echo "tour.sh: port ${p#*:} is in use: choose another with ${p%%:*}=..." >&2
    exit 1
  fi
done
psql=$(command -v psql || echo /usr/lib/postgresql/15/bin/psql)

finished=0
# Whatever happens (a failed step, Ctrl-C), leave nothing running.
cleanup() {
  if [ "$finished" -ne 1 ]; then
    echo "tour.sh: stopped early; removing the stack" >&2
    "$stackctl" -f "$file" stack down --force >/dev/null 2>&1
  fi
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
      "$root"/*) shown+=("${a#"$root"/}") ;;
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

if [ "$engine" = podman ]; then
  echo "# the images: pulled when a registry has them; here built from this machine's Redis and PostgreSQL"
  show "$root/tools/stand-in-images.sh"
fi

stackctl stack config
stackctl stack up
stackctl stack status
echo "# the containers stackup created, with its labels:"
show "$engine" ps --filter label=io.stackup.stack=containers \
  --format '{{.Names}}  {{.Image}}  {{.Ports}}  role={{index .Labels "io.stackup.role"}}'

echo "# Redis, through its published port:"
show redis-cli -p "$redis_port" PING
show redis-cli -p "$redis_port" INCR tour:visits
echo "# Postgres, through its published port:"
if [ -x "$psql" ]; then
  show "$psql" -X -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "select 1 as answer, current_user, version()"
else
  show pg_isready -h 127.0.0.1 -p "$pg_port"
fi
echo "# the app, a local process, which answers only when both containers do:"
if command -v curl >/dev/null; then
  show curl -sS "http://127.0.0.1:$app_port/"
else
  show python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode(), end="")' \
    "http://127.0.0.1:$app_port/"
fi
echo "# the database's output: a container's log is the engine's, read through it (podman logs):"
stackctl database logs --tail 3
echo "# every log of the stack, merged — the app's file and the containers' engine logs:"
stackctl stack logs --tail 2

echo "# down: the app stopped, then the containers — stopped, not removed:"
stackctl stack down
stackctl stack status
show "$engine" ps --all --filter label=io.stackup.stack=containers --format '{{.Names}}  {{.Status}}'

echo "# down --force: the containers removed, and the volume the stack created:"
stackctl stack down --force
finished=1
left=$("$engine" ps --all --quiet --filter label=io.stackup.stack=containers)
[ -z "$left" ] || fail "containers are left: $left"
left=$("$engine" volume ls --quiet --filter label=io.stackup.stack=containers)
[ -z "$left" ] || fail "volumes are left: $left"
[ -e "$here/.stackup/app/pid" ] && fail "the app's pid file is still there"
echo "done: the containers, the volume stackup-containers-pgdata and the app are gone"
