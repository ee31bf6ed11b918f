//! One file per subcommand; helpers they share.

pub mod bench;
pub mod compress;
pub mod decompress;
pub mod info;
pub mod input;
pub mod model;
pub mod output;
pub mod progress;
pub mod test;

use std::path::{Path, PathBuf};
use std::time::Duration;

use nzip::{Error, Result};

use crate::cli::args::IoArgs;

/// The inputs to process: the named files, or standard input when none.
pub fn inputs(files: &[PathBuf], output: Option<&Path>) -> Result<Vec<PathBuf>> {
    let files = if files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        files.to_vec()
    };
    if output.is_some() && files.len() > 1 {
        return Err(Error::Usage("-o takes exactly one input file".into()));
    }
    Ok(files)
}

/// The one-line summary on stderr (with -v), like `zstd -v`.
pub fn report(io: &IoArgs, file: &Path, original: u64, compressed: u64, took: Duration) {
    if io.quiet || !io.verbose {
        return;
    }
    let bpb = if original > 0 {
        8.0 * compressed as f64 / original as f64
    } else {
        0.0
    };
    let secs = took.as_secs_f64().max(1e-9);
    eprintln!(
        "{}: {original} bytes <-> {compressed} bytes ({bpb:.3} bits per byte), {:.1} s, {:.2} KB/s",
        file.display(),
        secs,
        original as f64 / secs / 1000.0
    );
}
