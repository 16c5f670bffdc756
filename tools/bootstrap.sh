#!/usr/bin/env bash
# Installs what building stackup's tests and examples needs, from Debian packages,
# when it is missing: fmt, doctest, toml++ (stack files), PostgreSQL and Redis (the
# devstack example and its test), Podman with runc and busybox-static (the
# container tests build their image from it); callers add what else they need
# (clang, valgrind, Google Benchmark). Installing postgresql may start Debian's own cluster on port
# 5432: the devstack uses another port and socket directory.
# Usage: tools/bootstrap.sh [extra-package ...]
set -euo pipefail

packages=(cmake make g++ python3 pkg-config libfmt-dev doctest-dev libtomlplusplus-dev postgresql redis-server
          podman runc netavark aardvark-dns iptables catatonit uidmap busybox-static "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "stackup: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "stackup: missing packages ${missing[*]}; run this script as root or install them with apt-get" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
