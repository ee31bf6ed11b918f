//! The integer matrix–vector products: every product of a weight block and an activation
//! block is summed exactly in integers, shifted to the vector's common scale and added up in
//! a 64-bit integer, so no split of rows, order of blocks or SIMD width can change a bit.
//! The only rounding is the final conversion of each row's integer to f32.
//!
//! Each kernel computes, for row r and activation vector a,
//!   Σ_b  d_b · ((Σ_j q_bj · a_bj) << shift_b)  +  m_b · ((Σ_j a_bj) << shift_b)
//! with wrapping 64-bit arithmetic (the weights' check in `weights` rules out wrapping for a
//! loadable model); the scalar kernel is the definition, the SIMD ones regroup its integer
//! sums, which cannot change them.

use super::numerics::{pow2_f64, QuantVec, ACT_BLOCK};
use super::weights::{BlockKind, Matrix};

/// The instruction set a model's products run on. Chosen once per loaded model (no global),
/// so tests can run every kernel this machine has side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kernel {
    Scalar,
    /// x86-64 AVX2 (256-bit integer multiply-adds).
    Avx2,
}

impl Kernel {
    /// The widest kernel this CPU runs.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Kernel::Avx2;
        }
        Kernel::Scalar
    }

    /// Every kernel this CPU runs, narrowest first.
    pub fn available() -> Vec<Self> {
        [Kernel::Scalar, Kernel::Avx2]
            .into_iter()
            .filter(|&k| k <= Self::detect())
            .collect()
    }
}

/// Row `row` of `m` times `a` as the exact integer above; its value is this times
/// 2^(a.base − 24). The definition every other kernel must reproduce.
pub fn row_dot_scalar(m: &Matrix, row: usize, a: &QuantVec) -> i64 {
    let blocks = m.blocks_per_row();
    let mut acc = 0i64;
    for b in 0..blocks {
        let block = row * blocks + b;
        let x = &a.q[b * ACT_BLOCK..][..ACT_BLOCK];
        let dot: i64 = (0..ACT_BLOCK)
            .map(|j| i64::from(m.q_at(block, j)) * i64::from(x[j]))
            .sum();
        acc = acc.wrapping_add(i64::from(m.scale[block]).wrapping_mul(dot << a.shift[b]));
        if m.kind == BlockKind::Q4Offset {
            acc = acc.wrapping_add(i64::from(m.offset[block]).wrapping_mul(a.sum[b]));
        }
    }
    acc
}

/// The f32 value of a row sum: the integer rounded to f64, scaled by a power of two in two
/// exact steps, rounded to f32.
#[inline]
pub fn to_f32(acc: i64, a: &QuantVec) -> f32 {
    let k = a.base - 24;
    let half = k / 2;
    ((acc as f64 * pow2_f64(half)) * pow2_f64(k - half)) as f32
}

/// `out[s] = m · acts[s]` for every sequence s of a group.
pub fn matmul(kernel: Kernel, m: &Matrix, acts: &[&QuantVec], out: &mut [Vec<f32>]) {
    let [products] = matmuls(kernel, [m], acts);
    for (o, p) in out.iter_mut().zip(products) {
        *o = p;
    }
}

