#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then runs lints, every
# test (unit, conformance on memory/SQLite/PostgreSQL, stress, end-to-end), doc tests and the
# embedding example.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test
source scripts/pg-env.sh

export CARGO_TERM_COLOR=never
echo "== fmt";    cargo fmt --all -- --check
echo "== clippy"; cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
echo "== doc tests"; cargo test --workspace --doc --locked
echo "== example";   cargo run --locked -q -p jobs-core --example embed
echo "== all tests passed"
