//! Large inputs through the real pipeline (tokenizer, lockstep groups, sliding window, coder)
//! with a tiny random-weight model that shares the default model's tokenizer: its predictions
//! are poor, but it runs a hundred times faster, so many groups and slides fit in a test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use nzip::container::Archive;
use nzip::container::TokenModelKind;
use nzip::models::{self, FetchPolicy};
use nzip::pipeline::{compress, decompress, decompress_range, CompressOptions, DecompressOptions};
use nzip::Error;

use crate::util::{corpus, random_bytes};

/// Builds the tiny model once per test run with `scripts/make-tiny-model.py`.
fn tiny_model() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let source =
            models::resolve(models::DEFAULT_MODEL, FetchPolicy::Auto).expect("default model");
        let dest = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("nzip-tiny.gguf");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/make-tiny-model.py");
        let status = Command::new("python3")
            .arg(&script)
            .arg(&source.path)
            .arg(&dest)
            .status()
            .expect("run python3");
        assert!(
            status.success(),
            "make-tiny-model.py failed (needs `pip install gguf numpy`)"
        );
        dest
    })
    .clone()
}

fn round_trip(data: &[u8], copts: &CompressOptions) -> Vec<u8> {
    let archive = compress(data, copts, &|_| {}).expect("compress");
    let dopts = DecompressOptions {
        model_path: Some(tiny_model()),
        threads: 1,
        ..DecompressOptions::default()
    };
    let mut back = Vec::new();
    decompress(&archive, &dopts, &mut back, &|_| {}).expect("decompress");
    assert!(
        back == data,
        "round trip changed {} bytes of input",
        data.len()
    );
    archive
}

fn opts() -> CompressOptions {
    CompressOptions {
        model: tiny_model().to_string_lossy().into_owned(),
        chunk_size: 12_000,
        window: 96,
        slide: 24,
        sinks: 4,
        seqs: 3,
        // A random-weight model loses to every other coding; keep its tokens anyway.
        always_llm: true,
        ..CompressOptions::default()
    }
}

#[test]
#[ignore = "slow: many groups of LLM steps; scripts/test runs it"]
fn large_text_in_many_groups_with_many_slides() {
    let data = &corpus("enwik6")[200_000..300_000];
    let archive = round_trip(data, &opts());
    let a = Archive::parse(&archive).unwrap();
    let chunks = &a.index.chunks;
    assert!(
        chunks.len() >= 8,
        "several groups of 3: {} chunks",
        chunks.len()
    );
    assert!(
        chunks.iter().map(|c| c.tokens).max().unwrap() > 20 * 96,
        "many window slides per chunk"
    );
    assert_eq!(a.header.model.as_ref().unwrap().name, "nzip-tiny");

    // Ranges decode only the groups they need, and give exactly those bytes.
    let dopts = DecompressOptions {
        model_path: Some(tiny_model()),
        ..DecompressOptions::default()
    };
    let n = data.len() as u64;
    for range in [0..0, 0..1, 5..20_000, 30_000..30_001, 50_000..n, 0..n] {
        let mut out = Vec::new();
        let written =
            decompress_range(&archive, Some(range.clone()), &dopts, &mut out, &|_| {}).unwrap();
        assert_eq!(written, range.end - range.start);
        assert!(
            out == data[range.start as usize..range.end as usize],
            "range {range:?}"
        );
    }

    // Damage one chunk in the middle of a group: with --keep-going only that chunk is lost;
    // the other chunks of its lockstep group still decode exactly (a stand-in token keeps
    // the schedule, and each sequence's logits depend on its own tokens only).
    let victim = 4;
    let mut damaged = archive.clone();
    let at = a.payload_offset(victim) + (chunks[victim].payload_len / 2) as usize;
    damaged[at] ^= 0x10;
    let mut out = Vec::new();
    let keep_going = DecompressOptions {
        keep_going: true,
        ..dopts.clone()
    };
    let err = decompress(&damaged, &keep_going, &mut out, &|_| {}).unwrap_err();
    let start: u64 = chunks[..victim].iter().map(|c| c.len).sum();
    let end = start + chunks[victim].len;
    match err {
        Error::Damaged { ranges, written } => {
            assert_eq!(written, n);
            assert_eq!(ranges.len(), 1, "{ranges:?}");
            assert_eq!(ranges[0].0, start..end);
        }
        e => panic!("expected a damage report, got {e}"),
    }
    let (s, e) = (start as usize, end as usize);
    assert!(
        out[..s] == data[..s] && out[e..] == data[e..],
        "good chunks intact"
    );
    assert!(out[s..e].iter().all(|&b| b == 0));

    // Cut inside the second group (the index and footer gone): the first group comes back
    // exactly; what the second group's surviving chunks decode to is kept only where its CRC
    // agrees, and everything from the first lost byte on is named.
    let seqs = a.header.model.as_ref().unwrap().schedule.seqs as usize;
    let cut_chunk = seqs + 1;
    let cut = a.payload_offset(cut_chunk) + 10;
    let first_group: u64 = chunks[..seqs].iter().map(|c| c.len).sum();
    let mut out = Vec::new();
    match decompress(&archive[..cut], &keep_going, &mut out, &|_| {}).unwrap_err() {
        Error::Damaged { ranges, written } => {
            // The recovered prefix is written; the lost tail is named, not zero-filled.
            assert_eq!(written, out.len() as u64);
            assert!(written >= first_group && written < n);
            let lost_from = ranges.iter().map(|(r, _)| r.start).min().unwrap();
            assert!(lost_from >= first_group, "{ranges:?}");
            let cut_at: u64 = chunks[..cut_chunk].iter().map(|c| c.len).sum();
            assert!(
                ranges.iter().any(|(r, _)| *r == (cut_at..n)),
                "the tail from the cut chunk on is lost: {ranges:?}"
            );
        }
        e => panic!("expected a damage report, got {e}"),
    }
    let g = first_group as usize;
    assert!(out[..g] == data[..g], "the whole first group is recovered");
}

