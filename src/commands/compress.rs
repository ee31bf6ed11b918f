//! `nzip compress`: FILE → FILE.nz (or stdout / -o), one file after another.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use nzip::container::TokenModelKind;
use nzip::pipeline::{self, levels, CompressOptions, DecompressOptions, Engine};
use nzip::predict::lockstep::LlmTimes;
use nzip::{models, Error};

use super::output::Output;
use super::progress::Progress;
use super::{
    input, refuse_terminal, report, stdin_is_terminal, stdout_is_terminal, CliResult, Failure,
};
use crate::cli::args::{CompressArgs, EngineArg};

/// What the cost notice offers when LLM coding will be long.
const FASTER: &str = "--fast (the byte model alone, about 1 MB/s per core), -3 (more chunks \
                      in lockstep), or a GPU build (docs/gpu.md)";

/// "1.2 MB", "152.1 KB", "900 B".
fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} KB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

/// A reader that hashes what passes through it, so --verify can compare the decoded archive
/// with an input it has not kept (a stream).
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<W> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hash.update(buf);
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }

    fn digest(self) -> ([u8; 32], u64) {
        (self.hash.finalize().into(), self.bytes)
    }
}

/// Decodes a fresh archive and compares what comes out with the input's SHA-256 and length.
fn verify(
    file: &Path,
    archive: &mut (dyn Read + Send),
    input: ([u8; 32], u64),
    opts: &CompressOptions,
) -> CliResult {
    // A model given as a file is not in the cache under its name: decode with that file.
    let model_path = Path::new(&opts.model);
    let dopts = DecompressOptions {
        model_path: model_path.is_file().then(|| model_path.to_path_buf()),
        threads: opts.threads,
        fetch: opts.fetch,
        ..DecompressOptions::default()
    };
    let failed = |why: String| Failure::VerifyFailed {
        path: file.to_path_buf(),
        why,
    };
    let mut back = Hashing::new(());
    pipeline::decompress_stream(archive, &dopts, &mut back, &|_| {})
        .map_err(|e| failed(e.to_string()))?;
    if back.digest() != input {
        return Err(failed("decoded bytes differ".into()));
    }
    Ok(())
}

pub fn run(args: &CompressArgs) -> std::result::Result<(), Failure> {
    let io = &args.io;
    let files = super::inputs(&io.files, io.output.as_deref())?;
    if args.input_range.is_some() {
        if !io.stdout && io.output.is_none() {
            return Err(Failure::Usage(
                "--input-range codes part of a file: name the output with -o PATH, or use -c"
                    .into(),
            ));
        }
        if files.iter().any(|f| input::is_stdin(f)) {
            return Err(Failure::Usage(
                "--input-range needs a named file, not standard input".into(),
            ));
        }
        if io.rm {
            return Err(Failure::Usage(
                "--input-range keeps the input; --rm is refused".into(),
            ));
        }
    }
    let opts = options(args)?;
    super::note_rm_with_stdout(io);
    super::each_file(&files, |file| compress_one(file, args, &opts))
}

/// The level's settings with the explicit flags on top.
fn options(args: &CompressArgs) -> CliResult<CompressOptions> {
    let chosen = if args.fast {
        Some(levels::MIN_LEVEL)
    } else if args.best {
        Some(levels::MAX_LEVEL)
    } else {
        args.level
    };
    let level = levels::level(chosen.unwrap_or(levels::DEFAULT_LEVEL))
        .ok_or_else(|| Failure::Usage("levels go from 1 to 9".into()))?;
    let base = level.options();
    if level.model.is_none() && args.model.is_some() {
        return Err(Failure::Usage(format!(
            "level {} uses no language model; --model needs level 3 or above",
            level.level
        )));
    }
    if level.model.is_none() && args.engine.is_some() {
        return Err(Failure::Usage(format!(
            "level {} uses no language model; --engine needs level 3 or above",
            level.level
        )));
    }
    if level.model.is_none() && args.bare_llm {
        return Err(Failure::Usage(format!(
            "level {} uses no language model; --bare-llm needs level 3 or above",
            level.level
        )));
    }
    // $NZIP_MODEL stands in for the default level's model, not for a level asked for.
    let from_env = std::env::var("NZIP_MODEL").ok().filter(|m| !m.is_empty());
    let model = match (&args.model, chosen) {
        (Some(m), _) => m.clone(),
        (None, None) => from_env.unwrap_or(base.model.clone()),
        (None, Some(_)) => base.model.clone(),
    };
    Ok(CompressOptions {
        model,
        token_model: if args.bare_llm {
            TokenModelKind::Bare
        } else {
            TokenModelKind::BiasedEnsemble
        },
        engine: args.engine.map(|e| match e {
            EngineArg::Llama => Engine::Llama,
            EngineArg::Portable => Engine::Portable,
        }),
        always_llm: args.always_llm,
        chunk_size: args.chunk_size.map_or(base.chunk_size, |c| c as usize),
        window: args.window.unwrap_or(base.window),
        slide: args.slide.unwrap_or(base.slide),
        sinks: args.sinks.unwrap_or(base.sinks),
        seqs: args.seqs.unwrap_or(base.seqs),
        threads: args.io.threads.map_or(base.threads, usize::from),
        device: args.io.placement.device.clone(),
        workers: args.io.placement.workers.map_or(base.workers, usize::from),
        fetch: models::FetchPolicy::from_env(),
        ..base
    })
}

