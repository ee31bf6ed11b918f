//! Reads the GGUF container (metadata and tensor table) of a model file; the tensors' bytes stay
//! in the memory map, decoded later by `weights`.
//!
//! Written here rather than taken from a crate: the GGUF crates on crates.io are small, barely
//! used and unmaintained since 2023–24, and the container is a few fixed fields
//! (ggml's docs/gguf.md). Every length and offset is checked against the file, so a damaged or
//! hostile file is an error, never a panic or a huge allocation.

use std::collections::HashMap;
use std::path::Path;

use super::ModelError;

const MAGIC: &[u8; 4] = b"GGUF";
/// Versions 2 and 3 differ from 1 in their 64-bit counts; 3 adds big-endian files, which
/// declare themselves only by byte-swapped fields and are refused (no such model is published
/// for our tiers).
const VERSIONS: std::ops::RangeInclusive<u32> = 2..=3;
const DEFAULT_ALIGNMENT: u64 = 32;
/// No real model comes close; a forged count must not reserve memory.
const MAX_TENSORS: u64 = 1 << 16;
const MAX_KEYS: u64 = 1 << 16;
const MAX_DIMS: u32 = 4;

/// ggml's tensor type ids (ggml.h `enum ggml_type`) for the layouts the engine decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    Q4_1,
    Q5_0,
    Q8_0,
    Q4K,
    Q6K,
    /// Any other id: readable as a table entry, refused when its data is needed.
    Other(u32),
}

impl TensorType {
    fn from_id(id: u32) -> Self {
        match id {
            0 => Self::F32,
            1 => Self::F16,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            8 => Self::Q8_0,
            12 => Self::Q4K,
            14 => Self::Q6K,
            other => Self::Other(other),
        }
    }

    /// (values per block, bytes per block), from ggml's block structs.
    pub fn block(self) -> Option<(u64, u64)> {
        Some(match self {
            Self::F32 => (1, 4),
            Self::F16 => (1, 2),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q8_0 => (32, 34),
            Self::Q4K => (256, 144),
            Self::Q6K => (256, 210),
            Self::Other(_) => return None,
        })
    }
}

impl std::fmt::Display for TensorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::F32 => f.write_str("F32"),
            Self::F16 => f.write_str("F16"),
            Self::Q4_1 => f.write_str("Q4_1"),
            Self::Q5_0 => f.write_str("Q5_0"),
            Self::Q8_0 => f.write_str("Q8_0"),
            Self::Q4K => f.write_str("Q4_K"),
            Self::Q6K => f.write_str("Q6_K"),
            Self::Other(id) => write!(f, "ggml type {id}"),
        }
    }
}

/// One metadata value. Arrays of numbers are kept only as far as the engine needs them.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    String(Vec<u8>),
    Strings(Vec<Vec<u8>>),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    /// An array of arrays or of mixed use: skipped.
    Nested,
}

/// A tensor's table entry: `dims[0]` is the contiguous (row) dimension, as in ggml.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub dims: Vec<u64>,
    pub kind: TensorType,
    /// Byte range in the file.
    pub range: std::ops::Range<usize>,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// The file's bytes: memory-mapped, or in memory (tests build models that way).
