//! `nzip decompress`: FILE.nz → FILE (or stdout / -o), checking every chunk's CRC32.

use std::io::Write;
use std::path::{Path, PathBuf};

use nzip::pipeline::{self, DecompressOptions};
use nzip::predict::lockstep::LlmTimes;
use nzip::{models, Error};

use super::output::Output;
use super::progress::Progress;
use super::{input, refuse_terminal, report, stdin_is_terminal, Failure};
use crate::cli::args::{DecodeArgs, DecompressArgs, PlacementArgs};

pub fn run(args: &DecompressArgs) -> std::result::Result<(), Failure> {
    let io = &args.io;
    let files = super::inputs(&io.files, io.output.as_deref())?;
    if args.range.is_some() && !io.stdout && io.output.is_none() {
        return Err(Failure::Usage(
            "--range writes part of a file: name the output with -o PATH, or use -c".into(),
        ));
    }
    if args.range.is_some() && io.rm {
        return Err(Failure::Usage(
            "--range keeps the archive; --rm is refused".into(),
        ));
    }
    super::note_rm_with_stdout(io);
    let opts = DecompressOptions {
        keep_going: args.keep_going,
        ..decode_options(&args.decode, io.threads, &io.placement)
    };
    super::each_file(&files, |file| decompress_one(file, args, &opts))
}

/// Decoding options from the shared flags.
pub fn decode_options(
    args: &DecodeArgs,
    threads: Option<u16>,
    placement: &PlacementArgs,
) -> DecompressOptions {
    DecompressOptions {
        model_path: args.model.clone(),
        force_numerics: args.force_numerics,
        keep_going: false,
        threads: threads.map_or(pipeline::default_threads(), usize::from),
        device: placement.device.clone(),
        workers: placement.workers.map_or(1, usize::from),
        fetch: models::FetchPolicy::from_env(),
    }
}

fn decompress_one(
    file: &Path,
    args: &DecompressArgs,
    opts: &DecompressOptions,
) -> std::result::Result<(), Failure> {
    let io = &args.io;
    if input::is_stdin(file) {
        refuse_terminal(true, stdin_is_terminal(), io.force)?;
    }
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
                return Err(Failure::Usage(
                    "unknown suffix (expected .nz); skipped (use -o PATH or -c)".into(),
                ))
            }
        }
    };
    // Open the input first (errors name it), then refuse an existing output before any work.
    // A range or --keep-going reads the whole archive for random access through its index;
    // a plain decode streams it front to back.
    let random_access = args.range.is_some() || opts.keep_going;
    let source = if random_access {
        Source::Whole(input::read(file)?)
    } else {
        Source::Stream(input::open(file)?)
    };
    let mut out = Output::to(dest.as_deref(), io.force)?;
    let out_name = out.name().to_path_buf();
    let started = std::time::Instant::now();
    let llm_before = LlmTimes::now();
    let mut sink = std::io::BufWriter::with_capacity(1 << 20, out.writer());
    let (outcome, archive_bytes) = match source {
        Source::Whole(data) => {
            let size = nzip::container::original_size(&data);
            // Clipped to the end as the pipeline clips it, so progress counts what comes.
            let end = size.unwrap_or(0);
            let range = args
                .range
                .map(|r| r.start.min(end)..r.end.unwrap_or(end).min(end));
            let total = match &range {
                Some(r) => Some(r.end.saturating_sub(r.start)),
                None => size,
            };
            let bar = Progress::new(total, "decompress", io.quiet, io.verbose);
            let outcome = pipeline::decompress_range(&data, range, opts, &mut sink, &|done| {
                bar.set_position(done)
            });
            bar.finish();
            (outcome, data.len() as u64)
        }
        Source::Stream(stream) => {
            let bar = Progress::new(None, "decompress", io.quiet, io.verbose);
            let mut reader = stream.reader;
            let outcome = pipeline::decompress_stream(&mut reader, opts, &mut sink, &|done| {
                bar.set_position(done)
            });
            bar.finish();
            (outcome, stream.size.unwrap_or(0))
        }
    };
    let outcome = outcome.map_err(|e| super::name_io_error(e, file, &out_name));
    sink.flush().map_err(|e| Error::io(&out_name, e))?;
    drop(sink);
    let written = match outcome {
        Ok(written) => written,
        // --keep-going: keep what was recovered (the error names the zeroed ranges), never
        // remove the archive.
        Err(e @ Error::Damaged { .. }) => {
            out.commit(file)?;
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    out.commit(file)?;
    report(
        io,
        file,
        written,
        archive_bytes,
        started.elapsed(),
        &llm_before,
    );
    super::remove_input_if_asked(io, file, dest.is_some())
}

/// The archive as a whole (random access) or as a stream.
enum Source {
    Whole(input::Input),
    Stream(input::Stream),
}
