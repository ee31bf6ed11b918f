//! The engine's exactness, on small random Llama, Qwen2 and Gemma 3 models written as GGUF
//! files in memory: pinned logits, and the same bits alone or in any slot of a group, and on
//! any number of threads.

use super::gguf::Gguf;
use super::kernels::Kernel;
use super::model::{Group, Model};
use super::Numerics;
use crate::container::Schedule;
use crate::seeded::Seeded;

/// The shape of a synthetic model.
struct Shape {
    arch: &'static str,
    embd: usize,
    heads: usize,
    kv_heads: usize,
    ff: usize,
    layers: usize,
    /// Gemma 3: each head's width (over `embd / heads`) and the local layers' window.
    head_dim: usize,
    local_window: u32,
}

/// The Llama-architecture model: Q4_1 layer matrices, a Q8_0 embedding (tied output).
const LLAMA: Shape = Shape {
    arch: "llama",
    embd: 64,
    heads: 4,
    kv_heads: 2,
    ff: 128,
    layers: 2,
    head_dim: 16,
    local_window: 0,
};

/// The Llama model with SmolLM2's head size (64): four key blocks per head, and attention soft
/// enough that their scales show in the logits.
const LLAMA_HD64: Shape = Shape {
    arch: "llama",
    embd: 128,
    heads: 2,
    kv_heads: 1,
    ff: 256,
    layers: 2,
    head_dim: 64,
    local_window: 0,
};

/// The Qwen2-architecture model: Q4_K and Q6_K matrices (as Q4_K_M mixes them), Q/K/V
/// biases, a separate output matrix, head size 128.
const QWEN2: Shape = Shape {
    arch: "qwen2",
    embd: 256,
    heads: 2,
    kv_heads: 1,
    ff: 512,
    layers: 2,
    head_dim: 128,
    local_window: 0,
};

/// The Gemma 3 model: Q5_0, Q8_0, Q4_K and Q6_K matrices as Gemma 3 270M's Q4_K_M mixes
/// them, four heads of 64 over a 64-wide embedding, norms of each head's query and key and
/// after each sub-layer, a GELU gate; layers 0 and 2 see only the last 6 positions (the test's
/// schedule slides within 40 tokens, so sinks fall out of that window too), layer 1 all.
const GEMMA3: Shape = Shape {
    arch: "gemma3",
    embd: 64,
    heads: 4,
    kv_heads: 1,
    ff: 256,
    layers: 3,
    head_dim: 64,
    local_window: 6,
};

const VOCAB: usize = 96;

fn string(f: &mut Vec<u8>, s: &[u8]) {
    f.extend_from_slice(&(s.len() as u64).to_le_bytes());
    f.extend_from_slice(s);
}

fn key_u32(f: &mut Vec<u8>, key: &str, v: u32) {
    string(f, key.as_bytes());
    f.extend_from_slice(&4u32.to_le_bytes());
    f.extend_from_slice(&v.to_le_bytes());
}

fn key_f32(f: &mut Vec<u8>, key: &str, v: f32) {
    string(f, key.as_bytes());
    f.extend_from_slice(&6u32.to_le_bytes());
    f.extend_from_slice(&v.to_le_bytes());
}

/// A random f16 scale around 2^-6, as its bits.
fn scale(rng: &mut Seeded) -> [u8; 2] {
    let bits: u16 = (0x2000 + (rng.bits(64) % 0x400)) as u16 | ((rng.bits(64) % 2) as u16) << 15;
    bits.to_le_bytes()
}

/// A random positive f16 with exponent field `e` (2^(e−15) to 2^(e−14)), as its bits.
fn small_scale(rng: &mut Seeded, e: u16) -> [u8; 2] {
    ((e << 10) + (rng.bits(64) % 0x400) as u16).to_le_bytes()
}

// ggml type ids the synthetic models use.
const F32: u32 = 0;
const Q4_1: u32 = 3;
const Q5_0: u32 = 6;
const Q8_0: u32 = 8;
const Q4_K: u32 = 12;
const Q6_K: u32 = 14;

