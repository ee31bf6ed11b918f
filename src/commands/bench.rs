//! `nzip bench`: nzip (LLM and fast mode) against gzip -9, bzip2 -9, xz -9e and zstd -19 on
//! the same bytes, in one run: bits per byte, compress and decompress speed of every tool, a
//! check that every round trip matched, and with --plot the chart of it all.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use nzip::container::TokenModelKind;
use nzip::pipeline::{self, levels, CompressOptions, DecompressOptions, Engine};
use nzip::predict::lockstep::LlmTimes;
use nzip::{models, Error};

use super::plot::{write_svg, Point};
use super::{CliResult, Failure};
use crate::cli::args::BenchArgs;

/// The corpus text files the default run uses (sliced: the LLM runs at a few hundred bytes
/// per second on two cores), and every file, which `--fast` runs whole.
const CORPUS_TEXT: &[&str] = &["alice29.txt", "asyoulik.txt", "enwik6", "html", "urls.10K"];
const CORPUS_ALL: &[&str] = &[
    "alice29.txt",
    "asyoulik.txt",
    "enwik6",
    "html",
    "urls.10K",
    "geo.protodata",
    "kppkn.gtb",
    "paper-100k.pdf",
    "fireworks.jpeg",
];
const DEFAULT_SLICE: usize = 8192;

fn corpus_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("NZIP_CORPUS").map(PathBuf::from),
        Some(PathBuf::from("corpus")),
        // The source tree's corpus, for a binary run from its own checkout elsewhere.
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_dir())
}

/// One tool's result on one file: compressed bytes and seconds to compress and decompress.
#[derive(Clone, Copy)]
struct Measured {
    bytes: u64,
    compress_s: f64,
    decompress_s: Option<f64>,
}

