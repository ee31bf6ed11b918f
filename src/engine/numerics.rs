//! The portable engine's arithmetic outside the integer products: rounding, powers of two,
//! exp, ln, sin and cos, and the rule that quantizes activations for the integer kernels.
//!
//! Every function here is a fixed sequence of IEEE-754 basic operations (+ − × ÷ √,
//! conversions and rounding up to an integer, round-to-nearest-even, no fused multiply-add),
//! so it gives the same bits on every machine and compiler; none calls the platform's libm.
//! formats/PORTABLE.md states each one; the constants below are the document's.

/// Adding then subtracting 1.5 × 2^52 rounds an f64 of magnitude below 2^51 to an integer,
/// ties to even (the FPU's default rounding), with no instruction beyond addition.
const ROUND_F64: f64 = 6_755_399_441_055_744.0;
/// The same for f32 below 2^22.
const ROUND_F32: f32 = 12_582_912.0;

/// Nearest integer, ties to even, for |x| < 2^51.
#[inline(always)]
pub fn round_f64(x: f64) -> f64 {
    (x + ROUND_F64) - ROUND_F64
}

/// Nearest integer, ties to even, for |x| < 2^22.
#[inline(always)]
pub fn round_f32(x: f32) -> f32 {
    (x + ROUND_F32) - ROUND_F32
}

/// `round_f32(x) as i32`, for |x| < 2^22, without a float-to-integer conversion: the sum
/// x + 1.5·2^23 carries the rounded integer in its low mantissa bits. (Rust's saturating
/// `as i32` keeps loops from vectorizing; this gives the same integer.)
#[inline(always)]
pub fn round_to_i32(x: f32) -> i32 {
    ((x + ROUND_F32).to_bits() as i32).wrapping_sub(ROUND_F32.to_bits() as i32)
}

/// 2^k as an f64, for −1022 ≤ k ≤ 1023 (exact).
#[inline(always)]
pub fn pow2_f64(k: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&k));
    f64::from_bits(((1023 + k) as u64) << 52)
}

/// 2^k as an f32, for −126 ≤ k ≤ 127 (exact).
#[inline(always)]
pub fn pow2_f32(k: i32) -> f32 {
    debug_assert!((-126..=127).contains(&k));
    f32::from_bits(((127 + k) as u32) << 23)
}

/// A GGUF half-precision scale as an exact integer multiple of 2^-24 (every f16 is one), or
/// `None` for infinities and NaNs.
pub fn f16_as_int(bits: u16) -> Option<i64> {
    let exponent = (bits >> 10) & 0x1f;
    let mantissa = i64::from(bits & 0x3ff);
    let magnitude = match exponent {
        0 => mantissa,
        31 => return None,
        e => (1024 + mantissa) << (e - 1),
    };
    Some(if bits & 0x8000 != 0 {
        -magnitude
    } else {
        magnitude
    })
}

/// A half-precision value as f32 (exact).
pub fn f16_to_f32(bits: u16) -> f32 {
    match f16_as_int(bits) {
        // |value| < 2^16 · 2^11 fits f32's mantissa; scaling by 2^-24 is exact.
        Some(v) => v as f32 * pow2_f32(-24),
        None => f32::NAN,
    }
}

/// The smallest e with `amax ≤ 127 · 2^e`: the power-of-two scale that fits a block whose
/// largest magnitude is `amax` (> 0, finite) into −127..=127.
pub fn int8_exponent(amax: f32) -> i32 {
    let a = f64::from(amax);
    // f32 subnormals are normal f64s, so the exponent field gives floor(log2(a)).
    let k = ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    if a <= 127.0 * pow2_f64(k - 6) {
        k - 6
    } else {
        k - 5
    }
}

/// An activation's magnitude, with NaN and infinities counted as zero (they are quantized to
/// zero: a model that produces them codes badly, but encoder and decoder agree).
#[inline(always)]
fn finite(x: f32) -> f32 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Values per block of a quantized activation vector.
pub const ACT_BLOCK: usize = 32;
/// A block's scale may lie at most this many binary orders below the vector's largest, so
/// that every block's integer dot product, shifted to a common scale, fits 32 bits.
pub const ACT_RANGE: i32 = 12;