/// The synthetic Llama model (see `LLAMA`).
pub fn synthetic_gguf(seed: u64) -> Vec<u8> {
    synthetic(&LLAMA, seed)
}

/// A random model of `shape` as a GGUF file, F32 norms (and biases).
fn synthetic(shape: &Shape, seed: u64) -> Vec<u8> {
    let mut rng = Seeded::new(seed);
    let qwen = shape.arch == "qwen2";
    let gemma = shape.arch == "gemma3";
    let (d, ff, hd) = (shape.embd, shape.ff, shape.head_dim);
    let (qd, kv) = (shape.heads * hd, shape.kv_heads * hd);
    // (attn_q, attn_k, ffn_gate and ffn_up; attn_v; attn_output; ffn_down)
    let [q_type, v_type, o_type, down_type] = match shape.arch {
        "qwen2" => [Q4_K, Q6_K, Q4_K, Q6_K],
        "gemma3" => [Q5_0, Q8_0, Q4_K, Q6_K],
        _ => [Q4_1; 4],
    };
    // (name, cols, rows, ggml type); rows = 1 is a vector.
    let mut tensors: Vec<(String, usize, usize, u32)> = vec![
        (
            "token_embd.weight".into(),
            d,
            VOCAB,
            if qwen { Q4_K } else { Q8_0 },
        ),
        ("output_norm.weight".into(), d, 1, F32),
    ];
    if qwen {
        tensors.push(("output.weight".into(), d, VOCAB, Q6_K));
    }
    for l in 0..shape.layers {
        let t = |n: &str| format!("blk.{l}.{n}.weight");
        tensors.extend([
            (t("attn_norm"), d, 1, F32),
            (t("attn_q"), d, qd, q_type),
            (t("attn_k"), d, kv, q_type),
            (t("attn_v"), d, kv, v_type),
            (t("attn_output"), qd, d, o_type),
            (t("ffn_norm"), d, 1, F32),
            (t("ffn_gate"), d, ff, q_type),
            (t("ffn_up"), d, ff, q_type),
            (t("ffn_down"), ff, d, down_type),
        ]);
        if gemma {
            tensors.extend([
                (t("attn_q_norm"), hd, 1, F32),
                (t("attn_k_norm"), hd, 1, F32),
                (t("post_attention_norm"), d, 1, F32),
                (t("post_ffw_norm"), d, 1, F32),
            ]);
        }
        if qwen {
            let b = |n: &str| format!("blk.{l}.{n}.bias");
            tensors.extend([
                (b("attn_q"), qd, 1, F32),
                (b("attn_k"), kv, 1, F32),
                (b("attn_v"), kv, 1, F32),
            ]);
        }
    }
    let mut data = Vec::new();
    let mut table = Vec::new();
    for (name, cols, rows, ty) in &tensors {
        while data.len() % 32 != 0 {
            data.push(0);
        }
        table.push((name.clone(), *cols, *rows, *ty, data.len() as u64));
        let per_block = match *ty {
            F32 => 1,
            Q4_K | Q6_K => 256,
            _ => 32,
        };
        for _ in 0..rows * cols / per_block {
            match *ty {
                F32 => data
                    .extend_from_slice(&(0.8 + (rng.bits(64) % 400) as f32 / 1000.0).to_le_bytes()),
                Q4_1 => {
                    data.extend_from_slice(&scale(&mut rng));
                    data.extend_from_slice(&scale(&mut rng));
                    data.extend((0..16).map(|_| rng.bits(64) as u8));
                }
                Q5_0 => {
                    data.extend_from_slice(&scale(&mut rng));
                    data.extend((0..20).map(|_| rng.bits(64) as u8));
                }
                Q8_0 if gemma => {
                    // Gemma scales the embedding by √d itself.
                    data.extend_from_slice(&scale(&mut rng));
                    data.extend((0..32).map(|_| rng.bits(64) as u8));
                }
                Q8_0 => {
                    // A larger embedding scale, so the residual stream starts near unit size.
                    data.extend_from_slice(&(0x2c00 + (rng.bits(64) % 0x400) as u16).to_le_bytes());
                    data.extend((0..32).map(|_| rng.bits(64) as u8));
                }
                Q4_K => {
                    // d, dmin about 2^-11 (times 6-bit scales and mins), then random bytes.
                    data.extend_from_slice(&small_scale(&mut rng, 4));
                    data.extend_from_slice(&small_scale(&mut rng, 4));
                    data.extend((0..140).map(|_| rng.bits(64) as u8));
                }
                _ => {
                    // Q6_K: random quants and signed scales, d about 2^-14.
                    data.extend((0..208).map(|_| rng.bits(64) as u8));
                    data.extend_from_slice(&small_scale(&mut rng, 1));
                }
            }
        }
    }
    // Metadata: (count of keys, their bytes).
    let mut keys = Vec::new();
    let key = |k: &str| format!("{}.{k}", shape.arch);
    string(&mut keys, b"general.architecture");
    keys.extend_from_slice(&8u32.to_le_bytes());
    string(&mut keys, shape.arch.as_bytes());
    key_u32(&mut keys, &key("block_count"), shape.layers as u32);
    key_u32(&mut keys, &key("embedding_length"), d as u32);
    key_u32(&mut keys, &key("feed_forward_length"), ff as u32);
    key_u32(&mut keys, &key("attention.head_count"), shape.heads as u32);
    key_u32(
        &mut keys,
        &key("attention.head_count_kv"),
        shape.kv_heads as u32,
    );
    key_u32(&mut keys, &key("rope.dimension_count"), hd as u32);
    key_f32(&mut keys, &key("attention.layer_norm_rms_epsilon"), 1e-5);
    let mut count = 9;
    if gemma {
        key_f32(&mut keys, &key("rope.freq_base"), 1e6);
        key_u32(&mut keys, &key("attention.key_length"), hd as u32);
        key_u32(&mut keys, &key("attention.value_length"), hd as u32);
        key_u32(
            &mut keys,
            &key("attention.sliding_window"),
            shape.local_window,
        );
        key_u32(&mut keys, &key("attention.sliding_window_pattern"), 2);
        count += 5;
    } else {
        key_f32(&mut keys, &key("rope.freq_base"), 10_000.0);
        count += 1;
    }
    let mut f = Vec::new();
    f.extend_from_slice(b"GGUF");
    f.extend_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(&(table.len() as u64).to_le_bytes());
    f.extend_from_slice(&(count as u64).to_le_bytes());
    f.extend_from_slice(&keys);
    string(&mut f, b"tokenizer.ggml.tokens");
    f.extend_from_slice(&9u32.to_le_bytes());
    f.extend_from_slice(&8u32.to_le_bytes());
    f.extend_from_slice(&(VOCAB as u64).to_le_bytes());
    for t in 0..VOCAB {
        string(&mut f, format!("t{t}").as_bytes());
    }
    for (name, cols, rows, ty, offset) in &table {
        string(&mut f, name.as_bytes());
        if *rows == 1 {
            f.extend_from_slice(&1u32.to_le_bytes());
            f.extend_from_slice(&(*cols as u64).to_le_bytes());
        } else {
            f.extend_from_slice(&2u32.to_le_bytes());
            f.extend_from_slice(&(*cols as u64).to_le_bytes());
            f.extend_from_slice(&(*rows as u64).to_le_bytes());
        }
        f.extend_from_slice(&ty.to_le_bytes());
        f.extend_from_slice(&offset.to_le_bytes());
    }
    while f.len() % 32 != 0 {
        f.push(0);
    }
    f.extend_from_slice(&data);
    f
}

