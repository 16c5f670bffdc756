#!/usr/bin/env bash
# Builds stand-ins for the Redis and PostgreSQL images from this machine's own
# binaries, for machines that cannot reach a registry: a root file system holding
# the programs, the libraries `ldd` lists for them, a minimal /etc/passwd and an
# entrypoint like the official image's, `podman import`ed under the official
# image's name, so that podman uses it without pulling.
#
#   docker.io/library/redis:7      /usr/bin/redis-server (and redis-cli); port 6379,
#                                  data in /data; runs as the user redis
#   docker.io/library/postgres:15  PostgreSQL 15 from /usr/lib/postgresql/15; port 5432,
#                                  data in /var/lib/postgresql/data (initdb on the first
#                                  start, POSTGRES_PASSWORD / POSTGRES_USER / POSTGRES_DB /
#                                  POSTGRES_HOST_AUTH_METHOD as the official image reads them);
#                                  runs as the user postgres
#
# Usage: tools/stand-in-images.sh [--force] [--check] [redis|postgres ...]   (default: both)
#   --force   rebuild a stand-in that exists (never replaces an image that is not one)
#   --check   then run each image, publish its port on 127.0.0.1 and talk to it
#
# An image that exists is left as it is. Needs podman, busybox-static (/bin/busybox:
# the images' /bin/sh), redis-server and PostgreSQL 15 (Debian: apt-get install
# podman busybox-static redis-server postgresql-15). Podman reads CONTAINERS_CONF;
# when it is unset, tests/support/containers.conf (runc, no default ulimits).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/tests/support/containers.conf}
REDIS_IMAGE=docker.io/library/redis:7
POSTGRES_IMAGE=docker.io/library/postgres:15
PG=/usr/lib/postgresql/15
LABEL=io.stackup.stand-in # marks our images: --force replaces only these

die() {
  echo "stand-in-images.sh: $*" >&2
  exit 1
}
usage() {
  echo "usage: tools/stand-in-images.sh [--force] [--check] [redis|postgres ...]" >&2
  exit 2
}

force=0 check=0 wanted=()
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    --check) check=1 ;;
    redis | postgres) wanted+=("$arg") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
