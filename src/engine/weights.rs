//! Decodes GGUF tensors into the engine's integer matrices: each row a run of 32-value blocks,
//! each block its small integers plus its scale (and offset) as exact integer multiples of
//! 2^-24, K-quants keeping the file's two-level scales (a small integer per block times a
//! half-precision number per 256 values). Nothing is rounded here: the matrix is the file's,
//! bit for bit, and about as many bytes.

use super::gguf::{Gguf, TensorType};
use super::numerics::{f16_as_int, f16_to_f32, ACT_BLOCK, ACT_RANGE};
use super::ModelError;

/// Rows are stored in groups of this many, interleaved block by block, so that one SIMD
/// register holds the same few columns of every row of a group and the kernels sum eight rows
/// at once with no horizontal additions. A matrix's last group is padded with zero rows.
pub const ROW_GROUP: usize = 8;

/// Values per K-quant super-block (Q4_K, Q6_K): eight blocks sharing one half-precision scale.
pub const SUPER_BLOCK: usize = 256;
/// Blocks per super-block.
pub const SUPER_BLOCKS: usize = SUPER_BLOCK / ACT_BLOCK;

/// A weight matrix of `rows` × `cols` (cols contiguous, a whole number of 32-value blocks).
/// Value j of block b of row r is `scale · q + offset` (see `BlockKind`), each scale and
/// offset an exact integer multiple of 2^-24: the file's numbers, bit for bit, reordered.
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub kind: BlockKind,
    /// The blocks' integers, one unit of `ROW_GROUP · kind.block_bytes()` bytes per (row group,
    /// block), units in row-group-major order. Within a unit, byte 32c + 4i + t holds
    /// (row i of the group): 4-bit values 8c + t (low nibble) and 8c + 4 + t (high nibble),
    /// c < 4; Q8 value 4c + t plus 128 as an unsigned byte, c < 8 (the unsigned operand of
    /// the VNNI dot product, with no sign juggling per value). Q6_K's values are 6-bit: their low
    /// four bits as 4-bit values, then 64 bytes of their top two bits, byte 128 + 32c' + 4i + t
    /// holding those of values 16c' + t, 16c' + 4 + t, 16c' + 8 + t, 16c' + 12 + t from its
    /// low bits up (c' < 2), i.e. the top bits of nibble byte 32c + 4i + t at bit 4·(c mod 2).
    pub q: Vec<u8>,
    /// Q4_1, Q8_0: per unit, `ROW_GROUP` block scales (one per row). K-quants: per (row group,
    /// super-block), `ROW_GROUP` super-block scales d.
    pub scale: Vec<i32>,
    /// Q4_1: per unit, `ROW_GROUP` block offsets. Q4_K: per (row group, super-block),
    /// `ROW_GROUP` negated super-block minimums −dmin. Empty otherwise.
    pub offset: Vec<i32>,
    /// K-quants: per unit, two runs of `ROW_GROUP` small multipliers of the super-block's
    /// numbers: Q4_K each row's block scale sc then its minimum mn (6-bit, unsigned); Q6_K
    /// each row's scales of values 0..16 then 16..32 (signed bytes). Empty otherwise.
    pub sub: Vec<u8>,
}

/// How a block's integers make its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// w = d·q + m, q in 0..=15, d and m per block (Q4_1).
    Q4Offset,
    /// w = d·q, q in −128..=127 (Q8_0; Q5_0's −16..=15).
    Q8,
    /// w = (d·sc)·q − dmin·mn, q in 0..=15; sc, mn in 0..=63 per block, d and dmin per
    /// super-block (Q4_K).
    Q4K,
    /// w = (d·s)·q, q in −32..=31 stored as q + 32; one signed byte s per 16 values, d per
    /// super-block (Q6_K).
    Q6K,
}

impl BlockKind {
    /// Bytes of `q` per row and block.
    pub fn block_bytes(self) -> usize {
        match self {
            BlockKind::Q4Offset | BlockKind::Q4K => 16,
            BlockKind::Q6K => 24,
            BlockKind::Q8 => 32,
        }
    }

