//! The Llama-family forward pass (SmolLM2's architecture) on integer weights, for a lockstep
//! group of sequences with a sliding KV window, producing the next token's logits.
//!
//! Sequences never touch each other's numbers: a group only shares the reading of the
//! weights, so a chunk's logits are the same alone or in any slot of any group.

use super::gguf::{Gguf, Value};
use super::kernels::{matmul, matmuls, Kernel};
use super::numerics::{
    exp_f64, exp_neg, ln_f64, pow2_f32, pow2_f64, quantize_head, round_f32, silu, sin_cos,
    QuantVec, ACT_BLOCK,
};
use super::weights::{load_vector, Matrix};
use super::ModelError;
use crate::container::Schedule;
use rayon::prelude::*;

/// Attention weights are rounded to integers of this many fractional bits (the largest, e^0,
/// is exactly 2^15).
const PROB_BITS: i32 = 15;
/// Attention weights scaled by their value's scale are rounded to integers of this many
/// fractional bits of the window's largest value scale (so they fit 16 bits).
const VALUE_BITS: i32 = 14;

/// How a head's dimensions pair up for the rotary embedding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopePairs {
    /// (2i, 2i+1): llama.cpp's "normal" rope (Llama).
    Adjacent,
    /// (i, i + d/2): the NeoX layout (Qwen2, Gemma).
    Halves,
}

/// The shape of a model, from its GGUF metadata.
#[derive(Clone, Debug)]
pub struct Config {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_vocab: usize,
    pub rms_eps: f64,
    pub rope_pairs: RopePairs,
    /// θ_i = base^(−2i/d) for each pair i, in f64.
    pub rope_freqs: Vec<f64>,
}

impl Config {
    fn read(g: &Gguf) -> Result<Self, ModelError> {
        let arch = g.string("general.architecture")?.to_vec();
        let arch = String::from_utf8_lossy(&arch).into_owned();
        let rope_pairs = match arch.as_str() {
            "llama" => RopePairs::Adjacent,
            other => return Err(ModelError::Unsupported(format!("architecture {other:?}"))),
        };
        let key = |k: &str| format!("{arch}.{k}");
        let n = |k: &str| -> Result<usize, ModelError> {
            let v = g.uint(&key(k))?;
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0 && v <= 1 << 20)
                .ok_or_else(|| ModelError::BadMetadata(format!("{} = {v}", key(k))))
        };
        let n_embd = n("embedding_length")?;
        let n_head = n("attention.head_count")?;
        let n_head_kv = n("attention.head_count_kv")?;
        let head_dim = n_embd / n_head;
        let rope_dim = g
            .uint(&key("rope.dimension_count"))
            .unwrap_or(head_dim as u64);
        if n_embd % n_head != 0
            || n_head % n_head_kv != 0
            || head_dim % 2 != 0
            || rope_dim != head_dim as u64
            || n_embd % ACT_BLOCK != 0
        {
            return Err(ModelError::Unsupported(format!(
                "{n_embd} dimensions in {n_head} heads ({n_head_kv} for keys), rope over {rope_dim}"
            )));
        }
        let n_vocab = match g.metadata.get("tokenizer.ggml.tokens") {
            Some(Value::Strings(t)) => t.len(),
            _ => {
                return Err(ModelError::BadMetadata(
                    "tokenizer.ggml.tokens missing".into(),
                ))
            }
        };
        let base = g.float(&key("rope.freq_base")).unwrap_or(10_000.0);
        if !(base > 1.0 && base < 1e12) {
            return Err(ModelError::BadMetadata(format!("rope base {base}")));
        }
        let ln_base = ln_f64(base);
        let rope_freqs = (0..head_dim / 2)
            .map(|i| exp_f64(-((2 * i) as f64 / head_dim as f64) * ln_base))
            .collect();
        let rms_eps = g.float(&key("attention.layer_norm_rms_epsilon"))?;
        Ok(Self {
            n_layer: n("block_count")?,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            n_ff: n("feed_forward_length")?,
            n_vocab,
            rms_eps,
            rope_pairs,
            rope_freqs,
        })
    }

    fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: Matrix,
    wk: Matrix,
    wv: Matrix,
    wo: Matrix,
    ffn_norm: Vec<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

