#!/usr/bin/env bash
# Build Dovecot's imaptest (the C reference load generator) for `cyrus-loadtest bench --imaptest`.
# Recipe and why each step: docs/benchmarks.md ("Side by side with imaptest").
#
#   benchmarks/build_imaptest.sh [CACHE_DIR]     # default ~/.cache/cyrus-loadtest/imaptest
#
# Source: IMAPTEST_SRC (a clone or bare git directory of dovecot/imaptest) if set, else a clone of
# https://github.com/dovecot/imaptest. Branch release-2.3 (measured at commit 0de0dbf), built
# against Debian 12's Dovecot 2.3 headers outside the repository. Prints the binary's path last.
set -euo pipefail

CACHE="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/cyrus-loadtest/imaptest}"
REF="${IMAPTEST_REF:-release-2.3}"
BIN="$CACHE/src/src/imaptest"
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

# dovecot-core installs beside cyrus-imapd (no IMAP server of its own); dovecot-imapd would conflict.
PACKAGES=(dovecot-dev dovecot-core autoconf automake libtool pkg-config build-essential git)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo -n); fi
  export DEBIAN_FRONTEND=noninteractive
  # Dovecot's own services must not start (and must not take port 143 from a Cyrus on this host).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
    trap '"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

mkdir -p "$CACHE"
rm -rf "$CACHE/src"
git clone -q --branch "$REF" "${IMAPTEST_SRC:-https://github.com/dovecot/imaptest}" "$CACHE/src" >&2
cd "$CACHE/src"
# Dovecot 2.3.19's imap_parser_create takes a fourth argument (parser parameters): pass NULL.
sed -i 's/imap_parser_create(\(.*\), (size_t)-1)/imap_parser_create(\1, (size_t)-1, NULL)/' \
  src/commands.c src/test-parser.c src/imap-client.c
{ ./autogen.sh && ./configure --with-dovecot=/usr/lib/dovecot && make -j2; } >"$CACHE/build.log" 2>&1 || {
  echo "build_imaptest.sh: build failed, see $CACHE/build.log" >&2
  tail -20 "$CACHE/build.log" >&2
  exit 1
}
echo "$BIN"
