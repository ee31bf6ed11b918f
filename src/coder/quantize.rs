//! The one place where model outputs become integer frequencies for the range coder.
//!
//! Everything here must give the same bits on every machine (DESIGN.md, determinism rule 6):
//! logits are turned into fixed-point weights with our own `exp2` built from plain IEEE
//! add/mul on `f64` (no platform `exp`, no fused multiply-add, a fixed order), and weights are
//! turned into a CDF with integer arithmetic only.
//!
//! Large vocabularies are cut into [`PART`]-symbol parts that the thread pool shares, so a
//! lone chunk's token step uses every core. Parts only ever combine through integer sums,
//! maxima and prefix offsets, which are the same in any order: the split never changes a bit.

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

fn softmax_weights_portable(logits: &[f32], max: f64, out: &mut [u64]) -> u64 {
    let mut sum = 0u64;
    for (w, &l) in out.iter_mut().zip(logits) {
        *w = softmax_weight(l, max);
        sum = sum.wrapping_add(*w);
    }
    sum
}

/// The same loop compiled for AVX2 (four lanes instead of SSE2's two). Only the vector width
/// changes: no FMA is enabled and Rust never contracts `a * b + c`, so the bits are the same.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn softmax_weights_avx2(logits: &[f32], max: f64, out: &mut [u64]) -> u64 {
    softmax_weights_portable(logits, max, out)
}

/// Softmax of `logits` (temperature 1) as fixed-point weights, [`exp2_fixed`] of each logit's
/// distance to the maximum in binary orders of magnitude (the top logit gets `2^32`); returns
/// their sum. Degenerate output (no finite maximum: all `-inf` or NaN) gives every symbol
/// weight 1, identically on both sides.
pub fn softmax_weights(logits: &[f32], out: &mut Vec<u64>) -> u64 {
    let max = if logits.len() > PART {
        logits
            .par_chunks(PART)
            .map(max_logit)
            .reduce(|| f32::NEG_INFINITY, |a, b| if b > a { b } else { a })
    } else {
        max_logit(logits)
    };
    out.clear();
    if !max.is_finite() {
        out.resize(logits.len(), 1);
        return logits.len() as u64;
    }
    out.resize(logits.len(), 0);
    let max = max as f64;
    if logits.len() > PART {
        return out
            .par_chunks_mut(PART)
            .zip(logits.par_chunks(PART))
            .map(|(out, logits)| softmax_weights_part(logits, max, out))
            .reduce(|| 0, u64::wrapping_add);
    }
    softmax_weights_part(logits, max, out)
}

/// [`softmax_weight`] of every logit, with the widest vector unit there is; returns the sum.
fn softmax_weights_part(logits: &[f32], max: f64, out: &mut [u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been found to support AVX2.
        return unsafe { softmax_weights_avx2(logits, max, out) };
    }
    softmax_weights_portable(logits, max, out)
}

/// The largest logit, NaNs ignored (`-inf` if there is none). Eight running maxima let the
/// loop vectorize; which of `0.0` and `-0.0` wins may differ from a plain scan, and does not
/// matter: both give the top logit `y = ±0`, weight `2^32`.
fn max_logit(logits: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut groups = logits.chunks_exact(8);
    for group in &mut groups {
        for (m, &l) in lanes.iter_mut().zip(group) {
            *m = if l > *m { l } else { *m };
        }
    }
    let mut max = f32::NEG_INFINITY;
    for &l in lanes.iter().chain(groups.remainder()) {
        if l > max {
            max = l;
        }
    }
    max
}

/// `out[i] = floor(weights[i] * factor)`, as `(w as f64 * factor) as u64` computes it, for
/// products below `2^51` (the caller's bound), vectorizable; returns their sum.
pub fn scale_weights(weights: &[u64], factor: f64, out: &mut Vec<u64>) -> u64 {
    out.clear();
    out.resize(weights.len(), 0);
    let part = |(out, weights): (&mut [u64], &[u64])| {
        let mut sum = 0u64;
        for (o, &w) in out.iter_mut().zip(weights) {
            *o = small_to_u64(floor_small(u64_to_small(w) * factor));
            sum = sum.wrapping_add(*o);
        }
        sum
    };
    if weights.len() > PART {
        return out
            .par_chunks_mut(PART)
            .zip(weights.par_chunks(PART))
            .map(part)
            .reduce(|| 0, u64::wrapping_add);
    }
    part((out, weights))
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
        softmax_weights(logits, &mut self.weights);
        weights_to_cdf(&self.weights, cdf);
    }
}