/// A loaded model: its configuration and integer weights.
pub struct Model {
    pub config: Config,
    embedding: Matrix,
    layers: Vec<Layer>,
    out_norm: Vec<f32>,
    /// `None` when the output projection is the embedding (tied, as in SmolLM2).
    output: Option<Matrix>,
    /// The instruction set the products run on (any gives the same bits).
    pub kernel: Kernel,
}

impl Model {
    pub fn load(g: &Gguf) -> Result<Self, ModelError> {
        let config = Config::read(g)?;
        let (d, ff, kv) = (config.n_embd, config.n_ff, config.kv_dim());
        let embedding = Matrix::load(g, "token_embd.weight", d)?;
        if embedding.rows != config.n_vocab {
            return Err(ModelError::BadTensor(
                "token_embd.weight".into(),
                format!("{} rows for {} tokens", embedding.rows, config.n_vocab),
            ));
        }
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let name = |t: &str| format!("blk.{i}.{t}.weight");
            let matrix = |t: &str, cols: usize, rows: usize| -> Result<Matrix, ModelError> {
                let m = Matrix::load(g, &name(t), cols)?;
                if m.rows != rows {
                    return Err(ModelError::BadTensor(name(t), format!("{} rows", m.rows)));
                }
                Ok(m)
            };
            layers.push(Layer {
                attn_norm: load_vector(g, &name("attn_norm"), d)?,
                wq: matrix("attn_q", d, d)?,
                wk: matrix("attn_k", d, kv)?,
                wv: matrix("attn_v", d, kv)?,
                wo: matrix("attn_output", d, d)?,
                ffn_norm: load_vector(g, &name("ffn_norm"), d)?,
                gate: matrix("ffn_gate", d, ff)?,
                up: matrix("ffn_up", d, ff)?,
                down: matrix("ffn_down", ff, d)?,
            });
        }
        let output = match g.tensors.contains_key("output.weight") {
            true => Some(Matrix::load(g, "output.weight", d)?),
            false => None,
        };
        Ok(Self {
            out_norm: load_vector(g, "output_norm.weight", d)?,
            config,
            embedding,
            layers,
            output,
            kernel: Kernel::detect(),
        })
    }

    fn output(&self) -> &Matrix {
        self.output.as_ref().unwrap_or(&self.embedding)
    }

    /// A token's embedding row as f32 (for Q8_0, exact: a half-precision scale times a
    /// small integer).
    fn embed(&self, token: u32, out: &mut [f32]) {
        let m = &self.embedding;
        let blocks = m.blocks_per_row();
        for b in 0..blocks {
            let block = token as usize * blocks + b;
            let d = i64::from(m.scale[block]);
            let offset = m.offset.get(block).map_or(0, |&o| i64::from(o));
            for j in 0..ACT_BLOCK {
                let v = d * i64::from(m.q_at(block, j)) + offset;
                out[b * ACT_BLOCK + j] = (v as f64 * pow2_f64(-24)) as f32;
            }
        }
    }
}

/// RMSNorm: the mean square summed in f64 in index order, 1/√(mean + ε) in f64, each value
/// scaled in f64, rounded to f32, then multiplied by its weight in f32.
fn rms_norm(x: &[f32], weight: &[f32], eps: f64, out: &mut [f32]) {
    let ss = x
        .iter()
        .fold(0.0f64, |s, &v| s + f64::from(v) * f64::from(v));
    let r = 1.0 / (ss / x.len() as f64 + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = ((f64::from(v) * r) as f32) * w;
    }
}

/// cos and sin of every pair's angle at one position, as f32.
type RopeTable = Vec<(f32, f32)>;

fn rope_table(config: &Config, position: u64) -> RopeTable {
    config
        .rope_freqs
        .iter()
        .map(|&f| {
            let (s, c) = sin_cos(position as f64 * f);
            (c as f32, s as f32)
        })
        .collect()
}

