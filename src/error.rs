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

    #[error("{0}")]
    IoOther(#[from] std::io::Error),

    #[error("not an nzip archive (bad magic number)")]
    NotNzip,

    #[error("truncated archive: {0}")]
    Truncated(String),

    #[error(
        "unsupported archive format version {found} (this nzip reads versions {oldest} to \
         {newest}; a newer archive needs a newer nzip)"
    )]
    UnsupportedVersion {
        found: u16,
        oldest: u16,
        newest: u16,
    },

    #[error("reserved bits set in {field}: {value:#x} (archive from a newer nzip, or damaged)")]
    ReservedBits { field: &'static str, value: u64 },

    #[error(
        "{what} CRC mismatch: stored {stored:#010x}, computed {computed:#010x} (archive damaged)"
    )]
    CrcMismatch {
        what: String,
        stored: u32,
        computed: u32,
    },

    #[error("corrupt archive: {0}")]
    Corrupt(String),

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

    #[error("{} already exists; use -f to overwrite", .0.display())]
    OutputExists(PathBuf),

    #[error(
        "archive damaged: {} byte range(s) could not be recovered and were written as zeros \
         ({written} bytes written in all): {}",
        ranges.len(),
        ranges.iter().map(|(r, why)| format!("{}..{} ({why})", r.start, r.end)).collect::<Vec<_>>().join("; ")
    )]
    Damaged {
        written: u64,
        ranges: Vec<(std::ops::Range<u64>, String)>,
    },

    #[error("{failed} of {total} archives failed the test")]
    TestFailed { failed: usize, total: usize },

    #[error(
        "verification failed: the new archive of {} does not decode to the input ({why}); \
         nothing was written and the input was kept",
        path.display()
    )]
    VerifyFailed { path: PathBuf, why: String },

    #[error("{0}")]
    Usage(String),

    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
