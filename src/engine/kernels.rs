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
#[cfg(test)]
use super::weights::BlockKind;
use super::weights::{Matrix, ROW_GROUP};

/// The instruction set a model's products run on. Chosen once per loaded model (no global),
/// so tests can run every kernel this machine has side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kernel {
    Scalar,
    /// x86-64 AVX2 (256-bit integer multiply-adds).
    Avx2,
    /// AVX2 with AVX-512 VNNI's 4-way byte dot products on 256-bit registers (`vpdpbusd`,
    /// AVX512-VL): the matrix products in half the instructions; the rest as `Avx2`.
    Avx2Vnni,
}

impl Kernel {
    /// The widest kernel this CPU runs.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            if std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return Kernel::Avx2Vnni;
            }
            return Kernel::Avx2;
        }
        Kernel::Scalar
    }

    /// Every kernel this CPU runs, narrowest first.
    pub fn available() -> Vec<Self> {
        [Kernel::Scalar, Kernel::Avx2, Kernel::Avx2Vnni]
            .into_iter()
            .filter(|&k| k <= Self::detect())
            .collect()
    }
}

/// Row `row` of `m` times `a` as the exact integer above; its value is this times
/// 2^(a.base − 24). The definition every other kernel must reproduce.
pub fn row_dot_scalar(m: &Matrix, row: usize, a: &QuantVec) -> i64 {
    let mut acc = 0i64;
    for b in 0..m.blocks_per_row() {
        let x = &a.q[b * ACT_BLOCK..][..ACT_BLOCK];
        let halves = m.kind.scales();
        let len = ACT_BLOCK / halves;
        for h in 0..halves {
            let dot: i64 = (h * len..(h + 1) * len)
                .map(|j| i64::from(m.q_at(row, b, j)) * i64::from(x[j]))
                .sum();
            let d = m.scale_at(row, b, h);
            acc = acc.wrapping_add(d.wrapping_mul(dot << a.shift[b]));
        }
        acc = acc.wrapping_add(m.offset_at(row, b).wrapping_mul(a.sum[b]));
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

/// Row groups per parallel task.
const TILE_GROUPS: usize = 4;

/// Sequences from which a VNNI group runs the sequences-in-lanes kernel (SmolLM2, 2 KB
/// chunks: 25% faster in a group of 16, no faster in a group of 4).
#[cfg(target_arch = "x86_64")]
const SEQ_LANES_FROM: usize = 8;

/// Several matrices times the same activation vectors: `result[i][s] = ms[i] · acts[s]`. The
/// matrices' row groups are cut into tiles spread over threads together (one parallel
/// section, not one per matrix: with a single sequence the sections are short and their
/// start-up counts); each tile is computed for every sequence while its weights are in cache.
/// Rows are independent, so the split changes nothing.
pub fn matmuls<const N: usize>(
    kernel: Kernel,
    ms: [&Matrix; N],
    acts: &[&QuantVec],
) -> [Vec<Vec<f32>>; N] {
    use rayon::prelude::*;
    let n = acts.len();
    let tiles: Vec<(usize, usize)> = ms
        .iter()
        .enumerate()
        .flat_map(|(i, m)| (0..m.row_groups().div_ceil(TILE_GROUPS)).map(move |t| (i, t)))
        .collect();
    let products = Products::new(kernel, acts);
    let parts: Vec<Vec<f32>> = tiles
        .par_iter()
        .map(|&(i, t)| {
            let m = ms[i];
            let groups = t * TILE_GROUPS..((t + 1) * TILE_GROUPS).min(m.row_groups());
            let rows = groups.start * ROW_GROUP..(groups.end * ROW_GROUP).min(m.rows);
            let mut part = vec![0.0f32; rows.len() * n];
            let mut sums = vec![[0i64; ROW_GROUP]; n];
            for g in groups {
                products.row_group(m, g, &mut sums);
                for (s, (group_sums, a)) in sums.iter().zip(acts).enumerate() {
                    for (i, &sum) in group_sums.iter().enumerate() {
                        let row = g * ROW_GROUP + i;
                        if row < rows.end {
                            part[s * rows.len() + row - rows.start] = to_f32(sum, a);
                        }
                    }
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

/// One set of activation vectors ready for a kernel's row-group products: for a VNNI group,
/// also laid out with sequences across the lanes.
struct Products<'a> {
    kernel: Kernel,
    acts: &'a [&'a QuantVec],
    #[cfg(target_arch = "x86_64")]
    lanes: Option<avx2::SeqLanes>,
}

impl<'a> Products<'a> {
    fn new(kernel: Kernel, acts: &'a [&'a QuantVec]) -> Self {
        Self {
            kernel,
            acts,
            // A group on VNNI: each row's weights meet eight sequences' activations per
            // instruction.
            #[cfg(target_arch = "x86_64")]
            lanes: (kernel == Kernel::Avx2Vnni && acts.len() >= SEQ_LANES_FROM)
                .then(|| avx2::SeqLanes::new(acts)),
        }
    }

    /// Row group `g` of `m` times every activation vector, as exact integers: `sums[s][i]`
    /// for row `g · ROW_GROUP + i` (0 for a padded row).
    fn row_group(&self, m: &Matrix, g: usize, sums: &mut [[i64; ROW_GROUP]]) {
        let acts = self.acts;
        match self.kernel {
            Kernel::Scalar => {
                for (s, a) in sums.iter_mut().zip(acts) {
                    for (i, v) in s.iter_mut().enumerate() {
                        let row = g * ROW_GROUP + i;
                        *v = if row < m.rows {
                            row_dot_scalar(m, row, a)
                        } else {
                            0
                        };
                    }
                }
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kernel::Avx2` is only chosen where the CPU has AVX2 (`detect`).
            Kernel::Avx2 => unsafe { avx2::group_dots(m, g, acts, sums) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kernel::Avx2Vnni` is only chosen where the CPU has AVX2, AVX512-VNNI
            // and AVX512-VL (`detect`).
            Kernel::Avx2Vnni => unsafe {
                match &self.lanes {
                    Some(lanes) => avx2::group_dots_lanes(m, g, lanes, sums),
                    _ => avx2::group_dots_vnni(m, g, acts, sums),
                }
            },
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 | Kernel::Avx2Vnni => {
                unreachable!("AVX2 is never detected off x86-64")
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! Eight rows at a time (one row group): each 32-bit lane of a register holds four
    //! consecutive values of one row, multiplied by the same four activations broadcast to
    //! every lane (maddubs), so a block's eight row sums build up lane by lane with no
    //! horizontal additions. Each is then shifted by the block's activation shift and
    //! multiplied by its row's scale into 64-bit lanes (even rows, odd rows).
    //! Left shifts and integer sums commute, so this is the scalar kernel regrouped.
    //!
    //! With AVX-512 VNNI (on 256-bit registers, AVX512-VL) `vpdpbusd` sums four unsigned
    //! bytes times four signed bytes into each 32-bit lane in one instruction, exactly (no
    //! saturation), where AVX2 needs maddubs, an add and a widening madd; the same code is
    //! compiled for both (`VNNI`).
    //!
    //! A group on VNNI turns this around (`group_dots_lanes`): sequences across the lanes, so
    //! that a weight register, unpacked once, is shuffled row by row against eight
    //! sequences' activations, and only the scales' epilogue runs per sequence.

    use std::arch::x86_64::*;

    use super::super::numerics::{QuantVec, ACT_BLOCK, GROUP_BLOCKS};
    use super::super::weights::{BlockKind, Matrix, ROW_GROUP, SUPER_BLOCKS};

    /// Row group `g` of `m` times every activation vector, into `sums`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn group_dots(m: &Matrix, g: usize, acts: &[&QuantVec], sums: &mut [[i64; 8]]) {
        group_dots_with::<false>(m, g, acts, sums)
    }

    /// `group_dots` with VNNI's dot products.
    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    pub unsafe fn group_dots_vnni(m: &Matrix, g: usize, acts: &[&QuantVec], sums: &mut [[i64; 8]]) {
        group_dots_with::<true>(m, g, acts, sums)
    }

    #[inline(always)]
    unsafe fn group_dots_with<const VNNI: bool>(
        m: &Matrix,
        g: usize,
        acts: &[&QuantVec],
        sums: &mut [[i64; 8]],
    ) {
        for (a, sum) in acts.iter().zip(sums) {
            let grouped = a.group == GROUP_BLOCKS;
            *sum = match m.kind {
                BlockKind::Q4K if grouped => group_dot_k_grouped::<VNNI, false>(m, g, a),
                BlockKind::Q6K if grouped => group_dot_k_grouped::<VNNI, true>(m, g, a),
                BlockKind::Q4Offset => group_dot_q4::<VNNI, false>(m, g, a),
                BlockKind::Q4K => group_dot_q4::<VNNI, true>(m, g, a),
                BlockKind::Q8 => group_dot_q8::<VNNI>(m, g, a),
                BlockKind::Q6K => group_dot_q6k::<VNNI>(m, g, a),
            };
        }
    }

    /// Four activations (one i32's bytes) in every lane.
    #[inline(always)]
    unsafe fn broadcast4(x: *const i8) -> __m256i {
        _mm256_set1_epi32(std::ptr::read_unaligned(x as *const i32))
    }

    /// Eight bytes, one per row of the group, widened to 32-bit lanes: unsigned or signed.
    #[inline(always)]
    unsafe fn widen8<const SIGNED: bool>(p: *const u8) -> __m256i {
        let v = _mm_loadl_epi64(p as *const __m128i);
        if SIGNED {
            _mm256_cvtepi8_epi32(v)
        } else {
            _mm256_cvtepu8_epi32(v)
        }
    }

    /// The unsigned operands of nibble register `c` (0..4) of a 4-bit unit at `w`: values
    /// 8c..8c + 4 and 8c + 4..8c + 8 of each row, one byte each. With `SIX` (Q6_K) each is
    /// topped with its two bits from byte 128 + 32·(c/2), at bit 4·(c mod 2) and above
    /// (`Matrix::q`), giving 0..=63.
    #[inline(always)]
    unsafe fn unpack<const SIX: bool>(w: *const u8, c: usize) -> (__m256i, __m256i) {
        let nibble = _mm256_set1_epi8(0x0f);
        let v = _mm256_loadu_si256(w.add(32 * c) as *const __m256i);
        let lo = _mm256_and_si256(v, nibble);
        let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
        if !SIX {
            return (lo, hi);
        }
        let top = _mm256_set1_epi8(0x30);
        let bits = _mm256_loadu_si256(w.add(128 + 32 * (c / 2)) as *const __m256i);
        let bits = if c.is_multiple_of(2) {
            bits
        } else {
            _mm256_srli_epi16(bits, 4)
        };
        (
            _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(bits, 4), top)),
            _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(bits, 2), top)),
        )
    }

    /// A K-quant block's eight row scales: the super-block's number times the block's
    /// multiplier in each 32-bit lane (exact: `weights` refuses products beyond 32 bits).
    #[inline(always)]
    unsafe fn k_scales<const SIGNED: bool>(numbers: &[i32], at: usize, sub: *const u8) -> __m256i {
        let d = _mm256_loadu_si256(numbers.as_ptr().add(at) as *const __m256i);
        _mm256_mullo_epi32(d, widen8::<SIGNED>(sub))
    }

    /// Adds `d · v` lane by lane (32-bit v and d, 64-bit products) to the even- and odd-row
    /// accumulators.
    #[inline(always)]
    unsafe fn scale_add(v: __m256i, d: __m256i, even: &mut __m256i, odd: &mut __m256i) {
        *even = _mm256_add_epi64(*even, _mm256_mul_epi32(v, d));
        let (v_odd, d_odd) = (_mm256_srli_epi64(v, 32), _mm256_srli_epi64(d, 32));
        *odd = _mm256_add_epi64(*odd, _mm256_mul_epi32(v_odd, d_odd));
    }

    #[inline(always)]
    unsafe fn lanes(even: __m256i, odd: __m256i) -> [i64; 8] {
        let (mut e, mut o) = ([0i64; 4], [0i64; 4]);
        _mm256_storeu_si256(e.as_mut_ptr() as *mut __m256i, even);
        _mm256_storeu_si256(o.as_mut_ptr() as *mut __m256i, odd);
        [e[0], o[0], e[1], o[1], e[2], o[2], e[3], o[3]]
    }

    /// Q4_1 and Q4_K (`K`): the nibbles (0..=15) are the unsigned operand (`q4_block_dots`).
    /// Q4_K's block scales and offsets are formed from the super-block's numbers and the
    /// block's bytes.
    #[inline(always)]
    unsafe fn group_dot_q4<const VNNI: bool, const K: bool>(
        m: &Matrix,
        g: usize,
        a: &QuantVec,
    ) -> [i64; 8] {
        let blocks = m.blocks_per_row();
        let unit_bytes = ROW_GROUP * 16;
        let (mut even, mut odd) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for b in 0..blocks {
            let unit = g * blocks + b;
            let w = m.q.as_ptr().add(unit * unit_bytes);
            prefetch_ahead(w, unit_bytes);
            let block = q4_block_dots::<VNNI>(w, a.q.as_ptr().add(b * ACT_BLOCK));
            let shift = _mm_cvtsi32_si128(a.shift[b] as i32);
            // |block sum| ≤ 32·15·127 shifted by ≤ 12: below 2^31.
            let dots = _mm256_sll_epi32(block, shift);
            let (d, o) = if K {
                let at = (g * (blocks / SUPER_BLOCKS) + b / SUPER_BLOCKS) * ROW_GROUP;
                let sub = m.sub.as_ptr().add(unit * 2 * ROW_GROUP);
                (
                    k_scales::<false>(&m.scale, at, sub),
                    k_scales::<false>(&m.offset, at, sub.add(ROW_GROUP)),
                )
            } else {
                let at = unit * ROW_GROUP;
                (
                    _mm256_loadu_si256(m.scale.as_ptr().add(at) as *const __m256i),
                    _mm256_loadu_si256(m.offset.as_ptr().add(at) as *const __m256i),
                )
            };
            scale_add(dots, d, &mut even, &mut odd);
            // Offsets times the block's shifted activation sum (below 2^31: 32·127·2^12).
            scale_add(_mm256_set1_epi32(a.sum[b] as i32), o, &mut even, &mut odd);
        }
        lanes(even, odd)
    }

    /// Q8 blocks, stored as q + 128: with VNNI the unsigned operand as is, 128·Σ a taken off
    /// the block's sum; without, back to signed q, then |q| times the activations given q's
    /// signs (a pair of products at most 2·128·127 = 32,512, so each maddubs is widened by
    /// madd at once and the sums gather in 32 bits).
    #[inline(always)]
    unsafe fn group_dot_q8<const VNNI: bool>(m: &Matrix, g: usize, a: &QuantVec) -> [i64; 8] {
        let blocks = m.blocks_per_row();
        let unit_bytes = ROW_GROUP * 32;
        let ones = _mm256_set1_epi16(1);
        let (mut even, mut odd) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for b in 0..blocks {
            let unit = g * blocks + b;
            let w = m.q.as_ptr().add(unit * unit_bytes);
            prefetch_ahead(w, unit_bytes);
            let x = a.q.as_ptr().add(b * ACT_BLOCK);
            let mut acc = _mm256_setzero_si256();
            for c in 0..8 {
                // The weights are stored as q + 128 (`Matrix::q`).
                let v = _mm256_loadu_si256(w.add(32 * c) as *const __m256i);
                let x4 = broadcast4(x.add(4 * c));
                acc = if VNNI {
                    _mm256_dpbusd_epi32(acc, v, x4)
                } else {
                    // 255·127·2 overflows vpmaddubsw's 16 bits: back to q, then |q| and the
                    // activation's sign moved onto q's (128·127·2 fits).
                    let v = _mm256_xor_si256(v, _mm256_set1_epi8(-128));
                    let ax = _mm256_sign_epi8(x4, v);
                    let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(v), ax);
                    _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones))
                };
            }
            if VNNI {
                // Σ (q + 128)·a − 128·Σ a.
                let raw_sum = (a.sum[b] >> a.shift[b]) as i32;
                acc = _mm256_sub_epi32(acc, _mm256_set1_epi32(raw_sum << 7));
            }
            // |sum| ≤ 32·128·127 = 520,192, shifted by ≤ 12: below 2^31.
            let dots = _mm256_sll_epi32(acc, _mm_cvtsi32_si128(a.shift[b] as i32));
            let d = _mm256_loadu_si256(m.scale.as_ptr().add(unit * ROW_GROUP) as *const __m256i);
            scale_add(dots, d, &mut even, &mut odd);
        }
        lanes(even, odd)
    }

    /// Q6_K: each value's low nibble and top two bits joined into 0..=63 (q + 32), the
    /// unsigned operand, half a block at a time (`q6k_half_dots`).
    #[inline(always)]
    unsafe fn group_dot_q6k<const VNNI: bool>(m: &Matrix, g: usize, a: &QuantVec) -> [i64; 8] {
        let blocks = m.blocks_per_row();
        let unit_bytes = ROW_GROUP * 24;
        let (mut even, mut odd) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for b in 0..blocks {
            let unit = g * blocks + b;
            let w = m.q.as_ptr().add(unit * unit_bytes);
            prefetch_ahead(w, unit_bytes);
            let x = a.q.as_ptr().add(b * ACT_BLOCK);
            let shift = _mm_cvtsi32_si128(a.shift[b] as i32);
            let at = (g * (blocks / SUPER_BLOCKS) + b / SUPER_BLOCKS) * ROW_GROUP;
            let sub = m.sub.as_ptr().add(unit * 2 * ROW_GROUP);
            for h in 0..2 {
                // |Σ q·a| ≤ 16·32·127 shifted by ≤ 12: below 2^31.
                let dots = _mm256_sll_epi32(q6k_half_dots::<VNNI>(w, x, a, b, h), shift);
                let d = k_scales::<true>(&m.scale, at, sub.add(h * ROW_GROUP));
                scale_add(dots, d, &mut even, &mut odd);
            }
        }
        lanes(even, odd)
    }

    /// One Q4_1 or Q4_K block's eight row sums Σ q·x (the unit at `w`, the block's
    /// activations at `x`). A pair of products is at most 2·15·127 = 3,810 and each 16-bit
    /// lane gathers 8 pairs (30,480), so without VNNI the block sums in 16 bits before one
    /// madd widens it.
    #[inline(always)]
    unsafe fn q4_block_dots<const VNNI: bool>(w: *const u8, x: *const i8) -> __m256i {
        let mut acc = _mm256_setzero_si256();
        for c in 0..4 {
            let (lo, hi) = unpack::<false>(w, c);
            let (x_lo, x_hi) = (broadcast4(x.add(8 * c)), broadcast4(x.add(8 * c + 4)));
            if VNNI {
                acc = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(acc, lo, x_lo), hi, x_hi);
            } else {
                acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(lo, x_lo));
                acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(hi, x_hi));
            }
        }
        if VNNI {
            acc
        } else {
            _mm256_madd_epi16(acc, _mm256_set1_epi16(1))
        }
    }

    /// Half `h` of a Q6_K block's eight row sums Σ q·x with q in −32..32: Σ (q + 32)·x, then
    /// 32 times the half's activation sum taken off. A pair of products is at most
    /// 2·63·127 = 16,002, so without VNNI two maddubs add in 16 bits before a madd widens them.
    #[inline(always)]
    unsafe fn q6k_half_dots<const VNNI: bool>(
        w: *const u8,
        x: *const i8,
        a: &QuantVec,
        b: usize,
        h: usize,
    ) -> __m256i {
        let mut acc = _mm256_setzero_si256();
        for c in 2 * h..2 * h + 2 {
            let (lo, hi) = unpack::<true>(w, c);
            let (x_lo, x_hi) = (broadcast4(x.add(8 * c)), broadcast4(x.add(8 * c + 4)));
            if VNNI {
                acc = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(acc, lo, x_lo), hi, x_hi);
            } else {
                let pairs = _mm256_add_epi16(
                    _mm256_maddubs_epi16(lo, x_lo),
                    _mm256_maddubs_epi16(hi, x_hi),
                );
                let ones = _mm256_set1_epi16(1);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
            }
        }
        _mm256_sub_epi32(acc, _mm256_set1_epi32(a.half_sum[2 * b + h] << 5))
    }

    /// How far ahead of its products a kernel prefetches the weights.
    const PREFETCH_UNITS: usize = 16;

    /// Asks for the weight unit `PREFETCH_UNITS` ahead of the one at `w` (units of a row group
    /// lie in order, and row groups one after the other): a chunk alone streams the weights
    /// from memory, and the hardware's prefetchers alone left it waiting on them (SmolLM2
    /// alone: 105–107 tokens/s without, 142 with; docs/results.md).
    #[inline(always)]
    unsafe fn prefetch_ahead(w: *const u8, unit_bytes: usize) {
        let ahead = w.wrapping_add(PREFETCH_UNITS * unit_bytes);
        for line in (0..unit_bytes).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
        }
    }

    /// Q4_K or Q6_K (`SIX`) times a vector in super-block exponent groups (`nzip portable
    /// 3`), as `quads_dot_grouped` for one sequence: per super-block, each block's row sums
    /// shifted by t_b ≤ 3 above the group's smallest shift S, times their 6- or 8-bit
    /// multipliers in 32 bits (bounds there), then times D (and the minimums' sum times
    /// −Dmin) into 64 bits and shifted by S once.
    #[inline(always)]
    unsafe fn group_dot_k_grouped<const VNNI: bool, const SIX: bool>(
        m: &Matrix,
        g: usize,
        a: &QuantVec,
    ) -> [i64; 8] {
        let blocks = m.blocks_per_row();
        let unit_bytes = ROW_GROUP * m.kind.block_bytes();
        let zero = _mm256_setzero_si256();
        let (mut even, mut odd) = (zero, zero);
        for sb in 0..blocks / SUPER_BLOCKS {
            let group = sb * SUPER_BLOCKS..(sb + 1) * SUPER_BLOCKS;
            let base = *a.shift[group.clone()].iter().min().expect("a whole group");
            let (mut scaled, mut mins) = (zero, zero);
            for b in group {
                let unit = g * blocks + b;
                let w = m.q.as_ptr().add(unit * unit_bytes);
                let x = a.q.as_ptr().add(b * ACT_BLOCK);
                let sub = m.sub.as_ptr().add(unit * 2 * ROW_GROUP);
                let rel = _mm_cvtsi32_si128((a.shift[b] - base) as i32);
                prefetch_ahead(w, unit_bytes);
                if SIX {
                    for h in 0..2 {
                        let p = _mm256_sll_epi32(q6k_half_dots::<VNNI>(w, x, a, b, h), rel);
                        let c = widen8::<true>(sub.add(h * ROW_GROUP));
                        scaled = _mm256_add_epi32(scaled, _mm256_mullo_epi32(p, c));
                    }
                } else {
                    let p = _mm256_sll_epi32(q4_block_dots::<VNNI>(w, x), rel);
                    let c = widen8::<false>(sub);
                    scaled = _mm256_add_epi32(scaled, _mm256_mullo_epi32(p, c));
                    // σ_b >> S = ((Σ q) << s_b) >> S = (Σ q) << t_b, exactly.
                    let sum = _mm256_set1_epi32((a.sum[b] >> base) as i32);
                    let mn = widen8::<false>(sub.add(ROW_GROUP));
                    mins = _mm256_add_epi32(mins, _mm256_mullo_epi32(sum, mn));
                }
            }
            let at = (g * (blocks / SUPER_BLOCKS) + sb) * ROW_GROUP;
            let (mut e, mut o) = (zero, zero);
            let d = _mm256_loadu_si256(m.scale.as_ptr().add(at) as *const __m256i);
            scale_add(scaled, d, &mut e, &mut o);
            if !SIX {
                let min = _mm256_loadu_si256(m.offset.as_ptr().add(at) as *const __m256i);
                scale_add(mins, min, &mut e, &mut o);
            }
            let base = _mm_cvtsi32_si128(base as i32);
            even = _mm256_add_epi64(even, _mm256_sll_epi64(e, base));
            odd = _mm256_add_epi64(odd, _mm256_sll_epi64(o, base));
        }
        lanes(even, odd)
    }

    /// A group's activations laid out for `group_dots_lanes`: sequences across the lanes.
    /// Sequences go in quads; a register holds one quad's four sequences twice (low and high
    /// 128 bits), so that an in-lane shuffle of a weight register, which puts row r's four
    /// bytes in the low half and row r + 4's in the high half, meets all four sequences.
    pub struct SeqLanes {
        seqs: usize,
        quads: usize,
        blocks: usize,
        /// Per (block, value quad 0..8, sequence quad): eight i32 lanes, each four activations.
        x: Vec<i32>,
        /// Per (block, sequence quad): the activation shift, eight lanes.
        shift: Vec<i32>,
        /// Per (block, sequence quad): the block's shifted activation sum (below 2^31:
        /// 32·127·2^12), eight lanes.
        sum: Vec<i32>,
        /// Per (block, half, sequence quad): 32 times the half's activation sum (Q6_K).
        half_sum: Vec<i32>,
        /// Blocks per exponent group of every sequence's vector (1 where they differ).
        group: usize,
        /// With groups of `GROUP_BLOCKS`: per (super-block, sequence quad) the group's
        /// smallest shift, per (block, sequence quad) the block's shift above it (0..=3), and
        /// per (block pair, sequence quad) the two blocks' activation sums shifted by theirs,
        /// as the low and high 16 bits of each lane (|Σ q| ≤ 32·127, << 3: below 2^15).
        group_shift: Vec<i32>,
        rel_shift: Vec<i32>,
        rel_sum_pairs: Vec<i32>,
    }

    impl SeqLanes {
        pub fn new(acts: &[&QuantVec]) -> Self {
            let seqs = acts.len();
            let quads = seqs.div_ceil(4);
            let blocks = acts[0].shift.len();
            let mut x = vec![0i32; blocks * 8 * quads * 8];
            let mut shift = vec![0i32; blocks * quads * 8];
            let mut sum = vec![0i32; blocks * quads * 8];
            let mut half_sum = vec![0i32; blocks * 2 * quads * 8];
            let group = if acts.iter().all(|a| a.group == acts[0].group) {
                acts[0].group
            } else {
                1
            };
            let grouped = group == GROUP_BLOCKS;
            let (mut group_shift, mut rel_shift, mut rel_sum_pairs) = if grouped {
                let per_block = blocks * quads * 8;
                (
                    vec![0; per_block / GROUP_BLOCKS],
                    vec![0; per_block],
                    vec![0; per_block / 2],
                )
            } else {
                Default::default()
            };
            for (s, a) in acts.iter().enumerate() {
                for b in 0..blocks {
                    for lane in [s % 4, 4 + s % 4] {
                        for v in 0..8 {
                            let four = &a.q[b * ACT_BLOCK + 4 * v..][..4];
                            let word = i32::from_le_bytes(std::array::from_fn(|t| four[t] as u8));
                            x[((b * 8 + v) * quads + s / 4) * 8 + lane] = word;
                        }
                        shift[(b * quads + s / 4) * 8 + lane] = a.shift[b] as i32;
                        sum[(b * quads + s / 4) * 8 + lane] = a.sum[b] as i32;
                        if grouped {
                            let g = b / GROUP_BLOCKS;
                            let base = a.shift[g * GROUP_BLOCKS..][..GROUP_BLOCKS].iter().min();
                            let base = *base.expect("a whole group") as i32;
                            let rel = a.shift[b] as i32 - base;
                            group_shift[(g * quads + s / 4) * 8 + lane] = base;
                            rel_shift[(b * quads + s / 4) * 8 + lane] = rel;
                            let raw = a.sum[b] >> a.shift[b];
                            let rel_sum = i16::try_from(raw << rel).expect("below 2^15");
                            let half = 16 * (b % 2);
                            rel_sum_pairs[((b / 2) * quads + s / 4) * 8 + lane] |=
                                i32::from(rel_sum as u16) << half;
                        }
                        for h in 0..2 {
                            half_sum[((b * 2 + h) * quads + s / 4) * 8 + lane] =
                                a.half_sum[2 * b + h] << 5;
                        }
                    }
                }
            }
            Self {
                seqs,
                quads,
                blocks,
                x,
                shift,
                sum,
                half_sum,
                group,
                group_shift,
                rel_shift,
                rel_sum_pairs,
            }
        }
    }

    /// `quads_dot`'s block kinds.
    const Q4_1: u8 = 0;
    const Q4_K: u8 = 1;
    const Q8_0: u8 = 2;
    const Q6_K: u8 = 3;

    /// Row group `g` of `m` times every sequence of `lanes`, into `sums`: the same integers as
    /// `group_dots`, computed with each weight register unpacked once for up to eight
    /// sequences.
    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    pub unsafe fn group_dots_lanes(m: &Matrix, g: usize, lanes: &SeqLanes, sums: &mut [[i64; 8]]) {
        // The loads below are unchecked: the activations must be the matrix's width.
        assert_eq!(
            lanes.blocks,
            m.blocks_per_row(),
            "activations of another width"
        );
        assert!(sums.len() >= lanes.seqs);
        let mut q = 0;
        while q < lanes.quads {
            // Two quads at once where there are two (four: no faster on Zen 4).
            if lanes.quads - q >= 2 {
                quads_of::<2>(m, g, lanes, q, sums);
                q += 2;
            } else {
                quads_of::<1>(m, g, lanes, q, sums);
                q += 1;
            }
        }
    }

    /// QUADS sequence quads from quad `q` by `m`'s block kind.
    #[inline(always)]
    unsafe fn quads_of<const QUADS: usize>(
        m: &Matrix,
        g: usize,
        lanes: &SeqLanes,
        q: usize,
        sums: &mut [[i64; 8]],
    ) {
        let grouped = lanes.group == GROUP_BLOCKS;
        match m.kind {
            BlockKind::Q4K if grouped => quads_dot_grouped::<QUADS, Q4_K>(m, g, lanes, q, sums),
            BlockKind::Q6K if grouped => quads_dot_grouped::<QUADS, Q6_K>(m, g, lanes, q, sums),
            BlockKind::Q4Offset => quads_dot::<QUADS, Q4_1>(m, g, lanes, q, sums),
            BlockKind::Q4K => quads_dot::<QUADS, Q4_K>(m, g, lanes, q, sums),
            BlockKind::Q8 => quads_dot::<QUADS, Q8_0>(m, g, lanes, q, sums),
            BlockKind::Q6K => quads_dot::<QUADS, Q6_K>(m, g, lanes, q, sums),
        }
    }

    /// The `at`-th run of eight i32 lanes of `v`.
    #[inline(always)]
    unsafe fn eight(v: &[i32], at: usize) -> __m256i {
        debug_assert!(v.len() >= 8 * (at + 1));
        _mm256_loadu_si256(v.as_ptr().add(8 * at) as *const __m256i)
    }

    /// Lane r (and r + 4) of every 128-bit half in all four of its 32-bit lanes.
    #[inline(always)]
    unsafe fn row_pair(v: __m256i, r: usize) -> __m256i {
        match r {
            0 => _mm256_shuffle_epi32::<0x00>(v),
            1 => _mm256_shuffle_epi32::<0x55>(v),
            2 => _mm256_shuffle_epi32::<0xaa>(v),
            _ => _mm256_shuffle_epi32::<0xff>(v),
        }
    }

    /// Value quads per pass over a block's weights, and passes: Q6_K's halves each have their
    /// scale.
    const fn passes(kind: u8) -> (usize, usize) {
        match kind {
            Q6_K => (2, 4),
            _ => (1, 8),
        }
    }

    /// Pass `h` over block `b` of a KIND unit at `w` for QUADS sequence quads from `q0`: per
    /// row pair r (rows r and r + 4) and quad, one register of 32-bit dot products (lanes 0..4
    /// row r, 4..8 row r + 4, each a sequence of the quad).
    #[inline(always)]
    unsafe fn pass_dots<const QUADS: usize, const KIND: u8>(
        w: *const u8,
        lanes: &SeqLanes,
        b: usize,
        h: usize,
        q0: usize,
    ) -> [[__m256i; QUADS]; 4] {
        let quads = lanes.quads;
        let zero = _mm256_setzero_si256();
        let quads_per_pass = passes(KIND).1;
        let mut acc = [[zero; QUADS]; 4];
        // Two value quads per step: a 4-bit register's nibbles, or two Q8 registers.
        for step in 0..quads_per_pass / 2 {
            let vq = h * quads_per_pass + 2 * step;
            let (mut x_a, mut x_b) = ([zero; QUADS], [zero; QUADS]);
            for k in 0..QUADS {
                x_a[k] = eight(&lanes.x, (b * 8 + vq) * quads + q0 + k);
                x_b[k] = eight(&lanes.x, (b * 8 + vq + 1) * quads + q0 + k);
            }
            if KIND == Q8_0 {
                // q + 128, unsigned (`Matrix::q`): the caller takes 128·Σ a off.
                for (i, x) in [x_a, x_b].iter().enumerate() {
                    let v = _mm256_loadu_si256(w.add(32 * (vq + i)) as *const __m256i);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let wv = row_pair(v, r);
                        for (acc, &x) in acc.iter_mut().zip(x) {
                            *acc = _mm256_dpbusd_epi32(*acc, wv, x);
                        }
                    }
                }
                continue;
            }
            let (lo, hi) = if KIND == Q6_K {
                unpack::<true>(w, vq / 2)
            } else {
                unpack::<false>(w, vq / 2)
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                let (l, u) = (row_pair(lo, r), row_pair(hi, r));
                for k in 0..QUADS {
                    acc[k] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(acc[k], l, x_a[k]), u, x_b[k]);
                }
            }
        }
        acc
    }

    /// QUADS sequence quads from quad `q0` of a KIND matrix, into their rows of `sums`. Per
    /// block (per half block for Q6_K), the dot products (`pass_dots`), shifted per sequence
    /// and times the rows' scales into 64-bit totals (even lanes, odd lanes), as `group_dots`
    /// does row by row.
    #[inline(always)]
    unsafe fn quads_dot<const QUADS: usize, const KIND: u8>(
        m: &Matrix,
        g: usize,
        lanes: &SeqLanes,
        q0: usize,
        sums: &mut [[i64; 8]],
    ) {
        let blocks = m.blocks_per_row();
        let unit_bytes = ROW_GROUP * m.kind.block_bytes();
        let quads = lanes.quads;
        let zero = _mm256_setzero_si256();
        let mut even = [[zero; QUADS]; 4];
        let mut odd = [[zero; QUADS]; 4];
        for b in 0..blocks {
            let unit = g * blocks + b;
            let w = m.q.as_ptr().add(unit * unit_bytes);
            prefetch_ahead(w, unit_bytes);
            let at = (g * (blocks / SUPER_BLOCKS) + b / SUPER_BLOCKS) * ROW_GROUP;
            // Only K-quants have `sub` (wrapping: no pointer past an empty one is formed).
            let sub = m.sub.as_ptr().wrapping_add(unit * 2 * ROW_GROUP);
            for h in 0..passes(KIND).0 {
                let acc = pass_dots::<QUADS, KIND>(w, lanes, b, h, q0);
                // The rows' scales (and offsets) of this block or half block.
                let (d, o) = match KIND {
                    Q4_1 => (
                        _mm256_loadu_si256(m.scale.as_ptr().add(unit * ROW_GROUP) as *const __m256i),
                        _mm256_loadu_si256(
                            m.offset.as_ptr().add(unit * ROW_GROUP) as *const __m256i
                        ),
                    ),
                    Q4_K => (
                        k_scales::<false>(&m.scale, at, sub),
                        k_scales::<false>(&m.offset, at, sub.add(ROW_GROUP)),
                    ),
                    Q8_0 => (
                        _mm256_loadu_si256(m.scale.as_ptr().add(unit * ROW_GROUP) as *const __m256i),
                        zero,
                    ),
                    _ => (k_scales::<true>(&m.scale, at, sub.add(h * ROW_GROUP)), zero),
                };
                let (mut shift, mut sum, mut half) = ([zero; QUADS], [zero; QUADS], [zero; QUADS]);
                for k in 0..QUADS {
                    shift[k] = eight(&lanes.shift, b * quads + q0 + k);
                    sum[k] = eight(&lanes.sum, b * quads + q0 + k);
                    if KIND == Q6_K {
                        half[k] = eight(&lanes.half_sum, (b * 2 + h) * quads + q0 + k);
                    }
                    if KIND == Q8_0 {
                        // 128·Σ a over the block: 4 times its halves' 32·Σ a.
                        let first = eight(&lanes.half_sum, (b * 2) * quads + q0 + k);
                        let second = eight(&lanes.half_sum, (b * 2 + 1) * quads + q0 + k);
                        half[k] = _mm256_slli_epi32(_mm256_add_epi32(first, second), 2);
                    }
                }
                for r in 0..4 {
                    let (d, o) = (row_pair(d, r), row_pair(o, r));
                    for k in 0..QUADS {
                        let mut block = acc[r][k];
                        if KIND == Q6_K || KIND == Q8_0 {
                            // Σ (q + 32)·a − 32·Σ a over the half (Q6_K), Σ (q + 128)·a −
                            // 128·Σ a over the block (Q8_0).
                            block = _mm256_sub_epi32(block, half[k]);
                        }
                        // Below 2^31 once shifted by ≤ 12, as in `group_dots`.
                        let dots = _mm256_sllv_epi32(block, shift[k]);
                        let mut e = _mm256_mul_epi32(dots, d);
                        let mut f = _mm256_mul_epi32(_mm256_srli_epi64(dots, 32), d);
                        if KIND == Q4_1 || KIND == Q4_K {
                            e = _mm256_add_epi64(e, _mm256_mul_epi32(sum[k], o));
                            let sum_odd = _mm256_srli_epi64(sum[k], 32);
                            f = _mm256_add_epi64(f, _mm256_mul_epi32(sum_odd, o));
                        }
                        even[r][k] = _mm256_add_epi64(even[r][k], e);
                        odd[r][k] = _mm256_add_epi64(odd[r][k], f);
                    }
                }
            }
        }
        store_quads(lanes, q0, &even, &odd, sums);
    }

    /// `quads_dot` for a K-quant matrix whose activations come in exponent groups of a
    /// super-block (`SeqLanes::group`, `nzip portable 3`). With S the group's smallest shift
    /// and t_b = s_b − S ≤ 3, Σ_b D·c_b·(p_b << s_b) = (D · Σ_b c_b·(p_b << t_b)) << S, so
    /// each block's products meet its 6- or 8-bit multiplier c_b in 32 bits, and the
    /// super-block's sum is widened, scaled and shifted once. The 32-bit sums cannot wrap
    /// (|a| ≤ 127, and 2^3 for t_b): Q4_K's |p_b| ≤ 32·15·127, c_b ≤ 63, 8 blocks: < 2^28 (its
    /// minimums' Σ_b m_b·(σ_b >> S), |Σ q| ≤ 32·127, m_b ≤ 63: < 2^24); Q6_K's halves
    /// |p| ≤ 16·32·127 (after 32·Σ a is taken off), |c| ≤ 128, 16 halves: < 2^30.
    #[inline(always)]
    unsafe fn quads_dot_grouped<const QUADS: usize, const KIND: u8>(
        m: &Matrix,
        g: usize,
        lanes: &SeqLanes,
        q0: usize,
        sums: &mut [[i64; 8]],
    ) {
        let blocks = m.blocks_per_row();
        let unit_bytes = ROW_GROUP * m.kind.block_bytes();
        let quads = lanes.quads;
        let zero = _mm256_setzero_si256();
        let low_half = _mm256_set1_epi64x(0xffff_ffff);
        let mut even = [[zero; QUADS]; 4];
        let mut odd = [[zero; QUADS]; 4];
        for sb in 0..blocks / SUPER_BLOCKS {
            // Σ_b c_b·(p_b << t_b) per row pair and quad, and for Q4_K Σ_b m_b·(σ_b >> S).
            let mut scaled = [[zero; QUADS]; 4];
            let mut mins = [[zero; QUADS]; 4];
            for b in sb * SUPER_BLOCKS..(sb + 1) * SUPER_BLOCKS {
                let unit = g * blocks + b;
                let w = m.q.as_ptr().add(unit * unit_bytes);
                prefetch_ahead(w, unit_bytes);
                let sub = m.sub.as_ptr().add(unit * 2 * ROW_GROUP);
                for h in 0..passes(KIND).0 {
                    let acc = pass_dots::<QUADS, KIND>(w, lanes, b, h, q0);
                    let c = if KIND == Q6_K {
                        widen8::<true>(sub.add(h * ROW_GROUP))
                    } else {
                        widen8::<false>(sub)
                    };
                    let (mut half, mut rel) = ([zero; QUADS], [zero; QUADS]);
                    for k in 0..QUADS {
                        rel[k] = eight(&lanes.rel_shift, b * quads + q0 + k);
                        if KIND == Q6_K {
                            half[k] = eight(&lanes.half_sum, (b * 2 + h) * quads + q0 + k);
                        }
                    }
                    for r in 0..4 {
                        let c = row_pair(c, r);
                        for k in 0..QUADS {
                            let mut p = acc[r][k];
                            if KIND == Q6_K {
                                // Σ (q + 32)·a − 32·Σ a over the half.
                                p = _mm256_sub_epi32(p, half[k]);
                            }
                            let p = _mm256_mullo_epi32(_mm256_sllv_epi32(p, rel[k]), c);
                            scaled[r][k] = _mm256_add_epi32(scaled[r][k], p);
                        }
                    }
                }
                if KIND == Q4_K && b % 2 == 1 {
                    // Blocks b − 1 and b's minimums m (6-bit) per row and shifted sums per
                    // sequence, as 16-bit pairs: one multiply-add of pairs for both blocks.
                    // (Block b − 1's unit, the one before, has its `sub` 2·ROW_GROUP bytes
                    // earlier; the minimums are each unit's second run.)
                    let previous = sub.sub(2 * ROW_GROUP);
                    let pairs = min_pairs(previous.add(ROW_GROUP), sub.add(ROW_GROUP));
                    for (r, mins) in mins.iter_mut().enumerate() {
                        let mn = row_pair(pairs, r);
                        for (k, mins) in mins.iter_mut().enumerate() {
                            let sums = eight(&lanes.rel_sum_pairs, (b / 2) * quads + q0 + k);
                            *mins = _mm256_dpwssd_epi32(*mins, mn, sums);
                        }
                    }
                }
            }
            // The super-block's numbers D and −Dmin per row, its shift per sequence.
            let at = (g * (blocks / SUPER_BLOCKS) + sb) * ROW_GROUP;
            let d = _mm256_loadu_si256(m.scale.as_ptr().add(at) as *const __m256i);
            let o = if KIND == Q4_K {
                _mm256_loadu_si256(m.offset.as_ptr().add(at) as *const __m256i)
            } else {
                zero // Q6_K has no minimums (and no `offset`)
            };
            let (mut shift_even, mut shift_odd) = ([zero; QUADS], [zero; QUADS]);
            for k in 0..QUADS {
                let shift = eight(&lanes.group_shift, sb * quads + q0 + k);
                shift_even[k] = _mm256_and_si256(shift, low_half);
                shift_odd[k] = _mm256_srli_epi64(shift, 32);
            }
            for r in 0..4 {
                let (d, o) = (row_pair(d, r), row_pair(o, r));
                for k in 0..QUADS {
                    let v = scaled[r][k];
                    let mut e = _mm256_mul_epi32(v, d);
                    let mut f = _mm256_mul_epi32(_mm256_srli_epi64(v, 32), d);
                    if KIND == Q4_K {
                        let v = mins[r][k];
                        e = _mm256_add_epi64(e, _mm256_mul_epi32(v, o));
                        f = _mm256_add_epi64(f, _mm256_mul_epi32(_mm256_srli_epi64(v, 32), o));
                    }
                    e = _mm256_sllv_epi64(e, shift_even[k]);
                    f = _mm256_sllv_epi64(f, shift_odd[k]);
                    even[r][k] = _mm256_add_epi64(even[r][k], e);
                    odd[r][k] = _mm256_add_epi64(odd[r][k], f);
                }
            }
        }
        store_quads(lanes, q0, &even, &odd, sums);
    }

    /// Two blocks' eight 8-bit minimums (at `first` and `second`) as 16-bit pairs, lane i
    /// holding row i's: the first block's in the low half, the second's in the high half.
    #[inline(always)]
    unsafe fn min_pairs(first: *const u8, second: *const u8) -> __m256i {
        let lo = _mm_cvtepu8_epi16(_mm_loadl_epi64(first as *const __m128i));
        let hi = _mm_cvtepu8_epi16(_mm_loadl_epi64(second as *const __m128i));
        _mm256_set_m128i(_mm_unpackhi_epi16(lo, hi), _mm_unpacklo_epi16(lo, hi))
    }

    /// The quads' 64-bit totals into their rows of `sums`. Per row pair r, the even 64-bit
    /// lanes hold (row r, sequence 0), (r, 2), (r + 4, 0), (r + 4, 2) of a quad, the odd ones
    /// sequences 1 and 3 likewise.
    #[inline(always)]
    unsafe fn store_quads<const QUADS: usize>(
        lanes: &SeqLanes,
        q0: usize,
        even: &[[__m256i; QUADS]; 4],
        odd: &[[__m256i; QUADS]; 4],
        sums: &mut [[i64; 8]],
    ) {
        for k in 0..QUADS {
            for r in 0..4 {
                for (first, v) in [(0, even[r][k]), (1, odd[r][k])] {
                    let mut t = [0i64; 4];
                    _mm256_storeu_si256(t.as_mut_ptr() as *mut __m256i, v);
                    for (at, &total) in t.iter().enumerate() {
                        let s = 4 * (q0 + k) + 2 * (at % 2) + first;
                        if s < lanes.seqs {
                            sums[s][r + 4 * (at / 2)] = total;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::numerics::GROUP_BLOCKS;
    use super::*;

    /// A block's values, scales and offset, as the test writes them.
    type PlainBlock = ([i8; 32], [i64; 2], i64);

    /// Every kernel gives the definition's integers, computed here from the blocks as plain
    /// arrays (so a fault in the interleaved layout shows too): every block kind, rows with
    /// and without a tail of quads, a padded last row group, 3, 9 and 19 sequences at once,
    /// activations with exponents per block and in super-block groups (K-quants), compared as
    /// exact integers.
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
            (BlockKind::Q4K, 256),
            (BlockKind::Q4K, 1536),
            (BlockKind::Q6K, 512),
        ] {
            let rows = 13;
            let blocks = cols / 32;
            let (lo, span) = match kind {
                BlockKind::Q4Offset | BlockKind::Q4K => (0, 16),
                BlockKind::Q8 => (-128, 256),
                BlockKind::Q6K => (-32, 64),
            };
            let mut m = Matrix::zeros(rows, cols, kind);
            // [row][block]: values, scales, offset as the definition sees them.
            let mut plain: Vec<Vec<PlainBlock>> = Vec::new();
            for r in 0..rows {
                let mut row = Vec::new();
                let (mut d, mut min) = (0i32, 0i32);
                for b in 0..blocks {
                    let q: [i8; 32] = std::array::from_fn(|_| (lo + (next() % span) as i64) as i8);
                    let mut random = |bits: u32| (next() % (1 << bits)) as i32 - (1 << (bits - 1));
                    if kind.is_k_quant() && b % 8 == 0 {
                        // Super-block numbers as large as the 32-bit products allow.
                        (d, min) = (random(24), random(24));
                        m.set_super(r, b / 8, d, min);
                    }
                    let (scales, offset, set) = match kind {
                        BlockKind::Q4K => {
                            let (sc, mn) = (random(6) + 32, random(6) + 32);
                            ([d * sc, 0], min * mn, ([sc, 0], mn))
                        }
                        BlockKind::Q6K => {
                            let (s0, s1) = (random(8), random(8));
                            ([d * s0, d * s1], 0, ([s0, s1], 0))
                        }
                        BlockKind::Q4Offset => {
                            let [d, o] = std::array::from_fn(|_| random(24));
                            ([d, 0], o, ([d, 0], o))
                        }
                        BlockKind::Q8 => {
                            let d = random(24);
                            ([d, 0], 0, ([d, 0], 0))
                        }
                    };
                    m.set_block(r, b, &q, &set.0, set.1);
                    row.push((q, scales.map(i64::from), i64::from(offset)));
                }
                plain.push(row);
            }
            // K-quant rows also meet vectors with one exponent per super-block (numerics 3),
            // which the lanes kernel takes its own way.
            let groups: &[usize] = if kind.is_k_quant() {
                &[1, GROUP_BLOCKS]
            } else {
                &[1]
            };
            for &group in groups {
                let acts: Vec<QuantVec> = (0..19)
                    .map(|n| {
                        let x: Vec<f32> = (0..cols)
                            .map(|i| match n {
                                // Sequences 1 and 12 (one of the first three, one in a later
                                // quad): extremes. Every value of a block at its full int8
                                // range, blocks 1..8 binary orders below the first, so some
                                // fall below their group's range and, in later groups, below
                                // the base; the third group all zero.
                                1 | 12 if (i / 256) % 4 == 2 => 0.0,
                                1 | 12 => {
                                    let sign = if (i + n) % 2 == 0 { 1.0 } else { -1.0 };
                                    let order = i / 32 % 8 + 4 * (i / 256);
                                    sign * 127.0 / (1u32 << order) as f32
                                }
                                _ => {
                                    ((next() % 2001) as f32 - 1000.0)
                                        * if i % 97 == 0 { 3.0 } else { 0.01 }
                                }
                            })
                            .collect();
                        let mut a = QuantVec::default();
                        a.quantize_grouped(&x, group);
                        a
                    })
                    .collect();
                // The definition's integers, [sequence][row].
                let want: Vec<Vec<i64>> = acts
                    .iter()
                    .map(|a| {
                        plain
                            .iter()
                            .map(|row| {
                                let mut acc = 0i64;
                                for (b, (q, d, o)) in row.iter().enumerate() {
                                    for (j, &v) in q.iter().enumerate() {
                                        let d = d[j * kind.scales() / 32];
                                        let x = i64::from(a.q[b * 32 + j]) << a.shift[b];
                                        acc += d * i64::from(v) * x;
                                    }
                                    acc += o * a.sum[b];
                                }
                                acc
                            })
                            .collect()
                    })
                    .collect();
                // Three sequences take the per-sequence kernels, nine (two quads and a padded
                // third) and nineteen (four and a padded fifth) the lanes kernel on VNNI.
                for seqs in [3, 9, 19] {
                    let refs: Vec<&QuantVec> = acts[..seqs].iter().collect();
                    for kernel in Kernel::available() {
                        let products = Products::new(kernel, &refs);
                        let mut sums = vec![[0i64; ROW_GROUP]; seqs];
                        let mut got: Vec<Vec<i64>> = vec![Vec::new(); seqs];
                        for g in 0..m.row_groups() {
                            products.row_group(&m, g, &mut sums);
                            for (out, group) in got.iter_mut().zip(&sums) {
                                out.extend(group.iter().take(rows - (g * ROW_GROUP).min(rows)));
                            }
                        }
                        let label = format!(
                            "{kernel:?} {kind:?} {cols} columns, {seqs} sequences, group {group}"
                        );
                        assert_eq!(got, want[..seqs], "{label}");
                        // And through the threaded product, to f32.
                        let mut out = vec![Vec::new(); seqs];
                        matmul(kernel, &m, &refs, &mut out);
                        let floats: Vec<Vec<f32>> = want[..seqs]
                            .iter()
                            .zip(&refs)
                            .map(|(row, a)| row.iter().map(|&v| to_f32(v, a)).collect())
                            .collect();
                        assert_eq!(out, floats, "{label}");
                    }
                }
            }
        }
    }
}
