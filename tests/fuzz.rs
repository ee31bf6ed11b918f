//! A short fuzzing run with a fixed seed: the cargo-fuzz targets' bodies (`nzip::fuzzing`) on
//! mutations of the seed corpus (`fuzz/seeds/`, the golden archives), so the stable test suite
//! covers what `cargo +nightly fuzz run` explores at length. A panic fails the test with the
//! iteration to replay.

use std::path::Path;

use nzip::seeded::Seeded;

/// Mutations per run: about 20 seconds on two cores.
const ITERATIONS: u64 = 12_000;

fn seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = Vec::new();
    for dir in ["fuzz/seeds", "tests/golden"] {
        let mut names: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "nz"))
            .collect();
        names.sort();
        seeds.extend(names.iter().map(|p| std::fs::read(p).unwrap()));
    }
    assert!(seeds.len() >= 8, "seed corpus: {} files", seeds.len());
    seeds
}

/// The seeded generator, drawing indexes.
struct Rng(Seeded);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0.below(n.max(1) as u64) as usize
    }
}

/// One to four of: bit flips, byte overwrites with interesting values, truncation, a span
/// duplicated or deleted, random bytes inserted, a splice with another seed.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut d = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let len = d.len().max(1);
        match rng.below(7) {
            0 if !d.is_empty() => {
                let at = rng.below(d.len());
                d[at] ^= 1 << rng.below(8);
            }
            1 if !d.is_empty() => {
                let at = rng.below(d.len());
                d[at] = [0, 1, 2, 3, 0x7F, 0x80, 0xFF, b'N'][rng.below(8)];
            }
            2 => d.truncate(rng.below(len)),
            3 if !d.is_empty() => {
                let a = rng.below(d.len());
                let b = (a + 1 + rng.below(64)).min(d.len());
                let span = d[a..b].to_vec();
                let at = rng.below(d.len());
                d.splice(at..at, span);
            }
            4 if !d.is_empty() => {
                let a = rng.below(d.len());
                let b = (a + 1 + rng.below(64)).min(d.len());
                d.drain(a..b);
            }
            5 => {
                let at = rng.below(d.len() + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = rng.0.bytes(n);
                d.splice(at..at, bytes);
            }
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(d.len() + 1);
                let from = rng.below(other.len() + 1);
                d.truncate(cut);
                d.extend_from_slice(&other[from..]);
            }
        }
    }
    d
}

#[test]
fn fixed_seed_fuzzing_of_parser_and_decoders() {
    let seeds = seeds();
    for seed in &seeds {
        nzip::fuzzing::parse_container(seed);
    }
    let mut rng = Rng(Seeded::new(0x6E7A_6970_F022));
    let mut decoded = 0;
    for i in 0..ITERATIONS {
        let input = mutate(&mut rng, &seeds);
        let outcome = std::panic::catch_unwind(|| {
            nzip::fuzzing::parse_container(&input);
            nzip::fuzzing::decode(&input).is_some()
        });
        match outcome {
            Ok(ok) => decoded += ok as u32,
            Err(_) => panic!(
                "iteration {i} panicked on {} bytes: {:02x?}",
                input.len(),
                &input[..input.len().min(256)]
            ),
        }
    }
    // Most mutations must be caught; a few (in stored bytes' padding, say) are harmless.
    assert!(
        decoded < ITERATIONS as u32 / 4,
        "{decoded} mutated archives decoded"
    );
    assert!(
        decoded > 0,
        "no mutation decoded: the run never reached the decoders' end"
    );
}
