//! The Llama-family forward pass on integer weights (SmolLM2's Llama, Qwen2 with its Q/K/V
//! biases, Gemma 3 with its extra norms, GELU and sliding-window layers), for a lockstep group
//! of sequences with a sliding KV window, producing the next token's logits.
//!
//! Sequences never touch each other's numbers: a group only shares the reading of the
//! weights, so a chunk's logits are the same alone or in any slot of any group.

use super::attention::{attend, HeadCache, Run, Scratch};
use super::gguf::{Gguf, Value};
use super::kernels::{matmul, matmuls, Kernel};
use super::numerics::{
    exp_f64, gelu, ln_f64, pow2_f64, quantize_head, silu, sin_cos, QuantVec, ACT_BLOCK,
    KEY_SUB_BLOCK,
};
use super::weights::{load_vector, Matrix};
use super::{ModelError, Numerics};
use crate::container::Schedule;
use rayon::prelude::*;

/// How a head's dimensions pair up for the rotary embedding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopePairs {
    /// (2i, 2i+1): llama.cpp's "normal" rope (Llama).
    Adjacent,
    /// (i, i + d/2): the NeoX layout (Qwen2, Gemma).
    Halves,
}

/// The supported architectures (GGUF `general.architecture`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    /// Gemma 3: the embedding scaled by √d, RMSNorm of each head's query and key, norms after
    /// attention and after the feed-forward network too, a GELU gate, and layers that attend
    /// only to a recent window with their own rotary base.
    Gemma3,
}

/// Gemma 3's sliding-window attention: which layers see only the last `window` positions,
/// and the rotary frequencies those layers use.
#[derive(Clone, Debug)]
pub struct LocalLayers {
    /// A query at logical position p sees keys at logical positions above p − window.
    pub window: u64,
    pub is_local: Vec<bool>,
    pub rope_freqs: Vec<f64>,
}

/// The shape of a model, from its GGUF metadata.
#[derive(Clone, Debug)]
pub struct Config {
    pub arch: Arch,
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
    /// Gemma 3's local layers (`None`: every layer sees the whole window).
    pub local: Option<LocalLayers>,
}

/// θ_i = base^(−2i/d) for each pair i of a head of `head_dim`, in f64.
fn rope_freqs(base: f64, head_dim: usize) -> Result<Vec<f64>, ModelError> {
    if !(base > 1.0 && base < 1e12) {
        return Err(ModelError::BadMetadata(format!("rope base {base}")));
    }
    let ln_base = ln_f64(base);
    Ok((0..head_dim / 2)
        .map(|i| exp_f64(-((2 * i) as f64 / head_dim as f64) * ln_base))
        .collect())
}