/// Several matrices times the same activation vectors: `result[i][s] = ms[i] · acts[s]`. The
/// matrices' rows are cut into tiles spread over threads together (one parallel section, not
/// one per matrix: with a single sequence the sections are short and their start-up counts);
/// each tile is computed for every sequence while its weights are in cache. Rows are
/// independent, so the split changes nothing.
pub fn matmuls<const N: usize>(
    kernel: Kernel,
    ms: [&Matrix; N],
    acts: &[&QuantVec],
) -> [Vec<Vec<f32>>; N] {
    use rayon::prelude::*;
    const TILE: usize = 32;
    let n = acts.len();
    let tiles: Vec<(usize, usize)> = ms
        .iter()
        .enumerate()
        .flat_map(|(i, m)| (0..m.rows.div_ceil(TILE)).map(move |t| (i, t)))
        .collect();
    let parts: Vec<Vec<f32>> = tiles
        .par_iter()
        .map(|&(i, t)| {
            let m = ms[i];
            let rows = t * TILE..((t + 1) * TILE).min(m.rows);
            let mut part = vec![0.0f32; rows.len() * n];
            let mut sums = vec![0i64; n];
            for (k, r) in rows.clone().enumerate() {
                match kernel {
                    Kernel::Scalar => {
                        for (s, a) in sums.iter_mut().zip(acts) {
                            *s = row_dot_scalar(m, r, a);
                        }
                    }
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `Kernel::Avx2` is only chosen where the CPU has AVX2 (`detect`).
                    Kernel::Avx2 => unsafe { avx2::row_dots(m, r, acts, &mut sums) },
                    #[cfg(not(target_arch = "x86_64"))]
                    Kernel::Avx2 => unreachable!("AVX2 is never detected off x86-64"),
                }
                for (s, (&sum, a)) in sums.iter().zip(acts).enumerate() {
                    part[s * rows.len() + k] = to_f32(sum, a);
                }
            }
            part
        })
        .collect();
    let mut out: [Vec<Vec<f32>>; N] =
        std::array::from_fn(|i| vec![Vec::with_capacity(ms[i].rows); n]);
    for (&(i, _), part) in tiles.iter().zip(&parts) {
        let rows = part.len() / n.max(1);
        for (s, o) in out[i].iter_mut().enumerate() {
            o.extend_from_slice(&part[s * rows..][..rows]);
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! Four blocks at a time: each block's 32 products summed to 8 lanes (maddubs, madd),
    //! the four blocks' lanes folded to one lane each by horizontal adds, shifted per block,
    //! widened and multiplied by the block scales into 64-bit lanes.
    //! Left shifts and integer sums commute, so this is the scalar kernel regrouped.

    use std::arch::x86_64::*;

    use super::super::numerics::{QuantVec, ACT_BLOCK};
    use super::super::weights::{BlockKind, Matrix};

    /// A block's 32 weights as the unsigned operand of maddubs: the nibbles (Q4_1), or |q|
    /// (Q8_0, whose signs go onto the activations instead, see `products`).
    #[inline(always)]
    unsafe fn weights(m: &Matrix, block: usize) -> (__m256i, __m256i) {
        match m.kind {
            BlockKind::Q4Offset => {
                let packed = _mm_loadu_si128(m.q.as_ptr().add(block * 16) as *const __m128i);
                let low = _mm_set1_epi8(0x0f);
                let lo = _mm_and_si128(packed, low);
                let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
                let w = _mm256_set_m128i(hi, lo);
                (w, w)
            }
            BlockKind::Q8 => {
                let w = _mm256_loadu_si256(m.q.as_ptr().add(block * 32) as *const __m256i);
                (_mm256_sign_epi8(w, w), w)
            }
        }
    }

    /// A block's 32 products summed to 8 lanes of 4. |pair| ≤ 2·128·127 < 2^15, so maddubs
    /// does not saturate; madd adds the pairs exactly.
    #[inline(always)]
    unsafe fn products(kind: BlockKind, (w, signs): (__m256i, __m256i), x: *const u8) -> __m256i {
        let a = _mm256_loadu_si256(x as *const __m256i);
        let a = match kind {
            BlockKind::Q4Offset => a,
            BlockKind::Q8 => _mm256_sign_epi8(a, signs),
        };
        _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), _mm256_set1_epi16(1))
    }

    /// Row `row` times every activation vector, into `sums`. One pass over the row per
    /// vector: the row stays in L1, and a single accumulator stays in a register (measured
    /// on Zen 3: no slower than sharing each unpacked quad between up to 8 vectors).
    #[target_feature(enable = "avx2")]
    pub unsafe fn row_dots(m: &Matrix, row: usize, acts: &[&QuantVec], sums: &mut [i64]) {
        for (a, sum) in acts.iter().zip(sums) {
            *sum = row_dot(m, row, a);
        }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn row_dot(m: &Matrix, row: usize, a: &QuantVec) -> i64 {
        let blocks = m.blocks_per_row();
        let quads = blocks / 4;
        let first = row * blocks;
        let q4 = m.kind == BlockKind::Q4Offset;
        let mut acc = _mm256_setzero_si256();
        for qd in 0..quads {
            let b = qd * 4;
            let x = a.q.as_ptr().add(b * ACT_BLOCK) as *const u8;
            let p0 = products(m.kind, weights(m, first + b), x);
            let p1 = products(m.kind, weights(m, first + b + 1), x.add(32));
            let p2 = products(m.kind, weights(m, first + b + 2), x.add(64));
            let p3 = products(m.kind, weights(m, first + b + 3), x.add(96));
            // Lanes [b0, b1, b2, b3] in each 128-bit half, each a block's half-sum; the
            // halves added give each block's whole sum.
            let h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
            let h = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            // |block sum| ≤ 32·128·127 = 520,192; shifted by ≤ 12 it stays below 2^31.
            let shifts = _mm_loadu_si128(a.shift.as_ptr().add(b) as *const __m128i);
            let h = _mm256_cvtepi32_epi64(_mm_sllv_epi32(h, shifts));
            let d4 = _mm_loadu_si128(m.scale.as_ptr().add(first + b) as *const __m128i);
            acc = _mm256_add_epi64(acc, _mm256_mul_epi32(h, _mm256_cvtepi32_epi64(d4)));
            if q4 {
                // Offsets times the shifted activation sums (both fit 32 bits).
                let o4 = _mm_loadu_si128(m.offset.as_ptr().add(first + b) as *const __m128i);
                let s = _mm256_loadu_si256(a.sum.as_ptr().add(b) as *const __m256i);
                acc = _mm256_add_epi64(acc, _mm256_mul_epi32(_mm256_cvtepi32_epi64(o4), s));
            }
        }
        let mut lanes = [0i64; 4];
        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, acc);
        let mut total = lanes.iter().fold(0i64, |t, &v| t.wrapping_add(v));
        // The blocks after the last quad, one at a time.
        for b in quads * 4..blocks {
            let x = a.q.as_ptr().add(b * ACT_BLOCK) as *const u8;
            let p = products(m.kind, weights(m, first + b), x);
            let p = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
            let p = _mm_hadd_epi32(p, p);
            let dot = i64::from(_mm_cvtsi128_si32(_mm_hadd_epi32(p, p)));
            total =
                total.wrapping_add(i64::from(m.scale[first + b]).wrapping_mul(dot << a.shift[b]));
            if q4 {
                total = total.wrapping_add(i64::from(m.offset[first + b]).wrapping_mul(a.sum[b]));
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel gives the definition's integers, for rows with and without a tail.
    #[test]
    fn kernels_agree_with_the_definition() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (kind, cols) in [
            (BlockKind::Q4Offset, 576),
            (BlockKind::Q4Offset, 1536),
            (BlockKind::Q8, 576),
            (BlockKind::Q8, 96),
        ] {
            let rows = 5;
            let blocks = rows * cols / 32;
            let m = Matrix {
                rows,
                cols,
                kind,
                q: (0..blocks * kind.block_bytes())
                    .map(|_| next() as u8)
                    .collect(),
                scale: (0..blocks)
                    .map(|_| (next() % (1 << 24)) as i32 - (1 << 23))
                    .collect(),
                offset: match kind {
                    BlockKind::Q4Offset => (0..blocks)
                        .map(|_| (next() % (1 << 24)) as i32 - (1 << 23))
                        .collect(),
                    BlockKind::Q8 => Vec::new(),
                },
            };
            let x: Vec<f32> = (0..cols)
                .map(|i| ((next() % 2001) as f32 - 1000.0) * if i % 97 == 0 { 3.0 } else { 0.01 })
                .collect();
            let mut a = QuantVec::default();
            a.quantize(&x);
            let want: Vec<i64> = (0..rows).map(|r| row_dot_scalar(&m, r, &a)).collect();
            for kernel in Kernel::available() {
                let mut out = vec![Vec::new()];
                matmul(kernel, &m, &[&a], &mut out);
                let got: Vec<f32> = want.iter().map(|&v| to_f32(v, &a)).collect();
                assert_eq!(out[0], got, "{kernel:?} {kind:?} {cols}");
            }
        }
    }
}
