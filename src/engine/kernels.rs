//! The integer matrix–vector products: every product of a weight block and an activation
//! block is summed exactly in integers, shifted to the vector's common scale and added up in
//! a 64-bit integer, so no split of rows, order of blocks or SIMD width can change a bit.
//! The only rounding is the final conversion of each row's integer to f32.

use super::numerics::{pow2_f64, QuantVec, ACT_BLOCK};
use super::weights::{Matrix, Values};

/// Row `row` of `m` times `a`, as the exact integer Σ_b (d_b·Σq·a + m_b·Σa) << shift_b;
/// its value is this times 2^(a.base − 24).
#[inline]
pub fn row_dot(m: &Matrix, row: usize, a: &QuantVec) -> i64 {
    let blocks = m.blocks_per_row();
    let first = row * blocks;
    let scales = &m.scale[first..first + blocks];
    let mut acc = 0i64;
    match &m.values {
        Values::Q4Offset { q, offset } => {
            let offsets = &offset[first..first + blocks];
            let row_q = &q[row * m.cols..][..m.cols];
            for b in 0..blocks {
                let w = &row_q[b * ACT_BLOCK..][..ACT_BLOCK];
                let x = &a.q[b * ACT_BLOCK..][..ACT_BLOCK];
                let dot: i32 = w
                    .iter()
                    .zip(x)
                    .map(|(&w, &x)| i32::from(w) * i32::from(x))
                    .sum();
                let shifted = i64::from(dot) << a.shift[b];
                acc = acc
                    .wrapping_add(i64::from(scales[b]).wrapping_mul(shifted))
                    .wrapping_add(i64::from(offsets[b]).wrapping_mul(a.sum[b]));
            }
        }
        Values::Q8 { q } => {
            let row_q = &q[row * m.cols..][..m.cols];
            for b in 0..blocks {
                let w = &row_q[b * ACT_BLOCK..][..ACT_BLOCK];
                let x = &a.q[b * ACT_BLOCK..][..ACT_BLOCK];
                let dot: i32 = w
                    .iter()
                    .zip(x)
                    .map(|(&w, &x)| i32::from(w) * i32::from(x))
                    .sum();
                let shifted = i64::from(dot) << a.shift[b];
                acc = acc.wrapping_add(i64::from(scales[b]).wrapping_mul(shifted));
            }
        }
    }
    acc
}

/// The f32 value of a row sum: the integer rounded to f64, scaled by a power of two, rounded
/// to f32 (three IEEE operations).
#[inline]
pub fn to_f32(acc: i64, a: &QuantVec) -> f32 {
    let k = a.base - 24;
    // Scale in two exact steps when 2^k alone is outside f64's normal range.
    let half = k / 2;
    ((acc as f64 * pow2_f64(half)) * pow2_f64(k - half)) as f32
}

/// `out[s] = m · acts[s]` for every sequence s of a group: the matrix is read once per group
/// step, its rows split over threads (rows are independent, so the split changes nothing).
pub fn matmul(m: &Matrix, acts: &[&QuantVec], out: &mut [Vec<f32>]) {
    use rayon::prelude::*;
    debug_assert_eq!(acts.len(), out.len());
    for o in out.iter_mut() {
        o.resize(m.rows, 0.0);
    }
    // Rows in tiles, each tile computed for every sequence while its weights are in cache.
    const TILE: usize = 64;
    let tiles = m.rows.div_ceil(TILE);
    let results: Vec<Vec<f32>> = (0..tiles)
        .into_par_iter()
        .map(|t| {
            let rows = t * TILE..((t + 1) * TILE).min(m.rows);
            let mut part = Vec::with_capacity(rows.len() * acts.len());
            for a in acts {
                part.extend(rows.clone().map(|r| to_f32(row_dot(m, r, a), a)));
            }
            part
        })
        .collect();
    for (t, part) in results.iter().enumerate() {
        let start = t * TILE;
        let n = part.len() / acts.len().max(1);
        for (s, o) in out.iter_mut().enumerate() {
            o[start..start + n].copy_from_slice(&part[s * n..][..n]);
        }
    }
}