    /// Scales per row and block.
    pub fn scales(self) -> usize {
        match self {
            BlockKind::Q6K => 2,
            _ => 1,
        }
    }

    /// Whether scales come per super-block, times a small integer per block.
    pub fn is_k_quant(self) -> bool {
        matches!(self, BlockKind::Q4K | BlockKind::Q6K)
    }

    /// The largest |q|.
    fn q_max(self) -> i128 {
        match self {
            BlockKind::Q4Offset | BlockKind::Q4K => 15,
            BlockKind::Q8 => 128,
            BlockKind::Q6K => 32,
        }
    }
}

impl Matrix {
    /// An all-zero matrix, to be filled with `set_block` (and `set_super` for K-quants).
    pub fn zeros(rows: usize, cols: usize, kind: BlockKind) -> Self {
        debug_assert_eq!(cols % ACT_BLOCK, 0);
        debug_assert!(!kind.is_k_quant() || cols.is_multiple_of(SUPER_BLOCK));
        let units = rows.div_ceil(ROW_GROUP) * (cols / ACT_BLOCK);
        let supers = rows.div_ceil(ROW_GROUP) * (cols / SUPER_BLOCK) * ROW_GROUP;
        let (scales, offsets, sub) = match kind {
            BlockKind::Q4Offset => (units * ROW_GROUP, units * ROW_GROUP, 0),
            BlockKind::Q8 => (units * ROW_GROUP, 0, 0),
            BlockKind::Q4K => (supers, supers, units * 2 * ROW_GROUP),
            BlockKind::Q6K => (supers, 0, units * 2 * ROW_GROUP),
        };
        Self {
            rows,
            cols,
            kind,
            q: vec![0; units * ROW_GROUP * kind.block_bytes()],
            scale: vec![0; scales],
            offset: vec![0; offsets],
            sub: vec![0; sub],
        }
    }

    pub fn blocks_per_row(&self) -> usize {
        self.cols / ACT_BLOCK
    }

    /// Row groups, the last one padded.
    pub fn row_groups(&self) -> usize {
        self.rows.div_ceil(ROW_GROUP)
    }

    /// The unit holding block `b` of `row`, and the row's place in its group.
    #[inline(always)]
    fn unit(&self, row: usize, b: usize) -> (usize, usize) {
        (
            (row / ROW_GROUP) * self.blocks_per_row() + b,
            row % ROW_GROUP,
        )
    }

    /// Where the super-block scale of block `b` of `row` lies in `scale` (and `offset`).
    #[inline(always)]
    fn super_at(&self, row: usize, b: usize) -> usize {
        let supers = self.cols / SUPER_BLOCK;
        ((row / ROW_GROUP) * supers + b / SUPER_BLOCKS) * ROW_GROUP + row % ROW_GROUP
    }

    /// Where value j of a row's block lies in its unit: byte, and whether in the high nibble.
    #[inline(always)]
    fn place(&self, i: usize, j: usize) -> (usize, bool) {
        match self.kind {
            BlockKind::Q4Offset | BlockKind::Q4K | BlockKind::Q6K => {
                (32 * (j / 8) + 4 * i + j % 4, j % 8 >= 4)
            }
            BlockKind::Q8 => (32 * (j / 4) + 4 * i + j % 4, false),
        }
    }

    /// Where Q6_K's top two bits of value j of a row's block lie in its unit: byte and shift.
    #[inline(always)]
    fn place_top(i: usize, j: usize) -> (usize, u32) {
        let shift = 4 * ((j / 8) % 2) + 2 * usize::from(j % 8 >= 4);
        (128 + 32 * (j / 16) + 4 * i + j % 4, shift as u32)
    }