fn compress_one(
    file: &Path,
    args: &CompressArgs,
    opts: &CompressOptions,
) -> std::result::Result<(), Failure> {
    let io = &args.io;
    let to_stdout = io.stdout || (input::is_stdin(file) && io.output.is_none());
    // gzip's habits: an archive is not compressed again, and compressed data neither comes
    // from a terminal nor goes to one, unless forced.
    if !io.force && file.extension().is_some_and(|e| e == "nz") {
        // A warning, not a failure: gzip says "unchanged" and exits 0.
        if !io.quiet {
            eprintln!(
                "nzip: {}: already has the .nz suffix; skipped (use -f to compress it anyway)",
                file.display()
            );
        }
        return Ok(());
    }
    if input::is_stdin(file) {
        refuse_terminal(true, stdin_is_terminal(), io.force)?;
    }
    if to_stdout {
        refuse_terminal(false, stdout_is_terminal(), io.force)?;
    }
    let dest: Option<PathBuf> = if to_stdout {
        None
    } else if let Some(o) = &io.output {
        Some(o.clone())
    } else {
        let mut name = file.as_os_str().to_owned();
        name.push(".nz");
        Some(PathBuf::from(name))
    };
    // Open the input first (errors name it), then refuse an existing output before any work.
    let input = match args.input_range {
        Some(r) => input::open_range(file, r.start, r.end)?,
        None => input::open(file)?,
    };
    let mut out = Output::to(dest.as_deref(), io.force)?;
    let out_name = out.name().to_path_buf();
    let mut bar = Progress::new(input.size, "compress", io.quiet, io.verbose);
    if !opts.fast {
        let what = format!(
            "coding {} with {}",
            input.size.map_or(String::new(), human_bytes),
            opts.model
        );
        bar = bar.with_cost_notice(input.size, io.quiet, &what, FASTER);
    }
    let started = std::time::Instant::now();
    let llm_before = LlmTimes::now();
    let mut reader = Hashing::new(input.reader);
    // Written through a buffer: frame headers are a few bytes each.
    let mut kept = Vec::new();
    let stats = {
        let sink: &mut (dyn Write + Send) = if args.verify && dest.is_none() {
            // --verify to stdout: nothing may leave before the archive decoded.
            &mut kept
        } else {
            out.writer()
        };
        let mut sink = std::io::BufWriter::with_capacity(1 << 20, sink);
        pipeline::compress_stream(&mut reader, input.size, &mut sink, opts, &|done| {
            bar.set_position(done)
        })
        .map_err(|e| super::name_io_error(e, file, &out_name))?
    };
    bar.finish();
    if args.verify {
        let digest = reader.digest();
        match &out {
            Output::File { tmp, .. } => {
                let again = tmp.reopen().map_err(|e| Error::io(tmp.path(), e))?;
                verify(file, &mut std::io::BufReader::new(again), digest, opts)?;
            }
            Output::Stdout(_) => verify(file, &mut kept.as_slice(), digest, opts)?,
        }
    }
    if !kept.is_empty() {
        out.writer()
            .write_all(&kept)
            .map_err(|e| Error::io(&out_name, e))?;
    }
    out.commit(file)?;
    report(
        io,
        file,
        stats.original_bytes,
        stats.archive_bytes,
        started.elapsed(),
        &llm_before,
    );
    super::remove_input_if_asked(io, file, dest.is_some())
}