#[test]
fn mixed_binary_and_text_files() {
    let mut data = Vec::new();
    data.extend(&corpus("paper-100k.pdf")[..20_000]);
    data.extend(&corpus("alice29.txt")[..15_000]);
    data.extend(&corpus("geo.protodata")[..20_000]);
    data.extend(&corpus("fireworks.jpeg")[..10_000]);
    data.extend(&corpus("html")[..15_000]);
    data.extend(random_bytes(5_000, 11));
    let archive = round_trip(&data, &opts());
    let a = Archive::parse(&archive).unwrap();
    assert!(a
        .index
        .chunks
        .iter()
        .any(|c| c.tokens > 0 && c.raw_bytes > 0));
}

#[test]
fn chunks_the_byte_model_codes_better_leave_the_llm() {
    // A random-weight model's softmax loses to the byte model on every chunk of some size (on
    // a few hundred bytes the byte model has not learnt enough yet): those must end up without
    // tokens, most of them having left the lockstep run early, and all must round-trip. Under
    // token model 2 the learned bias and n-grams make even this model win some chunks, so the
    // bare softmax codes here.
    let data = &corpus("enwik6")[400_000..460_000];
    let copts = CompressOptions {
        always_llm: false,
        token_model: TokenModelKind::Bare,
        ..opts()
    };
    let archive = round_trip(data, &copts);
    let a = Archive::parse(&archive).unwrap();
    let big: Vec<_> = a.index.chunks.iter().filter(|c| c.len > 4096).collect();
    assert!(
        big.len() >= 4 && big.iter().all(|c| c.tokens == 0),
        "{big:?}"
    );
}

/// Every token model round-trips through several groups and slides; on text that repeats
/// beyond the window the ensembles' n-grams and match model code it far smaller than the
/// tiny model's softmax alone, which cannot see that far.
#[test]
fn token_ensemble_against_the_bare_softmax() {
    let paragraph = &corpus("alice29.txt")[20_000..21_500];
    let data: Vec<u8> = paragraph.iter().copied().cycle().take(15_000).collect();
    let with = |token_model| {
        round_trip(
            &data,
            &CompressOptions {
                token_model,
                ..opts()
            },
        )
    };
    let bare = with(TokenModelKind::Bare);
    let ensemble = with(TokenModelKind::Ensemble);
    let biased = with(TokenModelKind::BiasedEnsemble);
    let model = |a: &[u8]| {
        Archive::parse(a)
            .unwrap()
            .header
            .model
            .map(|m| m.token_model)
    };
    assert_eq!(model(&bare), Some(TokenModelKind::Bare));
    assert_eq!(model(&ensemble), Some(TokenModelKind::Ensemble));
    assert_eq!(model(&biased), Some(TokenModelKind::BiasedEnsemble));
    for (name, archive) in [("ensemble", &ensemble), ("biased ensemble", &biased)] {
        assert!(
            archive.len() * 3 < bare.len(),
            "{name} {} bytes, bare {}",
            archive.len(),
            bare.len()
        );
    }
}