done
[ ${#wanted[@]} -gt 0 ] || wanted=(redis postgres)

command -v podman >/dev/null || die "podman is not installed: apt-get install podman"
[ -r "$CONTAINERS_CONF" ] || die "CONTAINERS_CONF names '$CONTAINERS_CONF', which cannot be read: point it at a podman settings file, or unset it"
[ -x /bin/busybox ] || die "/bin/busybox is missing (the images' /bin/sh): apt-get install busybox-static"
if ldd /bin/busybox >/dev/null 2>&1; then
  die "/bin/busybox is not static, as the images' /bin/sh must be: apt-get install busybox-static"
fi

work=$(mktemp -d /tmp/stackup-stand-in.XXXXXX)
check_ids=()
cleanup() {
  local id
  for id in "${check_ids[@]}"; do podman rm -f -v "$id" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Copies each file to the same path under rootfs $1 (a symlink's target's content
# under the link's name), with every library `ldd` lists for it.
add() {
  local rootfs=$1 f lib
  shift
  for f in "$@"; do
    [ -e "$f" ] || die "$f is missing"
    mkdir -p "$rootfs$(dirname "$f")"
    cp -L "$f" "$rootfs$f"
    if ldd "$f" >/dev/null 2>&1; then
      # "libx.so.1 => /lib/.../libx.so.1 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)"
      for lib in $(ldd "$f" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }'); do
        [ -e "$rootfs$lib" ] && continue
        mkdir -p "$rootfs$(dirname "$lib")"
        cp -L "$lib" "$rootfs$lib"
      done
      if ldd "$f" | grep -q 'not found'; then
        die "$f needs libraries this machine lacks: $(ldd "$f" | grep 'not found' | tr -s ' \t' ' ')"
      fi
    fi
  done
}

# A root file system's base: busybox as /bin/sh and the few programs the
# entrypoints use, /tmp, and /etc/passwd with root and one user ($2, uid 999).
base() {
  local rootfs=$1 user=$2 applet
  mkdir -p "$rootfs"/{bin,etc,tmp,usr/local/bin}
  chmod 1777 "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in sh chown chmod mkdir id su sed cat grep rm ls env printf sleep echo test ps kill; do
    ln -s busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\n%s:x:999:999:%s:/nonexistent:/bin/sh\n' "$user" "$user" >"$rootfs/etc/passwd"
  printf 'root:x:0:\n%s:x:999:\n' "$user" >"$rootfs/etc/group"
}

# Tars rootfs $1 and imports it as image $2 with the --change instructions that follow.
import() {
  local rootfs=$1 image=$2
  shift 2
  local changes=() c
  for c in "$@" "LABEL $LABEL=1"; do changes+=(--change "$c"); done
  local old
  old=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  tar -C "$rootfs" -cf "$work/$(basename "$rootfs").tar" .
  podman import --quiet "${changes[@]}" "$work/$(basename "$rootfs").tar" "$image" >/dev/null ||
    die "podman import of $image failed (see above)"
  # The stand-in replaced (--force): its old image, unless a container still uses it.
  if [ -n "$old" ]; then podman rmi "$old" >/dev/null 2>&1 || true; fi
}

# 0 when image $1 is to be built: absent, or a stand-in and --force.
needs_build() {
  local image=$1
  podman image exists "$image" || return 0
  if [ "$force" -eq 1 ]; then
    [ "$(podman image inspect --format "{{index .Labels \"$LABEL\"}}" "$image")" = 1 ] ||
      die "$image exists and is not a stand-in built here (it has no $LABEL label): it is left alone; remove it with 'podman rmi $image' to build the stand-in"
    return 0
  fi
  echo "$image exists (tools/stand-in-images.sh --force rebuilds it)"
  return 1
}

build_redis() {
  needs_build "$REDIS_IMAGE" || return 0
  command -v redis-server >/dev/null || die "redis-server is not installed: apt-get install redis-server"
  local rootfs=$work/redis
  base "$rootfs" redis
  add "$rootfs" "$(command -v redis-server)" "$(command -v redis-cli)"
  mkdir -p "$rootfs/data"
  # As the official image's entrypoint: options alone run redis-server; without a
  # config file that says otherwise, protected mode is off (the port is published,
  # so connections come from outside the container's loopback); root drops to redis.
  cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
# Each argument in single quotes, for su -c (busybox su would read "--save" as its own option).
quoted() { for a in "$@"; do printf " '%s'" "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")"; done; }
case $1 in -* | *.conf) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  chown -R redis:redis .
  exec su -p -s /bin/sh redis -c "exec /usr/local/bin/docker-entrypoint.sh $(quoted "$@")"
fi
if [ "$1" = redis-server ]; then
  protected=1
  for a in "$@"; do [ "$a" = --protected-mode ] && protected=; done
  if [ -f "${2:-}" ] && grep -q '^protected-mode' "$2"; then protected=; fi
  if [ -n "$protected" ]; then set -- "$@" --protected-mode no; fi
fi
umask 0077
exec "$@"
EOF
  chmod 0755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
  import "$rootfs" "$REDIS_IMAGE" 'ENV PATH=/usr/local/bin:/usr/bin:/bin' 'WORKDIR /data' 'VOLUME /data' \
    'EXPOSE 6379' 'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["redis-server"]'
  echo "built $REDIS_IMAGE from $(command -v redis-server) ($(redis-server --version | awk '{print $3}'))"
}

build_postgres() {
  needs_build "$POSTGRES_IMAGE" || return 0
  [ -x "$PG/bin/postgres" ] || die "PostgreSQL 15 is not installed ($PG/bin/postgres): apt-get install postgresql-15"
  local rootfs=$work/postgres f
  base "$rootfs" postgres
  add "$rootfs" "$PG/bin/postgres" "$PG/bin/initdb" "$PG/bin/pg_ctl" "$PG/bin/pg_isready" "$PG/bin/psql"
  # The server's modules (plpgsql, snowball dictionaries, encoding conversions; not
  # the LLVM JIT, which would bring all of LLVM), its share files and time zones.
  for f in "$PG"/lib/*.so; do
    case $f in */llvmjit.so) continue ;; esac
    add "$rootfs" "$f"
  done
  mkdir -p "$rootfs/usr/share/postgresql" "$rootfs/usr/share"
  cp -a /usr/share/postgresql/15 "$rootfs/usr/share/postgresql/15"
  rm -rf "$rootfs/usr/share/postgresql/15/man"
  cp -a /usr/share/zoneinfo "$rootfs/usr/share/zoneinfo"
  mkdir -p "$rootfs/var/lib/postgresql/data" "$rootfs/var/run/postgresql" "$rootfs/usr/bin"
  # initdb asks `locale -a` for the system's locales: C, POSIX and glibc's C.utf8.
  mkdir -p "$rootfs/usr/lib/locale"
  cp -a /usr/lib/locale/C.utf8 "$rootfs/usr/lib/locale/"
  # shellcheck disable=SC2016 # $1 is the shim's own argument
  printf '#!/bin/sh\n[ "$1" = -a ] && printf "C\\nC.utf8\\nPOSIX\\n"\n' >"$rootfs/usr/bin/locale"
  chmod 0755 "$rootfs/usr/bin/locale"
  # As the official image's entrypoint, in brief: root makes the data directory
  # the user postgres's and drops to it; the first start runs initdb (the
  # superuser POSTGRES_USER with POSTGRES_PASSWORD; other hosts authenticate with
  # POSTGRES_HOST_AUTH_METHOD, default scram-sha-256), creates POSTGRES_DB, and
  # listens on every address. initdb skips its fsync calls (seconds on a busy disk).
  cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
# Each argument in single quotes, for su -c (busybox su would read "-c" as its own option).
quoted() { for a in "$@"; do printf " '%s'" "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")"; done; }
case $1 in -*) set -- postgres "$@" ;; esac
if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  exec su -p -s /bin/sh postgres -c "exec /usr/local/bin/docker-entrypoint.sh $(quoted "$@")"
fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  user=${POSTGRES_USER:-postgres}
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "Error: Database is uninitialized and superuser password is not specified." >&2
    echo "       Set POSTGRES_PASSWORD (e.g. -e POSTGRES_PASSWORD=password), or POSTGRES_HOST_AUTH_METHOD=trust" >&2
    echo "       to allow every connection without a password (never in production)." >&2
    exit 1
  fi
  pwfile=
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    pwfile=/tmp/pwfile
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  fi
  initdb --username="$user" ${pwfile:+--pwfile="$pwfile"} --auth-local=trust --auth-host="$auth" \
    --encoding=UTF8 --locale=C --no-sync $POSTGRES_INITDB_ARGS -D "$PGDATA" >/dev/null
  rm -f /tmp/pwfile
  printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  db=${POSTGRES_DB:-$user}
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\"" | postgres --single -j -D "$PGDATA" postgres >/dev/null
  fi
  echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@"
EOF
  chmod 0755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
  import "$rootfs" "$POSTGRES_IMAGE" "ENV PATH=/usr/local/bin:$PG/bin:/usr/bin:/bin" \
    'ENV PGDATA=/var/lib/postgresql/data' 'VOLUME /var/lib/postgresql/data' 'EXPOSE 5432' 'STOPSIGNAL SIGINT' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]'
  echo "built $POSTGRES_IMAGE from $PG ($("$PG/bin/postgres" --version))"
}

# A free port on 127.0.0.1 (the kernel's choice).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Polls "$@" for up to 30 s; the last output on failure.
until_ok() {
  local _
  for _ in $(seq 300); do
    "$@" >"$work/probe" 2>&1 && return 0
    sleep 0.1
  done
  cat "$work/probe" >&2
  return 1
}

check_redis() {
  local port id
  port=$(free_port)
  id=$(podman run -d -p "127.0.0.1:$port:6379" "$REDIS_IMAGE")
  check_ids+=("$id")
  until_ok redis-cli -p "$port" ping || die "$REDIS_IMAGE: no PONG on 127.0.0.1:$port; its log: $(podman logs "$id" 2>&1 | tail -5)"
  echo "$REDIS_IMAGE answers on 127.0.0.1:$port: $(redis-cli -p "$port" ping)"
}

check_postgres() {
  local port id
  port=$(free_port)
  id=$(podman run -d -e POSTGRES_PASSWORD=check -p "127.0.0.1:$port:5432" "$POSTGRES_IMAGE")
  check_ids+=("$id")
  until_ok env PGPASSWORD=check "$PG/bin/psql" -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc 'select 1' ||
    die "$POSTGRES_IMAGE: no answer on 127.0.0.1:$port; its log: $(podman logs "$id" 2>&1 | tail -5)"
  echo "$POSTGRES_IMAGE answers on 127.0.0.1:$port: $(PGPASSWORD=check "$PG/bin/psql" -X -h 127.0.0.1 -p "$port" \
    -U postgres -d postgres -Atc 'show server_version')"
}

for image in "${wanted[@]}"; do "build_$image"; done
if [ "$check" -eq 1 ]; then
  for image in "${wanted[@]}"; do "check_$image"; done
fi