/// Rotates one head's vector in place: x' = x·cos − y·sin, y' = x·sin + y·cos, in f32.
fn rope(head: &mut [f32], table: &[(f32, f32)], pairs: RopePairs) {
    let half = head.len() / 2;
    for (i, &(c, s)) in table.iter().enumerate() {
        let (a, b) = match pairs {
            RopePairs::Adjacent => (2 * i, 2 * i + 1),
            RopePairs::Halves => (i, i + half),
        };
        let (x, y) = (head[a], head[b]);
        head[a] = x * c - y * s;
        head[b] = x * s + y * c;
    }
}

/// One sequence's KV cache and position: `sinks` fixed slots, then a ring for the rest.
struct Sequence {
    /// Tokens fed so far: the next token's absolute position.
    absolute: u64,
    /// Positions dropped by slides so far (the next logical position is absolute − shifted).
    shifted: u64,
    /// [layer][kv head][slot][dim] int8 keys (after rotation) and values.
    keys: Vec<i8>,
    values: Vec<i8>,
    /// [layer][kv head][slot] power-of-two exponents.
    key_exp: Vec<i16>,
    value_exp: Vec<i16>,
}

/// Runs lockstep groups of up to `schedule.seqs` sequences over a model.
pub struct Group<'m> {
    model: &'m Model,
    schedule: Schedule,
    seqs: Vec<Sequence>,
}

impl<'m> Group<'m> {
    pub fn new(model: &'m Model, schedule: Schedule) -> Self {
        Self {
            model,
            schedule,
            seqs: Vec::new(),
        }
    }

    /// Starts `n` empty sequences (a new group).
    pub fn reset(&mut self, n: usize) {
        let c = &self.model.config;
        let slots = self.schedule.window as usize;
        let per_layer = c.n_head_kv * slots;
        self.seqs.truncate(n);
        for s in &mut self.seqs {
            s.absolute = 0;
            s.shifted = 0;
        }
        while self.seqs.len() < n {
            self.seqs.push(Sequence {
                absolute: 0,
                shifted: 0,
                keys: vec![0; c.n_layer * per_layer * c.head_dim],
                values: vec![0; c.n_layer * per_layer * c.head_dim],
                key_exp: vec![0; c.n_layer * per_layer],
                value_exp: vec![0; c.n_layer * per_layer],
            });
        }
    }

    /// The cache slot of absolute position `a`.
    fn slot(&self, a: u64) -> usize {
        let sinks = u64::from(self.schedule.sinks);
        let ring = u64::from(self.schedule.window) - sinks;
        (if a < sinks {
            a
        } else {
            sinks + (a - sinks) % ring
        }) as usize
    }

