//! One head's attention over one sequence's KV cache: integer scores (each key's 16-dimension
//! blocks weighted by their multipliers of its base scale), a softmax rounded to
//! integer weights, and the weighted sum of the int8 values computed exactly
//! (formats/PORTABLE.md, "One step of one sequence", step 2.3).
//!
//! The attended positions are read as runs of consecutive cache slots, so every loop walks
//! contiguous memory. Their order is free: the maximum and the integer sums it feeds do not
//! depend on it.

use std::ops::Range;

use super::kernels::Kernel;
use super::numerics::{
    exp_neg, pow2_f32, pow2_f64, quantize_head, round_to_i32, KEY_RANGE, KEY_SUB_BLOCK,
};

/// Attention weights are rounded to integers of this many fractional bits (the largest, e^0,
/// is exactly 2^15).
const PROB_BITS: i32 = 15;
/// Attention weights scaled by their value's scale are rounded to integers of this many
/// fractional bits of the window's largest value scale (so they fit 16 bits).
const VALUE_BITS: i32 = 14;

/// A run of consecutive cache slots a token attends to, and whether they hold sinks (scored
/// against the query rotated at the logical position).
pub type Run = (Range<usize>, bool);

/// The slots of one KV head of one sequence in one layer: `head_dim` int8 values per slot
/// and one power-of-two exponent per slot, for keys and for values, and for keys one
/// multiplier per 16 dimensions (`numerics::quantize_key`).
pub struct HeadCache<'a> {
    pub keys: &'a [i8],
    pub values: &'a [i8],
    pub key_exp: &'a [i16],
    pub value_exp: &'a [i16],
    pub key_mult: &'a [i16],
    pub head_dim: usize,
}

/// Buffers reused from head to head (one set per thread's run of work).
#[derive(Default)]
pub struct Scratch {
    rotated: Vec<f32>,
    query: Vec<i8>,
    sink_query: Vec<i8>,
    dots: Vec<i32>,
    scores: Vec<f64>,
    exps: Vec<f32>,
    weights: Vec<i32>,
    sums: Vec<i64>,
}

/// One head's output (`head_dim` values) over the runs `live` for `query`, its values before
/// rotation: `rotate(v, logical)` rotates them at the absolute position (scored against
/// non-sink keys) or at the logical one (against sinks, which never moved).
pub fn attend(
    kernel: Kernel,
    cache: &HeadCache,
    live: &[Run],
    query_values: &[f32],
    rotate: impl Fn(&mut [f32], bool),
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if kernel >= Kernel::Avx2 {
        /// The same code compiled for AVX2, so its element-wise loops run 8 lanes wide
        /// (each lane's IEEE operations are the scalar ones: no fused multiply-add).
        #[target_feature(enable = "avx2")]
        unsafe fn wide(
            cache: &HeadCache,
            live: &[Run],
            query_values: &[f32],
            rotate: impl Fn(&mut [f32], bool),
            scratch: &mut Scratch,
            out: &mut [f32],
        ) {
            attend_with(
                Kernel::Avx2,
                cache,
                live,
                query_values,
                rotate,
                scratch,
                out,
            )
        }
        // SAFETY: `Kernel::Avx2` and wider are only chosen where the CPU has AVX2.
        return unsafe { wide(cache, live, query_values, rotate, scratch, out) };
    }
    attend_with(kernel, cache, live, query_values, rotate, scratch, out)
}