    /// Value j (0..32) of block `b` of `row` as its integer q.
    #[inline(always)]
    pub fn q_at(&self, row: usize, b: usize, j: usize) -> i32 {
        let (unit, i) = self.unit(row, b);
        let (at, high) = self.place(i, j);
        let base = unit * ROW_GROUP * self.kind.block_bytes();
        let byte = self.q[base + at];
        let nibble = i32::from(if high { byte >> 4 } else { byte & 0x0f });
        match self.kind {
            BlockKind::Q4Offset | BlockKind::Q4K => nibble,
            BlockKind::Q8 => i32::from(byte) - 128,
            BlockKind::Q6K => {
                let (top_at, shift) = Self::place_top(i, j);
                let top = i32::from((self.q[base + top_at] >> shift) & 3);
                (nibble | top << 4) - 32
            }
        }
    }

    /// The scale of block `b` of `row` (of its half `h` for two scales per block, else
    /// h = 0).
    #[inline(always)]
    pub fn scale_at(&self, row: usize, b: usize, h: usize) -> i64 {
        let (unit, i) = self.unit(row, b);
        let d = |at: usize| i64::from(self.scale[at]);
        match self.kind {
            BlockKind::Q4Offset | BlockKind::Q8 => d(unit * ROW_GROUP + i),
            BlockKind::Q4K => {
                d(self.super_at(row, b)) * i64::from(self.sub[unit * 2 * ROW_GROUP + i])
            }
            BlockKind::Q6K => {
                let s = self.sub[(unit * 2 + h) * ROW_GROUP + i] as i8;
                d(self.super_at(row, b)) * i64::from(s)
            }
        }
    }

    /// The offset of block `b` of `row` (0 for kinds without one).
    #[inline(always)]
    pub fn offset_at(&self, row: usize, b: usize) -> i64 {
        let (unit, i) = self.unit(row, b);
        match self.kind {
            BlockKind::Q4Offset => i64::from(self.offset[unit * ROW_GROUP + i]),
            BlockKind::Q4K => {
                let mn = self.sub[(unit * 2 + 1) * ROW_GROUP + i];
                i64::from(self.offset[self.super_at(row, b)]) * i64::from(mn)
            }
            BlockKind::Q8 | BlockKind::Q6K => 0,
        }
    }

    /// Sets block `b` of `row`: its 32 integers (in the kind's range) and its scale(s) and
    /// offset: Q4_1 and Q8_0 the block's own (Q8_0 has no offset), Q4_K its sc and its mn
    /// as `offset`, Q6_K its two signed multipliers (no offset).
    pub fn set_block(
        &mut self,
        row: usize,
        b: usize,
        q: &[i8; ACT_BLOCK],
        scales: &[i32],
        offset: i32,
    ) {
        let (unit, i) = self.unit(row, b);
        let base = unit * ROW_GROUP * self.kind.block_bytes();
        // Whole bytes, each written once (the layout of `q`, which `place` and `place_top`
        // read back): loading a model packs every value here.
        let unit_q = &mut self.q[base..][..ROW_GROUP * self.kind.block_bytes()];
        match self.kind {
            BlockKind::Q8 => {
                for c in 0..8 {
                    for t in 0..4 {
                        // q + 128: flipping the sign bit of two's complement.
                        unit_q[32 * c + 4 * i + t] = q[4 * c + t] as u8 ^ 0x80;
                    }
                }
            }
            BlockKind::Q4Offset | BlockKind::Q4K | BlockKind::Q6K => {
                // Q6_K stores q + 32 (0..=63): its low nibble here, its top bits below.
                let bias = if self.kind == BlockKind::Q6K { 32 } else { 0 };
                let u = |j: usize| (q[j] + bias) as u8;
                for c in 0..4 {
                    for t in 0..4 {
                        let (low, high) = (u(8 * c + t), u(8 * c + 4 + t));
                        unit_q[32 * c + 4 * i + t] = (low & 0x0f) | (high & 0x0f) << 4;
                    }
                }
                if self.kind == BlockKind::Q6K {
                    for half in 0..2 {
                        for t in 0..4 {
                            let top = |j: usize| (u(16 * half + j + t) >> 4) & 3;
                            unit_q[128 + 32 * half + 4 * i + t] =
                                top(0) | top(4) << 2 | top(8) << 4 | top(12) << 6;
                        }
                    }
                }
            }
        }
        match self.kind {
            BlockKind::Q4Offset => {
                self.scale[unit * ROW_GROUP + i] = scales[0];
                self.offset[unit * ROW_GROUP + i] = offset;
            }
            BlockKind::Q8 => self.scale[unit * ROW_GROUP + i] = scales[0],
            BlockKind::Q4K => {
                debug_assert!((0..64).contains(&scales[0]) && (0..64).contains(&offset));
                self.sub[unit * 2 * ROW_GROUP + i] = scales[0] as u8;
                self.sub[(unit * 2 + 1) * ROW_GROUP + i] = offset as u8;
            }
            BlockKind::Q6K => {
                for (h, &s) in scales.iter().enumerate().take(2) {
                    debug_assert!(i8::try_from(s).is_ok());
                    self.sub[(unit * 2 + h) * ROW_GROUP + i] = s as i8 as u8;
                }
            }
        }
    }

