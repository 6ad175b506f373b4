#!/usr/bin/env bash
# Fuzzes the live server from its own OpenAPI document with schemathesis (pinned, from PyPI):
# every operation, generated valid and invalid inputs (examples, coverage, fuzzing and
# stateful phases); fails on any 5xx and on any response that does not match the document.
# Usage: scripts/schemathesis.sh [MEDIAJOBS_BINARY]   (default: the debug build)
# The seed is fixed so CI is reproducible; SCHEMATHESIS_SEED=random explores new inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${MEDIAJOBS_CACHE_DIR:-${HOME:-/root}/.cache/mediajobs}"
bin="${1:-${CARGO_TARGET_DIR:-target}/debug/mediajobs}"
venv="$cache/venv-schemathesis-4.32.5"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check schemathesis==4.32.5
fi

data="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
model="${MEDIAJOBS_MODELS_DIR:-$cache/models}/ggml-base.bin"
env MEDIAJOBS_DATA_DIR="$data" MEDIAJOBS_BIND="127.0.0.1:$port" MEDIAJOBS_WHISPER_MODEL="$model" \
    MEDIAJOBS_LOG=warn "$bin" serve > "$data/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
up=""
for _ in $(seq 1 120); do
  if curl -sf "http://127.0.0.1:$port/health" >/dev/null; then up=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$up" ]; then
  echo "schemathesis: the server did not come up" >&2
  cat "$data/server.log" >&2
  exit 1
fi

seed=()
if [ "${SCHEMATHESIS_SEED:-1}" != random ]; then seed=(--seed "${SCHEMATHESIS_SEED:-1}"); fi
# From the scratch dir: schemathesis keeps its cache in the working directory.
(cd "$data" && "$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error,response_schema_conformance \
  -H 'X-Profile-ID: schemathesis' \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-30}" --request-timeout 5 --workers 2 \
  "${seed[@]}" --no-color)
if grep -q "panicked" "$data/server.log"; then
  echo "schemathesis: the server panicked:" >&2
  grep -A5 "panicked" "$data/server.log" >&2
  exit 1
fi
