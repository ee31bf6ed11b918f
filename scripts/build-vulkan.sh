#!/usr/bin/env bash
# Builds nzip with llama.cpp's Vulkan backend on Debian 12, whose Vulkan headers (1.3.239) are
# older than the 1.3.261 that the pinned llama.cpp needs (ggml-vulkan.cpp uses
# vk::LayerSettingEXT). Debian 13's header package is fetched, checked against its pinned
# SHA-256 and unpacked under target/vulkan-headers; the system's loader library is kept.
#
#   scripts/build-vulkan.sh            # installs the build tools if missing, then builds
#   target/vulkan/release/nzip devices
#
# Without a GPU, Mesa's lavapipe (package mesa-vulkan-drivers) is a Vulkan device on the CPU:
# slow, but it runs the whole GPU code path (offload, numerics fingerprint, refusal on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."

HEADERS_DEB=libvulkan-dev_1.4.309.0-1_amd64.deb
HEADERS_URL=http://deb.debian.org/debian/pool/main/v/vulkan-loader/$HEADERS_DEB
HEADERS_SHA256=8d329d465e16168afff58b1bd0dd6db46aac2cc3f56054a481b25a04e90b345a
HEADERS_DIR=target/vulkan-headers

need=()
for pkg in libvulkan-dev glslc spirv-headers glslang-tools mesa-vulkan-drivers cmake; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
    echo "installing ${need[*]}" >&2
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

installed=$(grep -m1 '#define VK_HEADER_VERSION ' /usr/include/vulkan/vulkan_core.h | awk '{print $3}')
if ((installed < 261)); then
    if [ ! -f "$HEADERS_DIR/usr/include/vulkan/vulkan.hpp" ]; then
        mkdir -p "$HEADERS_DIR"
        curl -fsSL -o "$HEADERS_DIR/$HEADERS_DEB" "$HEADERS_URL"
        echo "$HEADERS_SHA256  $HEADERS_DIR/$HEADERS_DEB" | sha256sum -c --quiet
        dpkg-deb -x "$HEADERS_DIR/$HEADERS_DEB" "$HEADERS_DIR"
    fi
    # CPATH directories come before /usr/include, so these headers win.
    export CPATH="$PWD/$HEADERS_DIR/usr/include${CPATH:+:$CPATH}"
    echo "using Vulkan headers 1.4.309 from $HEADERS_DIR (system: 1.3.$installed)" >&2
fi

CARGO_TARGET_DIR=target/vulkan cargo build --release --features vulkan
echo "built target/vulkan/release/nzip" >&2