    /// Sets the numbers of super-block `s` of `row` in a K-quant matrix: its scale d and, for
    /// Q4_K, its negated minimum −dmin (ignored for Q6_K).
    pub fn set_super(&mut self, row: usize, s: usize, d: i32, min: i32) {
        let at = self.super_at(row, s * SUPER_BLOCKS);
        self.scale[at] = d;
        if self.kind == BlockKind::Q4K {
            self.offset[at] = min;
        }
    }

    /// Reads tensor `name` as a matrix of `cols` columns.
    pub fn load(gguf: &Gguf, name: &str, cols: usize) -> Result<Self, ModelError> {
        let (info, bytes) = gguf.tensor(name)?;
        let bad = |why: String| ModelError::BadTensor(name.to_string(), why);
        if info.dims.len() != 2 || info.dims[0] != cols as u64 {
            return Err(bad(format!(
                "shape {:?}, expected rows of {cols}",
                info.dims
            )));
        }
        let rows = info.dims[1] as usize;
        let blocks = cols / ACT_BLOCK;
        let half = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]);
        let int = |bits: u16| -> Result<i32, ModelError> {
            // Every f16 is below 2^16 · 2^24 in magnitude; the accumulator check bounds it
            // further, so an i32 is enough once that check passes (see below).
            let v = f16_as_int(bits).ok_or_else(|| bad("infinite or NaN scale".into()))?;
            i32::try_from(v).map_err(|_| bad("block scale of 128 or more".into()))
        };
        // K-quant scales are an f16 times a small integer: exact in i64, then checked to fit.
        let wide = |bits: u16| f16_as_int(bits).ok_or_else(|| bad("infinite or NaN scale".into()));
        let narrow =
            |v: i64| i32::try_from(v).map_err(|_| bad("block scale of 128 or more".into()));
        // A super-block number beyond 32 bits passes the checks above only when every
        // multiplier of its super-block is 0: then 0 makes the same products.
        let super_number = |v: i64| i32::try_from(v).unwrap_or(0);
        // K-quants: the largest |scale| and |offset| of a block (the others' come from their
        // arrays).
        let mut k_max = (0u32, 0u32);
        let mut q = [0i8; ACT_BLOCK];
        let matrix = match info.kind {
            TensorType::Q4_1 => {
                let mut m = Self::zeros(rows, cols, BlockKind::Q4Offset);
                for (n, block) in bytes.chunks_exact(20).enumerate() {
                    for j in 0..16 {
                        q[j] = (block[4 + j] & 0x0f) as i8;
                        q[j + 16] = (block[4 + j] >> 4) as i8;
                    }
                    let (d, o) = (int(half(&block[0..2]))?, int(half(&block[2..4]))?);
                    m.set_block(n / blocks, n % blocks, &q, &[d], o);
                }
                m
            }
            // Q5_0's 5-bit values q − 16 (−16..=15) times the block's f16 scale: a Q8 block
            // with small integers, the same products, 32 bytes instead of 22 per block.
            TensorType::Q5_0 => {
                let mut m = Self::zeros(rows, cols, BlockKind::Q8);
                for (n, block) in bytes.chunks_exact(22).enumerate() {
                    let q = q5_0_values(block);
                    m.set_block(n / blocks, n % blocks, &q, &[int(half(&block[0..2]))?], 0);
                }
                m
            }
            TensorType::Q8_0 => {
                let mut m = Self::zeros(rows, cols, BlockKind::Q8);
                for (n, block) in bytes.chunks_exact(34).enumerate() {
                    for (v, &b) in q.iter_mut().zip(&block[2..34]) {
                        *v = b as i8;
                    }
                    m.set_block(n / blocks, n % blocks, &q, &[int(half(&block[0..2]))?], 0);
                }
                m
            }
            TensorType::Q4K | TensorType::Q6K if !cols.is_multiple_of(SUPER_BLOCK) => {
                return Err(bad(format!(
                    "{cols} columns, not whole {SUPER_BLOCK}-value blocks"
                )));
            }
            TensorType::Q4K => {
                let mut m = Self::zeros(rows, cols, BlockKind::Q4K);
                let supers = cols / SUPER_BLOCK;
                for (n, sb) in bytes.chunks_exact(144).enumerate() {
                    let (d, dmin) = (wide(half(&sb[0..2]))?, wide(half(&sb[2..4]))?);
                    let (row, s) = (n / supers, n % supers);
                    for (j, (q, sc, mn)) in q4k_sub_blocks(sb).iter().enumerate() {
                        // The block's scale and offset, as the kernels form them in 32 bits.
                        k_max.0 = k_max.0.max(narrow(d * sc)?.unsigned_abs());
                        k_max.1 = k_max.1.max(narrow(-(dmin * mn))?.unsigned_abs());
                        m.set_block(row, s * SUPER_BLOCKS + j, q, &[*sc as i32], *mn as i32);
                    }
                    m.set_super(row, s, super_number(d), super_number(-dmin));
                }
                m
            }
            TensorType::Q6K => {
                let mut m = Self::zeros(rows, cols, BlockKind::Q6K);
                let supers = cols / SUPER_BLOCK;
                for (n, sb) in bytes.chunks_exact(210).enumerate() {
                    let d = wide(half(&sb[208..210]))?;
                    let (row, s) = (n / supers, n % supers);
                    for (j, (q, [s0, s1])) in q6k_sub_blocks(sb).iter().enumerate() {
                        for v in [d * s0, d * s1] {
                            k_max.0 = k_max.0.max(narrow(v)?.unsigned_abs());
                        }
                        let pair = [*s0 as i32, *s1 as i32];
                        m.set_block(row, s * SUPER_BLOCKS + j, q, &pair, 0);
                    }
                    m.set_super(row, s, super_number(d), 0);
                }
                m
            }
            other => {
                return Err(bad(format!(
                    "{other} matrices are not supported by the portable engine yet"
                )))
            }
        };
        let largest = |v: &[i32]| v.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        let (d_max, offset_max) = match matrix.kind {
            BlockKind::Q4K | BlockKind::Q6K => k_max,
            _ => (largest(&matrix.scale), largest(&matrix.offset)),
        };
        matrix.check_accumulator(name, d_max, offset_max)?;
        gguf.release(name);
        Ok(matrix)
    }

    /// Refuses a matrix whose row sums could overflow the kernels' 64-bit accumulator: each
    /// block adds at most |d|·|Σ q·a| + |m|·|Σ a| with activations below 128 shifted by up to
    /// ACT_RANGE, so the bound follows from the largest scales. Real models are far inside it.
    fn check_accumulator(&self, name: &str, d_max: u32, offset_max: u32) -> Result<(), ModelError> {
        let q_max = self.kind.q_max();
        let (d_max, offset_max) = (i128::from(d_max), i128::from(offset_max));
        let block = (ACT_BLOCK as i128 * 127) << ACT_RANGE;
        let worst = (d_max * q_max + offset_max) * block * self.blocks_per_row() as i128;
        if worst >= i128::from(i64::MAX) {
            return Err(ModelError::BadTensor(
                name.to_string(),
                "block scales too large for exact 64-bit accumulation".into(),
            ));
        }
        Ok(())
    }
}

