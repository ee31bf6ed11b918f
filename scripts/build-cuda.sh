#!/usr/bin/env bash
# Builds nzip with llama.cpp's CUDA backend (target/cuda/release/nzip). Where no nvcc is on
# PATH, on Debian 12 it installs Debian's own CUDA toolkit (nvidia-cuda-toolkit 11.8 from the
# non-free component: 1.6 GB to download, 5.5 GB installed, with the driver's libcuda1, which
# the binary links); elsewhere install NVIDIA's toolkit first.
#
#   scripts/build-cuda.sh                         # CUDA 12+: sm_90 (H100, H200); 11.8: PTX
#   CMAKE_CUDA_ARCHITECTURES="80-real;90-real" scripts/build-cuda.sh
#   target/cuda/release/nzip devices
#
# Only the GPU architectures named are compiled (each one costs about as much as the first).
# With CUDA 11.8 this llama.cpp does not compile for sm_90 (its Hopper code calls
# cudaGridDependencySynchronize, which 11.8's headers lack), so the default there is PTX for
# sm_80, which the driver compiles for Ampere and Hopper GPUs on first use; Blackwell (sm_120)
# needs CUDA 12.8. Flash attention kernels are left out (GGML_CUDA_FA=OFF): nzip turns flash
# attention off in every context, since its logits depend on the thread split. The binary
# links the driver's libcuda.so.1, so it needs the NVIDIA driver's library even on the CPU.
#
# Checked on 2026-12-02 without a GPU, Debian 12, CUDA 11.8, 80-virtual: the whole build
# completes (144 CUDA sources; about 2.5 hours on 2 cores shared with other work), `nzip
# devices` lists only the CPU, and a CPU archive from this binary is byte for byte the CPU
# build's. Not yet run on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh    # cmake and libclang, as for every build
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
if ! command -v nvcc >/dev/null; then
    if ! grep -qs '^VERSION_CODENAME=bookworm' /etc/os-release; then
        echo "no nvcc on PATH: install NVIDIA's CUDA toolkit (>= 11.8), then run this again" >&2
        exit 1
    fi
    echo "installing Debian's nvidia-cuda-toolkit (CUDA 11.8, 1.6 GB download)" >&2
    # Debian keeps the toolkit in contrib/non-free; a separate source list leaves the
    # system's own untouched.
    $SUDO tee /etc/apt/sources.list.d/nzip-cuda.sources >/dev/null <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        nvidia-cuda-toolkit >/dev/null
fi
nvcc --version | tail -1 >&2

# llama-cpp-sys-2 hands CMAKE_* and GGML_* variables to llama.cpp's CMake.
cuda_major=$(nvcc --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
if ((${cuda_major:-0} >= 12)); then default_arch=90-real; else default_arch=80-virtual; fi
export CMAKE_CUDA_ARCHITECTURES="${CMAKE_CUDA_ARCHITECTURES:-$default_arch}"
export GGML_CUDA_FA="${GGML_CUDA_FA:-OFF}"
# llama-cpp-sys-2 links CUDA's static runtime and cuBLAS, looking for them only in
# <dir>/lib64 of /usr/local/cuda, /opt/cuda or $CUDA_LIBRARY_PATH (find_cuda_helper); Debian's
# toolkit keeps them in /usr/lib/x86_64-linux-gnu, so a lib64 link to it is named there.
# CUDA_PATH is what makes the crate's build script run again when this changes.
debian_libs=/usr/lib/x86_64-linux-gnu
if [ ! -d /usr/local/cuda/lib64 ] && [ -f "$debian_libs/libcudart_static.a" ]; then
    mkdir -p target/cuda/debian-cuda
    ln -sfn "$debian_libs" target/cuda/debian-cuda/lib64
    export CUDA_LIBRARY_PATH="$PWD/target/cuda/debian-cuda" CUDA_PATH=/usr
fi
echo "CUDA architectures: $CMAKE_CUDA_ARCHITECTURES" >&2
CARGO_TARGET_DIR=target/cuda cargo build --release --locked --features cuda
echo "built target/cuda/release/nzip" >&2
