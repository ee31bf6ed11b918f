//! Decodes GGUF tensors into the engine's integer matrices: each row a run of 32-value blocks,
//! each block its small integers plus its half-precision scale (and offset) as exact integer
//! multiples of 2^-24. Nothing is rounded here: the matrix is the file's, bit for bit.

use super::gguf::{Gguf, TensorType};
use super::numerics::{f16_as_int, f16_to_f32, ACT_BLOCK, ACT_RANGE};
use super::ModelError;

/// A weight matrix of `rows` × `cols` (cols contiguous, a whole number of 32-value blocks).
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub kind: BlockKind,
    /// The blocks' integers as the file stores them: Q4_1 packs value j of a block in the low
    /// nibble of byte j and value j+16 in its high nibble (16 bytes per block); Q8_0 has one
    /// signed byte per value (32 per block).
    pub q: Vec<u8>,
    /// Per block, row-major: the scale d as an integer multiple of 2^-24.
    pub scale: Vec<i32>,
    /// Per block, Q4_1's offset m likewise (empty for Q8_0).
    pub offset: Vec<i32>,
}

/// How a block's integers make its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Q4_1: w = d·q + m, q in 0..=15.
    Q4Offset,
    /// Q8_0: w = d·q, q in −128..=127.
    Q8,
}

impl BlockKind {
    /// Bytes of `q` per block.
    pub fn block_bytes(self) -> usize {
        match self {
            BlockKind::Q4Offset => 16,
            BlockKind::Q8 => 32,
        }
    }
}

impl Matrix {
    pub fn blocks_per_row(&self) -> usize {
        self.cols / ACT_BLOCK
    }

    /// Value j (0..32) of block `block` (counted over the whole matrix) as its integer q.
    #[inline(always)]
    pub fn q_at(&self, block: usize, j: usize) -> i32 {
        match self.kind {
            BlockKind::Q4Offset => {
                let byte = self.q[block * 16 + j % 16];
                i32::from(if j < 16 { byte & 0x0f } else { byte >> 4 })
            }
            BlockKind::Q8 => i32::from(self.q[block * 32 + j] as i8),
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
        let blocks = rows * cols / ACT_BLOCK;
        let half = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]);
        let int = |bits: u16| -> Result<i32, ModelError> {
            // Every f16 is below 2^16 · 2^24 in magnitude; the accumulator check bounds it
            // further, so an i32 is enough once that check passes (see below).
            let v = f16_as_int(bits).ok_or_else(|| bad("infinite or NaN scale".into()))?;
            i32::try_from(v).map_err(|_| bad("block scale of 128 or more".into()))
        };
        let mut scale = Vec::with_capacity(blocks);
        let mut offset = Vec::new();
        let mut q = Vec::with_capacity(rows * cols);
        let kind = match info.kind {
            TensorType::Q4_1 => {
                offset.reserve(blocks);
                for block in bytes.chunks_exact(20) {
                    scale.push(int(half(&block[0..2]))?);
                    offset.push(int(half(&block[2..4]))?);
                    q.extend_from_slice(&block[4..20]);
                }
                BlockKind::Q4Offset
            }
            TensorType::Q8_0 => {
                for block in bytes.chunks_exact(34) {
                    scale.push(int(half(&block[0..2]))?);
                    q.extend_from_slice(&block[2..34]);
                }
                BlockKind::Q8
            }
            other => {
                return Err(bad(format!(
                    "{other} matrices are not supported by the portable engine yet"
                )))
            }
        };
        let matrix = Self {
            rows,
            cols,
            kind,
            q,
            scale,
            offset,
        };
        matrix.check_accumulator(name)?;
        Ok(matrix)
    }

    /// Refuses a matrix whose row sums could overflow the kernels' 64-bit accumulator: each
    /// block adds at most |d|·|Σ q·a| + |m|·|Σ a| with activations below 128 shifted by up to
    /// ACT_RANGE, so the bound follows from the largest scales. Real models are far inside it.
    fn check_accumulator(&self, name: &str) -> Result<(), ModelError> {
        let q_max = match self.kind {
            BlockKind::Q4Offset => 15i128,
            BlockKind::Q8 => 128,
        };
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