/// A Q5_0 block's (22 bytes: d as f16, 32 high bits, 16 bytes of nibbles) values q − 16:
/// value j < 16 is the low nibble of byte j, value j + 16 its high nibble, each topped by
/// high bit j (resp. j + 16).
fn q5_0_values(block: &[u8]) -> [i8; 32] {
    let high = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    let top = |k: usize| (((high >> k) & 1) << 4) as u8;
    let mut q = [0i8; 32];
    for j in 0..16 {
        q[j] = ((block[6 + j] & 0x0f) | top(j)) as i8 - 16;
        q[j + 16] = ((block[6 + j] >> 4) | top(j + 16)) as i8 - 16;
    }
    q
}

/// A Q4_K super-block (144 bytes: d, dmin as f16, 12 bytes of 6-bit scales and mins, 128
/// bytes of nibbles) as its eight 32-value sub-blocks: (q, sc, m) with w = d·sc·q − dmin·m.
/// Sub-block j's nibbles are the low (j even) or high (j odd) halves of bytes
/// 16 + 32·(j/2) ..; its scale and min are the low 6 bits of packed bytes j and j + 4 for
/// j < 4, else the nibbles of byte j + 4 topped by the high 2 bits of bytes j − 4 and j.
fn q4k_sub_blocks(sb: &[u8]) -> [([i8; 32], i64, i64); 8] {
    let packed = &sb[4..16];
    std::array::from_fn(|j| {
        let (sc, m) = if j < 4 {
            (packed[j] & 63, packed[j + 4] & 63)
        } else {
            (
                (packed[j + 4] & 0x0f) | ((packed[j - 4] >> 6) << 4),
                (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4),
            )
        };
        let nibbles = &sb[16 + 32 * (j / 2)..][..32];
        let q = std::array::from_fn(|l| {
            let b = nibbles[l];
            (if j % 2 == 0 { b & 0x0f } else { b >> 4 }) as i8
        });
        (q, i64::from(sc), i64::from(m))
    })
}

