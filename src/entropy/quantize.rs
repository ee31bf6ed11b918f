//! The one place where model outputs become integer frequencies for the range coder.
//!
//! Everything here must give the same bits on every machine (DESIGN.md, determinism rule 6):
//! logits are turned into fixed-point weights with our own `exp2` built from plain IEEE
//! add/mul on `f64` (no platform `exp`, no fused multiply-add, a fixed order), and weights are
//! turned into a CDF with integer arithmetic only.
//!
//! Large vocabularies are cut into `PART`-symbol parts that the thread pool shares, so a
//! lone chunk's token step uses every core. Parts only ever combine through integer sums,
//! maxima and prefix offsets, which are the same in any order: the split never changes a bit.
//!
//! The loops are compiled for AVX-512 and AVX2 besides the baseline and picked at run time
//! (`widest!`), and the CDF's prefix sums use AVX-512 IFMA where the CPU has it: plain IEEE
//! operations and exact integer products give the same bits at every width (the tests compare
//! each width with the scalar definitions).

use rayon::prelude::*;

/// Bits of precision of every CDF handed to the range coder.
pub const PRECISION: u32 = 24;
/// Total of every CDF: probabilities are `freq / TOTAL`.
pub const TOTAL: u32 = 1 << PRECISION;

/// Logits more than this many binary orders of magnitude below the maximum get weight 0 (and
/// then the floor frequency of 1). 2^-40 of the top weight is far below what 24 bits resolve.
const MIN_EXP2: f64 = -40.0;

/// Symbols per part of a vocabulary (Gemma's 262,144 are 8 parts, SmolLM2's 49,152 two). Big
/// enough that a part's work (tens of microseconds) dwarfs handing it to another thread.
const PART: usize = 1 << 15;

/// At most this many parts: [`weights_to_cdf`] takes up to `TOTAL / 2` symbols.
const MAX_PARTS: usize = (TOTAL as usize / 2).div_ceil(PART);

/// `2^f` for `f` in `[0, 1)`: a degree-8 Taylor polynomial of `e^(f ln 2)` in Horner form. Its
/// accuracy (~1e-8 relative) only affects compression, never correctness, because encoder and
/// decoder evaluate the very same IEEE operations.
#[inline(always)]
fn exp2_fraction(f: f64) -> f64 {
    let x = f * std::f64::consts::LN_2;
    1.0 + x
        * (1.0
            + x * (0.5
                + x * (1.0 / 6.0
                    + x * (1.0 / 24.0
                        + x * (1.0 / 120.0
                            + x * (1.0 / 720.0 + x * (1.0 / 5040.0 + x * (1.0 / 40320.0))))))))
}

/// Fixed-point weight of `2^y` for `y` in `[MIN_EXP2, 0]`, scaled so that `y = 0` gives `2^32`:
/// the definition that [`softmax_weights`] computes faster, kept as the tests' reference.
#[cfg(test)]
fn exp2_fixed(y: f64) -> u64 {
    if y.is_nan() || y < MIN_EXP2 {
        return 0;
    }
    let y = if y > 0.0 { 0.0 } else { y };
    // floor without libm: y is in [-40, 0], so the cast truncates toward zero.
    let mut k = y as i64;
    if (k as f64) > y {
        k -= 1;
    }
    let p = exp2_fraction(y - k as f64);
    // p in [1, 2): m in [2^32, 2^33).
    let m = (p * 4_294_967_296.0) as u64;
    m >> (-k) as u32
}

/// `1.5 * 2^52`: adding it to an `f64` of magnitude below `2^51` rounds to an integer, and
/// that integer is then the low bits of the sum's representation. Floors and integer
/// conversions built on it are plain IEEE additions, so they vectorize on every x86-64 and
/// give exactly what `floor` and `as` give.
const MAGIC: f64 = 6_755_399_441_055_744.0;

/// `floor(v)` for `|v| < 2^51`.
#[inline(always)]
fn floor_small(v: f64) -> f64 {
    let nearest = (v + MAGIC) - MAGIC;
    if nearest > v {
        nearest - 1.0
    } else {
        nearest
    }
}

/// `v as u64` for an integer-valued `v` in `[0, 2^51)`.
#[inline(always)]
fn small_to_u64(v: f64) -> u64 {
    (v + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits())
}

/// `n as f64` for `n < 2^51`.
#[inline(always)]
fn u64_to_small(n: u64) -> f64 {
    f64::from_bits(MAGIC.to_bits() + n) - MAGIC
}