#[inline(always)]
fn attend_with(
    kernel: Kernel,
    cache: &HeadCache,
    live: &[Run],
    query_values: &[f32],
    rotate: impl Fn(&mut [f32], bool),
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let hd = cache.head_dim;
    let Scratch {
        rotated,
        query,
        sink_query,
        dots,
        scores,
        exps,
        weights,
        sums,
    } = scratch;
    let mut quantized = |logical: bool, into: &mut Vec<i8>| {
        rotated.clear();
        rotated.extend_from_slice(query_values);
        rotate(rotated, logical);
        into.resize(hd, 0);
        quantize_head(rotated, into)
    };
    let e_query = quantized(false, query);
    let e_sink = if live.iter().any(|&(_, sink)| sink) {
        quantized(true, sink_query)
    } else {
        0
    };
    dots.clear();
    let subs = hd / KEY_SUB_BLOCK;
    for (run, sink) in live {
        let q = if *sink { &sink_query[..] } else { &query[..] };
        let keys = &cache.keys[run.start * hd..run.end * hd];
        let mults = &cache.key_mult[run.start * subs..run.end * subs];
        head_dots(kernel, q, keys, mults, dots);
    }
    // The loops below run over plain slices with no early exits so that they vectorize;
    // each element's arithmetic is the scalar definition's.
    let n = dots.len();
    scores.resize(n, 0.0);
    exps.resize(n, 0.0);
    weights.resize(n, 0);
    let mut at = 0;
    for (run, sink) in live {
        let e_q = if *sink { e_sink } else { e_query };
        let to = at + run.len();
        scores_of(
            &dots[at..to],
            &cache.key_exp[run.clone()],
            e_q,
            &mut scores[at..to],
        );
        at = to;
    }
    let top = max_finite(scores);
    let scale = 1.0 / (hd as f64).sqrt();
    for (e, &z) in exps.iter_mut().zip(scores.iter()) {
        *e = exp_neg(((z - top) * scale) as f32);
    }
    // The softmax's denominator: each weight rounded to 2^-15 (the largest is exactly 2^15).
    let total: i64 = exps
        .iter()
        .map(|&e| i64::from(round_to_i32(e * (1 << PROB_BITS) as f32)))
        .sum();
    // Each weight times its value's scale relative to the largest, rounded to 2^-14 of that
    // scale: at most 2^14, so weight × value is a 16-bit by 8-bit product.
    let top_exp = live
        .iter()
        .flat_map(|(run, _)| &cache.value_exp[run.clone()])
        .map(|&e| i32::from(e))
        .max()
        .unwrap_or(0);
    let mut at = 0;
    for (run, _) in live {
        let to = at + run.len();
        let value_exp = &cache.value_exp[run.clone()];
        for ((w, &e), &f) in weights[at..to].iter_mut().zip(&exps[at..to]).zip(value_exp) {
            let k = VALUE_BITS + i32::from(f) - top_exp;
            let rounded = round_to_i32(e * pow2_f32(k.max(-126)));
            *w = if k < -126 { 0 } else { rounded };
        }
        at = to;
    }
    sums.clear();
    sums.resize(hd, 0);
    let mut at = 0;
    for (run, _) in live {
        let values = &cache.values[run.start * hd..run.end * hd];
        value_sums(kernel, values, &weights[at..at + run.len()], sums);
        at += run.len();
    }
    for (o, &sum) in out.iter_mut().zip(sums.iter()) {
        *o = ((sum as f64 * pow2_f64(top_exp + PROB_BITS - VALUE_BITS)) / total as f64) as f32;
    }
}

/// z_j = (q·k_j) · 2^(e_q + β_kj), exact in f64.
#[inline(always)]
fn scores_of(dots: &[i32], key_exp: &[i16], e_q: i32, out: &mut [f64]) {
    for ((z, &dot), &e) in out.iter_mut().zip(dots).zip(key_exp) {
        *z = f64::from(dot) * pow2_f64(e_q + i32::from(e));
    }
}

/// The largest of finite values (−∞ for none), kept in four lanes so the loop vectorizes;
/// the maximum of a set does not depend on the order it is taken in.
#[inline(always)]
fn max_finite(values: &[f64]) -> f64 {
    let mut lanes = [f64::NEG_INFINITY; 4];
    let mut quads = values.chunks_exact(4);
    for quad in &mut quads {
        for (m, &v) in lanes.iter_mut().zip(quad) {
            *m = if v > *m { v } else { *m };
        }
    }
    let rest = quads.remainder().iter();
    lanes
        .into_iter()
        .chain(rest.copied())
        .fold(f64::NEG_INFINITY, |m, v| if v > m { v } else { m })
}

/// Appends Σ_b m_b · Σ_{t in b} q_t·k_t for each key of `keys` (consecutive keys of q's
/// length, each with one multiplier m_b per 16 dimensions in `mults`): exact integers, since
/// q's length is at most 256 and every m_b at most 2^KEY_RANGE.
fn head_dots(kernel: Kernel, query: &[i8], keys: &[i8], mults: &[i16], out: &mut Vec<i32>) {
    // The SIMD kernel reads the multipliers through pointers: their count is checked here.
    assert!(query.len() <= 256 && mults.len() * KEY_SUB_BLOCK == keys.len());
    debug_assert!(mults.iter().all(|&m| (1..=1 << KEY_RANGE).contains(&m)));
    #[cfg(target_arch = "x86_64")]
    if kernel >= Kernel::Avx2 && query.len().is_multiple_of(32) {
        // SAFETY: `Kernel::Avx2` and wider are only chosen where the CPU has AVX2.
        return unsafe { avx2::dots(query, keys, mults, out) };
    }
    let _ = kernel;
    let subs = query.len() / KEY_SUB_BLOCK;
    out.extend(
        keys.chunks_exact(query.len())
            .zip(mults.chunks_exact(subs))
            .map(|(k, m)| {
                query
                    .chunks_exact(KEY_SUB_BLOCK)
                    .zip(k.chunks_exact(KEY_SUB_BLOCK))
                    .zip(m)
                    .map(|((q, k), &m)| {
                        let dot = q
                            .iter()
                            .zip(k)
                            .map(|(&a, &b)| i32::from(a) * i32::from(b))
                            .sum::<i32>();
                        dot * i32::from(m)
                    })
                    .sum::<i32>()
            }),
    );
}

