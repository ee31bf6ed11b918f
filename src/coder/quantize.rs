//! The one place where model outputs become integer frequencies for the range coder.
//!
//! Everything here must give the same bits on every machine (DESIGN.md, determinism rule 6):
//! logits are turned into fixed-point weights with our own `exp2` built from plain IEEE
//! add/mul on `f64` (no platform `exp`, no fused multiply-add, a fixed order), and weights are
//! turned into a CDF with integer arithmetic only.

/// Bits of precision of every CDF handed to the range coder.
pub const PRECISION: u32 = 24;
/// Total of every CDF: probabilities are `freq / TOTAL`.
pub const TOTAL: u32 = 1 << PRECISION;

/// Logits more than this many binary orders of magnitude below the maximum get weight 0 (and
/// then the floor frequency of 1). 2^-40 of the top weight is far below what 24 bits resolve.
const MIN_EXP2: f64 = -40.0;

/// Fixed-point weight of `2^y` for `y` in `[MIN_EXP2, 0]`, scaled so that `y = 0` gives `2^32`.
///
/// `2^f` for the fractional part uses a degree-8 Taylor polynomial of `e^(f ln 2)` evaluated in
/// Horner form; its accuracy (~1e-8 relative) only affects compression, never correctness,
/// because encoder and decoder evaluate the very same IEEE operations.
#[inline]
pub(crate) fn exp2_fixed(y: f64) -> u64 {
    if y.is_nan() || y < MIN_EXP2 {
        return 0;
    }
    let y = if y > 0.0 { 0.0 } else { y };
    // floor without libm: y is in [-40, 0], so the cast truncates toward zero.
    let mut k = y as i64;
    if (k as f64) > y {
        k -= 1;
    }
    let f = y - k as f64; // in [0, 1)
    let x = f * std::f64::consts::LN_2;
    let p = 1.0
        + x * (1.0
            + x * (0.5
                + x * (1.0 / 6.0
                    + x * (1.0 / 24.0
                        + x * (1.0 / 120.0
                            + x * (1.0 / 720.0 + x * (1.0 / 5040.0 + x * (1.0 / 40320.0))))))));
    // p in [1, 2): m in [2^32, 2^33).
    let m = (p * 4_294_967_296.0) as u64;
    m >> (-k) as u32
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
        let mut max = f32::NEG_INFINITY;
        for &l in logits {
            if l > max {
                max = l;
            }
        }
        if !max.is_finite() {
            // Degenerate output (all -inf or NaN): fall back to uniform, identically on both sides.
            self.weights.clear();
            self.weights.resize(logits.len(), 1);
            weights_to_cdf(&self.weights, cdf);
            return;
        }
        let max = max as f64;
        self.weights.clear();
        self.weights.extend(
            logits
                .iter()
                .map(|&l| exp2_fixed((l as f64 - max) * std::f64::consts::LOG2_E)),
        );
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
    let sum: u64 = weights.iter().sum();
    let mut heaviest = 0;
    for (i, &w) in weights.iter().enumerate() {
        if w > weights[heaviest] {
            heaviest = i;
        }
    }
    cdf.clear();
    cdf.reserve(n + 1);
    cdf.push(0);
    if sum == 0 {
        // Uniform: spread the budget evenly, remainder to symbol 0.
        let each = budget / n as u64;
        let extra = budget - each * n as u64;
        let mut acc = 0u64;
        for i in 0..n {
            acc += 1 + each + if i == 0 { extra } else { 0 };
            cdf.push(acc as u32);
        }
        return;
    }
    // q_i = floor(w_i * budget / sum) via a 64.64 fixed-point reciprocal; never rounds up, so
    // the q_i sum to at most `budget`.
    let scale: u128 = ((budget as u128) << 64) / sum as u128;
    let mut given = 0u64;
    let mut acc = 0u64;
    let mut q_heaviest = 0u64;
    for (i, &w) in weights.iter().enumerate() {
        let q = ((w as u128 * scale) >> 64) as u64;
        given += q;
        if i == heaviest {
            q_heaviest = q;
        }
        acc += 1 + q;
        cdf.push(acc as u32);
    }
    let remainder = budget - given;
    if remainder > 0 {
        // Shift every boundary after the heaviest symbol up by the remainder.
        for c in &mut cdf[heaviest + 1..] {
            *c += remainder as u32;
        }
    }
    debug_assert!(q_heaviest + remainder < TOTAL as u64);
    debug_assert_eq!(*cdf.last().unwrap(), TOTAL);
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
