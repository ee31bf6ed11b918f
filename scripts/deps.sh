#!/usr/bin/env bash
# Installs what building nzip needs beyond a Rust toolchain (cmake and libclang for
# llama.cpp's build and bindings), and the tools the benchmark compares against, on Debian or
# Ubuntu. Does nothing when they are already there.
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
for tool in gzip bzip2 xz zstd; do
  command -v "$tool" >/dev/null || need+=("$([ "$tool" = xz ] && echo xz-utils || echo "$tool")")
done
[ ${#need[@]} -eq 0 ] && exit 0
echo "nzip: installing ${need[*]}" >&2
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