fn model() -> Model {
    Model::load(&Gguf::from_bytes(synthetic_gguf(7)).expect("parse")).expect("load")
}

fn model_of(shape: &Shape, seed: u64) -> Model {
    Model::load(&Gguf::from_bytes(synthetic(shape, seed)).expect("parse")).expect("load")
}

fn qwen2_model() -> Model {
    Model::load(&Gguf::from_bytes(synthetic(&QWEN2, 8)).expect("parse")).expect("load")
}

fn gemma3_model() -> Model {
    model_of(&GEMMA3, 9)
}

/// A schedule that slides several times within the test's 40 tokens.
fn schedule(seqs: u32) -> Schedule {
    Schedule {
        window: 16,
        slide: 5,
        sinks: 2,
        seqs,
        start_token: 1,
    }
}

fn tokens(seed: u64, n: usize) -> Vec<u32> {
    let mut rng = Seeded::new(seed);
    (0..n)
        .map(|_| (rng.bits(64) % VOCAB as u64) as u32)
        .collect()
}

/// Runs sequences in lockstep and returns every step's logits per sequence.
fn run(model: &Model, seqs: &[Vec<u32>]) -> Vec<Vec<Vec<f32>>> {
    run_numerics(model, Numerics::CURRENT, seqs)
}

fn run_numerics(model: &Model, numerics: Numerics, seqs: &[Vec<u32>]) -> Vec<Vec<Vec<f32>>> {
    let mut group = Group::new(model, schedule(seqs.len() as u32), numerics);
    group.reset(seqs.len());
    let mut out = vec![Vec::new(); seqs.len()];
    let steps = seqs.iter().map(Vec::len).max().unwrap_or(0);
    let mut logits = Vec::new();
    for t in 0..steps {
        let feed: Vec<(usize, u32)> = (0..seqs.len())
            .filter(|&i| t < seqs[i].len())
            .map(|i| (i, seqs[i][t]))
            .collect();
        logits.resize(feed.len(), Vec::new());
        group.step(&feed, &mut logits);
        for (slot, &(i, _)) in feed.iter().enumerate() {
            out[i].push(logits[slot].clone());
        }
    }
    out
}