/// [`exp2_fixed`] of `(logit - max) * log2(e)`, computed without branches, shifts by a variable
/// or integer conversions so that the loop over a vocabulary vectorizes. Bit for bit the same
/// as the scalar definition: `floor` and the power of two are exact, and
/// `trunc(p * 2^32) >> -k` equals `floor(p * 2^32 * 2^k)` because scaling by `2^k` is exact and
/// flooring twice by a power of two is flooring once (tested against [`exp2_fixed`]).
#[inline(always)]
fn softmax_weight(logit: f32, max: f64) -> u64 {
    let y = (logit as f64 - max) * std::f64::consts::LOG2_E;
    let valid = y >= MIN_EXP2; // false for NaN
    let y = if valid && y <= 0.0 { y } else { 0.0 };
    let k = floor_small(y);
    let p = exp2_fraction(y - k);
    // 2^k from its exponent field: k + 1023 is in [983, 1023].
    let biased = small_to_u64(k + 1023.0);
    let weight = floor_small(p * 4_294_967_296.0 * f64::from_bits(biased << 52));
    if valid {
        small_to_u64(weight)
    } else {
        0
    }
}

/// Runs `$body` compiled for the widest vector unit the CPU has: AVX-512, AVX2, or the
/// baseline (SSE2). Only the vector width changes: no FMA is enabled and Rust never contracts
/// `a * b + c`, so every width computes the same bits.
macro_rules! widest {
    ($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {{
        #[inline(always)]
        fn portable($($arg: $ty),*) -> $ret $body
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        fn avx512($($arg: $ty),*) -> $ret { portable($($arg),*) }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn avx2($($arg: $ty),*) -> $ret { portable($($arg),*) }
        #[cfg(target_arch = "x86_64")]
        {
            let limit = width_limit();
            if limit >= 2 && std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has just been found to support AVX-512F.
                unsafe { avx512($($arg),*) }
            } else if limit >= 1 && std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has just been found to support AVX2.
                unsafe { avx2($($arg),*) }
            } else {
                portable($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            portable($($arg),*)
        }
    }};
}

/// The widest vector unit [`widest!`] may use: 2 (AVX-512), 1 (AVX2) or 0 (baseline). Tests
/// lower it to compare every width bit for bit (on any thread: all widths are correct).
#[cfg(test)]
static WIDTH_LIMIT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(2);

#[cfg(all(test, target_arch = "x86_64"))]
fn width_limit() -> u8 {
    WIDTH_LIMIT.load(std::sync::atomic::Ordering::Relaxed)
}

/// A test's hold on [`WIDTH_LIMIT`]: one test at a time sets it, so none changes the width
/// under another that compares widths (tests that do not set it accept any width, all being
/// exact); dropping it restores the widest.
#[cfg(test)]
struct WidthLimit(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

#[cfg(test)]
impl WidthLimit {
    fn set(limit: u8) -> Self {
        static HELD: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        WIDTH_LIMIT.store(limit, std::sync::atomic::Ordering::Relaxed);
        WidthLimit(held)
    }
}

#[cfg(test)]
impl Drop for WidthLimit {
    fn drop(&mut self) {
        WIDTH_LIMIT.store(2, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(all(not(test), target_arch = "x86_64"))]
#[inline(always)]
fn width_limit() -> u8 {
    2
}

/// Softmax of `logits + bias` (temperature 1; the bias, when there is one, added as `f32`) as
/// fixed-point weights, `exp2_fixed` of each logit's distance to the maximum in binary
/// orders of magnitude (the top logit gets `2^32`); returns their sum. Degenerate output (no
/// finite maximum: all `-inf` or NaN) gives every symbol weight 1, identically on both sides.
/// `out` keeps its allocation (and is only resized) from one call to the next.
pub fn softmax_weights(logits: &[f32], bias: Option<&[f32]>, out: &mut Vec<u64>) -> u64 {
    let n = logits.len();
    debug_assert!(bias.is_none_or(|b| b.len() == n));
    let part_bias = |k: usize, len: usize| bias.map(|b| &b[k * PART..k * PART + len]);
    let max = if n > PART {
        logits
            .par_chunks(PART)
            .enumerate()
            .map(|(k, part)| max_logit(part, part_bias(k, part.len())))
            .reduce(|| f32::NEG_INFINITY, |a, b| if b > a { b } else { a })
    } else {
        max_logit(logits, bias)
    };
    if !max.is_finite() {
        out.clear();
        out.resize(n, 1);
        return n as u64;
    }
    out.resize(n, 0);
    let max = max as f64;
    if n > PART {
        return out
            .par_chunks_mut(PART)
            .enumerate()
            .map(|(k, out)| {
                let logits = &logits[k * PART..k * PART + out.len()];
                softmax_weights_part(logits, part_bias(k, out.len()), max, out)
            })
            .reduce(|| 0, u64::wrapping_add);
    }
    softmax_weights_part(logits, bias, max, out)
}

/// [`softmax_weight`] of every logit (plus its bias), written to `out`; returns the sum.
fn softmax_weights_part(logits: &[f32], bias: Option<&[f32]>, max: f64, out: &mut [u64]) -> u64 {
    widest!(weights(logits: &[f32], bias: Option<&[f32]>, max: f64, out: &mut [u64]) -> u64 {
        let mut sum = 0u64;
        match bias {
            None => {
                for (w, &l) in out.iter_mut().zip(logits) {
                    *w = softmax_weight(l, max);
                    sum = sum.wrapping_add(*w);
                }
            }
            Some(bias) => {
                for ((w, &l), &b) in out.iter_mut().zip(logits).zip(bias) {
                    *w = softmax_weight(l + b, max);
                    sum = sum.wrapping_add(*w);
                }
            }
        }
        sum
    })
}

/// The largest logit (plus its bias), NaNs ignored (`-inf` if there is none). Running maxima
/// in eight lanes let the loop vectorize; which of `0.0` and `-0.0` wins may differ from a
/// plain scan, and does not matter: both give the top logit `y = ±0`, weight `2^32`.
fn max_logit(logits: &[f32], bias: Option<&[f32]>) -> f32 {
    widest!(max_of(logits: &[f32], bias: Option<&[f32]>) -> f32 {
        // Plain loops over fixed-size blocks: helpers such as `array::from_fn` would not be
        // inlined into the wider-vector copies of this body, and would run unvectorized.
        let mut lanes = [f32::NEG_INFINITY; 8];
        let mut tail = f32::NEG_INFINITY;
        match bias {
            None => {
                let mut groups = logits.chunks_exact(8);
                for group in &mut groups {
                    for i in 0..8 {
                        let l = group[i];
                        lanes[i] = if l > lanes[i] { l } else { lanes[i] };
                    }
                }
                for &l in groups.remainder() {
                    tail = if l > tail { l } else { tail };
                }
            }
            Some(bias) => {
                let done = logits.len() / 8 * 8;
                for (group, b) in logits[..done].chunks_exact(8).zip(bias[..done].chunks_exact(8)) {
                    for i in 0..8 {
                        let v = group[i] + b[i];
                        lanes[i] = if v > lanes[i] { v } else { lanes[i] };
                    }
                }
                for (&l, &b) in logits[done..].iter().zip(&bias[done..]) {
                    let v = l + b;
                    tail = if v > tail { v } else { tail };
                }
            }
        }
        lanes.iter().fold(tail, |m, &l| if l > m { l } else { m })
    })
}

/// A vector of weights' sum, its largest weight and the first index that has it: what the
/// CDF builder needs before it can start, and what [`scale_weights`] gives as it goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heaviest {
    pub sum: u64,
    pub top: u64,
    pub at: usize,
}

impl Heaviest {
    /// Combines the totals of two neighbouring parts, `self` the left one: on a tie the
    /// left index stays, so `at` is the first heaviest in any split.
    fn then(self, right: Heaviest) -> Heaviest {
        Heaviest {
            sum: self.sum + right.sum,
            ..if right.top > self.top { right } else { self }
        }
    }

    /// Accounts for `add` having been added to the weight at `index`, which is now `weight`.
    pub fn raised(&mut self, index: usize, add: u64, weight: u64) {
        self.sum += add;
        if weight > self.top || (weight == self.top && index < self.at) {
            self.top = weight;
            self.at = index;
        }
    }
}

/// Writes `out[i] = value(inputs[i])` for every `i` (values below 2^58 in all) and returns
/// their [`Heaviest`], counting indices from `start`. The top is tracked per block of eight,
/// so the loop vectorizes; the block that first reaches it is searched once at the end.
#[inline(always)]
fn fill_and_total(
    out: &mut [u64],
    inputs: &[u64],
    start: usize,
    value: impl Fn(u64) -> u64,
) -> Heaviest {
    let (mut sum, mut top, mut top_block) = (0u64, 0u64, 0usize);
    let done = out.len() / 8 * 8;
    for (b, (block, inputs)) in out[..done]
        .chunks_exact_mut(8)
        .zip(inputs[..done].chunks_exact(8))
        .enumerate()
    {
        let mut most = 0u64;
        for i in 0..8 {
            let w = value(inputs[i]);
            block[i] = w;
            sum += w;
            most = most.max(w);
        }
        if most > top {
            top = most;
            top_block = b;
        }
    }
    // The tail is a block of its own.
    for (o, &x) in out[done..].iter_mut().zip(&inputs[done..]) {
        let w = value(x);
        *o = w;
        sum += w;
        if w > top {
            top = w;
            top_block = done / 8;
        }
    }
    let from = top_block * 8;
    let at = from + out[from..].iter().position(|&w| w == top).unwrap_or(0);
    Heaviest {
        sum,
        top,
        at: start + at,
    }
}

/// `out[i] = floor(weights[i] * factor)`, as `(w as f64 * factor) as u64` computes it, for
/// products below `2^51` (the caller's bound), vectorizable; returns the products' totals.
pub fn scale_weights(weights: &[u64], factor: f64, out: &mut Vec<u64>) -> Heaviest {
    out.resize(weights.len(), 0);
    let part = |start: usize, out: &mut [u64], weights: &[u64]| {
        widest!(scale(start: usize, out: &mut [u64], weights: &[u64], factor: f64) -> Heaviest {
            fill_and_total(out, weights, start, |w| {
                small_to_u64(floor_small(u64_to_small(w) * factor))
            })
        })
    };
    if weights.len() > PART {
        return out
            .par_chunks_mut(PART)
            .zip(weights.par_chunks(PART))
            .enumerate()
            .map(|(k, (out, weights))| part(k * PART, out, weights))
            .reduce(Heaviest::default, Heaviest::then);
    }
    part(0, out, weights)
}

/// `values[i] -= (weights[i] as f64 * factor) as f32` for weights below `2^51`, vectorizable:
/// the step of the ensemble's bias.
pub fn subtract_scaled_weights(values: &mut [f32], weights: &[u64], factor: f64) {
    let part = |values: &mut [f32], weights: &[u64]| {
        widest!(step(values: &mut [f32], weights: &[u64], factor: f64) -> () {
            for (v, &w) in values.iter_mut().zip(weights) {
                *v -= (u64_to_small(w) * factor) as f32;
            }
        })
    };
    if values.len() > PART {
        values
            .par_chunks_mut(PART)
            .zip(weights.par_chunks(PART))
            .for_each(|(values, weights)| part(values, weights));
    } else {
        part(values, weights);
    }
}

/// Reusable buffers that turn one logit vector into a CDF without allocating per token.
#[derive(Default)]
pub struct Quantizer {
    weights: Vec<u64>,
}

impl Quantizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Softmax of `logits` (temperature 1) written into `cdf` as an integer CDF of
    /// `logits.len() + 1` entries from 0 to [`TOTAL`], every symbol getting at least 1.
    pub fn logits_to_cdf(&mut self, logits: &[f32], cdf: &mut Vec<u32>) {
        softmax_weights(logits, None, &mut self.weights);
        weights_to_cdf(&self.weights, cdf);
    }
}

/// Integer weights (any scale, sum below 2^58) to a CDF over `weights.len()` symbols summing to
/// [`TOTAL`], each symbol at least 1. The rounding remainder goes to the first heaviest symbol.
///
/// Panics if there are no symbols or more than `TOTAL / 2` of them (a programming error).
pub fn weights_to_cdf(weights: &[u64], cdf: &mut Vec<u32>) {
    let totals = if weights.len() > PART {
        weights
            .par_chunks(PART)
            .enumerate()
            .map(|(k, part)| heaviest_in(part, k * PART))
            .reduce(Heaviest::default, Heaviest::then)
    } else {
        heaviest_in(weights, 0)
    };
    weights_to_cdf_with(weights, totals, cdf);
}

/// [`weights_to_cdf`] for a caller that already knows the weights' [`Heaviest`] (as
/// [`scale_weights`] gives it), which saves a pass over them. `cdf` keeps its allocation.
pub fn weights_to_cdf_with(weights: &[u64], totals: Heaviest, cdf: &mut Vec<u32>) {
    let n = weights.len();
    assert!(
        n > 0 && n <= (TOTAL / 2) as usize,
        "symbol count {n} out of range"
    );
    debug_assert_eq!(totals, heaviest_in(weights, 0));
    let budget = (TOTAL as u64) - n as u64; // what remains after the floor of 1 each
    let parallel = n > PART;
    let Heaviest {
        sum, at: heaviest, ..
    } = totals;
    // Every bound is written below: no need to clear what the last call left.
    cdf.resize(n + 1, 0);
    cdf[0] = 0;
    if sum == 0 {
        // Uniform: spread the budget evenly, remainder to symbol 0.
        let each = budget / n as u64;
        let extra = budget - each * n as u64;
        let mut acc = 0u64;
        for (i, c) in cdf[1..].iter_mut().enumerate() {
            acc += 1 + each + if i == 0 { extra } else { 0 };
            *c = acc as u32;
        }
        return;
    }
    // q_i = floor(w_i * budget / sum) via a 64.64 fixed-point reciprocal; never rounds up, so
    // the q_i sum to at most `budget`.
    let scale: u128 = ((budget as u128) << 64) / sum as u128;
    // First every part's CDF counted from its own start, then the parts before it and the
    // rounding remainder (given to the heaviest symbol) added on.
    let mut given = [0u64; MAX_PARTS];
    let parts = n.div_ceil(PART);
    let bounds = &mut cdf[1..];
    if parallel {
        bounds
            .par_chunks_mut(PART)
            .zip(weights.par_chunks(PART))
            .zip(given[..parts].par_iter_mut())
            .for_each(|((bounds, weights), given)| {
                *given = local_cdf(weights, scale, totals.top, bounds)
            });
    } else {
        given[0] = local_cdf(weights, scale, totals.top, bounds);
    }
    let remainder = budget - given[..parts].iter().sum::<u64>();
    let mut offsets = [0u32; MAX_PARTS];
    let mut acc = 0u64;
    for k in 0..parts {
        offsets[k] = acc as u32;
        acc += (PART.min(n - k * PART)) as u64 + given[k];
    }
    let finish = |k: usize, bounds: &mut [u32]| {
        let start = k * PART;
        // Bound i (the top of symbol start + i) moves up by the remainder from the heaviest on.
        let split = heaviest.saturating_sub(start).min(bounds.len());
        let (before, after) = bounds.split_at_mut(split);
        add_to_all(before, offsets[k]);
        add_to_all(after, offsets[k] + remainder as u32);
    };
    if parallel {
        bounds
            .par_chunks_mut(PART)
            .enumerate()
            .for_each(|(k, bounds)| finish(k, bounds));
    } else {
        finish(0, bounds);
    }
    debug_assert_eq!(*cdf.last().unwrap(), TOTAL);
}

/// [`Heaviest`] of `weights`, which start at symbol `start`. Integer arithmetic only: any
/// instruction set gives the same result.
fn heaviest_in(weights: &[u64], start: usize) -> Heaviest {
    widest!(heaviest(weights: &[u64], start: usize) -> Heaviest {
        let (mut sum, mut top) = (0u64, 0u64);
        for &w in weights {
            sum += w;
            top = top.max(w);
        }
        let at = start + weights.iter().position(|&w| w == top).unwrap_or(0);
        Heaviest { sum, top, at }
    })
}

/// Writes `bounds[i] = (i + 1) + q_0 + … + q_i` with `q_i = floor(w_i * scale / 2^64)`;
/// returns the sum of the `q_i`. `top` bounds the weights. Integer arithmetic only: any
/// instruction set gives the same bounds.
fn local_cdf(weights: &[u64], scale: u128, top: u64, bounds: &mut [u32]) -> u64 {
    // Only x86-64's IFMA path needs the bound.
    #[cfg(not(target_arch = "x86_64"))]
    let _ = top;
    #[cfg(target_arch = "x86_64")]
    if let Ok(scale) = u64::try_from(scale) {
        if top < 1 << 52
            && width_limit() >= 2
            && std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("avx512dq")
        {
            // SAFETY: the CPU has just been found to support AVX-512F, DQ and IFMA.
            return unsafe { local_cdf_ifma(weights, scale, bounds) };
        }
    }
    widest!(local(weights: &[u64], scale: u128, bounds: &mut [u32]) -> u64 {
        let mut given = 0u64;
        let mut acc = 0u64;
        if let Ok(scale) = u64::try_from(scale) {
            // The usual case (sum >= budget): one 64×64-bit multiply per symbol.
            for (c, &w) in bounds.iter_mut().zip(weights) {
                let q = ((w as u128 * scale as u128) >> 64) as u64;
                given += q;
                acc += 1 + q;
                *c = acc as u32;
            }
        } else {
            for (c, &w) in bounds.iter_mut().zip(weights) {
                let q = ((w as u128 * scale) >> 64) as u64;
                given += q;
                acc += 1 + q;
                *c = acc as u32;
            }
        }
        given
    })
}

/// [`local_cdf`] eight symbols at a time, for weights below `2^52` and a 64-bit `scale`.
/// AVX-512 has no 64×64-bit high multiply, but IFMA multiplies 52-bit lanes: with
/// `scale = s_hi * 2^52 + s_lo` (`s_lo < 2^52`) and `w * s_lo = H * 2^52 + L` (`L < 2^52`),
/// `w * scale = A * 2^52 + L` where `A = w * s_hi + H < 2^64`, and since
/// `(A mod 2^12) * 2^52 + L < 2^64`, `floor(w * scale / 2^64) = A >> 12` exactly. The running
/// sum is a prefix sum inside each vector (three shifted adds) plus the last vector's total.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
fn local_cdf_ifma(weights: &[u64], scale: u64, bounds: &mut [u32]) -> u64 {
    use std::arch::x86_64::*;
    let s_lo = _mm512_set1_epi64((scale & ((1 << 52) - 1)) as i64);
    let s_hi = _mm512_set1_epi64((scale >> 52) as i64);
    let zero = _mm512_setzero_si512();
    let one = _mm512_set1_epi64(1);
    let last = _mm512_set1_epi64(7);
    let mut carry = zero; // every lane: the bound before this block
    let mut given = zero;
    let done = weights.len() / 8 * 8;
    for (w, out) in weights[..done]
        .chunks_exact(8)
        .zip(bounds[..done].chunks_exact_mut(8))
    {
        // SAFETY: `w` holds 8 u64 and `out` 8 u32; unaligned loads and stores.
        let w = unsafe { _mm512_loadu_si512(w.as_ptr().cast()) };
        let high = _mm512_madd52hi_epu64(zero, w, s_lo);
        let q = _mm512_srli_epi64::<12>(_mm512_add_epi64(_mm512_mullo_epi64(w, s_hi), high));
        given = _mm512_add_epi64(given, q);
        let mut v = _mm512_add_epi64(q, one);
        v = _mm512_add_epi64(v, _mm512_alignr_epi64::<7>(v, zero));
        v = _mm512_add_epi64(v, _mm512_alignr_epi64::<6>(v, zero));
        v = _mm512_add_epi64(v, _mm512_alignr_epi64::<4>(v, zero));
        v = _mm512_add_epi64(v, carry);
        carry = _mm512_permutexvar_epi64(last, v);
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), _mm512_cvtepi64_epi32(v)) };
    }
    let mut given = _mm512_reduce_add_epi64(given) as u64;
    let mut acc = _mm_cvtsi128_si64(_mm512_castsi512_si128(carry)) as u64;
    for (c, &w) in bounds[done..].iter_mut().zip(&weights[done..]) {
        let q = ((w as u128 * scale as u128) >> 64) as u64;
        given += q;
        acc += 1 + q;
        *c = acc as u32;
    }
    given
}

