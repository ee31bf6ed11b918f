//! Per-token CPU cost of everything between the LLM's logits and the range coder (softmax,
//! ensemble, quantization, coding) for the vocabulary sizes of our model tiers: the work each
//! `decode` step adds per chunk, on one thread and on all of them (a lone chunk's vocabulary is
//! split over the cores), on criterion. `cargo bench --bench token_step`.
//!
//! Logits are synthetic but shaped like a small LM's (a broad bulk some 20 nats below a few
//! strong candidates), and the tokens repeat phrases so the n-grams and the match model work.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use nzip::container::TokenModelKind;
use nzip::entropy::range::{SymbolDecoder, SymbolEncoder};
use nzip::predict::ensemble::TokenModel;
use nzip::seeded::Seeded;

/// SmolLM2 (49,152), Qwen2.5 (151,936), Gemma 3 (262,144).
const VOCABS: [usize; 3] = [49_152, 151_936, 262_144];
const STEPS: usize = 300;

/// The tokens to code and, per step, the logits that predict them.
fn workload(vocab: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    let mut rng = Seeded::new(0x9e37_79b9_7f4a_7c15 ^ vocab as u64);
    let phrases: Vec<Vec<u32>> = (0..40)
        .map(|_| {
            (0..8)
                .map(|_| (rng.bits(64) % 3000) as u32 * (vocab as u32 / 3000))
                .collect()
        })
        .collect();
    let mut tokens = Vec::with_capacity(STEPS);
    while tokens.len() < STEPS {
        tokens.extend(&phrases[(rng.bits(64) % phrases.len() as u64) as usize]);
    }
    tokens.truncate(STEPS);
    let logits = tokens
        .iter()
        .map(|&t| {
            let mut l: Vec<f32> = (0..vocab)
                .map(|_| (rng.unit() + rng.unit() + rng.unit() + rng.unit()) * 4.0 - 8.0)
                .collect();
            for _ in 0..5 {
                l[(rng.bits(64) % vocab as u64) as usize] = 12.0 + 4.0 * rng.unit();
            }
            l[t as usize] = 10.0 + 8.0 * rng.unit();
            l
        })
        .collect();
    (tokens, logits)
}

/// One group per vocabulary; in it, each token model's encoding and decoding of the workload
/// on one thread and on every core. Throughput is in tokens (steps) per second.
fn token_step(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut thread_counts = vec![1];
    if cores > 1 {
        thread_counts.push(cores);
    }
    for vocab in VOCABS {
        let (tokens, logits) = workload(vocab);
        let mut group = c.benchmark_group(format!("token step, vocabulary {vocab}"));
        group.throughput(Throughput::Elements(STEPS as u64));
        group.sample_size(10);
        for (kind, name) in [
            (TokenModelKind::Bare, "id 0"),
            (TokenModelKind::Ensemble, "id 1"),
            (TokenModelKind::BiasedEnsemble, "id 2"),
        ] {
            for &threads in &thread_counts {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("thread pool");
                let stream = pool.install(|| encode(kind, &tokens, &logits));
                group.bench_function(BenchmarkId::new(format!("{name} encode"), threads), |b| {
                    b.iter(|| pool.install(|| encode(kind, &tokens, &logits)))
                });
                group.bench_function(BenchmarkId::new(format!("{name} decode"), threads), |b| {
                    b.iter(|| pool.install(|| decode(kind, &stream, &tokens, &logits)))
                });
            }
        }
        group.finish();
    }
}

/// Codes `tokens` with `logits`; returns the stream.
fn encode(kind: TokenModelKind, tokens: &[u32], logits: &[Vec<f32>]) -> Vec<u8> {
    let mut cdf = Vec::new();
    let mut model = TokenModel::new(kind);
    let mut encoder = SymbolEncoder::new();
    for (&t, l) in tokens.iter().zip(logits) {
        model.predict(l, &mut cdf);
        encoder.encode(t as usize, &cdf).expect("encode");
        model.update(t);
    }
    encoder.finish().expect("finish")
}

/// Decodes `stream` back and checks it gives `tokens`.
fn decode(kind: TokenModelKind, stream: &[u8], tokens: &[u32], logits: &[Vec<f32>]) {
    let mut cdf = Vec::new();
    let mut model = TokenModel::new(kind);
    let mut decoder = SymbolDecoder::new(stream, 0).expect("stream");
    for (&t, l) in tokens.iter().zip(logits) {
        model.predict(l, &mut cdf);
        let got = decoder.decode(&cdf, 0).expect("decode") as u32;
        assert_eq!(got, t, "round trip");
        model.update(black_box(got));
    }
}

criterion_group!(benches, token_step);
criterion_main!(benches);