fn crc(logits: &[Vec<f32>]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for l in logits {
        for v in l {
            h.update(&v.to_bits().to_le_bytes());
        }
    }
    h.finalize()
}

/// Runs 40 tokens of seed `seed` on every kernel in each version of the arithmetic and
/// requires the logits' CRCs to be `pinned` (`nzip portable 1`, 2 and 3). Any
/// change to a bit of the portable numerics changes one: that needs a new numerics identity
/// (engine::Numerics) and the spec updated, never just a new number, and the old versions
/// keep their pins so that their archives keep decoding.
fn assert_pinned(mut m: Model, seed: u64, pinned: [u32; 3]) {
    for kernel in Kernel::available() {
        m.kernel = kernel;
        let versions = [Numerics::V1, Numerics::V2, Numerics::V3];
        for (numerics, pinned) in versions.into_iter().zip(pinned) {
            let out = run_numerics(&m, numerics, &[tokens(seed, 40)]);
            assert!(out[0].iter().flatten().all(|v| v.is_finite()));
            let spread = out[0][39].iter().fold(0.0f32, |a, &v| a.max(v.abs()));
            assert!(spread > 0.1, "logits carry information ({spread})");
            assert_eq!(
                crc(&out[0]),
                pinned,
                "portable logits moved ({kernel:?}, {numerics:?})"
            );
        }
    }
}

#[test]
fn logits_are_pinned_for_every_kernel() {
    // Version 3 changes nothing for Q4_1 matrices.
    assert_pinned(model(), 1, [0x83e1_9795, 0x0911_7c9e, 0x0911_7c9e]);
}

/// Head size 64: `nzip portable 2` scales each 16 dimensions of a cached key on their own, so
/// its logits differ from `nzip portable 1`'s, and both are pinned.
#[test]
fn wide_head_logits_are_pinned_in_both_versions() {
    let m = model_of(&LLAMA_HD64, 11);
    let v1 = run_numerics(&m, Numerics::V1, &[tokens(6, 40)]);
    let v2 = run_numerics(&m, Numerics::V2, &[tokens(6, 40)]);
    assert!(v1 != v2, "the key blocks change nothing");
    assert_pinned(m, 6, [0xe65a_9e47, 0xaa69_16ac, 0xaa69_16ac]);
}

