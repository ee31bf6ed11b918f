#!/usr/bin/env python3
"""Writes a tiny random-weight llama GGUF that reuses a real model's tokenizer.

nzip's tests use it to run large inputs through the very same pipeline (tokenizer, lockstep
groups, sliding window, coder) in seconds: its predictions are poor, but every code path is
the real one. Weights come from a fixed seed, so the file is the same every time.
With --q8_0 the matrices are stored as Q8_0 blocks, which nzip's portable engine reads (it
multiplies integers only); llama.cpp reads either.

usage: make-tiny-model.py [--q8_0] SOURCE.gguf DEST.gguf      (needs: pip install gguf numpy)
"""
import sys

import numpy as np
import gguf

N_EMBD, N_LAYER, N_HEAD, N_HEAD_KV, N_FF = 64, 2, 4, 2, 128


def strings(field):
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def scalar(field):
    return field.parts[field.data[0]][0].item()


def main(src, dest, q8_0=False):
    r = gguf.GGUFReader(src)
    f = r.fields
    tokens = strings(f["tokenizer.ggml.tokens"])
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    merges = strings(f["tokenizer.ggml.merges"])
    n_vocab = len(tokens)

    w = gguf.GGUFWriter(dest, "llama")
    w.add_name("nzip-tiny-test-model")
    w.add_block_count(N_LAYER)
    w.add_context_length(8192)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model(bytes(f["tokenizer.ggml.model"].parts[-1]).decode())
    w.add_tokenizer_pre(bytes(f["tokenizer.ggml.pre"].parts[-1]).decode())
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    for key, add in [
        ("tokenizer.ggml.bos_token_id", w.add_bos_token_id),
        ("tokenizer.ggml.eos_token_id", w.add_eos_token_id),
        ("tokenizer.ggml.unknown_token_id", w.add_unk_token_id),
        ("tokenizer.ggml.padding_token_id", w.add_pad_token_id),
    ]:
        if key in f:
            add(scalar(f[key]))
    w.add_add_bos_token(False)
    w.add_add_space_prefix(False)

    rng = np.random.default_rng(20261123)

    def rand(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    add_vector = w.add_tensor

    def add_matrix(name, data):
        if q8_0:
            qtype = gguf.GGMLQuantizationType.Q8_0
            w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, data)

    kv = N_EMBD // N_HEAD * N_HEAD_KV
    add_matrix("token_embd.weight", rand(n_vocab, N_EMBD))
    add_vector("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    for i in range(N_LAYER):
        b = f"blk.{i}."
        add_vector(b + "attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        add_matrix(b + "attn_q.weight", rand(N_EMBD, N_EMBD))
        add_matrix(b + "attn_k.weight", rand(kv, N_EMBD))
        add_matrix(b + "attn_v.weight", rand(kv, N_EMBD))
        add_matrix(b + "attn_output.weight", rand(N_EMBD, N_EMBD))
        add_vector(b + "ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        add_matrix(b + "ffn_gate.weight", rand(N_FF, N_EMBD))
        add_matrix(b + "ffn_up.weight", rand(N_FF, N_EMBD))
        add_matrix(b + "ffn_down.weight", rand(N_EMBD, N_FF))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    q8_0 = "--q8_0" in args
    paths = [a for a in args if a != "--q8_0"]
    if len(paths) != 2 or len(args) - len(paths) > 1:
        sys.exit(__doc__)
    main(paths[0], paths[1], q8_0)