/// Adds Σ_j w_j · v_jt to `total[t]` for each dimension t over the consecutive values of
/// `values` (one per weight): exact integers (|w·v| < 2^21, so 32-bit partial sums of up to
/// 512 positions are carried into 64 bits).
fn value_sums(kernel: Kernel, values: &[i8], weights: &[i32], total: &mut [i64]) {
    let hd = total.len();
    #[cfg(target_arch = "x86_64")]
    if kernel >= Kernel::Avx2 && hd.is_multiple_of(16) && hd <= 256 {
        // SAFETY: `Kernel::Avx2` and wider are only chosen where the CPU has AVX2.
        return unsafe { avx2::value_sums(values, weights, total) };
    }
    let _ = kernel;
    let mut partial = vec![0i32; hd];
    for (n, (v, &w)) in values.chunks_exact(hd).zip(weights).enumerate() {
        for (a, &x) in partial.iter_mut().zip(v) {
            *a += w * i32::from(x);
        }
        if n % 512 == 511 {
            for (a, p) in total.iter_mut().zip(partial.iter_mut()) {
                *a += i64::from(std::mem::take(p));
            }
        }
    }
    for (a, p) in total.iter_mut().zip(&partial) {
        *a += i64::from(*p);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The attention's integer sums on AVX2: the same integers as the scalar loops, regrouped.

    use std::arch::x86_64::*;

    /// q·k over 32-byte pieces: |q| times k with q's signs (maddubs), pairs summed by madd
    /// with the multiplier of their 16-dimension sub-block (|q|, |k| ≤ 127, so no pair of
    /// products saturates 16 bits, and a pair times 2^8 fits 32); four keys at a time, their
    /// lanes folded together by horizontal adds.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dots(query: &[i8], keys: &[i8], mults: &[i16], out: &mut Vec<i32>) {
        let hd = query.len();
        let pieces = hd / 32;
        let mut q = [(_mm256_setzero_si256(), _mm256_setzero_si256()); 8];
        for (c, piece) in q.iter_mut().zip(query.chunks_exact(32)) {
            let v = _mm256_loadu_si256(piece.as_ptr() as *const __m256i);
            *c = (_mm256_sign_epi8(v, v), v);
        }
        let q = &q[..pieces];
        // A piece's two multipliers (one 32-bit load) spread over the 16-bit lanes of their
        // halves: bytes 0-1 to the low 128 bits, 2-3 to the high.
        let spread = _mm256_setr_epi8(
            0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, //
            2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
        );
        let dot = |k: *const i8, m: *const i16| {
            let mut acc = _mm256_setzero_si256();
            for (i, &(q_abs, q_signs)) in q.iter().enumerate() {
                let kv = _mm256_loadu_si256(k.add(i * 32) as *const __m256i);
                let pairs = _mm256_maddubs_epi16(q_abs, _mm256_sign_epi8(kv, q_signs));
                let two = (m.add(2 * i) as *const i32).read_unaligned();
                let mult = _mm256_shuffle_epi8(_mm256_set1_epi32(two), spread);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, mult));
            }
            acc
        };
        let n = keys.len() / hd;
        let subs = hd / 16;
        out.reserve(n);
        let (k, m) = (keys.as_ptr(), mults.as_ptr());
        let key = |j: usize| dot(k.add(j * hd), m.add(j * subs));
        let mut j = 0;
        while j + 4 <= n {
            let (a0, a1) = (key(j), key(j + 1));
            let (a2, a3) = (key(j + 2), key(j + 3));
            let h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
            let h = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            let mut four = [0i32; 4];
            _mm_storeu_si128(four.as_mut_ptr() as *mut __m128i, h);
            out.extend_from_slice(&four);
            j += 4;
        }
        for j in j..n {
            let acc = key(j);
            let s = _mm_add_epi32(
                _mm256_castsi256_si128(acc),
                _mm256_extracti128_si256(acc, 1),
            );
            let s = _mm_hadd_epi32(s, s);
            out.push(_mm_cvtsi128_si32(_mm_hadd_epi32(s, s)));
        }
    }

    /// Two positions at a time: their values interleaved as 16-bit pairs and multiplied by the
    /// pair of weights with madd, so each 32-bit lane gains w_j·v_jt + w_k·v_kt (< 2^22).
    #[target_feature(enable = "avx2")]
    pub unsafe fn value_sums(values: &[i8], weights: &[i32], total: &mut [i64]) {
        let hd = total.len();
        let pieces = hd / 16;
        // Per 16 dimensions: lanes of dims [0..4, 8..12] (lo) and [4..8, 12..16] (hi).
        let mut acc = [_mm256_setzero_si256(); 32];
        let acc = &mut acc[..2 * pieces];
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
        let n = weights.len();
        let v = values.as_ptr();
        let mut pairs = 0;
        let mut j = 0;
        while j < n {
            let (a, wa) = (v.add(j * hd), weights[j]);
            let (b, wb) = if j + 1 < n {
                (v.add((j + 1) * hd), weights[j + 1])
            } else {
                (a, 0)
            };
            let w = _mm256_set1_epi32((wa & 0xffff) | (wb << 16));
            for c in 0..pieces {
                let va = _mm256_cvtepi8_epi16(_mm_loadu_si128(a.add(c * 16) as *const __m128i));
                let vb = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(c * 16) as *const __m128i));
                let lo = _mm256_madd_epi16(_mm256_unpacklo_epi16(va, vb), w);
                let hi = _mm256_madd_epi16(_mm256_unpackhi_epi16(va, vb), w);
                acc[2 * c] = _mm256_add_epi32(acc[2 * c], lo);
                acc[2 * c + 1] = _mm256_add_epi32(acc[2 * c + 1], hi);
            }
            j += 2;
            pairs += 1;
            // 256 pairs add below 2^30 to a lane: carry before more could overflow it.
            if pairs == 256 {
                carry(acc, total);
                pairs = 0;
            }
        }
        carry(acc, total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attention's SIMD sums are the scalar integers, for several head sizes, for
    /// windows long enough to carry the 32-bit partial sums, for counts of keys that leave
    /// every remainder of the four-at-a-time loop, and at the largest magnitudes (head size
    /// 256, every value ±127, every key multiplier 2^8: the dot products' bound).
    #[test]
    fn attention_kernels_agree() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (hd, positions, extreme) in [
            (16, 7, false),
            (64, 1100, false),
            (64, 5, false),
            (128, 33, false),
            (128, 6, false),
            (256, 9, true),
        ] {
            let mut int8 = || match extreme {
                true => [127, -127][(next() % 2) as usize],
                false => ((next() % 255) as i8).max(-127),
            };
            let cache: Vec<i8> = (0..positions * hd).map(|_| int8()).collect();
            let q: Vec<i8> = match extreme {
                true => cache[..hd].to_vec(),
                false => (0..hd).map(|_| int8()).collect(),
            };
            let mults: Vec<i16> = (0..positions * hd / KEY_SUB_BLOCK)
                .map(|_| match extreme {
                    true => 1 << KEY_RANGE,
                    false => 1 + (next() % (1 << KEY_RANGE)) as i16,
                })
                .collect();
            let weights: Vec<i32> = (0..positions)
                .map(|_| (next() % (1 << 14 | 1)) as i32)
                .collect();
            let want_dots: Vec<i32> = (0..positions)
                .map(|j| {
                    let dot: i64 = (0..hd)
                        .map(|t| {
                            let m = mults[(j * hd + t) / KEY_SUB_BLOCK];
                            i64::from(q[t]) * i64::from(cache[j * hd + t]) * i64::from(m)
                        })
                        .sum();
                    i32::try_from(dot).expect("the bound holds")
                })
                .collect();
            if extreme {
                assert_eq!(want_dots[0], 256 * 127 * 127 * 256);
            }
            let want_sums: Vec<i64> = (0..hd)
                .map(|t| {
                    (0..positions)
                        .map(|j| i64::from(weights[j]) * i64::from(cache[j * hd + t]))
                        .sum()
                })
                .collect();
            for kernel in Kernel::available() {
                let mut dots = Vec::new();
                head_dots(kernel, &q, &cache, &mults, &mut dots);
                assert_eq!(dots, want_dots, "{kernel:?} {hd}");
                let mut sums = vec![0i64; hd];
                value_sums(kernel, &cache, &weights, &mut sums);
                assert_eq!(sums, want_sums, "{kernel:?} {hd}");
            }
        }
    }
}