/// `v += add` for every element (vectorizes; skipped when there is nothing to add).
fn add_to_all(values: &mut [u32], add: u32) {
    if add != 0 {
        for v in values {
            *v += add;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The top `bits` bits of the seeded generator's states: test data that is the same
    /// everywhere.
    fn lcg(seed: u64, bits: u32) -> impl FnMut() -> u64 {
        let mut seeded = crate::seeded::Seeded::new(seed);
        move || seeded.bits(bits)
    }

    fn check_cdf(cdf: &[u32], n: usize) {
        assert_eq!(cdf.len(), n + 1);
        assert_eq!(cdf[0], 0);
        assert_eq!(*cdf.last().unwrap(), TOTAL);
        for w in cdf.windows(2) {
            assert!(w[1] > w[0], "every symbol needs a nonzero frequency");
        }
    }

    #[test]
    fn exp2_fixed_matches_powers_of_two() {
        assert_eq!(exp2_fixed(0.0), 1 << 32);
        assert_eq!(exp2_fixed(-1.0), 1 << 31);
        assert_eq!(exp2_fixed(-32.0), 1);
        assert_eq!(exp2_fixed(-41.0), 0);
        assert_eq!(exp2_fixed(f64::NAN), 0);
        let half = exp2_fixed(-0.5) as f64 / (1u64 << 32) as f64;
        assert!((half - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-8);
    }

    /// The vectorized weights are the scalar definition's, bit for bit.
    #[test]
    fn softmax_weights_match_exp2_fixed() {
        let mut logits: Vec<f32> = vec![
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            27.725887,
            -27.725887,
            27.7259,
            -27.7259,
            28.0,
            -28.0,
            f32::NAN,
            f32::NEG_INFINITY,
            0.5,
            -0.5,
            1.0,
            -1.0,
            7.0,
            -7.0,
            20.0,
            -20.0,
        ];
        // Every grid point and its neighbours around integer y, plus pseudo-random values.
        for i in -4200..=4200 {
            let l = i as f32 / 100.0;
            logits.extend([
                l,
                f32::from_bits(l.to_bits() + 1),
                f32::from_bits(l.to_bits().saturating_sub(1)),
            ]);
        }
        let mut next = lcg(0x1234_5678_9abc_def0, 24);
        for _ in 0..200_000 {
            logits.push((next() as f32 / (1u64 << 24) as f32) * 80.0 - 60.0);
        }
        let mut out = Vec::new();
        let sum = softmax_weights(&logits, None, &mut out);
        let max = logits
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, |m, l| if l > m { l } else { m });
        let mut expected_sum = 0u64;
        for (&l, &w) in logits.iter().zip(&out) {
            let expected = exp2_fixed((l as f64 - max as f64) * std::f64::consts::LOG2_E);
            assert_eq!(w, expected, "logit {l} (bits {:#x})", l.to_bits());
            expected_sum += expected;
        }
        assert_eq!(sum, expected_sum);
        // Every vector width, and the bias path, give the same weights.
        let zeros = vec![0.0f32; logits.len()];
        let shifted: Vec<f32> = logits.iter().map(|&l| l - 3.25).collect();
        let threes = vec![3.25f32; logits.len()];
        for limit in [0, 1, 2] {
            let _width = WidthLimit::set(limit);
            let mut again = Vec::new();
            assert_eq!(softmax_weights(&logits, None, &mut again), sum);
            assert_eq!(again, out, "width {limit}");
            assert_eq!(softmax_weights(&logits, Some(&zeros), &mut again), sum);
            assert_eq!(again, out, "width {limit}, zero bias");
            // The bias path is the plain path on the f32 sums.
            let biased: Vec<f32> = shifted.iter().zip(&threes).map(|(&l, &b)| l + b).collect();
            let mut plain = Vec::new();
            let plain_sum = softmax_weights(&biased, None, &mut plain);
            assert_eq!(
                softmax_weights(&shifted, Some(&threes), &mut again),
                plain_sum
            );
            assert_eq!(again, plain, "width {limit}, bias");
        }
    }

    #[test]
    fn scale_weights_is_the_plain_product() {
        let weights: Vec<u64> = (0..5000u64)
            .map(|i| (i * 858_993_459) % (1 << 32))
            .chain([0, 1 << 32])
            .collect();
        for factor in [0.0, 1e-9, 0.3, 1.0, 262_143.75, 1.9e5] {
            let mut out = Vec::new();
            let totals = scale_weights(&weights, factor, &mut out);
            let expected: Vec<u64> = weights
                .iter()
                .map(|&w| (w as f64 * factor) as u64)
                .collect();
            assert_eq!(out, expected, "factor {factor}");
            assert_eq!(totals, heaviest_in(&expected, 0), "factor {factor}");
        }
    }

    /// Totals found block by block are the plain scan's, wherever the heaviest falls: in the
    /// tail, tied across blocks and parts, or nowhere (all zero).
    #[test]
    fn scaled_totals_find_the_first_heaviest() {
        let mut next = lcg(0x7777, 24);
        for n in [1, 7, 8, 9, 23, PART + 13, 3 * PART + 5] {
            for case in 0..5 {
                let mut weights: Vec<u64> = (0..n).map(|_| next() % 1000).collect();
                match case {
                    0 => weights[n - 1] = 5000,
                    1 => {
                        weights[n / 3] = 5000;
                        weights[n - 1] = 5000;
                    }
                    2 => weights.iter_mut().for_each(|w| *w = 0),
                    3 => weights.iter_mut().for_each(|w| *w = 7),
                    _ => {}
                }
                let mut out = Vec::new();
                let totals = scale_weights(&weights, 1.0, &mut out);
                assert_eq!(out, weights);
                assert_eq!(totals, heaviest_in(&weights, 0), "n {n} case {case}");
                let mut raised = totals;
                let t = n / 2;
                out[t] += 4000;
                raised.raised(t, 4000, out[t]);
                assert_eq!(raised, heaviest_in(&out, 0), "raised: n {n} case {case}");
            }
        }
    }

    #[test]
    fn subtracted_weights_are_the_plain_step() {
        let weights: Vec<u64> = (0..PART as u64 + 77)
            .map(|i| (i * 2_654_435_761) % (1 << 33))
            .collect();
        let start: Vec<f32> = (0..weights.len())
            .map(|i| (i % 17) as f32 * 0.1 - 0.8)
            .collect();
        let step = 0.15 / 3.0e13;
        let mut values = start.clone();
        subtract_scaled_weights(&mut values, &weights, step);
        for ((&v, &s), &w) in values.iter().zip(&start).zip(&weights) {
            assert_eq!(v.to_bits(), (s - (w as f64 * step) as f32).to_bits());
        }
    }

    #[test]
    fn logits_become_a_valid_cdf() {
        let mut q = Quantizer::new();
        let mut cdf = Vec::new();
        let logits: Vec<f32> = (0..49_152)
            .map(|i| ((i * 7919) % 1000) as f32 / 50.0)
            .collect();
        q.logits_to_cdf(&logits, &mut cdf);
        check_cdf(&cdf, logits.len());
        // The highest logit gets the largest share.
        let best = logits
            .iter()
            .enumerate()
            .fold(0, |b, (i, &l)| if l > logits[b] { i } else { b });
        let f = |i: usize| cdf[i + 1] - cdf[i];
        assert!((0..logits.len()).all(|i| f(i) <= f(best)));
    }

    #[test]
    fn degenerate_logits_give_uniform() {
        let mut q = Quantizer::new();
        let mut cdf = Vec::new();
        q.logits_to_cdf(&[f32::NAN, f32::NAN, f32::NAN], &mut cdf);
        check_cdf(&cdf, 3);
        q.logits_to_cdf(&[f32::NEG_INFINITY; 5], &mut cdf);
        check_cdf(&cdf, 5);
    }

    /// The CDF builder as it was before vocabularies were split into parts: one pass, the
    /// remainder added to every bound from the first heaviest symbol on.
    fn weights_to_cdf_in_one_pass(weights: &[u64]) -> Vec<u32> {
        let n = weights.len();
        let budget = TOTAL as u64 - n as u64;
        let sum: u64 = weights.iter().sum();
        let top = *weights.iter().max().unwrap();
        let heaviest = weights.iter().position(|&w| w == top).unwrap();
        let scale: u128 = ((budget as u128) << 64) / sum as u128;
        let mut cdf = vec![0u32];
        let (mut given, mut acc) = (0u64, 0u64);
        for &w in weights {
            let q = ((w as u128 * scale) >> 64) as u64;
            given += q;
            acc += 1 + q;
            cdf.push(acc as u32);
        }
        for c in &mut cdf[heaviest + 1..] {
            *c += (budget - given) as u32;
        }
        cdf
    }

    /// However a vocabulary is cut into parts, and wherever its heaviest symbols fall (ties
    /// across parts included), the CDF is the one-pass CDF.
    #[test]
    fn parts_give_the_one_pass_cdf() {
        let mut next = lcg(0x0bad_5eed, 31);
        for n in [1, 5, 256, PART - 1, PART, PART + 1, 3 * PART + 17, 262_144] {
            for case in 0..8 {
                let mut weights: Vec<u64> = (0..n).map(|_| next() % 5000).collect();
                let top = 1 << 32;
                // Around the budget's share each: the scale just below 2^64 (or above it,
                // where the 128-bit path takes over).
                let share = (TOTAL as u64 - n as u64) / n as u64;
                match case {
                    0 => weights[n - 1] = top,
                    1 => {
                        weights[n / 2] = top;
                        weights[n - 1] = top;
                    }
                    2 => weights[0] = 1 << 40,
                    3 => weights.iter_mut().for_each(|w| *w *= 1 << 20),
                    // The largest weights the 52-bit lanes take, and the first they do not.
                    4 => weights[n / 3] = (1 << 52) - 1,
                    5 => weights[n / 3] = 1 << 52,
                    6 => weights.iter_mut().for_each(|w| *w = share + *w % 3),
                    _ => weights
                        .iter_mut()
                        .for_each(|w| *w = share.saturating_sub(1).max(1)),
                }
                let expected = weights_to_cdf_in_one_pass(&weights);
                // Every vector width (IFMA's 52-bit lanes at the widest) gives the same CDF.
                for limit in [2, 1, 0] {
                    let _width = WidthLimit::set(limit);
                    let mut cdf = Vec::new();
                    weights_to_cdf(&weights, &mut cdf);
                    assert_eq!(cdf, expected, "n {n} case {case} width {limit}");
                    check_cdf(&cdf, n);
                }
            }
        }
    }

    #[test]
    fn one_dominant_symbol_keeps_the_floor_for_others() {
        let mut cdf = Vec::new();
        weights_to_cdf(&[u64::MAX >> 8, 0, 0, 0], &mut cdf);
        check_cdf(&cdf, 4);
        assert_eq!(cdf[1], TOTAL - 3);
    }

    #[test]
    fn quantization_is_pinned() {
        // Pin the exact integers: a change here changes the format (the archive's bits).
        let mut q = Quantizer::new();
        let mut cdf = Vec::new();
        q.logits_to_cdf(&[1.0, 2.5, -3.0, 0.25], &mut cdf);
        assert_eq!(cdf, vec![0, 2_809_138, 15_398_821, 15_450_273, 16_777_216]);
    }
}