enum Bytes {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file over its bytes.
pub struct Gguf {
    map: Bytes,
    pub metadata: HashMap<String, Value>,
    pub tensors: HashMap<String, TensorInfo>,
}

impl Gguf {
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let file = std::fs::File::open(path).map_err(|e| ModelError::Io(e.to_string()))?;
        // SAFETY: the map is read-only; nzip's model files are not modified while in use
        // (they are written once, by rename, in the model cache).
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::Io(e.to_string()))?;
        let (metadata, tensors) = parse(&map)?;
        Ok(Self {
            map: Bytes::Map(map),
            metadata,
            tensors,
        })
    }

    /// Parses a GGUF file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, ModelError> {
        let (metadata, tensors) = parse(&bytes)?;
        Ok(Self {
            map: Bytes::Owned(bytes),
            metadata,
            tensors,
        })
    }

    /// A file of metadata only (unit tests of what reads metadata).
    #[cfg(test)]
    pub fn from_metadata(metadata: HashMap<String, Value>) -> Self {
        Self {
            map: Bytes::Owned(Vec::new()),
            metadata,
            tensors: HashMap::new(),
        }
    }

    /// Drops a converted tensor's pages from this process's memory: loading then never holds
    /// the whole file beside the engine's copy of it (Qwen2.5-1.5B's peak RSS 2.27 -> 1.3 GB).
    /// Only advice: the map is a shared read-only file mapping, so a later read of these
    /// bytes faults the same bytes back in from the file.
    pub fn release(&self, name: &str) {
        #[cfg(unix)]
        if let (Bytes::Map(map), Some(info)) = (&self.map, self.tensors.get(name)) {
            // SAFETY: MADV_DONTNEED on a shared, read-only file mapping discards nothing the
            // file does not hold; no memory is freed or changed under a live reference.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    info.range.start,
                    info.range.len(),
                )
            };
        }
    }

    /// The bytes of a tensor, with its table entry.
    pub fn tensor(&self, name: &str) -> Result<(&TensorInfo, &[u8]), ModelError> {
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        Ok((info, &self.map[info.range.clone()]))
    }

    pub fn uint(&self, key: &str) -> Result<u64, ModelError> {
        match self.metadata.get(key) {
            Some(Value::Uint(v)) => Ok(*v),
            Some(Value::Int(v)) if *v >= 0 => Ok(*v as u64),
            Some(_) => Err(ModelError::BadMetadata(format!(
                "{key} is not an unsigned integer"
            ))),
            None => Err(ModelError::BadMetadata(format!("{key} missing"))),
        }
    }

    pub fn float(&self, key: &str) -> Result<f64, ModelError> {
        match self.metadata.get(key) {
            Some(Value::Float(v)) => Ok(*v),
            Some(_) => Err(ModelError::BadMetadata(format!("{key} is not a number"))),
            None => Err(ModelError::BadMetadata(format!("{key} missing"))),
        }
    }

    pub fn string(&self, key: &str) -> Result<&[u8], ModelError> {
        match self.metadata.get(key) {
            Some(Value::String(v)) => Ok(v),
            Some(_) => Err(ModelError::BadMetadata(format!("{key} is not a string"))),
            None => Err(ModelError::BadMetadata(format!("{key} missing"))),
        }
    }
}

/// A bounds-checked little-endian reader over the file's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], ModelError> {
        let n = usize::try_from(n).map_err(|_| ModelError::Truncated(self.at))?;
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(ModelError::Truncated(self.at))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ModelError> {
        Ok(self.take(N as u64)?.try_into().expect("length checked"))
    }

    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<&'a [u8], ModelError> {
        let n = self.u64()?;
        self.take(n)
    }

    /// A scalar of GGUF value type `ty` (not string or array).
    fn scalar(&mut self, ty: u32) -> Result<Value, ModelError> {
        Ok(match ty {
            0 => Value::Uint(self.array::<1>()?[0].into()),
            1 => Value::Int((self.array::<1>()?[0] as i8).into()),
            2 => Value::Uint(u16::from_le_bytes(self.array()?).into()),
            3 => Value::Int(i16::from_le_bytes(self.array()?).into()),
            4 => Value::Uint(self.u32()?.into()),
            5 => Value::Int(i32::from_le_bytes(self.array()?).into()),
            6 => Value::Float(f32::from_le_bytes(self.array()?).into()),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            10 => Value::Uint(self.u64()?),
            11 => Value::Int(i64::from_le_bytes(self.array()?)),
            12 => Value::Float(f64::from_le_bytes(self.array()?)),
            _ => return Err(ModelError::BadMetadata(format!("unknown value type {ty}"))),
        })
    }

    fn value(&mut self, ty: u32) -> Result<Value, ModelError> {
        match ty {
            8 => Ok(Value::String(self.string()?.to_vec())),
            9 => {
                let inner = self.u32()?;
                let n = self.u64()?;
                // Each element takes at least one byte: a count past the file's end is a lie.
                if n > (self.bytes.len() - self.at) as u64 {
                    return Err(ModelError::Truncated(self.at));
                }
                match inner {
                    8 => (0..n)
                        .map(|_| self.string().map(<[u8]>::to_vec))
                        .collect::<Result<_, _>>()
                        .map(Value::Strings),
                    9 => Err(ModelError::BadMetadata("nested arrays".into())),
                    _ => {
                        let mut ints = Vec::new();
                        let mut floats = Vec::new();
                        for _ in 0..n {
                            match self.scalar(inner)? {
                                Value::Uint(v) => ints.push(v as i64),
                                Value::Int(v) => ints.push(v),
                                Value::Bool(v) => ints.push(v.into()),
                                Value::Float(v) => floats.push(v),
                                _ => unreachable!("scalar() returns only scalars"),
                            }
                        }
                        Ok(if floats.is_empty() {
                            Value::Ints(ints)
                        } else {
                            Value::Floats(floats)
                        })
                    }
                }
            }
            _ => self.scalar(ty),
        }
    }
}

type Parsed = (HashMap<String, Value>, HashMap<String, TensorInfo>);

