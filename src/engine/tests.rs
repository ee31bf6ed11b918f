//! The engine's exactness, on a small random Llama model written as a GGUF in memory: pinned
//! logits, and the same bits alone or in any slot of a group, and on any number of threads.

use super::gguf::Gguf;
use super::kernels::Kernel;
use super::model::{Group, Model};
use crate::container::Schedule;
use crate::seeded::Seeded;

const EMBD: usize = 64;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const FF: usize = 128;
const LAYERS: usize = 2;
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

/// The synthetic model: Q4_1 layer matrices, a Q8_0 embedding (tied output), F32 norms.
pub fn synthetic_gguf(seed: u64) -> Vec<u8> {
    let mut rng = Seeded::new(seed);
    let kv = EMBD / HEADS * KV_HEADS;
    // (name, cols, rows, ggml type): 0 = F32 vector, 3 = Q4_1, 8 = Q8_0.
    let mut tensors: Vec<(String, usize, usize, u32)> = vec![
        ("token_embd.weight".into(), EMBD, VOCAB, 8),
        ("output_norm.weight".into(), EMBD, 1, 0),
    ];
    for l in 0..LAYERS {
        let t = |n: &str| format!("blk.{l}.{n}.weight");
        tensors.extend([
            (t("attn_norm"), EMBD, 1, 0),
            (t("attn_q"), EMBD, EMBD, 3),
            (t("attn_k"), EMBD, kv, 3),
            (t("attn_v"), EMBD, kv, 3),
            (t("attn_output"), EMBD, EMBD, 3),
            (t("ffn_norm"), EMBD, 1, 0),
            (t("ffn_gate"), EMBD, FF, 3),
            (t("ffn_up"), EMBD, FF, 3),
            (t("ffn_down"), FF, EMBD, 3),
        ]);
    }
    let mut data = Vec::new();
    let mut table = Vec::new();
    for (name, cols, rows, ty) in &tensors {
        while data.len() % 32 != 0 {
            data.push(0);
        }
        table.push((name.clone(), *cols, *rows, *ty, data.len() as u64));
        for _ in 0..rows * cols / if *ty == 0 { 1 } else { 32 } {
            match ty {
                0 => data
                    .extend_from_slice(&(0.8 + (rng.bits(64) % 400) as f32 / 1000.0).to_le_bytes()),
                3 => {
                    data.extend_from_slice(&scale(&mut rng));
                    data.extend_from_slice(&scale(&mut rng));
                    data.extend((0..16).map(|_| rng.bits(64) as u8));
                }
                _ => {
                    // A larger embedding scale, so the residual stream starts near unit size.
                    data.extend_from_slice(&(0x2c00 + (rng.bits(64) % 0x400) as u16).to_le_bytes());
                    data.extend((0..32).map(|_| rng.bits(64) as u8));
                }
            }
        }
    }
    let mut f = Vec::new();
    f.extend_from_slice(b"GGUF");
    f.extend_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(&(table.len() as u64).to_le_bytes());
    f.extend_from_slice(&10u64.to_le_bytes());
    string(&mut f, b"general.architecture");
    f.extend_from_slice(&8u32.to_le_bytes());
    string(&mut f, b"llama");
    key_u32(&mut f, "llama.block_count", LAYERS as u32);
    key_u32(&mut f, "llama.embedding_length", EMBD as u32);
    key_u32(&mut f, "llama.feed_forward_length", FF as u32);
    key_u32(&mut f, "llama.attention.head_count", HEADS as u32);
    key_u32(&mut f, "llama.attention.head_count_kv", KV_HEADS as u32);
    key_u32(&mut f, "llama.rope.dimension_count", (EMBD / HEADS) as u32);
    key_f32(&mut f, "llama.rope.freq_base", 10_000.0);
    key_f32(&mut f, "llama.attention.layer_norm_rms_epsilon", 1e-5);
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
    let mut group = Group::new(model, schedule(seqs.len() as u32));
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

#[test]
fn logits_are_pinned_for_every_kernel() {
    let mut m = model();
    for kernel in Kernel::available() {
        m.kernel = kernel;
        let out = run(&m, &[tokens(1, 40)]);
        assert!(out[0].iter().flatten().all(|v| v.is_finite()));
        let spread = out[0][39].iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        assert!(spread > 0.1, "logits carry information ({spread})");
        // Any change to a bit of the portable numerics changes this: that needs a new
        // numerics identity (engine::NUMERICS) and the spec updated, never just a new number.
        assert_eq!(
            crc(&out[0]),
            0x83e1_9795,
            "portable logits moved ({kernel:?})"
        );
    }
}

#[test]
fn a_chunk_computes_the_same_bits_alone_or_in_any_slot() {
    let m = model();
    let mine = tokens(2, 40);
    let alone = run(&m, std::slice::from_ref(&mine));
    for slot in 0..3 {
        let mut group: Vec<Vec<u32>> = (0..3)
            .map(|i| tokens(10 + i, 25 + 7 * i as usize))
            .collect();
        group[slot] = mine.clone();
        let together = run(&m, &group);
        assert!(
            together[slot] == alone[0],
            "slot {slot} of 3 differs from alone"
        );
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