/// Integer weights (any scale, sum below 2^58) to a CDF over `weights.len()` symbols summing to
/// [`TOTAL`], each symbol at least 1. The rounding remainder goes to the first heaviest symbol.
///
/// Panics if there are no symbols or more than `TOTAL / 2` of them (a programming error).
pub fn weights_to_cdf(weights: &[u64], cdf: &mut Vec<u32>) {
    let n = weights.len();
    assert!(
        n > 0 && n <= (TOTAL / 2) as usize,
        "symbol count {n} out of range"
    );
    let budget = (TOTAL as u64) - n as u64; // what remains after the floor of 1 each
    let parallel = n > PART;
    // The sum, the largest weight and where it first occurs; `reduce` combines neighbouring
    // parts in order and keeps the left one on ties, so `heaviest` is the first in any split.
    let first_of = |a: Heaviest, b: Heaviest| Heaviest {
        sum: a.sum + b.sum,
        ..if b.top > a.top { b } else { a }
    };
    let Heaviest {
        sum, at: heaviest, ..
    } = if parallel {
        weights
            .par_chunks(PART)
            .enumerate()
            .map(|(k, part)| heaviest_in(part, k * PART))
            .reduce(Heaviest::default, first_of)
    } else {
        heaviest_in(weights, 0)
    };
    cdf.clear();
    cdf.resize(n + 1, 0);
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
            .for_each(|((bounds, weights), given)| *given = local_cdf(weights, scale, bounds));
    } else {
        given[0] = local_cdf(weights, scale, bounds);
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

/// A part's weight sum, its largest weight and the first index that has it.
#[derive(Clone, Copy, Default)]
struct Heaviest {
    sum: u64,
    top: u64,
    at: usize,
}

/// [`Heaviest`] of `weights`, which start at symbol `start`.
fn heaviest_in(weights: &[u64], start: usize) -> Heaviest {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been found to support AVX2.
        return unsafe { heaviest_in_avx2(weights, start) };
    }
    heaviest_in_portable(weights, start)
}

/// Integer arithmetic only: any instruction set gives the same result.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn heaviest_in_avx2(weights: &[u64], start: usize) -> Heaviest {
    heaviest_in_portable(weights, start)
}

#[inline(always)]
fn heaviest_in_portable(weights: &[u64], start: usize) -> Heaviest {
    let (mut sum, mut top) = (0u64, 0u64);
    for &w in weights {
        sum += w;
        top = top.max(w);
    }
    let at = start + weights.iter().position(|&w| w == top).unwrap_or(0);
    Heaviest { sum, top, at }
}

/// Writes `bounds[i] = (i + 1) + q_0 + … + q_i` with `q_i = floor(w_i * scale / 2^64)`;
/// returns the sum of the `q_i`.
fn local_cdf(weights: &[u64], scale: u128, bounds: &mut [u32]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been found to support AVX2.
        return unsafe { local_cdf_avx2(weights, scale, bounds) };
    }
    local_cdf_portable(weights, scale, bounds)
}

/// Integer arithmetic only: any instruction set gives the same bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn local_cdf_avx2(weights: &[u64], scale: u128, bounds: &mut [u32]) -> u64 {
    local_cdf_portable(weights, scale, bounds)
}

#[inline(always)]
fn local_cdf_portable(weights: &[u64], scale: u128, bounds: &mut [u32]) -> u64 {
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
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..200_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            logits.push(((state >> 40) as f32 / (1u64 << 24) as f32) * 80.0 - 60.0);
        }
        let mut out = Vec::new();
        let sum = softmax_weights(&logits, &mut out);
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
        let portable_sum = softmax_weights_portable(&logits, max as f64, &mut out);
        assert_eq!(portable_sum, sum);
    }

    #[test]
    fn scale_weights_is_the_plain_product() {
        let weights: Vec<u64> = (0..5000u64)
            .map(|i| (i * 858_993_459) % (1 << 32))
            .chain([0, 1 << 32])
            .collect();
        for factor in [0.0, 1e-9, 0.3, 1.0, 262_143.75, 1.9e5] {
            let mut out = Vec::new();
            let sum = scale_weights(&weights, factor, &mut out);
            let expected: Vec<u64> = weights
                .iter()
                .map(|&w| (w as f64 * factor) as u64)
                .collect();
            assert_eq!(out, expected, "factor {factor}");
            assert_eq!(sum, expected.iter().sum::<u64>());
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
        let mut state = 0x0bad_5eed_u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        for n in [1, 5, 256, PART - 1, PART, PART + 1, 3 * PART + 17, 262_144] {
            for case in 0..4 {
                let mut weights: Vec<u64> = (0..n).map(|_| next() % 5000).collect();
                let top = 1 << 32;
                match case {
                    0 => weights[n - 1] = top,
                    1 => {
                        weights[n / 2] = top;
                        weights[n - 1] = top;
                    }
                    2 => weights[0] = 1 << 40,
                    _ => weights.iter_mut().for_each(|w| *w *= 1 << 20),
                }
                let mut cdf = Vec::new();
                weights_to_cdf(&weights, &mut cdf);
                assert_eq!(
                    cdf,
                    weights_to_cdf_in_one_pass(&weights),
                    "n {n} case {case}"
                );
                check_cdf(&cdf, n);
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
