//! The library's one error type: every way compression or decompression can fail, each named
//! after the rule or resource that failed, so the CLI can print a precise message.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Reading the input (to compress) or the archive (to decompress) failed.
    #[error("read failed: {0}")]
    Read(std::io::Error),

    /// Writing the archive or the decoded bytes failed.
    #[error("write failed: {0}")]
    Write(std::io::Error),

    /// The archive breaks a rule of the format (`formats/NZIP.md`).
    #[error(transparent)]
    Format(#[from] FormatError),

    /// A file that is read while being compressed changed its length.
    #[error("the input changed while being read: {expected} bytes expected, {read} read")]
    InputChanged { expected: u64, read: u64 },

    #[error("unknown model {name:?}: {hint}")]
    UnknownModel { name: String, hint: String },

    #[error("model {name} is not installed: {hint}")]
    ModelMissing { name: String, hint: String },

    #[error("model file {} has SHA-256 {actual}, expected {expected} ({hint})", path.display())]
    ModelHashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
        hint: String,
    },

    #[error("model fetch failed: {0}")]
    Fetch(String),

    #[error(
        "numerics mismatch: archive was made with {archive}, this build computes with {here}; \
         the model's logits may differ in the last bits, which breaks decoding. \
         Decode with the same nzip build and hardware kind, or pass --force-numerics to try \
         anyway (the chunk CRCs still catch a wrong result)"
    )]
    NumericsMismatch { archive: String, here: String },

    #[error("llama.cpp: {0}")]
    Llama(String),

    /// The portable engine cannot use the model (an unsupported architecture or block type,
    /// or a damaged GGUF file).
    #[error("portable engine: {0}")]
    Engine(String),

    #[error(
        "archive damaged: {} part(s) could not be recovered ({written} bytes written in all; \
         a damaged chunk's bytes as zeros, lost ones not at all): {}",
        ranges.len(),
        ranges.iter().map(|(r, why)| if r.is_empty() {
            format!("at byte {} ({why})", r.start)
        } else {
            format!("{}..{} ({why})", r.start, r.end)
        }).collect::<Vec<_>>().join("; ")
    )]
    Damaged {
        written: u64,
        ranges: Vec<(std::ops::Range<u64>, String)>,
    },

    /// Options that cannot work together or lie outside their range (the library's
    /// counterpart of a usage error).
    #[error("{0}")]
    InvalidOption(String),

    #[error("internal error: {0}")]
    Internal(String),
}

/// How an archive breaks the format: each kind names the rule it enforces.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    #[error("not an nzip archive (bad magic number)")]
    BadMagic,

    #[error(
        "unsupported archive format version {found} (this nzip reads versions {oldest} to \
         {newest}; a newer archive needs a newer nzip)"
    )]
    UnsupportedVersion {
        found: u16,
        oldest: u16,
        newest: u16,
    },

    /// The archive ends inside a structure (named in the text).
    #[error("truncated archive: {0}")]
    Truncated(String),

    #[error("reserved bits set in {field}: {value:#x} (archive from a newer nzip, or damaged)")]
    ReservedBits { field: &'static str, value: u64 },

    #[error(
        "{structure} CRC mismatch: stored {stored:#010x}, computed {computed:#010x} (archive \
         damaged)"
    )]
    Crc {
        /// Which structure: "header", "index", "chunk 3 payload", "chunk 3 frame header",
        /// "chunk 3 (original bytes a..b)".
        structure: String,
        stored: u32,
        computed: u32,
    },

    #[error("corrupt archive: {what} is {value}, over the format's limit of {limit}")]
    OverLimit {
        what: String,
        value: u64,
        limit: u64,
    },

    #[error("corrupt archive: unknown {field} {id} (archive from a newer nzip, or damaged)")]
    UnknownId { field: String, id: u64 },

    /// A field breaks a rule of the format, or two fields disagree (said in the text).
    #[error("corrupt archive: {0}")]
    Malformed(String),
}

impl Error {
    /// A format rule broken, in words.
    pub fn malformed(why: impl Into<String>) -> Self {
        Error::Format(FormatError::Malformed(why.into()))
    }

    /// The archive ends inside `what`.
    pub fn truncated(what: impl Into<String>) -> Self {
        Error::Format(FormatError::Truncated(what.into()))
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
