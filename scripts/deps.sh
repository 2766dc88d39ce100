#!/usr/bin/env bash
# deps.sh — install the Debian packages bitnet needs, saying what it installs.
# Idempotent: installs only what is missing. Needs root (or sudo) on Debian 12.
set -euo pipefail

PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev libomp-dev
      libcjson-dev libpcre2-dev libmicrohttpd-dev libsqlite3-dev
      libopenblas-dev libcurl4-openssl-dev python3)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js + npm (the server tests' OpenAI SDK client): any install will do,
# e.g. NodeSource's, whose bundled npm conflicts with Debian's npm package.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps.sh: installing missing packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
