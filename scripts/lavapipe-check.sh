#!/usr/bin/env bash
# The GPU code path without a GPU: on Mesa's lavapipe (a Vulkan device on the CPU), with the
# Vulkan build (scripts/build-vulkan.sh) and the CPU build, checks that two workers sharing one
# device's model write the archive one worker writes, that it decodes exactly with 1 and 2
# workers, and that the CPU build refuses it. Slow (lavapipe runs about 2 tokens/s): ~10 min.
set -euo pipefail
cd "$(dirname "$0")/.."
export GGML_VK_VISIBLE_DEVICES=0    # llama.cpp skips CPU-type Vulkan devices otherwise
vulkan=target/vulkan/release/nzip
cpu=target/release/nzip
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$vulkan" devices
head -c 1200 corpus/alice29.txt >"$work/in.txt"
# Four chunks, two per group: one worker runs the groups in turn, two run them at once.
for w in 1 2; do
    "$vulkan" compress -f --device Vulkan0 --workers "$w" --seqs 2 --chunk-size 300 \
        -o "$work/w$w.nz" "$work/in.txt"
done
cmp "$work/w1.nz" "$work/w2.nz"
echo "archives of 1 and 2 GPU workers: identical"
for w in 1 2; do
    "$vulkan" decompress -c --device Vulkan0 --workers "$w" "$work/w2.nz" | cmp - "$work/in.txt"
    echo "decoded with $w GPU worker(s): exact"
done
if "$cpu" decompress -c "$work/w1.nz" >/dev/null 2>"$work/refusal.txt"; then
    echo "the CPU build decoded a Vulkan archive: numerics are not checked" >&2
    exit 1
fi
echo "the CPU build refuses it: $(cat "$work/refusal.txt")"
