//! One file per subcommand; helpers they share.

pub mod bench;
pub mod compress;
pub mod decompress;
pub mod devices;
pub mod info;
pub mod input;
pub mod model;
pub mod output;
pub mod plot;
pub mod progress;
pub mod shell;
pub mod test;

use std::path::{Path, PathBuf};
use std::time::Duration;

use nzip::predict::llama::LlmTimes;
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

/// The one-line summary on stderr (with -v), like `zstd -v`, and where the LLM's time went
/// since `llm_before`.
pub fn report(
    io: &IoArgs,
    file: &Path,
    original: u64,
    compressed: u64,
    took: Duration,
    llm_before: &LlmTimes,
) {
    if io.quiet || !io.verbose {
        return;
    }
    let llm = LlmTimes::now().since(llm_before);
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
    if llm.tokens > 0 {
        let decode = llm.decode.as_secs_f64().max(1e-9);
        eprintln!(
            "  LLM: {} tokens in {} steps; model {decode:.1} s ({:.0} tokens/s), the rest of \
             each step {:.2} s ({:.1}% of the model's time)",
            llm.tokens,
            llm.steps,
            llm.tokens as f64 / decode,
            llm.rest.as_secs_f64(),
            100.0 * llm.rest.as_secs_f64() / decode
        );
    }
}
