//! The portable engine beside llama.cpp on the same GGUF, tokens and schedule, in one run: the
//! ideal code length (bits per byte of text) under the bare model and under the token ensemble
//! the coder uses, and tokens per second, for one chunk alone and for a lockstep group. `cargo bench --bench engines`; NZIP_BENCH_KB (default 8)
//! sets how much of corpus/alice29.txt each chunk codes, NZIP_BENCH_SEQS (default 16) the
//! group size, NZIP_BENCH_MODEL a model name or GGUF path (default: the default model), NZIP_BENCH_ONLY
//! one engine (for profiling); NZIP_BENCH_OLD=N adds an earlier version of the portable
//! engine's arithmetic (`nzip portable N`) beside the current one.

use std::ops::ControlFlow;
use std::time::Instant;

use nzip::container::Schedule;
use nzip::container::TokenModelKind;
use nzip::engine::numerics::exp_neg;
use nzip::engine::{Numerics, PortableModel};
use nzip::entropy::quantize::TOTAL;
use nzip::models::{self, FetchPolicy};
use nzip::predict::ensemble::TokenModel;
use nzip::predict::llama::LanguageModel;
use nzip::predict::lockstep::{run_group, ChunkDriver};

/// Feeds a known token sequence and sums −log2 p of each next token: under the bare model's
/// softmax, and under the CDF the default levels' token ensemble (LLM, learned bias, n-grams,
/// match model) gives the coder, which is what an archive pays.
struct Scorer {
    tokens: Vec<u32>,
    at: usize,
    bits: f64,
    ensemble: TokenModel,
    cdf: Vec<u32>,
    coded_bits: f64,
}

impl Scorer {
    fn new(tokens: Vec<u32>) -> Self {
        Self {
            tokens,
            at: 0,
            bits: 0.0,
            ensemble: TokenModel::new(TokenModelKind::BiasedEnsemble),
            cdf: Vec::new(),
            coded_bits: 0.0,
        }
    }
}

impl ChunkDriver for Scorer {
    fn next_token(&mut self, logits: &[f32]) -> nzip::Result<u32> {
        let next = self.tokens[self.at];
        let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        // The engine's own e^x (f32, vectorized, relative error below 2^-21): the platform's
        // f64 exp over 262,144 logits a token was 13% of a Gemma group's run, time both
        // engines paid inside their tokens per second.
        let sum: f64 = logits.iter().map(|&l| f64::from(exp_neg(l - top))).sum();
        self.bits += (sum.ln() - f64::from(logits[next as usize] - top)) / std::f64::consts::LN_2;
        self.ensemble.predict(logits, &mut self.cdf);
        let freq = self.cdf[next as usize + 1] - self.cdf[next as usize];
        self.coded_bits += f64::from(TOTAL).log2() - f64::from(freq).log2();
        self.ensemble.update(next);
        self.at += 1;
        Ok(next)
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> nzip::Result<()> {
    let kb = env("NZIP_BENCH_KB", 8);
    let seqs = env("NZIP_BENCH_SEQS", 16);
    // A file the manifests know keeps its start token (an unknown one starts with token 0).
    let spec = std::env::var("NZIP_BENCH_MODEL").unwrap_or_else(|_| models::DEFAULT_MODEL.into());
    let model = models::resolve(&spec, FetchPolicy::Auto)?;
    let path = model.path;
    let text = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/alice29.txt"))
        .expect("corpus/alice29.txt");
    let llama = LanguageModel::load(&path)?;
    let started = Instant::now();
    let portable = PortableModel::load(&path).map_err(|e| nzip::Error::Llama(e.to_string()))?;
    let load = started.elapsed();
    let schedule = Schedule {
        window: 1024,
        slide: 256,
        sinks: 4,
        seqs: seqs as u32,
        start_token: model.start_token,
    };
    // Chunk i of a group codes its own slice of the text, as the pipeline's chunks do.
    let chunks: Vec<(usize, Vec<u32>)> = (0..seqs)
        .map(|i| {
            let from = (i * kb * 1024) % (text.len() - kb * 1024);
            let slice = String::from_utf8_lossy(&text[from..from + kb * 1024]).into_owned();
            (slice.len(), llama.tokenize(&slice))
        })
        .collect();
    println!(
        "{}: {kb} KB per chunk, {} tokens in the first; portable engine loaded in {:.1} s",
        path.display(),
        chunks[0].1.len(),
        load.as_secs_f64()
    );
    println!(
        "{:<10} {:>5} {:>11} {:>13} {:>10}",
        "engine", "seqs", "bare b/byte", "coded b/byte", "tokens/s"
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a thread pool");
    let groups = if seqs == 1 { vec![1] } else { vec![1, seqs] };
    for group in groups {
        let mut lr = llama.group_runner(&schedule, 2)?;
        let mut pr = portable.group_runner(&schedule, Numerics::CURRENT);
        let old = std::env::var("NZIP_BENCH_OLD")
            .ok()
            .and_then(|n| Numerics::parse(&format!("nzip portable {n}")));
        let mut pr_old = old.map(|n| portable.group_runner(&schedule, n));
        let old_name = old.map(|n| n.name().trim_start_matches("nzip ").to_string());
        let mut engines = vec!["llama.cpp", "portable"];
        engines.extend(old_name.as_deref());
        for engine in engines {
            if std::env::var("NZIP_BENCH_ONLY").is_ok_and(|only| only != engine) {
                continue;
            }
            let mut scorers: Vec<Scorer> = chunks[..group]
                .iter()
                .map(|(_, t)| Scorer::new(t.clone()))
                .collect();
            let n: Vec<u64> = chunks[..group]
                .iter()
                .map(|(_, t)| t.len() as u64)
                .collect();
            let started = Instant::now();
            let go = |_, _: &[Scorer]| ControlFlow::Continue(());
            match engine {
                "llama.cpp" => run_group(&mut lr, &mut scorers, &n, go)?,
                // On the pool's threads, as the pipeline's workers run it.
                "portable" => pool.install(|| run_group(&mut pr, &mut scorers, &n, go))?,
                _ => {
                    let pr_old = pr_old.as_mut().expect("an older version asked for");
                    pool.install(|| run_group(pr_old, &mut scorers, &n, go))?
                }
            };
            let took = started.elapsed().as_secs_f64();
            let bytes: usize = chunks[..group].iter().map(|(b, _)| b).sum();
            let bits: f64 = scorers.iter().map(|s| s.bits).sum();
            let coded: f64 = scorers.iter().map(|s| s.coded_bits).sum();
            let tokens: u64 = n.iter().sum();
            println!(
                "{engine:<10} {group:>5} {:>11.4} {:>13.4} {:>10.1}",
                bits / bytes as f64,
                coded / bytes as f64,
                tokens as f64 / took
            );
        }
    }
    Ok(())
}
