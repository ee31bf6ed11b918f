//! Decodes GGUF tensors into the engine's integer matrices: each row a run of 32-value blocks,
//! each block its small integers plus its half-precision scale (and offset) as exact integer
//! multiples of 2^-24. Nothing is rounded here: the matrix is the file's, bit for bit.

use super::gguf::{Gguf, TensorType};
use super::numerics::{f16_as_int, f16_to_f32, ACT_BLOCK, ACT_RANGE};
use super::ModelError;

/// Rows are stored in groups of this many, interleaved block by block, so that one SIMD
/// register holds the same few columns of every row of a group and the kernels sum eight rows
/// at once with no horizontal additions. A matrix's last group is padded with zero rows.
pub const ROW_GROUP: usize = 8;

/// A weight matrix of `rows` × `cols` (cols contiguous, a whole number of 32-value blocks).
/// Value j of block b of row r is `scale · q + offset` (see `BlockKind`), each scale and
/// offset an exact integer multiple of 2^-24: the file's numbers, bit for bit, reordered.
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub kind: BlockKind,
    /// The blocks' integers, one unit of `ROW_GROUP · kind.block_bytes()` bytes per (row group,
    /// block), units in row-group-major order. Within a unit, byte 32c + 4i + t holds
    /// (row i of the group): Q4 values 8c + t (low nibble) and 8c + 4 + t (high nibble),
    /// c < 4; Q8 value 4c + t as a signed byte, c < 8.
    pub q: Vec<u8>,
    /// Per unit, `kind.scales()` runs of `ROW_GROUP` scales (one per row): the scale of each
    /// row's block, or of its first and second 16 values.
    pub scale: Vec<i32>,
    /// Per unit, Q4's offsets likewise (empty otherwise).
    pub offset: Vec<i32>,
}

/// How a block's integers make its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// w = d·q + m, q in 0..=15 (Q4_1, and Q4_K's sub-blocks).
    Q4Offset,
    /// w = d·q, q in −128..=127 (Q8_0).
    Q8,
    /// w = d·q with one scale for values 0..16 and another for 16..32, q in −32..=31
    /// (Q6_K's sub-blocks).
    Q8Halves,
}

impl BlockKind {
    /// Bytes of `q` per row and block.
    pub fn block_bytes(self) -> usize {
        match self {
            BlockKind::Q4Offset => 16,
            BlockKind::Q8 | BlockKind::Q8Halves => 32,
        }
    }

    /// Scales per row and block.
    pub fn scales(self) -> usize {
        match self {
            BlockKind::Q8Halves => 2,
            _ => 1,
        }
    }

    /// The largest |q|.
    fn q_max(self) -> i128 {
        match self {
            BlockKind::Q4Offset => 15,
            BlockKind::Q8 => 128,
            BlockKind::Q8Halves => 32,
        }
    }
}

impl Matrix {
    /// An all-zero matrix, to be filled with `set_block`.
    pub fn zeros(rows: usize, cols: usize, kind: BlockKind) -> Self {
        debug_assert_eq!(cols % ACT_BLOCK, 0);
        let units = rows.div_ceil(ROW_GROUP) * (cols / ACT_BLOCK);
        Self {
            rows,
            cols,
            kind,
            q: vec![0; units * ROW_GROUP * kind.block_bytes()],
            scale: vec![0; units * ROW_GROUP * kind.scales()],
            offset: match kind {
                BlockKind::Q4Offset => vec![0; units * ROW_GROUP],
                _ => Vec::new(),
            },
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

    /// Where value j of a row's block lies in its unit: byte, and whether in the high nibble.
    #[inline(always)]
    fn place(&self, i: usize, j: usize) -> (usize, bool) {
        match self.kind {
            BlockKind::Q4Offset => (32 * (j / 8) + 4 * i + j % 4, j % 8 >= 4),
            BlockKind::Q8 | BlockKind::Q8Halves => (32 * (j / 4) + 4 * i + j % 4, false),
        }
    }

    /// Value j (0..32) of block `b` of `row` as its integer q.
    #[inline(always)]
    pub fn q_at(&self, row: usize, b: usize, j: usize) -> i32 {
        let (unit, i) = self.unit(row, b);
        let (at, high) = self.place(i, j);
        let byte = self.q[unit * ROW_GROUP * self.kind.block_bytes() + at];
        match self.kind {
            BlockKind::Q4Offset => i32::from(if high { byte >> 4 } else { byte & 0x0f }),
            BlockKind::Q8 | BlockKind::Q8Halves => i32::from(byte as i8),
        }
    }

    /// The scale of block `b` of `row` (of its half `h` for `Q8Halves`, else h = 0).
    #[inline(always)]
    pub fn scale_at(&self, row: usize, b: usize, h: usize) -> i32 {
        let (unit, i) = self.unit(row, b);
        self.scale[(unit * self.kind.scales() + h) * ROW_GROUP + i]
    }

    /// The offset of block `b` of `row` (0 for kinds without one).
    #[inline(always)]
    pub fn offset_at(&self, row: usize, b: usize) -> i32 {
        let (unit, i) = self.unit(row, b);
        self.offset.get(unit * ROW_GROUP + i).copied().unwrap_or(0)
    }

    /// Sets block `b` of `row`: its 32 integers (in the kind's range), its scale(s) and its
    /// offset (ignored for kinds without one).
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
        for (j, &v) in q.iter().enumerate() {
            let (at, high) = self.place(i, j);
            let byte = &mut self.q[base + at];
            match (self.kind, high) {
                (BlockKind::Q4Offset, false) => *byte = (*byte & 0xf0) | (v as u8 & 0x0f),
                (BlockKind::Q4Offset, true) => *byte = (*byte & 0x0f) | ((v as u8) << 4),
                _ => *byte = v as u8,
            }
        }
        for (h, &d) in scales.iter().enumerate().take(self.kind.scales()) {
            self.scale[(unit * self.kind.scales() + h) * ROW_GROUP + i] = d;
        }
        if self.kind == BlockKind::Q4Offset {
            self.offset[unit * ROW_GROUP + i] = offset;
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
            other => {
                return Err(bad(format!(
                    "{other} matrices are not supported by the portable engine yet"
                )))
            }
        };
        matrix.check_accumulator(name)?;
        Ok(matrix)
    }

    /// Refuses a matrix whose row sums could overflow the kernels' 64-bit accumulator: each
    /// block adds at most |d|·|Σ q·a| + |m|·|Σ a| with activations below 128 shifted by up to
    /// ACT_RANGE, so the bound follows from the largest scales. Real models are far inside it.
    fn check_accumulator(&self, name: &str) -> Result<(), ModelError> {
        let q_max = self.kind.q_max();
        let offset_max = self
            .offset
            .iter()
            .map(|v| i128::from(v.unsigned_abs()))
            .max()
            .unwrap_or(0);
        let d_max = self
            .scale
            .iter()
            .map(|v| i128::from(v.unsigned_abs()))
            .max()
            .unwrap_or(0);
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
