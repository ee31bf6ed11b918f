//! `nzip info`: everything the container records, as text or JSON.

use nzip::container::{self, Archive};
use nzip::models::hex;
use nzip::Result;
use serde_json::json;

use std::path::Path;

use super::{input, CliResult};
use crate::cli::args::InfoArgs;

/// Each file in turn, as gzip -l does: one that is no archive is reported by name and the
/// rest are still described (status 1 at the end).
pub fn run(args: &InfoArgs) -> CliResult {
    super::each_file(&args.files, |file| Ok(one(args, file)?))
}

fn one(args: &InfoArgs, file: &Path) -> Result<()> {
    let data = input::read(file)?;
    let members = container::members(&data);
    let described = members
        .iter()
        .map(|m| describe(&data[m.clone()]))
        .collect::<Result<Vec<_>>>()?;
    let name = file.display().to_string();
    if let [(json, lines)] = &described[..] {
        if args.json {
            let mut json = json.clone();
            json["file"] = name.into();
            print_json(&json);
        } else {
            outln!("{name}");
            lines.iter().for_each(|l| outln!("  {l}"));
        }
        return Ok(());
    }
    // Concatenated archives: each member as a whole archive, then the totals.
    let original: u64 = described
        .iter()
        .map(|(j, _)| j["original_bytes"].as_u64().unwrap_or(0))
        .sum();
    if args.json {
        let members: Vec<_> = described.into_iter().map(|(j, _)| j).collect();
        print_json(&json!({
            "file": name,
            "archive_bytes": data.len(),
            "original_bytes": original,
            "members": members,
        }));
        return Ok(());
    }
    outln!("{name}");
    for (k, ((_, lines), range)) in described.iter().zip(&members).enumerate() {
        outln!(
            "  member {} (archive bytes {}..{})",
            k + 1,
            range.start,
            range.end
        );
        lines.iter().for_each(|l| outln!("    {l}"));
    }
    outln!(
        "  {} members: {original} bytes in {} bytes of archive",
        members.len(),
        data.len()
    );
    Ok(())
}

fn print_json(value: &serde_json::Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON of plain values")
    );
}

/// One archive (member) as JSON and as text lines.
fn describe(data: &[u8]) -> Result<(serde_json::Value, Vec<String>)> {
    let archive = Archive::parse(data)?;
    let h = &archive.header;
    let size = archive.original_size();
    let chunks: Vec<_> = archive
        .index
        .chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "index": i,
                "kind": c.kind.name(),
                "bytes": c.len,
                "tokens": c.tokens,
                "raw_bytes": c.raw_bytes,
                "payload_offset": archive.payload_offset(i),
                "payload_bytes": c.payload_len,
                "crc32": format!("{:08x}", c.crc32),
            })
        })
        .collect();
    let model = h.model.as_ref().map(|m| {
        json!({
            "name": m.name,
            "size": m.size,
            "sha256": hex(&m.sha256),
            "numerics": m.numerics,
            "engine": engine_of(&m.numerics).0,
            "n_vocab": m.n_vocab,
            "token_model": m.token_model.to_string(),
            "schedule": {
                "window": m.schedule.window,
                "slide": m.schedule.slide,
                "sinks": m.schedule.sinks,
                "seqs_per_group": m.schedule.seqs,
                "start_token": m.schedule.start_token,
            },
        })
    });
    let info = json!({
        "format_version": h.version,
        "archive_bytes": data.len(),
        "original_bytes": size,
        "size_in_header": h.original_size.is_some(),
        "bits_per_byte": if size > 0 { 8.0 * data.len() as f64 / size as f64 } else { 0.0 },
        "chunk_target": h.chunk_target,
        "byte_model": h.byte_model.to_string(),
        "model": model,
        "chunks": chunks,
    });
    let mut lines = vec![format!("format version   {}", h.version)];
    match h.original_size {
        Some(_) => lines.push(format!("original size    {size} bytes")),
        None => lines.push(format!(
            "original size    {size} bytes (streamed: from the index)"
        )),
    }
    lines.push(format!(
        "archive size     {} bytes ({:.3} bits per byte)",
        data.len(),
        info["bits_per_byte"].as_f64().unwrap_or(0.0)
    ));
    lines.push(format!("chunk target     {} bytes", h.chunk_target));
    lines.push(format!("byte model       {}", h.byte_model));
    match &h.model {
        Some(m) => {
            lines.push(format!("model            {} ({} bytes)", m.name, m.size));
            lines.push(format!("model sha256     {}", hex(&m.sha256)));
            let (engine, where_) = engine_of(&m.numerics);
            lines.push(format!(
                "numerics         {} ({engine}: {where_})",
                m.numerics
            ));
            lines.push(format!("vocabulary       {} tokens", m.n_vocab));
            lines.push(format!("token model      {}", m.token_model));
            let s = &m.schedule;
            lines.push(format!(
                "schedule         window {} slide {} sinks {} seqs/group {} start token {}",
                s.window, s.slide, s.sinks, s.seqs, s.start_token
            ));
        }
        None => lines.push("model            none (no LLM-coded chunks)".into()),
    }
    lines.push(format!("chunks           {}", archive.index.chunks.len()));
    lines.push(format!(
        "{:>6} {:>9} {:>10} {:>8} {:>8} {:>10} {:>8}",
        "chunk", "kind", "bytes", "tokens", "raw", "payload", "crc32"
    ));
    for (i, c) in archive.index.chunks.iter().enumerate() {
        let kind = c.kind.name();
        lines.push(format!(
            "{:>6} {:>9} {:>10} {:>8} {:>8} {:>10} {:>8}",
            i,
            kind,
            c.len,
            c.tokens,
            c.raw_bytes,
            c.payload_len,
            format!("{:08x}", c.crc32)
        ));
    }
    Ok((info, lines))
}

/// The engine an archive's numerics name, and where its LLM chunks decode.
fn engine_of(numerics: &str) -> (&'static str, &'static str) {
    use nzip::engine::Numerics;
    if Numerics::parse(numerics).is_some() {
        ("portable", "the same logits on every machine")
    } else if Numerics::is_portable_name(numerics) {
        ("portable", "a later version than this nzip computes")
    } else {
        (
            "llama.cpp",
            "decodes where nzip's llama.cpp build computes this fingerprint",
        )
    }
}