    /// Feeds `tokens[i] = (sequence, token)` and writes each one's next-token logits to
    /// `logits[i]`. A sequence whose next logical position would reach the window first slides:
    /// its positions `[sinks, sinks + slide)` are dropped and the rest move down by `slide`.
    pub fn step(&mut self, tokens: &[(usize, u32)], logits: &mut [Vec<f32>]) {
        let model = self.model;
        let c = &model.config;
        let (d, hd, kvd) = (c.n_embd, c.head_dim, c.kv_dim());
        let Schedule {
            window,
            slide,
            sinks,
            ..
        } = self.schedule;
        let n = tokens.len();
        for &(s, _) in tokens {
            let seq = &mut self.seqs[s];
            if seq.absolute - seq.shifted == u64::from(window) {
                seq.shifted += u64::from(slide);
            }
        }
        let mut x: Vec<Vec<f32>> = tokens
            .iter()
            .map(|&(_, t)| {
                let mut v = vec![0.0; d];
                model.embed(t, &mut v);
                v
            })
            .collect();
        // Rotation tables: at the absolute position (for keys and the query against non-sink
        // keys) and at the logical one (the query against sinks, which never moved).
        let tables: Vec<(RopeTable, RopeTable)> = tokens
            .iter()
            .map(|&(s, _)| {
                let seq = &self.seqs[s];
                let here = rope_table(c, seq.absolute);
                let logical = if seq.shifted == 0 {
                    here.clone()
                } else {
                    rope_table(c, seq.absolute - seq.shifted)
                };
                (here, logical)
            })
            .collect();
        let mut h = vec![vec![0.0f32; d]; n];
        let mut acts = vec![QuantVec::default(); n];
        let mut attn = vec![vec![0.0f32; d]; n];
        let mut proj = vec![Vec::new(); n];
        let mut rotated = vec![0.0f32; hd];
        for (l, layer) in model.layers.iter().enumerate() {
            for i in 0..n {
                rms_norm(&x[i], &layer.attn_norm, c.rms_eps, &mut h[i]);
                acts[i].quantize(&h[i]);
            }
            let refs: Vec<&QuantVec> = acts.iter().collect();
            let [q, k, v] = matmuls(model.kernel, [&layer.wq, &layer.wk, &layer.wv], &refs);
            for (i, &(s, _)) in tokens.iter().enumerate() {
                let slot = self.slot(self.seqs[s].absolute);
                let seq = &mut self.seqs[s];
                for g in 0..c.n_head_kv {
                    let base = (l * c.n_head_kv + g) * window as usize;
                    rotated.copy_from_slice(&k[i][g * hd..][..hd]);
                    rope(&mut rotated, &tables[i].0, c.rope_pairs);
                    let at = (base + slot) * hd;
                    seq.key_exp[base + slot] =
                        quantize_head(&rotated, &mut seq.keys[at..at + hd]) as i16;
                    seq.value_exp[base + slot] =
                        quantize_head(&v[i][g * hd..][..hd], &mut seq.values[at..at + hd]) as i16;
                }
            }
            // Every head of every sequence attends independently: spread them over threads.
            let group = c.n_head / c.n_head_kv;
            let seqs = &self.seqs;
            let live: Vec<Vec<(usize, bool)>> = tokens
                .iter()
                .map(|&(s, _)| live_slots(&seqs[s], sinks, window))
                .collect();
            let mut work: Vec<(usize, usize, &mut [f32])> = Vec::with_capacity(n * c.n_head);
            for (i, out) in attn.iter_mut().enumerate() {
                for (head, slice) in out.chunks_mut(hd).enumerate() {
                    work.push((i, head, slice));
                }
            }
            work.into_par_iter().for_each(|(i, head, out)| {
                let seq = &seqs[tokens[i].0];
                let g = head / group;
                let mut here = q[i][head * hd..][..hd].to_vec();
                let mut logical = here.clone();
                rope(&mut here, &tables[i].0, c.rope_pairs);
                rope(&mut logical, &tables[i].1, c.rope_pairs);
                let (mut q_here, mut q_logical) = (vec![0i8; hd], vec![0i8; hd]);
                let e_here = quantize_head(&here, &mut q_here);
                let e_logical = quantize_head(&logical, &mut q_logical);
                let base = (l * c.n_head_kv + g) * window as usize;
                attend(
                    model.kernel,
                    seq,
                    base,
                    hd,
                    &live[i],
                    (&q_here, e_here),
                    (&q_logical, e_logical),
                    out,
                );
            });
            for i in 0..n {
                acts[i].quantize(&attn[i]);
            }
            let refs: Vec<&QuantVec> = acts.iter().collect();
            matmul(model.kernel, &layer.wo, &refs, &mut proj);
            for i in 0..n {
                for (a, &b) in x[i].iter_mut().zip(&proj[i]) {
                    *a += b;
                }
                rms_norm(&x[i], &layer.ffn_norm, c.rms_eps, &mut h[i]);
                acts[i].quantize(&h[i]);
            }
            let refs: Vec<&QuantVec> = acts.iter().collect();
            let [gate, up] = matmuls(model.kernel, [&layer.gate, &layer.up], &refs);
            let mut hidden = vec![0.0f32; c.n_ff];
            for i in 0..n {
                for ((o, &g), &u) in hidden.iter_mut().zip(&gate[i]).zip(&up[i]) {
                    *o = silu(g) * u;
                }
                acts[i].quantize(&hidden);
            }
            let refs: Vec<&QuantVec> = acts.iter().collect();
            matmul(model.kernel, &layer.down, &refs, &mut proj);
            for i in 0..n {
                for (a, &b) in x[i].iter_mut().zip(&proj[i]) {
                    *a += b;
                }
            }
        }
        for i in 0..n {
            rms_norm(&x[i], &model.out_norm, c.rms_eps, &mut h[i]);
            acts[i].quantize(&h[i]);
        }
        let refs: Vec<&QuantVec> = acts.iter().collect();
        matmul(model.kernel, model.output(), &refs, &mut logits[..n]);
        for &(s, _) in tokens {
            self.seqs[s].absolute += 1;
        }
        let _ = kvd;
    }
}