/// An activation vector quantized for the integer kernels: value j is
/// `q[j] · 2^(base + shift[j / 32])`.
#[derive(Clone, Debug, Default)]
pub struct QuantVec {
    pub q: Vec<i8>,
    /// Per block, 0..=ACT_RANGE.
    pub shift: Vec<u32>,
    /// Per block, `(Σ q) << shift`: the offset term of Q4_1 and Q4_K weights needs it.
    pub sum: Vec<i64>,
    /// Per 16 values, `Σ q` (not shifted): Q6_K's kernels take 32 from each stored value.
    pub half_sum: Vec<i32>,
    /// The exponent of the smallest block scale.
    pub base: i32,
    /// Blocks per exponent group (1, or `GROUP_BLOCKS` for a vector that only K-quant
    /// matrices read, from `nzip portable 3`; 0 before the first `quantize`): within a
    /// group, shifts differ by at most `GROUP_RANGE`.
    pub group: usize,
}

/// Blocks per exponent group of a vector read only by K-quant matrices, from `nzip portable
/// 3`: one super-block of 256 values.
pub const GROUP_BLOCKS: usize = 8;
/// Binary orders a block's exponent may lie below the largest of its group, so that a kernel
/// can sum a super-block's block products (times their 6- or 8-bit scales, shifted by at most
/// this) in 32 bits before it widens them once.
pub const GROUP_RANGE: i32 = 3;

impl QuantVec {
    /// Quantizes `x` (a whole number of blocks): each block gets the power-of-two scale that
    /// fits it into −127..=127, but no scale below 2^-ACT_RANGE of the largest block's; each
    /// value is rounded to nearest, ties to even.
    pub fn quantize(&mut self, x: &[f32]) {
        self.quantize_grouped(x, 1);
    }

    /// `quantize` with the blocks in groups of `group` (a whole number of groups): no block's
    /// scale below 2^-GROUP_RANGE of its group's largest.
    pub fn quantize_grouped(&mut self, x: &[f32], group: usize) {
        // Checked always: a partial group would leave blocks of an earlier vector behind.
        assert_eq!(x.len() % (ACT_BLOCK * group), 0, "a partial block or group");
        let blocks = x.len() / ACT_BLOCK;
        self.group = group;
        self.q.resize(x.len(), 0);
        self.shift.resize(blocks, 0);
        self.sum.resize(blocks, 0);
        self.half_sum.resize(2 * blocks, 0);
        let mut natural: Vec<Option<i32>> = x
            .chunks_exact(ACT_BLOCK)
            .map(|b| {
                let amax = b.iter().fold(0.0f32, |m, &v| m.max(finite(v).abs()));
                (amax > 0.0).then(|| int8_exponent(amax))
            })
            .collect();
        // Within a group, no exponent more than GROUP_RANGE below the largest (with one block
        // per group, the block's own: nothing to do).
        if group > 1 {
            natural = natural
                .chunks_exact(group)
                .flat_map(|g| {
                    let top = g.iter().flatten().copied().max();
                    g.iter()
                        .map(move |&e| top.map(|top| e.unwrap_or(i32::MIN).max(top - GROUP_RANGE)))
                })
                .collect();
        }
        let top = natural.iter().flatten().copied().max().unwrap_or(ACT_RANGE);
        self.base = top - ACT_RANGE;
        for (b, (block, e)) in x.chunks_exact(ACT_BLOCK).zip(&natural).enumerate() {
            let e = e.unwrap_or(self.base).max(self.base);
            let scale = pow2_f64(-e);
            let mut sum = 0i64;
            for (q, &v) in self.q[b * ACT_BLOCK..][..ACT_BLOCK].iter_mut().zip(block) {
                let r = round_f64(f64::from(finite(v)) * scale) as i8;
                *q = r;
                sum += i64::from(r);
            }
            for (h, half) in self.q[b * ACT_BLOCK..][..ACT_BLOCK]
                .chunks_exact(16)
                .enumerate()
            {
                self.half_sum[2 * b + h] = half.iter().map(|&v| i32::from(v)).sum();
            }
            let shift = (e - self.base) as u32;
            self.shift[b] = shift;
            self.sum[b] = sum << shift;
        }
    }
}

