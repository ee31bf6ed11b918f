#!/usr/bin/env bash
# GPU benchmark recipe (throughput issue): nzip on a CUDA machine that has CUDA's compiler and
# CMake but no Rust toolchain and no package registry. nzip is built here against llama.cpp's
# shared libraries (the `dynamic-link` feature); there, the same llama.cpp source (the copy
# llama-cpp-sys-2 vendors) is built with CUDA, and the binary runs against those libraries:
# the C API is the same, and the CUDA backend registers itself with ggml.
#
#   here:   scripts/gpu-bench.sh pack        gpu/: binary, llama.cpp source, model in parts,
#                                            enwik6 (each piece small enough to carry)
#   there:  scripts/gpu-bench.sh build       gpu/build: llama.cpp shared libraries with CUDA
#           scripts/gpu-bench.sh join        gpu/models/: the model, SHA-256 checked
#           scripts/gpu-bench.sh run [DIR]   compress + decompress enwik6 at S = 16, 64, 256
#                                            and on the CPU, report into DIR (default gpu/out)
#
# Each call of the device tool carries at most 64 MiB, and a lent machine has 15 minutes in all
# and goes back after 30 s idle, so the recipe takes two calls, made back to back:
#   1. carry gpu/bin gpu/src gpu/data gpu/model/part-00; run `scripts/gpu-bench.sh build`
#   2. carry gpu/model/part-01; run `scripts/gpu-bench.sh join && timeout 420
#      scripts/gpu-bench.sh run gpu/out; rc=$?; cp gpu/out/*.txt $OUT/; exit $rc` (the tool
#      brings back at most 8 files; the reports are the .txt ones, the output's tail holds
#      them too, and the exit status stays the run's)
# The build skips the flash-attention kernels (nzip turns flash attention off), most of
# ggml-cuda's compile time. The run does the fastest plans first, so a run cut short still
# reports the most.
#
# Rehearsal on a machine without a GPU (checks the binary against llama.cpp libraries built
# apart from it): GPU_BENCH_CUDA=OFF for `build`, GPU_BENCH_BYTES=N to `run` on enwik6's first
# N bytes.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
gpu=gpu
model_name=smollm2-135m-instruct-q4_1
# Two parts: each fits one call beside what the first call carries.
part_size=47M

