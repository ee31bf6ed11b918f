//! `nzip bench`: nzip against gzip -9, xz -9 and zstd -19 on the same bytes, in one run, with
//! nzip's compress and decompress speed and a check that the round trip matched.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use nzip::pipeline::{self, CompressOptions, DecompressOptions};
use nzip::{models, Error, Result};

use crate::cli::args::BenchArgs;

/// The corpus text files the default run uses.
const CORPUS_TEXT: &[&str] = &["alice29.txt", "asyoulik.txt", "enwik6", "html", "urls.10K"];

fn corpus_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("NZIP_CORPUS").map(PathBuf::from),
        Some(PathBuf::from("../shared/corpus")),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_dir())
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let files = if args.files.is_empty() {
        let dir = corpus_dir().ok_or_else(|| {
            Error::Usage("no files given and ../shared/corpus not found (set NZIP_CORPUS)".into())
        })?;
        CORPUS_TEXT.iter().map(|f| dir.join(f)).collect()
    } else {
        args.files.clone()
    };
    let threads = args
        .threads
        .map_or(pipeline::default_threads(), usize::from);
    let copts = CompressOptions {
        model: args
            .model
            .clone()
            .unwrap_or_else(|| models::DEFAULT_MODEL.into()),
        threads,
        fetch: models::FetchPolicy::from_env(),
        ..CompressOptions::default()
    };
    let dopts = DecompressOptions {
        threads,
        fetch: copts.fetch,
        ..DecompressOptions::default()
    };
    let tools: Vec<(&str, &[&str])> = vec![
        ("gzip", &["-9", "-c"]),
        ("xz", &["-9", "-c"]),
        ("zstd", &["-19", "-c", "-q"]),
    ];

    println!(
        "nzip bench, {}, model {}, {threads} threads, chunk {} B, window {}",
        if args.full {
            "whole files".to_string()
        } else {
            format!("first {} bytes of each file", args.slice)
        },
        copts.model,
        copts.chunk_size,
        copts.window
    );
    println!(
        "{:<14} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10} {:>6}",
        "file", "bytes", "nzip", "gzip-9", "xz-9", "zstd-19", "comp KB/s", "dec KB/s", "ok"
    );
    let (mut sum_in, mut sum_nz) = (0u64, 0u64);
    for file in files {
        let mut data = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
        if !args.full {
            data.truncate(args.slice);
        }
        let t = Instant::now();
        let archive = pipeline::compress(&data, &copts, &|_| {})?;
        let comp_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut back = Vec::with_capacity(data.len());
        let ok = pipeline::decompress(&archive, &dopts, &mut back, &|_| {}).is_ok() && back == data;
        let dec_s = t.elapsed().as_secs_f64();
        let bpb = |n: Option<u64>| match n {
            Some(n) if !data.is_empty() => format!("{:.3}", 8.0 * n as f64 / data.len() as f64),
            _ => "-".into(),
        };
        let others: Vec<String> = tools
            .iter()
            .map(|(tool, flags)| bpb(external_size(tool, flags, &data)))
            .collect();
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "{:<14} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10.2} {:>10.2} {:>6}",
            name,
            data.len(),
            bpb(Some(archive.len() as u64)),
            others[0],
            others[1],
            others[2],
            data.len() as f64 / comp_s / 1000.0,
            data.len() as f64 / dec_s / 1000.0,
            if ok { "yes" } else { "NO" }
        );
        sum_in += data.len() as u64;
        sum_nz += archive.len() as u64;
        if !ok {
            return Err(Error::Internal(format!("{name}: round trip failed")));
        }
    }
    if sum_in > 0 {
        println!(
            "total: {sum_in} bytes -> {sum_nz} bytes ({:.3} bits per byte)",
            8.0 * sum_nz as f64 / sum_in as f64
        );
    }
    Ok(())
}

/// Compressed size with an installed tool reading stdin, or `None` when it is not installed.
fn external_size(tool: &str, flags: &[&str], data: &[u8]) -> Option<u64> {
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
    out.status.success().then_some(out.stdout.len() as u64)
}
