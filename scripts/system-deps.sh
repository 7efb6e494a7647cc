#!/usr/bin/env bash
# Installs the Debian packages the tests need (.ci/apt-packages.txt) when run as root;
# otherwise lists what is missing. Idempotent: installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
list=.ci/apt-packages.txt
[ -s "$list" ] || exit 0
command -v dpkg >/dev/null || { echo "system-deps: no dpkg; install by hand: $(grep -v '^#' $list | xargs)"; exit 0; }
missing=$(grep -v '^#' "$list" | while read -r p; do
  [ -n "$p" ] && ! dpkg -s "$p" >/dev/null 2>&1 && echo "$p"; done || true)
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
else
  echo "system-deps: some tests need these Debian packages: $(echo $missing | xargs)" >&2
  echo "system-deps: install them with: sudo apt-get install $(echo $missing | xargs)" >&2
fi
