//! `nzip compress`: FILE → FILE.nz (or stdout / -o), one file after another.

use std::path::{Path, PathBuf};

use nzip::pipeline::{self, CompressOptions, DecompressOptions};
use nzip::{models, Error, Result};

use super::{input, output::Output, progress, report};
use crate::cli::args::CompressArgs;

/// Decodes a fresh archive in memory and compares it with the input, byte for byte.
fn verify(file: &Path, data: &[u8], archive: &[u8], opts: &CompressOptions) -> Result<()> {
    // A model given as a file is not in the cache under its name: decode with that file.
    let model_path = Path::new(&opts.model);
    let dopts = DecompressOptions {
        model_path: model_path.is_file().then(|| model_path.to_path_buf()),
        threads: opts.threads,
        fetch: opts.fetch,
        ..DecompressOptions::default()
    };
    let mut back = Vec::with_capacity(data.len());
    let failed = |why: String| Error::VerifyFailed {
        path: file.to_path_buf(),
        why,
    };
    pipeline::decompress(archive, &dopts, &mut back, &|_| {}).map_err(|e| failed(e.to_string()))?;
    if back != data {
        return Err(failed("decoded bytes differ".into()));
    }
    Ok(())
}

pub fn run(args: &CompressArgs) -> Result<()> {
    let io = &args.io;
    let files = super::inputs(&io.files, io.output.as_deref())?;
    let defaults = CompressOptions::default();
    let opts = CompressOptions {
        model: args
            .model
            .clone()
            .or_else(|| std::env::var("NZIP_MODEL").ok().filter(|m| !m.is_empty()))
            .unwrap_or_else(|| models::DEFAULT_MODEL.to_string()),
        fast: args.fast,
        always_llm: false,
        chunk_size: args.chunk_size.map_or(
            if args.fast {
                pipeline::DEFAULT_FAST_CHUNK_SIZE
            } else {
                pipeline::DEFAULT_CHUNK_SIZE
            },
            |c| c as usize,
        ),
        window: args.window.unwrap_or(defaults.window),
        slide: args.slide.unwrap_or(defaults.slide),
        sinks: args.sinks.unwrap_or(defaults.sinks),
        seqs: args.seqs.unwrap_or(defaults.seqs),
        threads: io.threads.map_or(defaults.threads, usize::from),
        fetch: models::FetchPolicy::from_env(),
    };
    for file in &files {
        compress_one(file, args, &opts)?;
    }
    Ok(())
}

fn compress_one(file: &Path, args: &CompressArgs, opts: &CompressOptions) -> Result<()> {
    let io = &args.io;
    let to_stdout = io.stdout || (input::is_stdin(file) && io.output.is_none());
    let dest: Option<PathBuf> = if to_stdout {
        None
    } else if let Some(o) = &io.output {
        Some(o.clone())
    } else {
        let mut name = file.as_os_str().to_owned();
        name.push(".nz");
        Some(PathBuf::from(name))
    };
    // Read the input first (errors name it), then refuse an existing output before any work.
    let data = input::read(file)?;
    let mut out = match &dest {
        Some(d) => Output::file(d, io.force)?,
        None => Output::stdout(),
    };
    let bar = progress::bar(data.len() as u64, "compress", io.quiet);
    let started = std::time::Instant::now();
    let archive = pipeline::compress(&data, opts, &|done| bar.set_position(done))?;
    bar.finish_and_clear();
    if args.verify {
        verify(file, &data, &archive, opts)?;
    }
    out.writer()
        .write_all(&archive)
        .map_err(|e| Error::io(dest.as_deref().unwrap_or(Path::new("<stdout>")), e))?;
    out.commit(file)?;
    report(
        io,
        file,
        data.len() as u64,
        archive.len() as u64,
        started.elapsed(),
    );
    if io.rm && !input::is_stdin(file) && dest.is_some() {
        std::fs::remove_file(file).map_err(|e| Error::io(file, e))?;
    }
    Ok(())
}
