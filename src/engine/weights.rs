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
    pub values: Values,
    /// Per block, row-major: the scale d as an integer multiple of 2^-24.
    pub scale: Vec<i32>,
}

/// The integers of a matrix's blocks.
pub enum Values {
    /// Q4_1: w = d·q + m, q in 0..=15 stored one per byte; `offset` holds m like `scale`.
    Q4Offset { q: Vec<u8>, offset: Vec<i32> },
    /// Q8_0: w = d·q, q in −128..=127.
    Q8 { q: Vec<i8> },
}

impl Matrix {
    pub fn blocks_per_row(&self) -> usize {
        self.cols / ACT_BLOCK
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
        let int = |bits: u16| f16_as_int(bits).ok_or_else(|| bad("infinite or NaN scale".into()));
        let mut scale = Vec::with_capacity(blocks);
        let values = match info.kind {
            TensorType::Q4_1 => {
                let mut q = Vec::with_capacity(rows * cols);
                let mut offset = Vec::with_capacity(blocks);
                for block in bytes.chunks_exact(20) {
                    scale.push(int(half(&block[0..2]))?);
                    offset.push(int(half(&block[2..4]))?);
                    // ggml's Q4_1: byte j holds value j in its low nibble, value j+16 in its high.
                    let nibbles = &block[4..20];
                    q.extend(nibbles.iter().map(|b| b & 0x0f));
                    q.extend(nibbles.iter().map(|b| b >> 4));
                }
                Values::Q4Offset {
                    q,
                    offset: offset.into_iter().map(|v| v as i32).collect(),
                }
            }
            TensorType::Q8_0 => {
                let mut q = Vec::with_capacity(rows * cols);
                for block in bytes.chunks_exact(34) {
                    scale.push(int(half(&block[0..2]))?);
                    q.extend(block[2..34].iter().map(|&b| b as i8));
                }
                Values::Q8 { q }
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
            values,
            scale: scale.into_iter().map(|v| v as i32).collect(),
        };
        matrix.check_accumulator(name)?;
        Ok(matrix)
    }

    /// Refuses a matrix whose row sums could overflow the kernels' 64-bit accumulator: each
    /// block adds at most |d|·|Σ q·a| + |m|·|Σ a| with activations below 128 shifted by up to
    /// ACT_RANGE, so the bound follows from the largest scales. Real models are far inside it.
    fn check_accumulator(&self, name: &str) -> Result<(), ModelError> {
        let (q_max, offset_max) = match &self.values {
            Values::Q4Offset { offset, .. } => (
                15i128,
                offset
                    .iter()
                    .map(|v| i128::from(v.unsigned_abs()))
                    .max()
                    .unwrap_or(0),
            ),
            Values::Q8 { .. } => (128, 0),
        };
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
