//! nzip: a lossless compressor whose entropy model is a small language model.
//!
//! Text is cut into tokens of a GGUF language model, and each token is coded with the
//! probability the model gave it (mixed with token n-grams and a match model learned from the
//! input); other bytes go to a context-mixing byte model in the same range-coder stream. Every
//! archive records the model's SHA-256, the numerics it was made with and CRC32s over every
//! byte, so decoding either gives back the exact input or fails with an [`Error`] that names
//! the problem.
//!
//! # Use
//!
//! Between byte slices, as `zstd::encode_all` / `decode_all`:
//!
//! ```
//! let data = b"Lossless: every byte comes back. Lossless: every byte comes back.".repeat(20);
//! let archive = nzip::compress_to_vec(&data, &nzip::Options::fast())?;
//! assert!(archive.len() < data.len() / 4);
//! assert_eq!(nzip::decompress_to_vec(&archive)?, data);
//! # Ok::<(), nzip::Error>(())
//! ```
//!
//! Between any [`Read`] and [`Write`], holding one group of chunks in memory, not the input:
//!
//! ```
//! use std::io::Cursor;
//!
//! let text = "A stream of text, coded chunk by chunk.\n".repeat(1000);
//! let mut archive = Vec::new();
//! let stats = nzip::compress(text.as_bytes(), &mut archive, &nzip::Options::fast())?;
//! assert_eq!(stats.original_bytes, text.len() as u64);
//! assert_eq!(stats.archive_bytes, archive.len() as u64);
//!
//! let mut back = Vec::new();
//! nzip::decompress(Cursor::new(&archive), &mut back)?;
//! assert_eq!(back, text.as_bytes());
//! # Ok::<(), nzip::Error>(())
//! ```
//!
//! The language-model levels need their model file: it is fetched into the cache
//! (`$NZIP_MODEL_DIR`, else `$XDG_CACHE_HOME/nzip/models`, else `~/.cache/nzip/models`) on
//! first use unless [`Options::offline`] says not to, and decoding needs the same file (found
//! by its SHA-256). On a CPU the default level codes text at a few hundred bytes a second.
//!
//! ```no_run
//! let text = std::fs::read("notes.txt")?;
//! let archive = nzip::compress_to_vec(&text, &nzip::Options::level(5)?.threads(2))?;
//! std::fs::write("notes.txt.nz", &archive)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Inside
//!
//! The data flows through the modules in this order (the format is `formats/NZIP.md` in the
//! source tree): [`chunk`] plan → [`segment`]s → [`token`]s → [`predict`]ions of the model in
//! lockstep groups (`predict::lockstep`, on llama.cpp or on nzip's own [`engine`]) → integer
//! CDFs and the range coder ([`entropy`], [`codec`]) → [`container`], the format's only reader
//! and writer. [`pipeline`] ties them together; the command line lives in the `nzip` binary.
//! Each module uses only those below it in `tests/layers.rs`.

#![warn(missing_docs)]

use std::io::{Read, Write};

#[allow(missing_docs)]
pub mod chunk;
#[allow(missing_docs)]
pub mod codec;
#[allow(missing_docs)]
pub mod container;
#[allow(missing_docs)]
pub mod engine;
#[allow(missing_docs)]
pub mod entropy;
#[allow(missing_docs)]
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
#[allow(missing_docs)]
pub mod models;
#[allow(missing_docs)]
pub mod pipeline;
#[allow(missing_docs)]
pub mod predict;
#[doc(hidden)]
pub mod seeded;
#[allow(missing_docs)]
pub mod segment;
#[allow(missing_docs)]
pub mod token;

pub use error::{Error, FormatError, Result};
pub use pipeline::CompressStats;

use pipeline::{levels, CompressOptions, DecompressOptions};

/// Compression settings: a level (1–9, as `nzip -1` … `-9`) and, where it matters, the model,
/// the threads and whether a missing model may be downloaded. The archive records everything
/// the decoder needs, so decompression takes no level.
#[derive(Clone, Debug)]
pub struct Options {
    compress: CompressOptions,
}

