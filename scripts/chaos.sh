#!/usr/bin/env bash
# The chaos harness (bins/chaos, ADR 023): three `mediajobs serve` nodes on one PostgreSQL that
# it may restart (scripts/pg-chaos.sh makes one beside the main cluster), mixed jobs, random
# kills, pauses and restarts of nodes and of PostgreSQL, then a report. Loopback only; needs
# root for pg_ctlcluster. Arguments go to mediajobs-chaos, e.g.
#   scripts/chaos.sh --minutes 10 --report chaos.json
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/pg-chaos.sh
cargo build --locked -q -p mediajobs -p mediajobs-chaos
target="${CARGO_TARGET_DIR:-target}/debug"
models="${MEDIAJOBS_MODELS_DIR:-data/models}"
model="$models/ggml-base.bin"
[ -f "$model" ] || "$target/mediajobs" model fetch base --dir "$models" --no-vad
export MEDIAJOBS_BIN="$target/mediajobs" MEDIAJOBS_WHISPER_MODEL="$model"
exec "$target/mediajobs-chaos" "$@"
