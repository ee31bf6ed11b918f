//! `nzip info`: everything the container records, as text or JSON.

use nzip::container::Archive;
use nzip::models::hex;
use nzip::Result;
use serde_json::json;

use super::input;
use crate::cli::args::InfoArgs;

pub fn run(args: &InfoArgs) -> Result<()> {
    for file in &args.files {
        let data = input::read(file)?;
        let archive = Archive::parse(&data)?;
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
            "file": file.display().to_string(),
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
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&info).expect("JSON of plain values")
            );
            continue;
        }
        println!("{}", file.display());
        println!("  format version   {}", h.version);
        match h.original_size {
            Some(_) => println!("  original size    {size} bytes"),
            None => println!("  original size    {size} bytes (streamed: from the index)"),
        }
        println!(
            "  archive size     {} bytes ({:.3} bits per byte)",
            data.len(),
            info["bits_per_byte"].as_f64().unwrap_or(0.0)
        );
        println!("  chunk target     {} bytes", h.chunk_target);
        println!("  byte model       {}", h.byte_model);
        match &h.model {
            Some(m) => {
                println!("  model            {} ({} bytes)", m.name, m.size);
                println!("  model sha256     {}", hex(&m.sha256));
                println!("  numerics         {}", m.numerics);
                println!("  vocabulary       {} tokens", m.n_vocab);
                println!("  token model      {}", m.token_model);
                let s = &m.schedule;
                println!(
                    "  schedule         window {} slide {} sinks {} seqs/group {} start token {}",
                    s.window, s.slide, s.sinks, s.seqs, s.start_token
                );
            }
            None => println!("  model            none (no LLM-coded chunks)"),
        }
        println!("  chunks           {}", archive.index.chunks.len());
        println!(
            "  {:>6} {:>9} {:>10} {:>8} {:>8} {:>10} {:>8}",
            "chunk", "kind", "bytes", "tokens", "raw", "payload", "crc32"
        );
        for (i, c) in archive.index.chunks.iter().enumerate() {
            let kind = c.kind.name();
            println!(
                "  {:>6} {:>9} {:>10} {:>8} {:>8} {:>10} {:>8}",
                i,
                kind,
                c.len,
                c.tokens,
                c.raw_bytes,
                c.payload_len,
                format!("{:08x}", c.crc32)
            );
        }
    }
    Ok(())
}
