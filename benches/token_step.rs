//! Per-token CPU cost of everything between the LLM's logits and the range coder (softmax,
//! ensemble, quantization, coding) for the vocabulary sizes of our model tiers: the work each
//! `decode` step adds per chunk, on one thread and on all of them (a lone chunk's vocabulary is
//! split over the cores). `cargo bench --bench token_step`.
//!
//! Logits are synthetic but shaped like a small LM's (a broad bulk some 20 nats below a few
//! strong candidates), and the tokens repeat phrases so the n-grams and the match model work.

use std::hint::black_box;
use std::time::Instant;

use nzip::container::TokenModelKind;
use nzip::entropy::range::{SymbolDecoder, SymbolEncoder};
use nzip::predict::ensemble::TokenModel;

/// SmolLM2 (49,152), Qwen2.5 (151,936), Gemma 3 (262,144).
const VOCABS: [usize; 3] = [49_152, 151_936, 262_144];
const STEPS: usize = 300;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The tokens to code and, per step, the logits that predict them.
fn workload(vocab: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ vocab as u64);
    let phrases: Vec<Vec<u32>> = (0..40)
        .map(|_| {
            (0..8)
                .map(|_| (rng.next() % 3000) as u32 * (vocab as u32 / 3000))
                .collect()
        })
        .collect();
    let mut tokens = Vec::with_capacity(STEPS);
    while tokens.len() < STEPS {
        tokens.extend(&phrases[(rng.next() % phrases.len() as u64) as usize]);
    }
    tokens.truncate(STEPS);
    let logits = tokens
        .iter()
        .map(|&t| {
            let mut l: Vec<f32> = (0..vocab)
                .map(|_| (rng.unit() + rng.unit() + rng.unit() + rng.unit()) * 4.0 - 8.0)
                .collect();
            for _ in 0..5 {
                l[(rng.next() % vocab as u64) as usize] = 12.0 + 4.0 * rng.unit();
            }
            l[t as usize] = 10.0 + 8.0 * rng.unit();
            l
        })
        .collect();
    (tokens, logits)
}

fn main() {
    println!("per-token cost of softmax + token model + quantization + range coding, one chunk");
    println!(
        "{:>8} {:>10} {:>8} {:>12} {:>12}",
        "vocab", "model", "threads", "encode µs", "decode µs"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut thread_counts = vec![1];
    if cores > 1 {
        thread_counts.push(cores);
    }
    for vocab in VOCABS {
        let (tokens, logits) = workload(vocab);
        for kind in [
            TokenModelKind::Bare,
            TokenModelKind::Ensemble,
            TokenModelKind::BiasedEnsemble,
        ] {
            for &threads in &thread_counts {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("thread pool");
                pool.install(|| step_cost(vocab, kind, threads, &tokens, &logits));
            }
        }
    }
}

/// Codes `tokens` with `logits` and decodes them back, printing the cost per token.
fn step_cost(
    vocab: usize,
    kind: TokenModelKind,
    threads: usize,
    tokens: &[u32],
    logits: &[Vec<f32>],
) {
    let mut cdf = Vec::new();
    let mut model = TokenModel::new(kind);
    let mut encoder = SymbolEncoder::new();
    let started = Instant::now();
    for (&t, l) in tokens.iter().zip(logits) {
        model.predict(l, &mut cdf);
        encoder.encode(t as usize, &cdf).expect("encode");
        model.update(t);
    }
    let encode = started.elapsed();
    let stream = encoder.finish().expect("finish");
    let mut model = TokenModel::new(kind);
    let mut decoder = SymbolDecoder::new(&stream, 0).expect("stream");
    let started = Instant::now();
    for (&t, l) in tokens.iter().zip(logits) {
        model.predict(l, &mut cdf);
        let got = decoder.decode(&cdf, 0).expect("decode") as u32;
        assert_eq!(got, t, "round trip");
        model.update(black_box(got));
    }
    let decode = started.elapsed();
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / STEPS as f64;
    let name = match kind {
        TokenModelKind::Bare => "id 0",
        TokenModelKind::Ensemble => "id 1",
        TokenModelKind::BiasedEnsemble => "id 2",
    };
    println!(
        "{vocab:>8} {name:>10} {threads:>8} {:>12.1} {:>12.1}",
        per(encode),
        per(decode)
    );
}
