#!/usr/bin/env bash
# Installs the system packages mediajobs needs (Debian/Ubuntu). Idempotent: installs only what
# is missing. Usage: scripts/setup.sh [--test]   (--test adds what the test suite needs)
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Build and run: a C toolchain for the bundled SQLite.
packages=(pkg-config build-essential ca-certificates)
if [ "${1:-}" = "--test" ]; then
  # A real PostgreSQL for the test suite.
  packages+=(postgresql postgresql-client)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found. mediajobs needs Rust >= 1.89 (rustup.rs)." >&2
  exit 1
fi