pack() {
    rm -rf "$gpu"
    mkdir -p "$gpu/bin" "$gpu/src" "$gpu/data" "$gpu/model"
    cargo build --release --locked    # the static binary fetches the model below
    cargo build --release --locked --features dynamic-link --target-dir target/dynamic
    # Without its line tables the binary is 4 MB instead of 35: room in the first call.
    strip -o "$gpu/bin/nzip" target/dynamic/release/nzip
    local sys
    sys=$(cargo metadata --format-version 1 --locked | python3 -c '
import json, sys
meta = json.load(sys.stdin)
print(next(p["manifest_path"] for p in meta["packages"] if p["name"] == "llama-cpp-sys-2"))')
    tar czf "$gpu/src/llama.cpp.tar.gz" -C "$(dirname "$sys")" llama.cpp
    local model
    model=$(target/release/nzip model fetch "$model_name" | sed -n 's/.* at //p')
    split -b "$part_size" -d -a 2 "$model" "$gpu/model/part-"
    sha256sum "$model" | cut -d' ' -f1 >"$gpu/data/model.sha256"
    cp corpus/enwik6 "$gpu/data/enwik6"
    du -sh "$gpu"/*
}

build() {
    rm -rf "$gpu/llama.cpp" "$gpu/build"
    tar xzf "$gpu/src/llama.cpp.tar.gz" -C "$gpu"
    # Flash attention stays off at run time (nzip sets it per context); the CPU kernels are
    # built without -march=native, as llama-cpp-sys-2 builds them.
    # The GPU's own architecture only (e.g. 90 for an H100/H200), from the driver: CMake's
    # `native` needs CMake 3.24.
    local arch
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)
    local cuda=(-DGGML_CUDA=ON -DGGML_CUDA_NCCL=OFF -DGGML_CUDA_FA=OFF
        "-DCMAKE_CUDA_ARCHITECTURES=${arch:-native}")
    [ "${GPU_BENCH_CUDA:-ON}" = ON ] || cuda=(-DGGML_CUDA=OFF)
    cmake -S "$gpu/llama.cpp" -B "$gpu/build" -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF "${cuda[@]}" -DGGML_OPENMP=ON -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
        -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_COMMON=OFF
    cmake --build "$gpu/build" -j "$(nproc)" --target llama
    find "$gpu/build" -name '*.so*' -printf '%f\n' | sort
}

join() {
    mkdir -p "$gpu/models"
    cat "$gpu"/model/part-* >"$gpu/models/$model_name.gguf"
    echo "$(cat "$gpu/data/model.sha256")  $gpu/models/$model_name.gguf" | sha256sum -c -
}

run() {
    local out=${1:-$gpu/out}
    mkdir -p "$out"
    export LD_LIBRARY_PATH
    LD_LIBRARY_PATH="$(find "$root/$gpu/build" -name 'libllama.so*' -printf '%h\n' | head -1):${LD_LIBRARY_PATH:-}"
    export NZIP_MODEL_DIR="$root/$gpu/models" NZIP_OFFLINE=1
    local nzip="$gpu/bin/nzip" input size
    "$nzip" devices | tee "$out/devices.txt"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$out/devices.txt" || true
    printf '%-13s %-8s %-10s %-8s %-12s %-12s\n' device S chunk bpb "compress" "decompress" | tee "$out/report.txt"
    # S chunks in lockstep need chunks of about size/S bytes for one group to hold the input.
    input="$gpu/data/enwik6"
    if [ -n "${GPU_BENCH_BYTES:-}" ]; then
        head -c "$GPU_BENCH_BYTES" "$input" >"$out/enwik6-part"
        input="$out/enwik6-part"
    fi
    size=$(stat -c %s "$input")
    for seqs in 256 64 16; do
        measure "auto" "$seqs" $(((size + seqs - 1) / seqs))
        if [ "$seqs" = 256 ]; then
            # The same 256 chunks on two workers of 128 sequences each, which share the GPU:
            # does one worker's token step on the CPU hide behind the other's batch?
            measure "auto" "$seqs" $(((size + seqs - 1) / seqs)) 2
            # The archive must not depend on the worker count on a GPU either.
            if "$nzip" decompress -c --workers 1 "$out/gpu-256-w2.nz" | cmp -s - "$input"; then
                echo "the 2-worker archive decodes exactly with 1 worker" | tee -a "$out/report.txt"
            else
                echo "the 2-worker archive does NOT decode with 1 worker" | tee -a "$out/report.txt"
            fi
        fi
    done
    # The CPU path, in the same report: the first 32 KiB (all of enwik6 takes the CPU far
    # longer than one device call may run), 16 chunks in lockstep.
    input="$out/enwik6-32k"
    head -c 32768 "$gpu/data/enwik6" >"$input"
    size=32768
    measure "cpu" 16 2048
    # nzip's portable engine (its CPU default for SmolLM2) on the same bytes and all the cores.
    measure "cpu" 16 2048 1 portable
    # A GPU archive must be refused, clearly, on the CPU.
    rm -f "$input"
    if grep -q "auto runs on the CPU" "$out/devices.txt"; then
        echo "no GPU here (a rehearsal): no GPU archive to refuse" | tee -a "$out/report.txt"
    elif "$nzip" decompress -c --device cpu "$out/gpu-256.nz" >/dev/null 2>"$out/refusal.txt"; then
        echo "a GPU archive decoded on the CPU: numerics are not checked" | tee -a "$out/report.txt"
    else
        sed 's/^/refused on the CPU: /' "$out/refusal.txt" | tee -a "$out/report.txt"
    fi
}

# measure DEVICE SEQS CHUNK [WORKERS] [ENGINE]: one compress and one decompress, checked, with
# -v's LLM lines. The engine is llama.cpp unless told: the portable engine (the CPU default for
# SmolLM2) has no GPU path yet.
measure() {
    local device=$1 seqs=$2 chunk=$3 workers=${4:-1} engine=${5:-llama}
    local tag
    tag=$([ "$device" = cpu ] && echo cpu || echo gpu)-$seqs
    [ "$workers" = 1 ] || tag=$tag-w$workers
    [ "$engine" = llama ] || tag=$tag-$engine
    local archive="$out/$tag.nz" back="$out/$tag.out"
    local t0 t1 t2
    t0=$(date +%s.%N)
    "$nzip" compress -v -f --engine "$engine" --device "$device" --workers "$workers" --seqs "$seqs" \
        --chunk-size "$chunk" -o "$archive" "$input" 2>"$out/$tag.compress.log"
    t1=$(date +%s.%N)
    "$nzip" decompress -v -f --device "$device" --workers "$workers" -o "$back" "$archive" \
        2>"$out/$tag.decompress.log"
    t2=$(date +%s.%N)
    cmp "$input" "$back"
    rm -f "$back"
    python3 - "$size" "$(stat -c %s "$archive")" "$t0" "$t1" "$t2" "$device" "$seqs" "$chunk" \
        "$workers" "$engine" <<'EOF' | tee -a "$out/report.txt"
import sys
size, packed = int(sys.argv[1]), int(sys.argv[2])
t0, t1, t2 = map(float, sys.argv[3:6])
device, seqs, chunk, workers, engine = sys.argv[6:11]
seqs = seqs if workers == "1" else f"{int(seqs) // int(workers)}x{workers}"
device = device if engine == "llama" else f"{device}:{engine}"
kbps = lambda s: size / s / 1e3
print(f"{device:<13} {seqs:<8} {chunk:<10} {8 * packed / size:<8.4f} "
      f"{t1 - t0:6.1f} s {kbps(t1 - t0):7.1f} KB/s  {t2 - t1:6.1f} s {kbps(t2 - t1):7.1f} KB/s")
EOF
    grep -h "LLM:" "$out/$tag.compress.log" "$out/$tag.decompress.log" | tee -a "$out/report.txt"
}

case "${1:-}" in
pack | build | join) "$1" ;;
run) run "${2:-}" ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d'
    exit 2
    ;;
esac