fn parse(bytes: &[u8]) -> Result<Parsed, ModelError> {
    let mut c = Cursor { bytes, at: 0 };
    if &c.array::<4>()? != MAGIC {
        return Err(ModelError::NotGguf);
    }
    let version = c.u32()?;
    if !VERSIONS.contains(&version) {
        return Err(ModelError::BadMetadata(format!(
            "GGUF version {version} (this engine reads {} to {})",
            VERSIONS.start(),
            VERSIONS.end()
        )));
    }
    let n_tensors = c.u64()?;
    let n_keys = c.u64()?;
    if n_tensors > MAX_TENSORS || n_keys > MAX_KEYS {
        return Err(ModelError::BadMetadata(format!(
            "{n_tensors} tensors and {n_keys} keys (at most {MAX_TENSORS} of each)"
        )));
    }
    let mut metadata = HashMap::new();
    for _ in 0..n_keys {
        let key = String::from_utf8_lossy(c.string()?).into_owned();
        let ty = c.u32()?;
        let value = c.value(ty)?;
        metadata.insert(key, value);
    }
    let alignment = match metadata.get("general.alignment") {
        Some(Value::Uint(a)) if a.is_power_of_two() => *a,
        Some(_) => return Err(ModelError::BadMetadata("general.alignment".into())),
        None => DEFAULT_ALIGNMENT,
    };
    let mut table = Vec::new();
    for _ in 0..n_tensors {
        let name = String::from_utf8_lossy(c.string()?).into_owned();
        let n_dims = c.u32()?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(ModelError::BadTensor(name, format!("{n_dims} dimensions")));
        }
        let dims = (0..n_dims)
            .map(|_| c.u64())
            .collect::<Result<Vec<_>, _>>()?;
        let kind = TensorType::from_id(c.u32()?);
        let offset = c.u64()?;
        table.push((name, dims, kind, offset));
    }
    let data_start = (c.at as u64).div_ceil(alignment) * alignment;
    let mut tensors = HashMap::new();
    for (name, dims, kind, offset) in table {
        let elements = dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| ModelError::BadTensor(name.clone(), "size overflows".into()))?;
        let size = match kind.block() {
            Some((per, bytes)) if elements % per == 0 && dims[0] % per == 0 => {
                elements / per * bytes
            }
            Some(_) => {
                return Err(ModelError::BadTensor(
                    name,
                    format!("{kind} rows of {} values are not whole blocks", dims[0]),
                ))
            }
            // Unknown layouts get an empty range; using them is refused by `weights`.
            None => 0,
        };
        let start = data_start
            .checked_add(offset)
            .filter(|s| s.checked_add(size).is_some_and(|e| e <= bytes.len() as u64))
            .ok_or_else(|| {
                ModelError::BadTensor(name.clone(), "data past the file's end".into())
            })?;
        let range = start as usize..(start + size) as usize;
        tensors.insert(name, TensorInfo { dims, kind, range });
    }
    Ok((metadata, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal GGUF: one key, one F32 tensor of 4 values.
    fn tiny_file() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(b"GGUF");
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        let key = b"llama.block_count";
        f.extend_from_slice(&(key.len() as u64).to_le_bytes());
        f.extend_from_slice(key);
        f.extend_from_slice(&4u32.to_le_bytes());
        f.extend_from_slice(&7u32.to_le_bytes());
        let name = b"w";
        f.extend_from_slice(&(name.len() as u64).to_le_bytes());
        f.extend_from_slice(name);
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&4u64.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes());
        while f.len() % 32 != 0 {
            f.push(0);
        }
        for v in [1.0f32, 2.0, 3.0, 4.0] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f
    }

    #[test]
    fn reads_keys_and_tensors() {
        let (meta, tensors) = parse(&tiny_file()).unwrap();
        assert_eq!(meta["llama.block_count"], Value::Uint(7));
        let w = &tensors["w"];
        assert_eq!(w.kind, TensorType::F32);
        assert_eq!(w.dims, [4]);
        assert_eq!(w.range.len(), 16);
    }

    #[test]
    fn every_cut_is_an_error_not_a_panic() {
        let file = tiny_file();
        for cut in 0..file.len() - 16 {
            assert!(parse(&file[..cut]).is_err(), "cut at {cut}");
        }
        // Cutting into the tensor data is caught by the tensor's range check.
        assert!(parse(&file[..file.len() - 1]).is_err());
    }

    #[test]
    fn forged_counts_are_refused_before_allocating() {
        let mut file = tiny_file();
        file[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(parse(&file), Err(ModelError::BadMetadata(_))));
    }
}