/// Several CPU workers stand in for several GPUs: groups run at once on separate llama.cpp
/// contexts, and neither the archive nor the decoded bytes depend on how many there were.
#[test]
fn several_workers_give_the_same_archive_and_bytes() {
    let data = &corpus("enwik6")[300_000..340_000];
    let with_workers = |workers: usize| CompressOptions {
        chunk_size: 5_000,
        workers,
        threads: 3,
        ..opts()
    };
    let one = compress(data, &with_workers(1), &|_| {}).expect("compress, 1 worker");
    let three = compress(data, &with_workers(3), &|_| {}).expect("compress, 3 workers");
    let a = Archive::parse(&three).unwrap();
    assert!(a.index.chunks.len() >= 7, "{} chunks", a.index.chunks.len());
    assert_eq!(a.header.model.as_ref().unwrap().schedule.seqs, 3);
    assert!(one == three, "the archive depends on the workers");
    for workers in [1, 2, 3] {
        let dopts = DecompressOptions {
            model_path: Some(tiny_model()),
            threads: 3,
            workers,
            ..DecompressOptions::default()
        };
        let mut back = Vec::new();
        decompress(&three, &dopts, &mut back, &|_| {}).expect("decompress");
        assert!(back == data, "{workers} workers decoded other bytes");
        let mut part = Vec::new();
        decompress_range(&three, Some(12_000..31_000), &dopts, &mut part, &|_| {}).unwrap();
        assert!(part == data[12_000..31_000], "range with {workers} workers");
    }
}

/// The planner gives every worker a group: an input of 4 or 5 chunks on 2 workers is cut into
/// two groups, not one (the sequence count is in the archive).
#[test]
fn small_inputs_are_spread_over_the_workers() {
    let data = &corpus("enwik6")[500_000..520_000];
    let copts = CompressOptions {
        chunk_size: 5_000,
        seqs: 16,
        workers: 2,
        threads: 2,
        ..opts()
    };
    let archive = round_trip(data, &copts);
    let a = Archive::parse(&archive).unwrap();
    let (chunks, seqs) = (
        a.index.chunks.len(),
        a.header.model.as_ref().unwrap().schedule.seqs as usize,
    );
    assert!(
        seqs < chunks && 2 * seqs >= chunks,
        "{chunks} chunks, {seqs} sequences"
    );
}

/// Progress moves while a lone chunk is coded, in both directions, and ends at the input's
/// size: a slow model spends hours inside one chunk.
#[test]
fn progress_moves_inside_a_chunk() {
    use std::sync::Mutex;
    let data = &corpus("alice29.txt")[30_000..36_000];
    let copts = CompressOptions { seqs: 1, ..opts() };
    let seen = Mutex::new(Vec::new());
    let record = |done: u64| seen.lock().unwrap().push(done);
    let archive = compress(data, &copts, &record).expect("compress");
    let dopts = DecompressOptions {
        model_path: Some(tiny_model()),
        threads: 1,
        ..DecompressOptions::default()
    };
    let mut back = Vec::new();
    let compressed = std::mem::take(&mut *seen.lock().unwrap());
    decompress(&archive, &dopts, &mut back, &record).expect("decompress");
    assert!(back == data);
    let decompressed = seen.into_inner().unwrap();
    for (name, calls) in [("compress", compressed), ("decompress", decompressed)] {
        let inside = calls
            .iter()
            .filter(|&&d| d > 0 && d < data.len() as u64)
            .count();
        assert!(inside >= 10, "{name}: {inside} calls inside the chunk");
        assert!(
            calls.windows(2).all(|w| w[0] <= w[1]),
            "{name} went backwards"
        );
        assert_eq!(calls.last(), Some(&(data.len() as u64)), "{name}");
    }
    // A range counts only its own bytes, inside the chunk as at its end.
    let calls = Mutex::new(Vec::new());
    let mut part = Vec::new();
    decompress_range(&archive, Some(1_000..1_500), &dopts, &mut part, &|d| {
        calls.lock().unwrap().push(d)
    })
    .expect("range");
    assert!(part == data[1_000..1_500]);
    let calls = calls.into_inner().unwrap();
    assert!(calls.iter().all(|&d| d <= 500), "range progress {calls:?}");
    assert!(
        calls.windows(2).all(|w| w[0] <= w[1]),
        "range went backwards"
    );
    assert_eq!(calls.last(), Some(&500));
}
