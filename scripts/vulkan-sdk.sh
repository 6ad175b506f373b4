#!/usr/bin/env bash
# What `--features vulkan` needs on Debian 12, and prints the environment to build with it:
#   export "$(scripts/vulkan-sdk.sh)" && cargo build --release -p mediajobs --features vulkan
#
# whisper.cpp 1.8.3's Vulkan backend uses VK_EXT_layer_settings (Vulkan headers 1.3.272 or
# newer); Debian 12's libvulkan-dev is 1.3.239. So: Debian 12's glslc, Vulkan loader and
# Mesa's Vulkan drivers (lavapipe runs Vulkan on the CPU where there is no GPU), plus the
# headers of Debian 13's libvulkan-dev 1.4.309, unpacked (not installed) into a cache
# directory and pinned by SHA-256. VULKAN_SDK points CMake's FindVulkan at them. On Ubuntu
# 24.04 or Debian 13, `apt-get install libvulkan-dev glslc` alone is enough.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=(glslc libvulkan-dev libvulkan1 mesa-vulkan-drivers curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "vulkan-sdk: installing ${missing[*]}" >&2
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >&2
fi

version="1.4.309.0-1"
deb="libvulkan-dev_${version}_amd64.deb"
sha256="8d329d465e16168afff58b1bd0dd6db46aac2cc3f56054a481b25a04e90b345a"
cache="${MEDIAJOBS_CACHE_DIR:-${HOME:-/root}/.cache/mediajobs}"
sdk="$cache/vulkan-headers-$version"
if [ ! -f "$sdk/usr/include/vulkan/vulkan.hpp" ]; then
  mkdir -p "$cache"
  tmp="$(mktemp -d)"
  curl -fsSL --retry 3 -o "$tmp/$deb" \
    "http://deb.debian.org/debian/pool/main/v/vulkan-loader/$deb" >&2
  echo "$sha256  $tmp/$deb" | sha256sum -c --quiet - >&2
  rm -rf "$sdk.partial"
  dpkg-deb -x "$tmp/$deb" "$sdk.partial"
  rm -rf "$tmp" "$sdk"
  mv "$sdk.partial" "$sdk"
fi
echo "VULKAN_SDK=$sdk/usr"
