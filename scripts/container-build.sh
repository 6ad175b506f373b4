#!/usr/bin/env bash
# The container image's build stage (Dockerfile), also run outside a container by CI
# (scripts/container-check.sh) so those steps are tested where images cannot be built: the
# system packages, then the `mediajobs` binary, installed as OUT_DIR/mediajobs.
# Usage: scripts/container-build.sh OUT_DIR
#   PROFILE=release|dev (default release), FEATURES=cuda|vulkan (optional),
#   CARGO_BUILD_ARGS (default "-p mediajobs"; CI reuses its workspace test build).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: scripts/container-build.sh OUT_DIR}"
profile="${PROFILE:-release}"

scripts/setup.sh
read -r -a what <<< "${CARGO_BUILD_ARGS:--p mediajobs}"
args=(build --locked --profile "$profile" "${what[@]}")
if [ -n "${FEATURES:-}" ]; then args+=(--features "mediajobs/$FEATURES"); fi
cargo "${args[@]}"

dir="$profile"
if [ "$profile" = dev ]; then dir=debug; fi
mkdir -p "$out"
install -m 0755 "${CARGO_TARGET_DIR:-target}/$dir/mediajobs" "$out/mediajobs"
echo "container-build: $out/mediajobs ($profile${FEATURES:+, $FEATURES})"