/// The slots a sequence's current token attends to, each with whether it is a sink.
fn live_slots(seq: &Sequence, sinks: u32, window: u32) -> Vec<(usize, bool)> {
    let sinks = u64::from(sinks);
    let ring = u64::from(window) - sinks;
    let now = seq.absolute; // the current token, already written
    let mut out = Vec::new();
    for a in 0..sinks.min(now + 1) {
        out.push((a as usize, true));
    }
    for a in (sinks + seq.shifted).max(sinks)..=now {
        if a >= sinks {
            out.push(((sinks + (a - sinks) % ring) as usize, false));
        }
    }
    out
}

/// One head's attention over the live slots: integer scores, a softmax rounded to integer
/// weights, and the weighted sum of the int8 values computed exactly.
#[allow(clippy::too_many_arguments)]
fn attend(
    kernel: Kernel,
    seq: &Sequence,
    base: usize,
    hd: usize,
    live: &[(usize, bool)],
    query: (&[i8], i32),
    sink_query: (&[i8], i32),
    out: &mut [f32],
) {
    let key = |slot: usize| &seq.keys[(base + slot) * hd..][..hd];
    let value = |slot: usize| &seq.values[(base + slot) * hd..][..hd];
    let dots = head_dots(kernel, live, query.0, sink_query.0, &key);
    let scale = 1.0 / (hd as f64).sqrt();
    let scores: Vec<f64> = live
        .iter()
        .zip(&dots)
        .map(|(&(slot, sink), &dot)| {
            let e_q = if sink { sink_query.1 } else { query.1 };
            f64::from(dot) * pow2_f64(e_q + i32::from(seq.key_exp[base + slot]))
        })
        .collect();
    let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f32> = scores
        .iter()
        .map(|&z| exp_neg(((z - top) * scale) as f32))
        .collect();
    // The softmax's denominator: each weight rounded to 2^-15 (the largest is exactly 2^15).
    let total: i64 = exps
        .iter()
        .map(|&e| round_f32(e * (1 << PROB_BITS) as f32) as i64)
        .sum();
    // Each weight times its value's scale relative to the largest, rounded to 2^-14 of that
    // scale: at most 2^14, so weight × value is a 16-bit by 8-bit product.
    let top_exp = live
        .iter()
        .map(|&(slot, _)| i32::from(seq.value_exp[base + slot]))
        .max()
        .unwrap_or(0);
    let weights: Vec<i32> = live
        .iter()
        .zip(&exps)
        .map(|(&(slot, _), &e)| {
            let k = VALUE_BITS + i32::from(seq.value_exp[base + slot]) - top_exp;
            if k < -126 {
                0
            } else {
                round_f32(e * pow2_f32(k)) as i32
            }
        })
        .collect();
    let sums = value_sums(kernel, live, &weights, hd, &value);
    for (o, &sum) in out.iter_mut().zip(&sums) {
        *o = ((sum as f64 * pow2_f64(top_exp + PROB_BITS - VALUE_BITS)) / total as f64) as f32;
    }
}