/// The Qwen2 path (K-quants, biases, NeoX rotation, head size 128; its attention is so
/// peaked that versions 1 and 2 agree; version 3 gives its K-quant matrices' inputs one
/// exponent per 256 values).
#[test]
fn qwen2_logits_are_pinned_for_every_kernel() {
    let m = qwen2_model();
    let v2 = run_numerics(&m, Numerics::V2, &[tokens(5, 40)]);
    let v3 = run_numerics(&m, Numerics::V3, &[tokens(5, 40)]);
    assert!(v2 != v3, "shared exponents change nothing");
    assert_pinned(m, 5, [0x21a7_5d93, 0x21a7_5d93, 0x87fb_176a]);
}

/// The Gemma 3 path (Q5_0 read as small Q8 blocks, √d embedding scale, head norms,
/// post-norms, GELU, local layers with their own rotary base).
#[test]
fn gemma3_logits_are_pinned_for_every_kernel() {
    assert_pinned(gemma3_model(), 4, [0xd600_f6ad, 0x4766_e34e, 0xbadf_91ff]);
}

/// Local layers see only the last `local_window` logical positions: the same model with a
/// window beyond the test's 40 tokens computes the same logits for the first 6 tokens (the
/// window covers all of them) and different ones after (with the test's schedule: in a
/// window of 16 positions, sinks included).
#[test]
fn gemma3_local_layers_see_only_their_window() {
    let narrow = run(&gemma3_model(), &[tokens(4, 40)]);
    let wide_shape = Shape {
        local_window: 100,
        ..GEMMA3
    };
    let wide = run(&model_of(&wide_shape, 9), &[tokens(4, 40)]);
    assert_eq!(narrow[0][..6], wide[0][..6]);
    // A small change far back can vanish in the last vector's 8-bit rounding, so most
    // tokens, not all, must differ.
    let moved = (6..40).filter(|&t| narrow[0][t] != wide[0][t]).count();
    assert!(
        moved >= 30,
        "only {moved} of 34 tokens past the window see a difference"
    );
}

/// Version 3 only changes vectors that K-quant matrices alone read: the Q4_1 Llama computes
/// version 2's logits (its pins are equal), so its archives record version 2; the K-quant
/// models need 3.
#[test]
fn archives_record_the_oldest_version_computing_the_same_logits() {
    assert_eq!(Numerics::V3.oldest_equivalent(&model()), Numerics::V2);
    assert_eq!(Numerics::V3.oldest_equivalent(&qwen2_model()), Numerics::V3);
    assert_eq!(
        Numerics::V3.oldest_equivalent(&gemma3_model()),
        Numerics::V3
    );
    assert_eq!(Numerics::V1.oldest_equivalent(&model()), Numerics::V1);
}

/// A group of 16 runs other kernels than a chunk alone (on VNNI, sequences across the lanes),
/// so each kernel, every architecture and the first, a middle and the last slot are tried.
#[test]
fn a_chunk_computes_the_same_bits_alone_or_in_any_slot() {
    for mut m in [model(), qwen2_model(), gemma3_model()] {
        for kernel in Kernel::available() {
            m.kernel = kernel;
            let mine = tokens(2, 40);
            let alone = run(&m, std::slice::from_ref(&mine));
            for slot in [0, 6, 15] {
                let mut group: Vec<Vec<u32>> =
                    (0..16).map(|i| tokens(10 + i, 25 + i as usize)).collect();
                group[slot] = mine.clone();
                let together = run(&m, &group);
                assert!(
                    together[slot] == alone[0],
                    "{kernel:?}: slot {slot} of 16 differs from alone"
                );
            }
        }
    }
}

#[test]
fn thread_count_changes_nothing() {
    let m = model();
    let seqs = [tokens(3, 30), tokens(4, 30)];
    let crcs: Vec<Vec<u32>> = [1, 2, 3]
        .iter()
        .map(|&threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| run(&m, &seqs))
                .iter()
                .map(|s| crc(s))
                .collect()
        })
        .collect();
    assert!(crcs.windows(2).all(|w| w[0] == w[1]), "{crcs:?}");
}
