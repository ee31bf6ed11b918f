//! Whole-archive compression and decompression: the chunk pipeline between the input and the
//! container. `compress` reads the input a group of chunks at a time and writes each group as
//! it is done; `decompress` decodes group by group from an archive in memory or a stream.

mod compress;
mod decompress;
pub mod levels;
mod workers;

pub use compress::{compress, compress_stream, CompressStats};
pub use decompress::{decompress, decompress_range, decompress_stream};
pub use workers::Engine;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::container::TokenModelKind;
use crate::error::{Error, Result};
use crate::models::{self, FetchPolicy};
use crate::predict::devices::DeviceChoice;

/// Target chunk size. Every chunk starts cold (no context), which costs bits: on alice29.txt
/// (152 KB, default model, 2 cores) 16 KiB chunks gave 1.156 bits per byte at 0.31 KB/s and
/// one chunk 1.119 at 0.21 KB/s. Ratio comes first, so chunks are large; files of several MB
/// still fill a group.
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;
/// KV window per chunk and its slide (the bare model scores 1.11–1.13 bits per byte on
/// alice29.txt with 512–1024 tokens of context); 4 attention sinks stay at the front.
pub const DEFAULT_WINDOW: u32 = 1024;
pub const DEFAULT_SLIDE: u32 = 256;
pub const DEFAULT_SINKS: u32 = 4;
/// Chunks per lockstep group: one `decode` call carries one token of each.
pub const DEFAULT_SEQS: u32 = 16;
/// Chunk size in fast mode (byte model only): chunks are coded in parallel, one per core.
/// On enwik6 (2 cores): 1 MiB chunks (one chunk) 1.885 bits per byte at 0.78 MB/s; 512 KiB
/// chunks 1.964 at 1.47 MB/s; 256 KiB 2.057 at 1.6 MB/s. Fast mode is for speed: 512 KiB.
pub const DEFAULT_FAST_CHUNK_SIZE: usize = 512 * 1024;
/// Largest byte-model tables (2^18 slots: 128 MiB for a chunk of 1 MiB of raw bytes).
pub const DEFAULT_MAX_TABLE_BITS: u8 = 18;
/// zstd level of the per-chunk fallback: the strongest usual level where the LLM sets the pace;
/// a cheap one in fast mode, where the byte model nearly always wins and speed counts.
const ZSTD_LEVEL: i32 = 19;
const ZSTD_LEVEL_FAST: i32 = 3;

/// Progress of groups that run at once on the workers: each reports the fraction of its
/// bytes done; `report` hands the total (on top of `base`, the bytes of earlier batches) on.
struct BatchProgress<'p> {
    base: u64,
    bytes: Vec<u64>,
    done: Vec<AtomicU64>,
    report: &'p (dyn Fn(u64) + Sync),
}

impl<'p> BatchProgress<'p> {
    fn new(base: u64, bytes: Vec<u64>, report: &'p (dyn Fn(u64) + Sync)) -> Self {
        let done = bytes.iter().map(|_| AtomicU64::new(0)).collect();
        Self {
            base,
            bytes,
            done,
            report,
        }
    }

    /// Group `k` is `fraction` done.
    fn set(&self, k: usize, fraction: f64) {
        self.done[k].store((self.bytes[k] as f64 * fraction) as u64, Ordering::Relaxed);
        let total: u64 = self.done.iter().map(|d| d.load(Ordering::Relaxed)).sum();
        (self.report)(self.base + total);
    }
}

/// What `compress` needs besides the data.
#[derive(Clone, Debug)]
pub struct CompressOptions {
    /// Manifest name or GGUF path.
    pub model: String,
    /// No LLM: every chunk is coded by the byte model (or zstd, or stored); needs no model file.
    pub fast: bool,
    /// Keep the LLM coding of every chunk with text even where the byte model, zstd or storing
    /// would be smaller: for measuring the model itself and for tests with a toy model.
    pub always_llm: bool,
    /// How the LLM's logits become CDFs: the bare softmax or the ensemble around it.
    pub token_model: TokenModelKind,
    /// Which engine computes the logits (the archive records its numerics; decoding follows
    /// them); `None`: the model's default (`Engine::default_for`).
    pub engine: Option<Engine>,
    pub chunk_size: usize,
    pub window: u32,
    pub slide: u32,
    pub sinks: u32,
    pub seqs: u32,
    pub threads: usize,
    /// Where the model runs, and how many workers (contexts) run there: on the CPU, or on
    /// each GPU.
    pub device: DeviceChoice,
    pub workers: usize,
    pub fetch: FetchPolicy,
}

impl Default for CompressOptions {
    fn default() -> Self {
        Self {
            model: models::DEFAULT_MODEL.into(),
            fast: false,
            always_llm: false,
            token_model: TokenModelKind::BiasedEnsemble,
            engine: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            window: DEFAULT_WINDOW,
            slide: DEFAULT_SLIDE,
            sinks: DEFAULT_SINKS,
            seqs: DEFAULT_SEQS,
            threads: default_threads(),
            device: DeviceChoice::Auto,
            workers: 1,
            fetch: FetchPolicy::Auto,
        }
    }
}

/// What `decompress` needs besides the archive.
#[derive(Clone, Debug)]
pub struct DecompressOptions {
    /// Use this GGUF file instead of looking the archive's model up by name.
    pub model_path: Option<std::path::PathBuf>,
    /// Decode even when the numerics fingerprint differs (the CRCs still guard the result).
    pub force_numerics: bool,
    /// Go on past damaged chunks: write zeros in their place and report them at the end as
    /// [`Error::Damaged`], after every good chunk has been written.
    pub keep_going: bool,
    pub threads: usize,
    /// Where the model runs (the archive's numerics must be what it computes), and how many
    /// workers run there: on the CPU, or on each GPU.
    pub device: DeviceChoice,
    pub workers: usize,
    pub fetch: FetchPolicy,
}

impl Default for DecompressOptions {
    fn default() -> Self {
        Self {
            model_path: None,
            force_numerics: false,
            keep_going: false,
            threads: default_threads(),
            device: DeviceChoice::Auto,
            workers: 1,
            fetch: FetchPolicy::Auto,
        }
    }
}

pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))
}
