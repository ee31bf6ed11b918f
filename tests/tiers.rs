//! The model tiers behind the levels: each model's tokenizer findings (what it cannot carry,
//! which the segmenter must keep from it), and round trips through Gemma 3 270M and Qwen2.5-Coder
//! 1.5B at their levels. `scripts/test` fetches every tier's model first.

use nzip::container::Archive;
use nzip::models::{self, FetchPolicy};
use nzip::pipeline::{compress, decompress, levels, DecompressOptions};
use nzip::predict::llama::LanguageModel;
use nzip::token::{segment_chunk, Segment, Vocabulary};

use crate::util::{awkward_text, corpus};

fn vocabulary_of(name: &str) -> LanguageModel {
    let file = models::resolve(name, FetchPolicy::Auto).expect("model");
    LanguageModel::load_vocab_only(&file.path).expect("vocabulary")
}

/// Whether `text`'s tokens give back exactly its bytes.
fn carries(vocab: &Vocabulary, text: &str) -> bool {
    let back: Vec<u8> = vocab
        .tokenize(text)
        .iter()
        .flat_map(|&t| vocab.piece(t).unwrap_or_default().to_vec())
        .collect();
    back == text.as_bytes()
}

/// The manifests say which models the portable engine runs: it loads exactly those.
#[test]
#[ignore = "slow: every tier's model; scripts/test runs it"]
fn portable_engine_runs_the_models_the_manifests_say() {
    for m in models::manifests() {
        let file = models::resolve(&m.name, FetchPolicy::Auto).expect("model");
        let loaded = nzip::engine::PortableModel::load(&file.path);
        assert_eq!(
            loaded.is_ok(),
            m.portable,
            "{}: {:?}",
            m.name,
            loaded.err().map(|e| e.to_string())
        );
    }
}

#[test]
#[ignore = "slow: every tier's model; scripts/test runs it"]
fn tokenizer_findings_per_model() {
    // (model, drops U+0004, mangles U+40000, turns U+2581 into a space)
    let findings = [
        (models::SMOLLM2, true, true, false),
        (models::GEMMA3_270M, false, false, true),
        (models::QWEN_1_5B, false, false, false),
    ];
    for (name, drops_control, mangles_astral, maps_space_mark) in findings {
        let lm = vocabulary_of(name);
        let vocab = Vocabulary::new(&lm);
        assert_eq!(!carries(&vocab, "a\u{4}b"), drops_control, "{name}: U+0004");
        assert_eq!(
            !carries(&vocab, "a\u{40000}b"),
            mangles_astral,
            "{name}: U+40000"
        );
        assert_eq!(
            !carries(&vocab, "a\u{2581}b"),
            maps_space_mark,
            "{name}: U+2581"
        );
        // Special-token text is plain text to every tokenizer, as nzip calls them.
        for special in [
            "<|endoftext|>",
            "<bos>",
            "<|im_start|>",
            "<start_of_turn>",
            "</s>",
        ] {
            assert!(carries(&vocab, special), "{name}: {special}");
        }

        // The segmenter keeps all of that from the tokenizer: the awkward text is covered
        // exactly, and every text segment's tokens give back its bytes.
        let data = awkward_text();
        let segments = segment_chunk(&vocab, &data);
        let mut at = 0;
        let mut text_bytes = 0;
        for s in &segments {
            if let Segment::Text { len, tokens } = s {
                let back: Vec<u8> = tokens
                    .iter()
                    .flat_map(|&t| vocab.piece(t).unwrap().to_vec())
                    .collect();
                assert_eq!(back, data[at..at + len], "{name}: text segment at {at}");
                text_bytes += len;
            }
            at += s.len();
        }
        assert_eq!(at, data.len(), "{name}: segments cover the input");
        assert!(
            text_bytes > data.len() / 3,
            "{name}: most of it is still text"
        );
    }
}

/// Compresses at `level`, checks the archive names the level's model and codes text with it,
/// decodes, and returns bits per byte.
fn round_trip_at(level: u8, data: &[u8]) -> f64 {
    let mut opts = levels::level(level).unwrap().options();
    opts.chunk_size = 4096;
    let archive = compress(data, &opts, &|_| {}).expect("compress");
    let parsed = Archive::parse(&archive).expect("parse");
    let model = parsed.header.model.as_ref().expect("model section");
    assert_eq!(
        Some(model.name.as_str()),
        levels::level(level).unwrap().model
    );
    assert!(
        parsed.index.chunks.iter().any(|c| c.tokens > 0),
        "level {level}: some chunk is coded by the LLM"
    );
    let mut back = Vec::new();
    decompress(&archive, &DecompressOptions::default(), &mut back, &|_| {}).expect("decompress");
    assert!(back == data, "level {level}: round trip changed the data");
    8.0 * archive.len() as f64 / data.len() as f64
}

#[test]
#[ignore = "slow: every tier's model; scripts/test runs it"]
fn every_tier_round_trips_and_bigger_models_code_text_in_fewer_bits() {
    let mut data = awkward_text();
    data.extend(&corpus("alice29.txt")[30_000..32_000]);
    let smollm2 = round_trip_at(levels::DEFAULT_LEVEL, &data);
    let gemma = round_trip_at(6, &data);
    let qwen = round_trip_at(8, &data);
    eprintln!("bits per byte: SmolLM2 {smollm2:.3}, Gemma {gemma:.3}, Qwen {qwen:.3}");
    assert!(qwen < smollm2, "Qwen {qwen:.3} vs SmolLM2 {smollm2:.3}");
}