/// A Q6_K super-block (210 bytes: 128 of low nibbles, 64 of 2-bit high parts, 16 signed
/// scales, d as f16) as its eight 32-value sub-blocks: (q − 32, the scales of its two
/// halves), w = d·scale·(q − 32). Value v = 128h + 32k + l (k < 4, l < 32) takes the low
/// (k < 2) or high nibble of byte 64h + 32·(k mod 2) + l and bits 2k, 2k+1 of high byte
/// 32h + l; its scale is scales[v / 16].
fn q6k_sub_blocks(sb: &[u8]) -> [([i8; 32], [i64; 2]); 8] {
    let (low, high, scales) = (&sb[0..128], &sb[128..192], &sb[192..208]);
    let value = |v: usize| {
        let (h, k, l) = (v / 128, (v % 128) / 32, v % 32);
        let byte = low[64 * h + 32 * (k % 2) + l];
        let nibble = if k < 2 { byte & 0x0f } else { byte >> 4 };
        let top = (high[32 * h + l] >> (2 * k)) & 3;
        (nibble | (top << 4)) as i8 - 32
    };
    std::array::from_fn(|j| {
        let scale = |i: usize| i64::from(scales[i] as i8);
        (
            std::array::from_fn(|l| value(32 * j + l)),
            [scale(2 * j), scale(2 * j + 1)],
        )
    })
}

