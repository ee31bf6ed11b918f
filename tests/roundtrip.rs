//! Round trips through the library with the real default model: every input comes back
//! byte for byte, and the archive has the expected shape.

use nzip::container::{Archive, ChunkKind};
use nzip::pipeline::{
    compress, decompress, decompress_range, CompressOptions, DecompressOptions, Engine,
};

use crate::util::{awkward_text, corpus, random_bytes};

/// Small chunks so that even few-KB inputs run several chunks in lockstep.
fn opts() -> CompressOptions {
    CompressOptions {
        chunk_size: 1024,
        ..CompressOptions::default()
    }
}

fn round_trip_with(data: &[u8], copts: &CompressOptions) -> Vec<u8> {
    let archive = compress(data, copts, &|_| {}).expect("compress");
    let mut back = Vec::new();
    let n = decompress(&archive, &DecompressOptions::default(), &mut back, &|_| {})
        .expect("decompress");
    assert_eq!(n, data.len() as u64);
    assert!(
        back == data,
        "round trip changed the data ({} bytes)",
        data.len()
    );
    archive
}

fn round_trip(data: &[u8]) -> Vec<u8> {
    round_trip_with(data, &opts())
}

/// An empty input names no model, and compressing it neither fetches nor reads one (here a
/// "model" file that is not even a GGUF), though a model that does not exist is refused.
#[test]
fn empty_input_needs_no_model() {
    let archive = round_trip(b"");
    let a = Archive::parse(&archive).unwrap();
    assert!(a.header.model.is_none());
    assert!(a.index.chunks.is_empty());
    let not_a_model = CompressOptions {
        model: concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/README.md").into(),
        ..opts()
    };
    assert_eq!(round_trip_with(b"", &not_a_model), archive);
    let missing = CompressOptions {
        model: "/nonexistent/model.gguf".into(),
        ..opts()
    };
    let refused = compress(b"", &missing, &|_| {}).unwrap_err();
    assert!(
        refused.to_string().contains("/nonexistent/model.gguf"),
        "{refused}"
    );
}

#[test]
fn one_byte() {
    round_trip(b"x");
    round_trip(&[0xff]);
}

#[test]
fn corpus_text_slices() {
    for (name, start) in [
        ("alice29.txt", 20_000),
        ("asyoulik.txt", 5_000),
        ("enwik6", 100_000),
        ("html", 0),
        ("urls.10K", 0),
    ] {
        let data = corpus(name);
        let slice = &data[start..start + 3000];
        let archive = round_trip(slice);
        let a = Archive::parse(&archive).unwrap();
        assert!(a.index.chunks.len() >= 3, "{name}: several chunks expected");
        assert!(
            a.index
                .chunks
                .iter()
                .all(|c| c.kind == ChunkKind::Modelled && c.tokens > 0),
            "{name}: text chunks go through the LLM"
        );
        // Even in 1 KB chunks with all framing counted, the LLM must beat 4 bits per byte
        // (URLs are the hardest: about 3.4 here).
        assert!(
            archive.len() * 8 < slice.len() * 4,
            "{name}: {} bytes for {}",
            archive.len(),
            slice.len()
        );
    }
}

#[test]
fn random_bytes_grow_at_most_one_percent() {
    let data = random_bytes(64 * 1024, 7);
    let archive = round_trip_with(&data, &CompressOptions::default());
    assert!(
        archive.len() <= data.len() + data.len() / 100,
        "{} -> {}",
        data.len(),
        archive.len()
    );
    let a = Archive::parse(&archive).unwrap();
    assert!(
        a.header.model.is_none(),
        "random data needs no model to decode"
    );
}

#[test]
fn awkward_text_for_the_tokenizer() {
    let data = awkward_text();
    round_trip(&data);
    round_trip_with(
        &data,
        &CompressOptions {
            chunk_size: 37,
            ..opts()
        },
    );
}

#[test]
fn text_flipping_to_binary() {
    let noise = random_bytes(4000, 99);
    let text = corpus("alice29.txt");
    let mut data = Vec::new();
    for i in 0..40 {
        data.extend(&text[i * 50..i * 50 + 30 + i]);
        data.extend(&noise[i * 7..i * 7 + (i % 5)]);
    }
    round_trip(&data);
}

#[test]
fn sliding_window_many_times() {
    // ~1,000 tokens through a 64-token window: about 20 slides per chunk.
    let data = &corpus("alice29.txt")[40_000..44_000];
    let copts = CompressOptions {
        chunk_size: 2000,
        window: 64,
        slide: 16,
        sinks: 4,
        seqs: 2,
        ..opts()
    };
    let archive = round_trip_with(data, &copts);
    let a = Archive::parse(&archive).unwrap();
    assert!(
        a.index.chunks[0].tokens > 3 * 64,
        "the first chunk must slide several times"
    );
    let s = a.header.model.unwrap().schedule;
    assert_eq!((s.window, s.slide, s.sinks, s.seqs), (64, 16, 4, 2));
}

#[test]
fn groups_of_fewer_sequences_than_chunks() {
    // 5 or more chunks with 2 sequences per context: three groups or more.
    let data = &corpus("asyoulik.txt")[10_000..12_500];
    let copts = CompressOptions {
        chunk_size: 500,
        seqs: 2,
        ..opts()
    };
    let archive = round_trip_with(data, &copts);
    assert!(Archive::parse(&archive).unwrap().index.chunks.len() >= 5);
}

#[test]
fn compression_is_deterministic() {
    let data = &corpus("html")[20_000..21_500];
    let a = compress(data, &opts(), &|_| {}).unwrap();
    let b = compress(
        data,
        &CompressOptions {
            threads: 1,
            ..opts()
        },
        &|_| {},
    )
    .unwrap();
    assert!(
        a == b,
        "same input and options must give the same archive, whatever the threads"
    );
}

/// The portable engine: the archive records its numerics (for SmolLM2, which has no K-quant
/// matrices, version 2: the oldest that computes the current version's logits), the encoder
/// writes the same archive on any number of threads, and the decoder gives back the input on
/// any number of threads, decoding a chunk alone (a range) or with its whole group.
#[test]
fn portable_engine_is_independent_of_threads_and_grouping() {
    let data = &corpus("alice29.txt")[30_000..33_000];
    let copts = CompressOptions {
        engine: Some(Engine::Portable),
        chunk_size: 1000,
        window: 160,
        slide: 48,
        ..CompressOptions::default()
    };
    let archive = round_trip_with(data, &copts);
    let parsed = Archive::parse(&archive).unwrap();
    let model = parsed.header.model.as_ref().expect("an LLM archive");
    assert_eq!(model.numerics, "nzip portable 2");
    assert!(parsed.index.chunks.len() >= 3 && parsed.index.chunks.iter().all(|c| c.tokens > 0));
    let one_thread = compress(
        data,
        &CompressOptions {
            threads: 1,
            ..copts.clone()
        },
        &|_| {},
    )
    .unwrap();
    assert!(
        one_thread == archive,
        "the archive depends on the thread count"
    );
    for threads in [1, 3] {
        let dopts = DecompressOptions {
            threads,
            ..DecompressOptions::default()
        };
        let mut back = Vec::new();
        decompress(&archive, &dopts, &mut back, &|_| {}).unwrap();
        assert!(back == data, "{threads} threads");
        let mut middle = Vec::new();
        decompress_range(&archive, Some(1200..1900), &dopts, &mut middle, &|_| {}).unwrap();
        assert!(middle == data[1200..1900], "{threads} threads, a range");
    }
}