/// Quantizes one head's vector (a cached value, a query; a cached key in numerics 1) to int8
/// with one power-of-two scale; returns its exponent. A zero vector gets exponent 0.
pub fn quantize_head(x: &[f32], out: &mut [i8]) -> i32 {
    let amax = x.iter().fold(0.0f32, |m, &v| m.max(finite(v).abs()));
    if amax == 0.0 {
        out.fill(0);
        return 0;
    }
    let e = int8_exponent(amax);
    let scale = pow2_f64(-e);
    for (q, &v) in out.iter_mut().zip(x) {
        *q = round_f64(f64::from(finite(v)) * scale) as i8;
    }
    e
}

/// Dimensions per sub-block of a cached key: each has its own integer multiplier of the key's
/// base power of two (numerics 2; numerics 1 gives a whole head one scale).
pub const KEY_SUB_BLOCK: usize = 16;
/// A key block's scale lies at most this many binary orders above the key's base exponent, so
/// that a head's dot product with every block shifted to the base fits 32 bits for head sizes
/// up to 256 (256 · 127 · 127 · 2^8 < 2^31).
pub const KEY_RANGE: i32 = 8;

/// Quantizes one key head for `nzip portable 2`: with A its largest magnitude, the base
/// exponent is β = int8_exponent(A) − KEY_RANGE, and each 16-dimension sub-block b gets the
/// integer multiplier m_b = max(1, ⌈(a_b · 2^−β) / 127⌉) (1..=2^KEY_RANGE) of its largest
/// magnitude a_b, so that value t is `q[t] · m_b · 2^β` with |q| ≤ 127: every block's scale
/// within one part in m_b of the tightest. Returns β; a zero key gets β = 0, every m_b = 1.
pub fn quantize_key(x: &[f32], q: &mut [i8], mult: &mut [i16]) -> i32 {
    debug_assert!(x.len().is_multiple_of(KEY_SUB_BLOCK));
    let amax = |b: &[f32]| b.iter().fold(0.0f32, |m, &v| m.max(finite(v).abs()));
    let top = amax(x);
    if top == 0.0 {
        q.fill(0);
        mult.fill(1);
        return 0;
    }
    let base = int8_exponent(top) - KEY_RANGE;
    let unit = pow2_f64(-base);
    for ((values, q), m) in x
        .chunks_exact(KEY_SUB_BLOCK)
        .zip(q.chunks_exact_mut(KEY_SUB_BLOCK))
        .zip(mult.iter_mut())
    {
        let m_b = ((f64::from(amax(values)) * unit) / 127.0).ceil().max(1.0);
        for (q, &v) in q.iter_mut().zip(values) {
            *q = round_f64((f64::from(finite(v)) * unit) / m_b) as i8;
        }
        *m = m_b as i16;
    }
    base
}

/// Quantizes one key head for `nzip portable 1`: one power-of-two scale for the head
/// (`quantize_head`), written as the base exponent e − KEY_RANGE and every multiplier
/// 2^KEY_RANGE, which give the same scores.
pub fn quantize_key_v1(x: &[f32], q: &mut [i8], mult: &mut [i16]) -> i32 {
    mult.fill(1 << KEY_RANGE);
    quantize_head(x, q) - KEY_RANGE
}

// ln 2 split so that n·LN2_HI_F32 is exact (its low 12 mantissa bits are zero).
const LN2_HI_F32: f32 = f32::from_bits(0x3f31_8000); // 0.693359375
const LN2_LO_F32: f32 = f32::from_bits(0xb95e_8083); // −2.12194440e−4
const LOG2E_F32: f32 = std::f32::consts::LOG2_E;

/// e^x for x ≤ 0 (x > 0 counts as 0), with a relative error below 2^-21; 0 below −87 and
/// for NaN.
#[inline(always)]
pub fn exp_neg(x: f32) -> f32 {
    // Written without early returns so that loops over it vectorize; the clamps only keep the
    // discarded lanes in range.
    let dead = x.is_nan() || x < -87.0;
    let x = if x > 0.0 { 0.0 } else { x };
    let x = if dead { 0.0 } else { x };
    let shifted = x * LOG2E_F32 + ROUND_F32;
    let n = shifted - ROUND_F32; // round_f32(x · log2 e)
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUND_F32.to_bits() as i32);
    let r = (x - n * LN2_HI_F32) - n * LN2_LO_F32;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let e = p * pow2_f32(n_int);
    if dead {
        0.0
    } else {
        e
    }
}