/// A vector of f32 (norm weights), exactly as stored (F32, or F16 widened).
pub fn load_vector(gguf: &Gguf, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
    let (info, bytes) = gguf.tensor(name)?;
    if info.elements() != len as u64 {
        return Err(ModelError::BadTensor(
            name.to_string(),
            format!("{} values, expected {len}", info.elements()),
        ));
    }
    match info.kind {
        TensorType::F32 => Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect()),
        TensorType::F16 => Ok(bytes
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect()),
        other => Err(ModelError::BadTensor(
            name.to_string(),
            format!("{other} vectors are not supported"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded::Seeded;

    /// Q5_0 against ggml's dequantize_row_q5_0 written its way (the high bits of the second
    /// half taken with a shift by 12 and a mask of 0x10).
    #[test]
    fn q5_0_decodes_as_ggml_dequantizes() {
        let mut rng = Seeded::new(12);
        for _ in 0..50 {
            let block: Vec<u8> = (0..22).map(|_| rng.bits(64) as u8).collect();
            let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
            let mut want = [0i32; 32];
            for j in 0..16 {
                let xh_0 = (((qh >> j) << 4) & 0x10) as u8;
                let xh_1 = ((qh >> (j + 12)) & 0x10) as u8;
                want[j] = i32::from((block[6 + j] & 0x0F) | xh_0) - 16;
                want[j + 16] = i32::from((block[6 + j] >> 4) | xh_1) - 16;
            }
            let got = q5_0_values(&block).map(i32::from);
            assert_eq!(got, want);
        }
    }

    /// The K-quant decoders against ggml's dequantization written the way ggml writes it
    /// (its loops, not our index arithmetic), on random super-blocks: every weight equal.
    #[test]
    fn k_quants_decode_as_ggml_dequantizes() {
        let mut rng = Seeded::new(11);
        for _ in 0..50 {
            let sb: Vec<u8> = (0..144).map(|_| rng.bits(64) as u8).collect();
            // ggml's dequantize_row_q4_K, with d = dmin = 1: four passes over 32 bytes.
            let mut want = Vec::new();
            let scale_min = |j: usize| {
                let q = &sb[4..16];
                if j < 4 {
                    (q[j] & 63, q[j + 4] & 63)
                } else {
                    (
                        (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
                        (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
                    )
                }
            };
            let mut is = 0;
            for pass in 0..4 {
                let qs = &sb[16 + 32 * pass..][..32];
                let ((sc1, m1), (sc2, m2)) = (scale_min(is), scale_min(is + 1));
                want.extend(
                    qs.iter()
                        .map(|&b| i64::from(sc1) * i64::from(b & 0xF) - i64::from(m1)),
                );
                want.extend(
                    qs.iter()
                        .map(|&b| i64::from(sc2) * i64::from(b >> 4) - i64::from(m2)),
                );
                is += 2;
            }
            let got: Vec<i64> = q4k_sub_blocks(&sb)
                .iter()
                .flat_map(|(q, sc, m)| q.iter().map(move |&v| sc * i64::from(v) - m))
                .collect();
            assert_eq!(got, want, "Q4_K");

            let sb: Vec<u8> = (0..210).map(|_| rng.bits(64) as u8).collect();
            // ggml's dequantize_row_q6_K, with d = 1: two halves of 128 values.
            let mut want = [0i64; 256];
            let (mut ql, mut qh, mut sc) = (0, 128, 192);
            for n in [0, 128] {
                for l in 0..32 {
                    let is = l / 16;
                    let q = |lo: usize, shift: u32, high_nibble: bool| {
                        let b = sb[ql + lo + l];
                        let nib = if high_nibble { b >> 4 } else { b & 0xF };
                        i64::from(nib | (((sb[qh + l] >> shift) & 3) << 4)) - 32
                    };
                    let s = |k: usize| i64::from(sb[sc + is + k] as i8);
                    want[n + l] = s(0) * q(0, 0, false);
                    want[n + l + 32] = s(2) * q(32, 2, false);
                    want[n + l + 64] = s(4) * q(0, 4, true);
                    want[n + l + 96] = s(6) * q(32, 6, true);
                }
                ql += 64;
                qh += 32;
                sc += 8;
            }
            let got: Vec<i64> = q6k_sub_blocks(&sb)
                .iter()
                .flat_map(|(q, s)| {
                    q.iter()
                        .enumerate()
                        .map(move |(l, &v)| s[l / 16] * i64::from(v))
                })
                .collect();
            assert_eq!(got, want, "Q6_K");
        }
    }
}