impl Options {
    /// Level `n`: 1–2 the byte model alone (no model file), 3–5 SmolLM2 135M, 6–7 Gemma 3
    /// 270M, 8–9 Qwen2.5-Coder 1.5B; within a model, higher levels cut bigger chunks.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for a level outside 1–9.
    pub fn level(n: u8) -> Result<Options> {
        let level = levels::level(n).ok_or_else(|| {
            Error::InvalidOption(format!(
                "level {n}: levels go from {} to {}",
                levels::MIN_LEVEL,
                levels::MAX_LEVEL
            ))
        })?;
        Ok(Options {
            compress: level.options(),
        })
    }

    /// Level 1: the context-mixing byte model alone, about 1 MB/s per core; needs no model
    /// file to compress or to decompress.
    pub fn fast() -> Options {
        Self::level(levels::MIN_LEVEL).expect("the fast level exists")
    }

    /// Level 9: Qwen2.5-Coder 1.5B with a 4,096-token window, the smallest archives.
    pub fn best() -> Options {
        Self::level(levels::MAX_LEVEL).expect("the best level exists")
    }

    /// Codes text with this model (a name from `nzip model list` or a GGUF file's path) in
    /// place of the level's. Has no effect on levels 1 and 2, which use no language model.
    pub fn model(mut self, name_or_path: impl Into<String>) -> Options {
        self.compress.model = name_or_path.into();
        self
    }

    /// Threads for the model and the coder (default: every core). The archive does not depend
    /// on it.
    pub fn threads(mut self, threads: usize) -> Options {
        self.compress.threads = threads.max(1);
        self
    }

    /// With `true`, a model that is not in the cache is an error ([`Error::ModelMissing`])
    /// instead of a download.
    pub fn offline(mut self, offline: bool) -> Options {
        self.compress.fetch = if offline {
            models::FetchPolicy::Never
        } else {
            models::FetchPolicy::Auto
        };
        self
    }

    /// The pipeline's full settings, for what this builder does not cover (chunk size,
    /// window, devices); see [`pipeline::compress_stream`].
    pub fn pipeline_options(&self) -> &CompressOptions {
        &self.compress
    }
}

impl Default for Options {
    /// The default level (5: SmolLM2 135M, 256 KiB chunks).
    fn default() -> Options {
        Self::level(levels::DEFAULT_LEVEL).expect("the default level exists")
    }
}

/// Compresses everything `input` yields into an archive written to `output`, a group of
/// chunks at a time; returns the sizes.
///
/// # Errors
/// Reading, writing, the model (missing, unknown, a failed download), or the device.
pub fn compress<R: Read + Send, W: Write + Send>(
    mut input: R,
    mut output: W,
    options: &Options,
) -> Result<CompressStats> {
    pipeline::compress_stream(&mut input, None, &mut output, &options.compress, &|_| {})
}

/// Decodes the archive `input` yields into `output`, checking every CRC; returns the bytes
/// written. The archive names its model; it is looked up in the cache (and fetched if missing).
///
/// # Errors
/// A damaged or foreign archive (the error names the structure that failed its check), a
/// model that is missing or differs from the one the archive names, reading or writing.
pub fn decompress<R: Read + Send, W: Write + Send>(mut input: R, mut output: W) -> Result<u64> {
    pipeline::decompress_stream(
        &mut input,
        &DecompressOptions::default(),
        &mut output,
        &|_| {},
    )
}

/// Compresses `data` into an archive in memory.
///
/// # Errors
/// As [`compress`].
pub fn compress_to_vec(data: &[u8], options: &Options) -> Result<Vec<u8>> {
    pipeline::compress(data, &options.compress, &|_| {})
}

/// Decodes a whole archive in memory.
///
/// # Errors
/// As [`decompress`].
pub fn decompress_to_vec(archive: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    pipeline::decompress(archive, &DecompressOptions::default(), &mut out, &|_| {})?;
    Ok(out)
}