pub fn run(args: &BenchArgs) -> CliResult {
    let files = if args.files.is_empty() {
        let dir = corpus_dir().ok_or_else(|| {
            Failure::Usage(
                "no files given and no corpus folder found (name files, or set NZIP_CORPUS)".into(),
            )
        })?;
        let names = if args.fast { CORPUS_ALL } else { CORPUS_TEXT };
        names.iter().map(|f| dir.join(f)).collect()
    } else {
        args.files.clone()
    };
    // Fast mode alone runs whole files unless a slice is asked for.
    let slice = match (args.full, args.slice) {
        (true, _) => None,
        (false, Some(n)) => Some(n),
        (false, None) if args.fast => None,
        (false, None) => Some(DEFAULT_SLICE),
    };
    let threads = args
        .threads
        .map_or(pipeline::default_threads(), usize::from);
    let at_level = |n: u8| -> CliResult<CompressOptions> {
        let level = levels::level(n)
            .ok_or_else(|| Failure::Usage(format!("no level {n}: levels go from 1 to 9")))?;
        let mut opts = level.options();
        if let (Some(m), Some(_)) = (&args.model, level.model) {
            opts.model = m.clone();
        }
        opts.threads = threads;
        opts.fetch = models::FetchPolicy::from_env();
        Ok(opts)
    };
    let dopts = DecompressOptions {
        threads,
        fetch: models::FetchPolicy::from_env(),
        ..DecompressOptions::default()
    };
    // Each column: a name and its options. --portable adds the portable engine's column after
    // each LLM column, in the same run.
    let mut modes: Vec<(String, CompressOptions)> = Vec::new();
    let push = |modes: &mut Vec<(String, CompressOptions)>, name: String, opts: CompressOptions| {
        if args.portable && !opts.fast {
            let portable = CompressOptions {
                engine: Some(Engine::Portable),
                ..opts.clone()
            };
            let llama = CompressOptions {
                engine: Some(Engine::Llama),
                ..opts
            };
            modes.push((name.clone(), llama));
            modes.push((format!("{name} portable"), portable));
        } else {
            modes.push((name, opts));
        }
    };
    if let Some(list) = &args.levels {
        for &n in list {
            let opts = at_level(n)?;
            if args.ablation && !opts.fast {
                let bare = CompressOptions {
                    token_model: TokenModelKind::Bare,
                    ..opts.clone()
                };
                push(&mut modes, format!("nzip -{n} bare"), bare);
            }
            push(&mut modes, format!("nzip -{n}"), opts);
        }
    } else {
        let llm = at_level(levels::DEFAULT_LEVEL)?;
        if args.ablation {
            let bare = CompressOptions {
                token_model: TokenModelKind::Bare,
                ..llm.clone()
            };
            push(&mut modes, "nzip-bare".into(), bare);
        }
        if !args.fast {
            push(&mut modes, "nzip".into(), llm);
        }
        modes.push(("nzip-fast".into(), at_level(levels::MIN_LEVEL)?));
    }
    let tools: [(&str, &str, &[&str]); 4] = [
        ("gzip -9", "gzip", &["-9", "-c"]),
        ("bzip2 -9", "bzip2", &["-9", "-c"]),
        ("xz -9e", "xz", &["-9e", "-c", "-T1"]),
        ("zstd -19", "zstd", &["-19", "-c", "-q"]),
    ];
    let mut columns: Vec<&str> = modes.iter().map(|m| m.0.as_str()).collect();
    columns.extend(tools.iter().map(|t| t.0));

    outln!(
        "nzip bench: {}; {threads} threads",
        match slice {
            Some(n) => format!("first {n} bytes of each file"),
            None => "whole files".into(),
        },
    );
    for (name, opts) in &modes {
        if opts.fast {
            outln!("  {name}: byte model alone, chunk {} B", opts.chunk_size);
        } else {
            outln!(
                "  {name}: model {}, chunk {} B, window {}, {:?} token model",
                opts.model,
                opts.chunk_size,
                opts.window,
                opts.token_model
            );
        }
    }
    let mut rows: Vec<(String, u64, Vec<Option<Measured>>)> = Vec::new();
    let mut throughput = vec![Throughput::default(); modes.len()];
    let mut all_ok = true;
    for file in files {
        let mut data = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
        if let Some(n) = slice {
            data.truncate(n);
        }
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut results = Vec::new();
        for (mode, opts) in &modes {
            let t = Instant::now();
            let llm_before = LlmTimes::now();
            let archive = pipeline::compress(&data, opts, &|_| {})?;
            let compress_s = t.elapsed().as_secs_f64();
            let llm = LlmTimes::now().since(&llm_before);
            let t = Instant::now();
            let llm_before = LlmTimes::now();
            let mut back = Vec::with_capacity(data.len());
            let ok =
                pipeline::decompress(&archive, &dopts, &mut back, &|_| {}).is_ok() && back == data;
            let decompress_s = t.elapsed().as_secs_f64();
            let llm_back = LlmTimes::now().since(&llm_before);
            let sums = &mut throughput[results.len()];
            sums.add(0, &llm, compress_s);
            sums.add(1, &llm_back, decompress_s);
            if !ok {
                eprintln!("{name}: {mode} round trip FAILED");
                all_ok = false;
            }
            let model_share = if llm.tokens > 0 {
                let decode = llm.decode.as_secs_f64().max(1e-9);
                format!(
                    "; compress: model {:.0} tokens/s, {:.1}% more in the rest of each step, \
                     {:.1}% outside the steps",
                    llm.tokens as f64 / decode,
                    100.0 * llm.rest.as_secs_f64() / decode,
                    100.0 * (compress_s - decode - llm.rest.as_secs_f64()).max(0.0) / decode
                )
            } else {
                String::new()
            };
            eprintln!(
                "{name}: {mode} {:.3} bits per byte, compress {compress_s:.1} s, decompress \
                 {decompress_s:.1} s{model_share}",
                8.0 * archive.len() as f64 / data.len().max(1) as f64
            );
            results.push(Some(Measured {
                bytes: archive.len() as u64,
                compress_s,
                decompress_s: Some(decompress_s),
            }));
        }
        for (_, tool, flags) in &tools {
            results.push(external(tool, flags, &data));
        }
        rows.push((name, data.len() as u64, results));
    }

    let width = columns.iter().map(|c| c.len()).max().unwrap_or(0).max(9);
    let header = |title: &str| {
        out!("\n{title}\n{:<16} {:>9}", "file", "bytes");
        for c in &columns {
            out!(" {c:>width$}");
        }
        outln!();
    };
    header("bits per byte (lower is better)");
    let mut totals = vec![Totals::default(); columns.len()];
    for (name, len, results) in &rows {
        out!("{name:<16} {len:>9}");
        for (i, r) in results.iter().enumerate() {
            match r {
                Some(m) if *len > 0 => {
                    totals[i].add(*len, m);
                    out!(" {:>width$.3}", 8.0 * m.bytes as f64 / *len as f64)
                }
                _ => out!(" {:>width$}", "-"),
            }
        }
        outln!();
    }
    out!(
        "{:<16} {:>9}",
        "all",
        totals.first().map_or(0, |t| t.original)
    );
    for t in &totals {
        match t.bits_per_byte() {
            Some(bpb) => out!(" {bpb:>width$.3}"),
            None => out!(" {:>width$}", "-"),
        }
    }
    outln!();
    for (title, pick) in [
        ("compress speed, KB/s", 0usize),
        ("decompress speed, KB/s", 1),
    ] {
        header(title);
        for (name, len, results) in &rows {
            out!("{name:<16} {len:>9}");
            for r in results {
                let s = r.and_then(|m| {
                    if pick == 0 {
                        Some(m.compress_s)
                    } else {
                        m.decompress_s
                    }
                });
                match s {
                    Some(s) if s > 0.0 => out!(" {:>width$.1}", *len as f64 / s / 1000.0),
                    _ => out!(" {:>width$}", "-"),
                }
            }
            outln!();
        }
    }
    if throughput.iter().any(|t| t.tokens[0] > 0) {
        outln!(
            "\nLLM tokens per second, all files: the model alone (time inside the engine's \
             steps) and the whole pipeline (wall time, model loading included); the pipeline's \
             overhead, and the part of it spent in the steps (coding between the engine's calls)"
        );
        outln!(
            "{:<16} {:>10} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9}",
            "mode",
            "compress",
            "pipeline",
            "overhead",
            "in steps",
            "decompress",
            "pipeline",
            "overhead",
            "in steps"
        );
        for ((name, _), t) in modes.iter().zip(&throughput) {
            if t.tokens[0] == 0 {
                continue;
            }
            out!("{name:<16}");
            for side in 0..2 {
                let decode_s = t.decode_s[side].max(1e-9);
                let model = t.tokens[side] as f64 / decode_s;
                let pipeline = t.tokens[side] as f64 / t.wall_s[side].max(1e-9);
                out!(
                    " {model:>10.1} {pipeline:>9.1} {:>8.1}% {:>8.1}%",
                    100.0 * (model / pipeline.max(1e-9) - 1.0),
                    100.0 * t.rest_s[side] / decode_s
                );
            }
            outln!();
        }
    }
    outln!(
        "\nround trips: {}",
        if all_ok { "all matched" } else { "SOME FAILED" }
    );
    if let Some(path) = &args.plot {
        let points: Vec<Point> = columns
            .iter()
            .zip(&totals)
            .filter_map(|(tool, t)| {
                Some(Point {
                    tool: tool.to_string(),
                    bits_per_byte: t.bits_per_byte()?,
                    speed_kbs: t.speeds_kbs(),
                })
            })
            .collect();
        let subtitle = format!(
            "{} files, {}, {threads} threads",
            rows.len(),
            match slice {
                Some(n) => format!("first {n} bytes of each"),
                None => "whole".into(),
            }
        );
        write_svg(path, &points, &subtitle)?;
        outln!("plot: {}", path.display());
    }
    if all_ok {
        Ok(())
    } else {
        Err(Error::Internal("a round trip failed".into()).into())
    }
}