/// 1 / (1 + e^−z), through `exp_neg` of −|z|: 1/(1 + e) for z ≥ 0, else e/(1 + e).
#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    let e = exp_neg(-z.abs());
    if z >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// x · sigmoid(x).
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// 2·√(2/π): GELU's tanh form is x·sigmoid(2u), u = √(2/π)·(x + 0.044715·x³).
const GELU_SLOPE: f32 = 1.595_769_121_605_730_8_f64 as f32;
const GELU_CUBIC: f32 = 0.044_715;

/// GELU in its tanh form (Gemma's feed-forward gate), as x·sigmoid(z) with
/// z = GELU_SLOPE·x·(1 + GELU_CUBIC·x·x) in f32.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    x * sigmoid(GELU_SLOPE * x * (1.0 + GELU_CUBIC * x * x))
}

// fdlibm's ln 2 in two parts: n·LN2_HI is exact for |n| < 2^11.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000); // 6.93147180369123816490e−01
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76); // 1.90821492927058770002e−10

/// e^x in f64 for |x| < 700, by reduction to |r| ≤ ln2/2 and a degree-13 Taylor polynomial.
pub fn exp_f64(x: f64) -> f64 {
    let n = round_f64(x * std::f64::consts::LOG2_E);
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0;
    for k in (1..=13).rev() {
        p = 1.0 + p * r / f64::from(k);
    }
    p * pow2_f64(n as i32)
}

/// ln x in f64 for finite x > 0: x = m · 2^k with m in [√½, √2), then ln m = 2 atanh(s),
/// s = (m − 1)/(m + 1), to s^25.
pub fn ln_f64(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut k = ((bits >> 52) & 0x7ff) as i32 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        k += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut series = 0.0;
    for j in (0..=12).rev() {
        series = 1.0 / f64::from(2 * j + 1) + s2 * series;
    }
    f64::from(k) * LN2_HI + (f64::from(k) * LN2_LO + 2.0 * s * series)
}

// π/2 in three parts (fdlibm's first two, then the rest rounded): the first two have 33
// significant bits, so k·part is exact for |k| < 2^20 (angles below about 1.6 million radians).
const PIO2_1: f64 = f64::from_bits(0x3ff9_21fb_5440_0000); // 1.57079632673412561417e+00
const PIO2_2: f64 = f64::from_bits(0x3dd0_b461_1a60_0000); // 6.07710050630396597660e−11
const PIO2_3: f64 = f64::from_bits(0x3ba3_198a_2e03_7073); // 2.02226624879595063154e−21