impl Config {
    fn read(g: &Gguf) -> Result<Self, ModelError> {
        let arch = g.string("general.architecture")?.to_vec();
        let arch = String::from_utf8_lossy(&arch).into_owned();
        let (kind, rope_pairs) = match arch.as_str() {
            "llama" => (Arch::Llama, RopePairs::Adjacent),
            "qwen2" => (Arch::Qwen2, RopePairs::Halves),
            "gemma3" => (Arch::Gemma3, RopePairs::Halves),
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
        // Heads are n_embd / n_head wide unless the file says (Gemma 3: 256 × 4 over 640).
        let head_dim = match g.uint(&key("attention.key_length")) {
            Ok(k) => usize::try_from(k).unwrap_or(0),
            Err(_) => n_embd / n_head,
        };
        let value_dim = g
            .uint(&key("attention.value_length"))
            .unwrap_or(head_dim as u64);
        let rope_dim = g
            .uint(&key("rope.dimension_count"))
            .unwrap_or(head_dim as u64);
        // The head size is bounded first, so that the product below cannot overflow.
        if head_dim == 0
            || head_dim > 256
            || n_head * head_dim % ACT_BLOCK != 0
            || n_head % n_head_kv != 0
            || head_dim % KEY_SUB_BLOCK != 0
            || value_dim != head_dim as u64
            || rope_dim != head_dim as u64
            || n_embd % ACT_BLOCK != 0
        {
            return Err(ModelError::Unsupported(format!(
                "{n_embd} dimensions, {n_head} heads ({n_head_kv} for keys) of {head_dim} \
                 (values {value_dim}), rope over {rope_dim} (heads must be a multiple of \
                 {KEY_SUB_BLOCK} and at most 256 dimensions, keys and values alike, rotated \
                 whole; the embedding a multiple of {ACT_BLOCK})"
            )));
        }
        for unsupported in ["rope.scaling.type", "final_logit_softcapping"] {
            let set = match g.metadata.get(&key(unsupported)) {
                None => false,
                Some(Value::String(s)) => s != b"none",
                Some(Value::Float(f)) => *f != 0.0,
                Some(_) => true,
            };
            if set {
                return Err(ModelError::Unsupported(key(unsupported)));
            }
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
        let rope_freqs = rope_freqs(base, head_dim)?;
        let rms_eps = g.float(&key("attention.layer_norm_rms_epsilon"))?;
        let n_layer = n("block_count")?;
        let local = match kind {
            Arch::Gemma3 => Self::local_layers(g, &key, n_layer, head_dim)?,
            _ => None,
        };
        Ok(Self {
            arch: kind,
            local,
            n_layer,
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

    /// Gemma 3's local layers, as llama.cpp reads them: a window of
    /// `attention.sliding_window` positions (none: every layer global), every sixth layer
    /// global (or one in `attention.sliding_window_pattern`), local layers rotating with
    /// base `rope.freq_base_swa` (10,000 if absent).
    fn local_layers(
        g: &Gguf,
        key: &dyn Fn(&str) -> String,
        n_layer: usize,
        head_dim: usize,
    ) -> Result<Option<LocalLayers>, ModelError> {
        let window = match g.uint(&key("attention.sliding_window")) {
            Ok(0) | Err(_) => return Ok(None),
            Ok(w) => w,
        };
        let pattern = match g.metadata.get(&key("attention.sliding_window_pattern")) {
            None => 6,
            Some(Value::Uint(p)) => *p as usize,
            Some(Value::Int(p)) if *p >= 0 => *p as usize,
            Some(_) => {
                return Err(ModelError::Unsupported(
                    "a sliding-window pattern given layer by layer".into(),
                ))
            }
        };
        // 27B scales its queries by another number than 1/√head; none of nzip's tiers is it.
        if n_layer == 62 {
            return Err(ModelError::Unsupported("Gemma 3 27B's query scale".into()));
        }
        let base = g.float(&key("rope.freq_base_swa")).unwrap_or(10_000.0);
        Ok(Some(LocalLayers {
            window,
            is_local: (0..n_layer)
                .map(|l| pattern == 0 || l % pattern < pattern - 1)
                .collect(),
            rope_freqs: rope_freqs(base, head_dim)?,
        }))
    }

    fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Query (and attention output) width.
    fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Whether layer `l` sees only the local window.
    fn is_local(&self, l: usize) -> bool {
        self.local.as_ref().is_some_and(|local| local.is_local[l])
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: Matrix,
    wk: Matrix,
    wv: Matrix,
    /// Biases added to Q, K and V (Qwen2 has them, Llama not).
    biases: Option<[Vec<f32>; 3]>,
    /// Gemma 3's RMSNorm weights of each query and key head, applied before the rotation.
    head_norms: Option<[Vec<f32>; 2]>,
    wo: Matrix,
    /// Gemma 3's norms of the attention's and the feed-forward network's outputs.
    post_norms: Option<[Vec<f32>; 2]>,
    ffn_norm: Vec<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

impl Layer {
    /// The matrices that read each vector the layer quantizes: the attention's input, its
    /// output, the feed-forward network's input and its hidden vector.
    fn reader_sets(&self) -> [Vec<&Matrix>; 4] {
        [
            vec![&self.wq, &self.wk, &self.wv],
            vec![&self.wo],
            vec![&self.gate, &self.up],
            vec![&self.down],
        ]
    }
}

/// A loaded model: its configuration and integer weights.
pub struct Model {
    pub config: Config,
    embedding: Matrix,
    layers: Vec<Layer>,
    out_norm: Vec<f32>,
    /// `None` when the output projection is the embedding (tied, as in SmolLM2).
    output: Option<Matrix>,
    /// What each embedding is multiplied by (√n_embd in f32 for Gemma 3, else 1).
    embed_scale: f32,
    /// The instruction set the products run on (any gives the same bits).
    pub kernel: Kernel,
}

impl Model {
    pub fn load(g: &Gguf) -> Result<Self, ModelError> {
        let config = Config::read(g)?;
        let (d, ff, kv, qd) = (config.n_embd, config.n_ff, config.kv_dim(), config.q_dim());
        let gemma = config.arch == Arch::Gemma3;
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
            let bias = |t: &str, len: usize| load_vector(g, &format!("blk.{i}.{t}.bias"), len);
            let biases = match g.tensors.contains_key(&format!("blk.{i}.attn_q.bias")) {
                true => Some([
                    bias("attn_q", qd)?,
                    bias("attn_k", kv)?,
                    bias("attn_v", kv)?,
                ]),
                false => None,
            };
            let vector = |t: &str, len: usize| load_vector(g, &name(t), len);
            let (head_norms, post_norms) = match gemma {
                true => (
                    Some([
                        vector("attn_q_norm", config.head_dim)?,
                        vector("attn_k_norm", config.head_dim)?,
                    ]),
                    Some([
                        vector("post_attention_norm", d)?,
                        vector("post_ffw_norm", d)?,
                    ]),
                ),
                false => (None, None),
            };
            layers.push(Layer {
                attn_norm: load_vector(g, &name("attn_norm"), d)?,
                biases,
                wq: matrix("attn_q", d, qd)?,
                wk: matrix("attn_k", d, kv)?,
                wv: matrix("attn_v", d, kv)?,
                head_norms,
                wo: matrix("attn_output", qd, d)?,
                post_norms,
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
        // ggml scales by sqrtf(n_embd); √ is correctly rounded in f64 and in f32 alike.
        let embed_scale = match gemma {
            true => (d as f64).sqrt() as f32,
            false => 1.0,
        };
        Ok(Self {
            out_norm: load_vector(g, "output_norm.weight", d)?,
            embed_scale,
            config,
            embedding,
            layers,
            output,
            kernel: Kernel::detect(),
        })
    }

    /// Whether `numerics` quantizes any vector of this model in exponent groups.
    pub fn groups_activations(&self, numerics: Numerics) -> bool {
        let layers = self.layers.iter().any(|l| {
            l.reader_sets()
                .iter()
                .any(|readers| numerics.act_group(readers) > 1)
        });
        layers || numerics.act_group(&[self.output()]) > 1
    }

    fn output(&self) -> &Matrix {
        self.output.as_ref().unwrap_or(&self.embedding)
    }

    /// A token's embedding row as f32 (for Q8_0, exact: a half-precision scale times a
    /// small integer), times `embed_scale` in f32.
    fn embed(&self, token: u32, out: &mut [f32]) {
        let m = &self.embedding;
        let row = token as usize;
        for b in 0..m.blocks_per_row() {
            let offset = m.offset_at(row, b);
            for j in 0..ACT_BLOCK {
                let d = m.scale_at(row, b, j * m.kind.scales() / ACT_BLOCK);
                let v = d * i64::from(m.q_at(row, b, j)) + offset;
                out[b * ACT_BLOCK + j] = (v as f64 * pow2_f64(-24)) as f32;
            }
        }
        if self.embed_scale != 1.0 {
            for o in out.iter_mut() {
                *o *= self.embed_scale;
            }
        }
    }
}

/// Adds a sub-layer's output to the residual stream, first through its RMSNorm where the
/// model has one (Gemma 3), in f32 in index order.
fn add_output(x: &mut [f32], out: &mut [f32], post_norm: Option<&Vec<f32>>, c: &Config) {
    if let Some(weight) = post_norm {
        let raw = out.to_vec();
        rms_norm(&raw, weight, c.rms_eps, out);
    }
    for (a, &b) in x.iter_mut().zip(out.iter()) {
        *a += b;
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

fn rope_table(freqs: &[f64], position: u64) -> RopeTable {
    freqs
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
    /// [layer][kv head][slot] power-of-two exponents (for keys, the base exponent).
    key_exp: Vec<i16>,
    value_exp: Vec<i16>,
    /// [layer][kv head][slot][16-dimension sub-block] each key sub-block's scale over its base.
    key_mult: Vec<i16>,
}

/// Runs lockstep groups of up to `schedule.seqs` sequences over a model.
pub struct Group<'m> {
    model: &'m Model,
    schedule: Schedule,
    numerics: Numerics,
    seqs: Vec<Sequence>,
}

impl<'m> Group<'m> {
    pub fn new(model: &'m Model, schedule: Schedule, numerics: Numerics) -> Self {
        Self {
            model,
            schedule,
            numerics,
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
                key_mult: vec![0; c.n_layer * per_layer * c.head_dim / KEY_SUB_BLOCK],
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
        let (d, hd) = (c.n_embd, c.head_dim);
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
        // keys) and at the logical one (the query against sinks, which never moved); a set
        // for the global layers' frequencies and one for the local layers'.
        let table_sets = |freqs: &[f64]| -> Vec<(RopeTable, RopeTable)> {
            tokens
                .iter()
                .map(|&(s, _)| {
                    let seq = &self.seqs[s];
                    let here = rope_table(freqs, seq.absolute);
                    let logical = if seq.shifted == 0 {
                        here.clone()
                    } else {
                        rope_table(freqs, seq.absolute - seq.shifted)
                    };
                    (here, logical)
                })
                .collect()
        };
        let global_tables = table_sets(&c.rope_freqs);
        let local_tables = c.local.as_ref().map(|local| table_sets(&local.rope_freqs));
        // The slots each token attends to, in a global and in a local layer.
        let live = |window_limit: Option<u64>| -> Vec<Vec<Run>> {
            tokens
                .iter()
                .map(|&(s, _)| live_runs(&self.seqs[s], sinks, window, window_limit))
                .collect()
        };
        let global_live = live(None);
        let local_live = c.local.as_ref().map(|local| live(Some(local.window)));
        let mut h = vec![vec![0.0f32; d]; n];
        let mut acts = vec![QuantVec::default(); n];
        let mut attn = vec![vec![0.0f32; c.q_dim()]; n];
        let mut proj = vec![Vec::new(); n];
        let mut rotated = vec![0.0f32; hd];
        let (quantize_key, subs) = (self.numerics.key_quantizer(), hd / KEY_SUB_BLOCK);
        let numerics = self.numerics;
        for (l, layer) in model.layers.iter().enumerate() {
            let (tables, live) = match (c.is_local(l), &local_tables, &local_live) {
                (true, Some(tables), Some(live)) => (tables, live),
                _ => (&global_tables, &global_live),
            };
            // Blocks per exponent of each vector, from the matrices that read it.
            let [attn_in, attn_out, ffn_in, ffn_hidden] = layer
                .reader_sets()
                .map(|readers| numerics.act_group(&readers));
            for i in 0..n {
                rms_norm(&x[i], &layer.attn_norm, c.rms_eps, &mut h[i]);
                acts[i].quantize_grouped(&h[i], attn_in);
            }
            let refs: Vec<&QuantVec> = acts.iter().collect();
            let [mut q, mut k, mut v] =
                matmuls(model.kernel, [&layer.wq, &layer.wk, &layer.wv], &refs);
            if let Some(biases) = &layer.biases {
                for products in [&mut q, &mut k, &mut v].into_iter().zip(biases) {
                    let (outs, bias) = products;
                    for out in outs.iter_mut() {
                        for (o, &b) in out.iter_mut().zip(bias) {
                            *o += b;
                        }
                    }
                }
            }
            if let Some([q_norm, k_norm]) = &layer.head_norms {
                for i in 0..n {
                    for head in q[i].chunks_mut(hd) {
                        rotated.copy_from_slice(head);
                        rms_norm(&rotated, q_norm, c.rms_eps, head);
                    }
                    for head in k[i].chunks_mut(hd) {
                        rotated.copy_from_slice(head);
                        rms_norm(&rotated, k_norm, c.rms_eps, head);
                    }
                }
            }
            for (i, &(s, _)) in tokens.iter().enumerate() {
                let slot = self.slot(self.seqs[s].absolute);
                let seq = &mut self.seqs[s];
                for g in 0..c.n_head_kv {
                    let base = (l * c.n_head_kv + g) * window as usize;
                    rotated.copy_from_slice(&k[i][g * hd..][..hd]);
                    rope(&mut rotated, &tables[i].0, c.rope_pairs);
                    let at = (base + slot) * hd;
                    let mult = &mut seq.key_mult[(base + slot) * subs..][..subs];
                    seq.key_exp[base + slot] =
                        quantize_key(&rotated, &mut seq.keys[at..at + hd], mult) as i16;
                    seq.value_exp[base + slot] =
                        quantize_head(&v[i][g * hd..][..hd], &mut seq.values[at..at + hd]) as i16;
                }
            }
            // Every head of every sequence attends independently: spread them over threads.
            let group = c.n_head / c.n_head_kv;
            let seqs = &self.seqs;
            let mut work: Vec<(usize, usize, &mut [f32])> = Vec::with_capacity(n * c.n_head);
            for (i, out) in attn.iter_mut().enumerate() {
                for (head, slice) in out.chunks_mut(hd).enumerate() {
                    work.push((i, head, slice));
                }
            }
            work.into_par_iter()
                .for_each_init(Scratch::default, |scratch, (i, head, out)| {
                    let seq = &seqs[tokens[i].0];
                    let slots = window as usize;
                    let base = (l * c.n_head_kv + head / group) * slots;
                    let cache = HeadCache {
                        keys: &seq.keys[base * hd..(base + slots) * hd],
                        values: &seq.values[base * hd..(base + slots) * hd],
                        key_exp: &seq.key_exp[base..base + slots],
                        key_mult: &seq.key_mult[base * subs..(base + slots) * subs],
                        value_exp: &seq.value_exp[base..base + slots],
                        head_dim: hd,
                    };
                    let rotate = |v: &mut [f32], logical: bool| {
                        let (here, at_logical) = &tables[i];
                        rope(v, if logical { at_logical } else { here }, c.rope_pairs);
                    };
                    let query = &q[i][head * hd..][..hd];
                    attend(model.kernel, &cache, &live[i], query, rotate, scratch, out);
                });
            for i in 0..n {
                acts[i].quantize_grouped(&attn[i], attn_out);
            }
            let refs: Vec<&QuantVec> = acts.iter().collect();
            matmul(model.kernel, &layer.wo, &refs, &mut proj);
            for i in 0..n {
                add_output(
                    &mut x[i],
                    &mut proj[i],
                    layer.post_norms.as_ref().map(|p| &p[0]),
                    c,
                );
                rms_norm(&x[i], &layer.ffn_norm, c.rms_eps, &mut h[i]);
                acts[i].quantize_grouped(&h[i], ffn_in);
            }
            let refs: Vec<&QuantVec> = acts.iter().collect();
            let [gate, up] = matmuls(model.kernel, [&layer.gate, &layer.up], &refs);
            let mut hidden = vec![0.0f32; c.n_ff];
            for i in 0..n {
                // One loop per activation, each inlined and vectorized (a function pointer
                // would be a call per value).
                let pairs = hidden.iter_mut().zip(&gate[i]).zip(&up[i]);
                match c.arch {
                    Arch::Gemma3 => pairs.for_each(|((o, &g), &u)| *o = gelu(g) * u),
                    Arch::Llama | Arch::Qwen2 => pairs.for_each(|((o, &g), &u)| *o = silu(g) * u),
                }
                acts[i].quantize_grouped(&hidden, ffn_hidden);
            }
            let refs: Vec<&QuantVec> = acts.iter().collect();
            matmul(model.kernel, &layer.down, &refs, &mut proj);
            for i in 0..n {
                add_output(
                    &mut x[i],
                    &mut proj[i],
                    layer.post_norms.as_ref().map(|p| &p[1]),
                    c,
                );
            }
        }
        let head_in = numerics.act_group(&[model.output()]);
        for i in 0..n {
            rms_norm(&x[i], &model.out_norm, c.rms_eps, &mut h[i]);
            acts[i].quantize_grouped(&h[i], head_in);
        }
        let refs: Vec<&QuantVec> = acts.iter().collect();
        matmul(model.kernel, model.output(), &refs, &mut logits[..n]);
        for &(s, _) in tokens {
            self.seqs[s].absolute += 1;
        }
    }
}

/// The cache slots a sequence's current token attends to, as runs of consecutive slots: its
/// sinks, then the ring's live positions (two runs where they wrap). With `local`, only the
/// keys less than that many logical positions back (Gemma 3's local layers).
fn live_runs(seq: &Sequence, sinks: u32, window: u32, local: Option<u64>) -> Vec<Run> {
    let (sinks, window) = (u64::from(sinks), u64::from(window));
    let ring = window - sinks;
    // The current token, already written. Sinks keep their positions; the current token's
    // logical one is now − shifted.
    let now = seq.absolute;
    let oldest_logical = local.map_or(0, |w| (now - seq.shifted + 1).saturating_sub(w));
    let mut runs = vec![(
        oldest_logical.min(sinks) as usize..sinks.min(now + 1) as usize,
        true,
    )];
    // The oldest live non-sink position (absolute; logical plus `shifted`).
    let first = (sinks + seq.shifted).max(oldest_logical + seq.shifted);
    if now >= first {
        let count = now - first + 1;
        let start = sinks + (first - sinks) % ring;
        let end = start + count;
        if end <= window {
            runs.push((start as usize..end as usize, false));
        } else {
            runs.push((start as usize..window as usize, false));
            runs.push((sinks as usize..(sinks + end - window) as usize, false));
        }
    }
    runs.retain(|(r, _)| !r.is_empty());
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `live_runs` against the rule written out position by position: with sinks 2, window
    /// 16, slide 5, through 60 tokens (slides, ring wraps), a token attends to sink j if
    /// (a − S) − j < local, to non-sink position p in [sinks + S, a] if (a − S) − (p − S) <
    /// local, each at its slot, sinks flagged.
    #[test]
    fn live_runs_follow_the_window_rule() {
        let (sinks, window, slide) = (2u64, 16u64, 5u64);
        for local in [None, Some(1), Some(6), Some(15), Some(100)] {
            let mut seq = Sequence {
                absolute: 0,
                shifted: 0,
                keys: Vec::new(),
                values: Vec::new(),
                key_exp: Vec::new(),
                value_exp: Vec::new(),
                key_mult: Vec::new(),
            };
            for a in 0..60u64 {
                if a - seq.shifted == window {
                    seq.shifted += slide;
                }
                seq.absolute = a;
                let logical = a - seq.shifted;
                let sees = |l: u64| local.is_none_or(|w| logical - l < w);
                let slot = |p: u64| {
                    if p < sinks {
                        p
                    } else {
                        sinks + (p - sinks) % (window - sinks)
                    }
                };
                let mut want: Vec<(usize, bool)> = (0..sinks.min(a + 1))
                    .filter(|&j| sees(j))
                    .map(|j| (j as usize, true))
                    .collect();
                want.extend(
                    (sinks + seq.shifted..=a)
                        .filter(|&p| sees(p - seq.shifted))
                        .map(|p| (slot(p) as usize, false)),
                );
                let got: Vec<(usize, bool)> = live_runs(&seq, sinks as u32, window as u32, local)
                    .into_iter()
                    .flat_map(|(run, sink)| run.map(move |s| (s, sink)))
                    .collect();
                let mut want_sorted = want.clone();
                want_sorted.sort();
                let mut got_sorted = got.clone();
                got_sorted.sort();
                assert_eq!(got_sorted, want_sorted, "token {a}, local {local:?}");
                assert_eq!(got.len(), want.len(), "a slot twice at token {a}");
            }
        }
    }
}