/// An installed tool's compressed size and compress/decompress times (each a process run,
/// through pipes), or `None` when it is not installed.
fn external(tool: &str, flags: &[&str], data: &[u8]) -> Option<Measured> {
    let t = Instant::now();
    let packed = pipe_through(tool, flags, data)?;
    let compress_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let unpacked = pipe_through(tool, &["-d", "-c"], &packed);
    let decompress_s = t.elapsed().as_secs_f64();
    Some(Measured {
        bytes: packed.len() as u64,
        compress_s,
        decompress_s: unpacked.filter(|u| u == data).map(|_| decompress_s),
    })
}

/// The tool's output for `data` on stdin, or `None` when it is missing or fails.
fn pipe_through(tool: &str, flags: &[&str], data: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new(tool)
        .args(flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    out.status.success().then_some(out.stdout)
}

/// One column's sums over the files it ran on: original and compressed bytes, and seconds
/// (decompression only where every file was timed).
#[derive(Clone, Default)]
struct Totals {
    original: u64,
    compressed: u64,
    compress_s: f64,
    decompress_s: Option<f64>,
    untimed_decompress: bool,
}

impl Totals {
    fn add(&mut self, original: u64, m: &Measured) {
        self.original += original;
        self.compressed += m.bytes;
        self.compress_s += m.compress_s;
        match m.decompress_s {
            Some(s) => *self.decompress_s.get_or_insert(0.0) += s,
            None => self.untimed_decompress = true,
        }
    }

    fn bits_per_byte(&self) -> Option<f64> {
        (self.original > 0).then(|| 8.0 * self.compressed as f64 / self.original as f64)
    }

    /// KB of original per second over all files, compressing and decompressing.
    fn speeds_kbs(&self) -> [Option<f64>; 2] {
        let kbs = |s: f64| (s > 0.0).then(|| self.original as f64 / s / 1000.0);
        [
            kbs(self.compress_s),
            self.decompress_s
                .filter(|_| !self.untimed_decompress)
                .and_then(kbs),
        ]
    }
}

/// One mode's LLM tokens, time inside `decode` and wall time, summed over files; [0] for
/// compression, [1] for decompression.
#[derive(Clone, Default)]
struct Throughput {
    tokens: [u64; 2],
    decode_s: [f64; 2],
    /// The rest of each step: what the pipeline adds between `decode` calls.
    rest_s: [f64; 2],
    wall_s: [f64; 2],
}

impl Throughput {
    fn add(&mut self, side: usize, llm: &LlmTimes, wall_s: f64) {
        if llm.tokens > 0 {
            self.tokens[side] += llm.tokens;
            self.decode_s[side] += llm.decode.as_secs_f64();
            self.rest_s[side] += llm.rest.as_secs_f64();
            self.wall_s[side] += wall_s;
        }
    }
}