/// Σ q·k for each attended slot (the sink query for sinks): exact integers.
fn head_dots<'a>(
    kernel: Kernel,
    live: &[(usize, bool)],
    query: &[i8],
    sink_query: &[i8],
    key: &impl Fn(usize) -> &'a [i8],
) -> Vec<i32> {
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Avx2 && query.len().is_multiple_of(32) {
        // SAFETY: `Kernel::Avx2` is only chosen where the CPU has AVX2.
        return unsafe { attention_avx2::dots(live, query, sink_query, key) };
    }
    let _ = kernel;
    live.iter()
        .map(|&(slot, sink)| {
            let q = if sink { sink_query } else { query };
            q.iter()
                .zip(key(slot))
                .map(|(&a, &b)| i32::from(a) * i32::from(b))
                .sum()
        })
        .collect()
}

/// Σ_j w_j · v_jt for each dimension t: exact integers (|w·v| < 2^21, so 32-bit partial sums
/// of up to 512 positions are carried into 64 bits).
fn value_sums<'a>(
    kernel: Kernel,
    live: &[(usize, bool)],
    weights: &[i32],
    hd: usize,
    value: &impl Fn(usize) -> &'a [i8],
) -> Vec<i64> {
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Avx2 && hd.is_multiple_of(16) {
        // SAFETY: `Kernel::Avx2` is only chosen where the CPU has AVX2.
        return unsafe { attention_avx2::value_sums(live, weights, hd, value) };
    }
    let _ = kernel;
    let mut acc = vec![0i64; hd];
    let mut partial = vec![0i32; hd];
    for (n, (&(slot, _), &w)) in live.iter().zip(weights).enumerate() {
        for (a, &x) in partial.iter_mut().zip(value(slot)) {
            *a += w * i32::from(x);
        }
        if n % 512 == 511 {
            for (a, p) in acc.iter_mut().zip(partial.iter_mut()) {
                *a += i64::from(std::mem::take(p));
            }
        }
    }
    for (a, p) in acc.iter_mut().zip(&partial) {
        *a += i64::from(*p);
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod attention_avx2 {
    //! The attention's integer sums on AVX2: the same integers as the scalar loops, regrouped.

    use std::arch::x86_64::*;

    /// q·k over 32-byte pieces: |q| times k with q's signs (maddubs), pairs summed by madd.
    /// |q|, |k| ≤ 127, so no pair of products saturates 16 bits.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dots<'a>(
        live: &[(usize, bool)],
        query: &[i8],
        sink_query: &[i8],
        key: &impl Fn(usize) -> &'a [i8],
    ) -> Vec<i32> {
        let load = |q: &[i8]| -> Vec<(__m256i, __m256i)> {
            q.chunks_exact(32)
                .map(|c| {
                    let v = _mm256_loadu_si256(c.as_ptr() as *const __m256i);
                    (_mm256_sign_epi8(v, v), v)
                })
                .collect()
        };
        let (plain, sinks) = (load(query), load(sink_query));
        let ones = _mm256_set1_epi16(1);
        live.iter()
            .map(|&(slot, sink)| {
                let q = if sink { &sinks } else { &plain };
                let k = key(slot);
                let mut acc = _mm256_setzero_si256();
                for (i, &(q_abs, q_signs)) in q.iter().enumerate() {
                    let kv = _mm256_loadu_si256(k.as_ptr().add(i * 32) as *const __m256i);
                    let pairs = _mm256_maddubs_epi16(q_abs, _mm256_sign_epi8(kv, q_signs));
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
                }
                let s = _mm_add_epi32(
                    _mm256_castsi256_si128(acc),
                    _mm256_extracti128_si256(acc, 1),
                );
                let s = _mm_hadd_epi32(s, s);
                _mm_cvtsi128_si32(_mm_hadd_epi32(s, s))
            })
            .collect()
    }

    /// Two positions at a time: their values interleaved as 16-bit pairs and multiplied by the
    /// pair of weights with madd, so each 32-bit lane gains w_j·v_jt + w_k·v_kt (< 2^22).
    #[target_feature(enable = "avx2")]
    pub unsafe fn value_sums<'a>(
        live: &[(usize, bool)],
        weights: &[i32],
        hd: usize,
        value: &impl Fn(usize) -> &'a [i8],
    ) -> Vec<i64> {
        let pieces = hd / 16;
        let mut total = vec![0i64; hd];
        // Per 16 dimensions: lanes of dims [0..4, 8..12] (lo) and [4..8, 12..16] (hi).
        let mut acc = vec![_mm256_setzero_si256(); 2 * pieces];
        let carry = |acc: &mut [__m256i], total: &mut [i64]| {
            for c in 0..pieces {
                let mut lo = [0i32; 8];
                let mut hi = [0i32; 8];
                _mm256_storeu_si256(lo.as_mut_ptr() as *mut __m256i, acc[2 * c]);
                _mm256_storeu_si256(hi.as_mut_ptr() as *mut __m256i, acc[2 * c + 1]);
                for i in 0..4 {
                    total[c * 16 + i] += i64::from(lo[i]);
                    total[c * 16 + 8 + i] += i64::from(lo[4 + i]);
                    total[c * 16 + 4 + i] += i64::from(hi[i]);
                    total[c * 16 + 12 + i] += i64::from(hi[4 + i]);
                }
                acc[2 * c] = _mm256_setzero_si256();
                acc[2 * c + 1] = _mm256_setzero_si256();
            }
        };
        let mut pairs = 0;
        let mut j = 0;
        while j < live.len() {
            let (a, wa) = (value(live[j].0), weights[j]);
            let (b, wb) = match live.get(j + 1) {
                Some(&(slot, _)) => (value(slot), weights[j + 1]),
                None => (a, 0),
            };
            let w = _mm256_set1_epi32((wa & 0xffff) | (wb << 16));
            for c in 0..pieces {
                let va =
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(a.as_ptr().add(c * 16) as *const __m128i));
                let vb =
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(b.as_ptr().add(c * 16) as *const __m128i));
                let lo = _mm256_madd_epi16(_mm256_unpacklo_epi16(va, vb), w);
                let hi = _mm256_madd_epi16(_mm256_unpackhi_epi16(va, vb), w);
                acc[2 * c] = _mm256_add_epi32(acc[2 * c], lo);
                acc[2 * c + 1] = _mm256_add_epi32(acc[2 * c + 1], hi);
            }
            j += 2;
            pairs += 1;
            // 256 pairs add below 2^30 to a lane: carry before more could overflow it.
            if pairs == 256 {
                carry(&mut acc, &mut total);
                pairs = 0;
            }
        }
        carry(&mut acc, &mut total);
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attention's SIMD sums are the scalar integers, for several head sizes and for
    /// windows long enough to carry the 32-bit partial sums.
    #[test]
    fn attention_kernels_agree() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (hd, positions) in [(16, 7), (64, 1100), (128, 33)] {
            let keys: Vec<Vec<i8>> = (0..positions)
                .map(|_| {
                    (0..hd)
                        .map(|_| (next() % 255) as i8)
                        .map(|v| v.max(-127))
                        .collect()
                })
                .collect();
            let live: Vec<(usize, bool)> = (0..positions).map(|p| (p, p < 3)).collect();
            let q: Vec<i8> = (0..hd).map(|_| ((next() % 255) as i8).max(-127)).collect();
            let qs: Vec<i8> = (0..hd).map(|_| ((next() % 255) as i8).max(-127)).collect();
            let weights: Vec<i32> = (0..positions)
                .map(|_| (next() % (1 << 14 | 1)) as i32)
                .collect();
            let key = |slot: usize| keys[slot].as_slice();
            let dots = head_dots(Kernel::Scalar, &live, &q, &qs, &key);
            let sums = value_sums(Kernel::Scalar, &live, &weights, hd, &key);
            for kernel in Kernel::available() {
                assert_eq!(
                    head_dots(kernel, &live, &q, &qs, &key),
                    dots,
                    "{kernel:?} {hd}"
                );
                assert_eq!(
                    value_sums(kernel, &live, &weights, hd, &key),
                    sums,
                    "{kernel:?} {hd}"
                );
            }
        }
    }
}