/// (sin θ, cos θ) for finite θ ≥ 0: θ is reduced by multiples of π/2 and both are summed as
/// Taylor polynomials to degree 17 on |r| ≤ π/4.
pub fn sin_cos(theta: f64) -> (f64, f64) {
    let k = round_f64(theta * std::f64::consts::FRAC_2_PI);
    let r = ((theta - k * PIO2_1) - k * PIO2_2) - k * PIO2_3;
    let r2 = r * r;
    // sin r = r (1 − r²/(2·3) (1 − r²/(4·5) (…))), cos r = 1 − r²/(1·2) (1 − r²/(3·4) (…)).
    let mut s = 1.0;
    let mut c = 1.0;
    for j in (1..=8).rev() {
        let j = f64::from(j);
        s = 1.0 - r2 / ((2.0 * j) * (2.0 * j + 1.0)) * s;
        c = 1.0 - r2 / ((2.0 * j - 1.0) * (2.0 * j)) * c;
    }
    let s = r * s;
    match (k as i64).rem_euclid(4) {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(round_f32(2.5), 2.0);
        assert_eq!(round_f32(3.5), 4.0);
        assert_eq!(round_f32(-2.5), -2.0);
        assert_eq!(round_f64(-0.49), 0.0);
        assert_eq!(round_f64(126.5), 126.0);
    }

    #[test]
    fn rounding_to_integers_needs_no_conversion() {
        for x in [
            0.0f32,
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -126.4,
            32767.5,
            4_194_303.0,
            -4_194_303.0,
        ] {
            assert_eq!(round_to_i32(x), round_f32(x) as i32, "{x}");
        }
    }

    #[test]
    fn half_precision_scales_are_exact_integers() {
        assert_eq!(f16_as_int(0x3c00), Some(1 << 24)); // 1.0
        assert_eq!(f16_as_int(0x0001), Some(1)); // smallest subnormal, 2^-24
        assert_eq!(f16_as_int(0xc000), Some(-(2 << 24))); // -2.0
        assert_eq!(f16_as_int(0x7c00), None);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }

    #[test]
    fn int8_exponent_is_the_tightest_fit() {
        for amax in [
            1e-30f32, 1e-3, 0.5, 1.0, 1.984, 1.985, 126.9, 127.0, 127.1, 3e30,
        ] {
            let e = int8_exponent(amax);
            assert!(f64::from(amax) <= 127.0 * pow2_f64(e), "{amax}");
            assert!(f64::from(amax) > 127.0 * pow2_f64(e - 1), "{amax}");
        }
    }

    #[test]
    fn quantized_blocks_reproduce_the_vector() {
        let x: Vec<f32> = (0..96)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        let mut q = QuantVec::default();
        q.quantize(&x);
        for (j, &v) in x.iter().enumerate() {
            let back = f64::from(q.q[j]) * pow2_f64(q.base + q.shift[j / ACT_BLOCK] as i32);
            assert!((back - f64::from(v)).abs() <= pow2_f64(q.base + 12) / 2.0 + 1e-12);
        }
        assert!(
            q.q.iter().any(|&v| v.unsigned_abs() > 63),
            "the range is used"
        );
    }

    /// Grouped quantization (`nzip portable 3`): within each group of 8 blocks the shifts lie
    /// within GROUP_RANGE, a block at most that far below its group's largest keeps its own
    /// scale (its values as `quantize` gives them), one further below is raised to it, the
    /// base still bounds everything, and an all-zero group sits at the base.
    #[test]
    fn grouped_blocks_stay_within_their_range() {
        // Block b of group g has magnitude 2^(−g·4 − b): groups 0-2 reach below their range
        // and group 2 below the base; group 3 is all zero; a NaN and an infinity count as 0.
        let x: Vec<f32> = (0..4 * 256)
            .map(|i| {
                let (g, b) = (i / 256, i / 32 % 8);
                let sign = if i % 3 == 0 { -1.0 } else { 1.0 };
                match g {
                    3 => 0.0,
                    _ if i == 40 => f32::NAN,
                    _ if i == 41 => f32::INFINITY,
                    _ => sign * ((i % 32) as f32 + 1.0) * pow2_f64(-(4 * g) - b) as f32,
                }
            })
            .collect();
        let (mut grouped, mut plain) = (QuantVec::default(), QuantVec::default());
        grouped.quantize_grouped(&x, GROUP_BLOCKS);
        plain.quantize(&x);
        assert_eq!(grouped.base, plain.base, "the largest block sets the base");
        let mut raised = 0;
        for (g, shifts) in grouped.shift.chunks_exact(GROUP_BLOCKS).enumerate() {
            let (lo, hi) = (shifts.iter().min().unwrap(), shifts.iter().max().unwrap());
            assert!(hi - lo <= GROUP_RANGE as u32, "group {g}: {shifts:?}");
            for (k, &s) in shifts.iter().enumerate() {
                let b = g * GROUP_BLOCKS + k;
                let own = plain.shift[b];
                if own + GROUP_RANGE as u32 >= *hi || g == 3 {
                    assert_eq!(s, own, "block {b} keeps its scale");
                    assert_eq!(grouped.q[b * 32..][..32], plain.q[b * 32..][..32]);
                } else {
                    assert_eq!(s, hi - GROUP_RANGE as u32, "block {b} is raised");
                    raised += 1;
                }
            }
        }
        assert!(raised >= 8, "the test raises blocks ({raised})");
        assert!(
            grouped.shift[3 * 8..].iter().all(|&s| s == 0),
            "a zero group is at the base"
        );
        assert_eq!(plain.shift[2 * 8 + 7], 0, "the base clamps the last blocks");
    }

    /// A key's 16-dimension blocks each get a scale within one part in its multiplier of the
    /// tightest, small blocks bottoming out at the base; `nzip portable 1`'s key is the head's
    /// single scale, every multiplier 2^KEY_RANGE.
    #[test]
    fn keys_quantize_per_block() {
        let mut x: Vec<f32> = (0..64)
            .map(|i| ((i * 29 % 61) as f32 - 30.0) * 0.5)
            .collect();
        x[16..32].iter_mut().for_each(|v| *v *= 1e-2);
        x[32..48].iter_mut().for_each(|v| *v *= 1e-5); // below the base: multiplier 1
        let (mut q, mut mult) = (vec![0i8; 64], vec![0i16; 4]);
        let base = quantize_key(&x, &mut q, &mut mult);
        assert_eq!(base, int8_exponent(15.0) - KEY_RANGE);
        assert!(mult[0] > 1 << (KEY_RANGE - 1) && mult[0] <= 1 << KEY_RANGE);
        assert_eq!(
            mult[1], 3,
            "a hundredth of the top block: ⌈0.15 · 2^11 / 127⌉"
        );
        assert_eq!(mult[2], 1);
        for (t, &v) in x.iter().enumerate() {
            let step = f64::from(mult[t / 16]) * pow2_f64(base);
            let back = f64::from(q[t]) * step;
            assert!((back - f64::from(v)).abs() <= step / 2.0, "{t}");
        }
        assert!(q[..16].iter().any(|&v| v.abs() == 127) && q[16..32].iter().any(|&v| v.abs() > 63));
        let mut head = vec![0i8; 64];
        let e = quantize_head(&x, &mut head);
        let base = quantize_key_v1(&x, &mut q, &mut mult);
        assert_eq!(
            (q, mult, base),
            (head, vec![1 << KEY_RANGE; 4], e - KEY_RANGE)
        );
    }

    #[test]
    fn transcendentals_are_accurate() {
        for i in 0..1740 {
            let x = -(i as f32) * 0.05;
            let want = f64::from(x).exp();
            assert!(
                (f64::from(exp_neg(x)) - want).abs() <= want * 1e-6,
                "exp {x}"
            );
        }
        assert_eq!(exp_neg(-87.5), 0.0);
        assert_eq!(exp_neg(f32::NAN), 0.0);
        assert_eq!(exp_neg(0.0), 1.0);
        for x in [-30.0, -1.0, 0.0, 1e-3, 2.5, 40.0] {
            assert!((exp_f64(x) - x.exp()).abs() <= x.exp() * 1e-14, "exp {x}");
        }
        for x in [1e-5, 0.3, 1.0, 2.0, 10_000.0, 1e6] {
            assert!(
                (ln_f64(x) - x.ln()).abs() <= 1e-14 * x.ln().abs().max(1.0),
                "ln {x}"
            );
        }
        for i in 0..5000 {
            let t = i as f64 * 37.3;
            let (s, c) = sin_cos(t);
            assert!(
                (s - t.sin()).abs() < 1e-12 && (c - t.cos()).abs() < 1e-12,
                "{t}"
            );
        }
    }

    #[test]
    fn silu_matches_its_definition() {
        for i in -400..400 {
            let x = i as f32 * 0.05;
            let want = f64::from(x) / (1.0 + (-f64::from(x)).exp());
            assert!((f64::from(silu(x)) - want).abs() <= 1e-6 * want.abs().max(1e-3));
        }
    }

    #[test]
    fn gelu_matches_its_tanh_definition() {
        for i in -400..400 {
            let x = i as f32 * 0.05;
            let u = (2.0 / std::f64::consts::PI).sqrt()
                * (f64::from(x) + 0.044715 * f64::from(x).powi(3));
            let want = 0.5 * f64::from(x) * (1.0 + u.tanh());
            assert!(
                (f64::from(gelu(x)) - want).abs() <= 1e-6 * want.abs().max(1e-3),
                "gelu({x}) = {}, want {want}",
                gelu(x)
            );
        }
        assert_eq!(gelu(1e30), 1e30);
        assert_eq!(gelu(-1e30), 0.0);
        assert!(gelu(f32::NAN).is_nan());
    }
}
