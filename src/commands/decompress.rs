//! `nzip decompress`: FILE.nz → FILE (or stdout / -o), checking every chunk's CRC32.

use std::path::{Path, PathBuf};

use nzip::pipeline::{self, DecompressOptions};
use nzip::{models, Error, Result};

use super::{input, output::Output, progress, report};
use crate::cli::args::{DecodeArgs, DecompressArgs};

pub fn run(args: &DecompressArgs) -> Result<()> {
    let io = &args.io;
    let files = super::inputs(&io.files, io.output.as_deref())?;
    if args.range.is_some() && !io.stdout && io.output.is_none() {
        return Err(Error::Usage(
            "--range writes part of a file: name the output with -o PATH, or use -c".into(),
        ));
    }
    if args.range.is_some() && io.rm {
        return Err(Error::Usage(
            "--range keeps the archive; --rm is refused".into(),
        ));
    }
    let opts = DecompressOptions {
        keep_going: args.keep_going,
        ..decode_options(&args.decode, io.threads)
    };
    for file in &files {
        decompress_one(file, args, &opts)?;
    }
    Ok(())
}

/// Decoding options from the shared flags.
pub fn decode_options(args: &DecodeArgs, threads: Option<u16>) -> DecompressOptions {
    DecompressOptions {
        model_path: args.model.clone(),
        force_numerics: args.force_numerics,
        keep_going: false,
        threads: threads.map_or(pipeline::default_threads(), usize::from),
        fetch: models::FetchPolicy::from_env(),
    }
}

fn decompress_one(file: &Path, args: &DecompressArgs, opts: &DecompressOptions) -> Result<()> {
    let io = &args.io;
    let to_stdout = io.stdout || (input::is_stdin(file) && io.output.is_none());
    let dest: Option<PathBuf> = if to_stdout {
        None
    } else if let Some(o) = &io.output {
        Some(o.clone())
    } else {
        match file
            .to_str()
            .and_then(|s| s.strip_suffix(".nz"))
            .filter(|s| !s.is_empty())
        {
            Some(stem) => Some(PathBuf::from(stem)),
            None => {
                return Err(Error::Usage(format!(
                    "{}: unknown suffix (expected .nz); use -o PATH or -c",
                    file.display()
                )))
            }
        }
    };
    // Read the input first (errors name it), then refuse an existing output before any work.
    let data = input::read(file)?;
    let mut out = match &dest {
        Some(d) => Output::file(d, io.force)?,
        None => Output::stdout(),
    };
    let started = std::time::Instant::now();
    let size = nzip::container::Header::parse(&data)
        .map(|(h, _)| h.original_size)
        .unwrap_or(0);
    let range = args.range.map(|r| r.start..r.end.unwrap_or(size));
    let total = range
        .as_ref()
        .map_or(size, |r| r.end.saturating_sub(r.start));
    let bar = progress::bar(total, "decompress", io.quiet);
    let outcome = pipeline::decompress_range(&data, range, opts, out.writer(), &|done| {
        bar.set_position(done)
    });
    bar.finish_and_clear();
    let written = match outcome {
        Ok(written) => written,
        // --keep-going: keep what was recovered (the error names the zeroed ranges), never
        // remove the archive.
        Err(e @ Error::Damaged { .. }) => {
            out.commit(file)?;
            return Err(e);
        }
        Err(Error::IoOther(source)) => {
            return Err(Error::io(
                dest.as_deref().unwrap_or(Path::new("<stdout>")),
                source,
            ))
        }
        Err(e) => return Err(e),
    };
    out.commit(file)?;
    report(io, file, written, data.len() as u64, started.elapsed());
    if io.rm && !input::is_stdin(file) && dest.is_some() {
        std::fs::remove_file(file).map_err(|e| Error::io(file, e))?;
    }
    Ok(())
}
