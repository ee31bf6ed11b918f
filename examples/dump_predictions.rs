//! Development tool: runs the default model over a text file as one chunk with nzip's own
//! schedule and writes, per token, what the token ensemble's design needs to be tuned offline
//! (the actual token, its logit relative to the maximum, log-sum-exp at several temperatures,
//! the top token). `cargo run --release --example dump_predictions FILE OUT`.

use std::io::Write;
use std::ops::ControlFlow;

use nzip::chunk::Schedule;
use nzip::models::{self, FetchPolicy};
use nzip::pipeline::{DEFAULT_SINKS, DEFAULT_SLIDE, DEFAULT_WINDOW};
use nzip::predict::llama::{ChunkDriver, LanguageModel};
use nzip::token::{segment_chunk, Segment, Vocabulary};

/// Temperatures at which log-sum-exp is recorded.
const TEMPERATURES: [f64; 9] = [0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2];

struct Recorder {
    tokens: Vec<u32>,
    at: usize,
    out: Vec<u8>,
}

impl ChunkDriver for Recorder {
    fn next_token(&mut self, logits: &[f32]) -> nzip::Result<u32> {
        let actual = self.tokens[self.at];
        self.at += 1;
        let (mut max, mut top) = (f32::NEG_INFINITY, 0u32);
        for (i, &l) in logits.iter().enumerate() {
            if l > max {
                max = l;
                top = i as u32;
            }
        }
        let rel = (logits[actual as usize] - max) as f64;
        let mut row = format!("{actual}\t{top}\t{rel:.6}");
        for t in TEMPERATURES {
            let z: f64 = logits.iter().map(|&l| (((l - max) as f64) / t).exp()).sum();
            row += &format!("\t{:.6}", z.ln());
        }
        row.push('\n');
        self.out.extend(row.as_bytes());
        Ok(actual)
    }
}

fn main() -> nzip::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let data = std::fs::read(&args[1])?;
    let file = models::resolve(models::DEFAULT_MODEL, FetchPolicy::Auto)?;
    let lm = LanguageModel::load(&file.path)?;
    let vocab = Vocabulary::new(&lm);
    let tokens: Vec<u32> = segment_chunk(&vocab, &data)
        .into_iter()
        .flat_map(|s| match s {
            Segment::Text { tokens, .. } => tokens,
            Segment::Raw { .. } => Vec::new(),
        })
        .collect();
    let schedule = Schedule {
        window: DEFAULT_WINDOW,
        slide: DEFAULT_SLIDE,
        sinks: DEFAULT_SINKS,
        seqs: 1,
        start_token: file.start_token,
    };
    let threads = nzip::pipeline::default_threads();
    let mut runner = lm.group_runner(&schedule, threads)?;
    let mut rec = [Recorder {
        tokens: tokens.clone(),
        at: 0,
        out: Vec::new(),
    }];
    runner.run(&mut rec, &[tokens.len() as u64], |_, _| {
        ControlFlow::Continue(())
    })?;
    std::fs::File::create(&args[2])?.write_all(&rec[0].out)?;
    eprintln!("{} tokens from {} bytes", tokens.len(), data.len());
    Ok(())
}
