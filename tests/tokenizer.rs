//! nzip's own tokenizer (`engine::tokenizer`) beside llama.cpp's on the same GGUF: every
//! token's bytes must be the same (an archive's tokens decode to the same bytes in a build
//! with or without llama.cpp), and the tokens of the corpus's text must be the same (the model
//! predicts best on its own tokenization). Needs llama.cpp, so only in builds that have it.

use nzip::engine::gguf::Gguf;
use nzip::engine::tokenizer::Tokenizer;
use nzip::models::{self, FetchPolicy};
use nzip::predict::llama::LanguageModel;

use crate::util::{awkward_text, corpus};

/// The corpus files that are text (the rest are images, tables, PDF).
const TEXT_FILES: [&str; 5] = ["alice29.txt", "asyoulik.txt", "enwik6", "html", "urls.10K"];

fn both(name: &str) -> (Tokenizer, LanguageModel) {
    let file = models::resolve(name, FetchPolicy::Auto).expect("model");
    let gguf = Gguf::open(&file.path).expect("gguf");
    let ours = Tokenizer::from_gguf(&gguf).expect("own tokenizer");
    let theirs = LanguageModel::load_vocab_only(&file.path).expect("llama.cpp vocabulary");
    (ours, theirs)
}

fn same_pieces(name: &str) {
    let (ours, theirs) = both(name);
    assert_eq!(ours.n_vocab(), theirs.n_vocab(), "{name}");
    let differ: Vec<u32> = (0..ours.n_vocab() as u32)
        .filter(|&t| ours.piece(t) != theirs.piece(t))
        .collect();
    assert!(
        differ.is_empty(),
        "{name}: {} tokens' bytes differ, first {:?}: ours {:?}, llama.cpp {:?}",
        differ.len(),
        differ[0],
        String::from_utf8_lossy(ours.piece(differ[0])),
        String::from_utf8_lossy(&theirs.piece(differ[0]))
    );
}

/// The first place where the two tokenizations of `text` part, with some context.
fn first_difference(ours: &[u32], theirs: &[u32], piece: impl Fn(u32) -> Vec<u8>) -> String {
    let at = ours
        .iter()
        .zip(theirs)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(theirs.len()));
    let show = |tokens: &[u32]| {
        tokens[at.saturating_sub(3)..(at + 4).min(tokens.len())]
            .iter()
            .map(|&t| format!("{t}:{:?}", String::from_utf8_lossy(&piece(t))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "token {at} of {}/{}: ours [{}], llama.cpp [{}]",
        ours.len(),
        theirs.len(),
        show(ours),
        show(theirs)
    )
}

fn same_tokens(name: &str) {
    let (ours, theirs) = both(name);
    let mut texts: Vec<(String, String)> = TEXT_FILES
        .iter()
        .map(|f| {
            (
                f.to_string(),
                String::from_utf8_lossy(&corpus(f)).into_owned(),
            )
        })
        .collect();
    texts.push((
        "awkward text".into(),
        String::from_utf8_lossy(&awkward_text()).into_owned(),
    ));
    // Every 61st Unicode scalar value, in runs of letters, digits, spaces and punctuation:
    // the character classes of the pre-tokenizer, beyond what the corpus holds.
    let sweep: String = (0..=0x10FFFFu32)
        .step_by(61)
        .filter_map(char::from_u32)
        .enumerate()
        .flat_map(|(i, c)| [c, [' ', 'a', '7', '\n', '.', '\''][i % 6]])
        .collect();
    texts.push(("a Unicode sweep".into(), sweep));
    for (label, text) in texts {
        let a = ours.tokenize(&text);
        let b = theirs.tokenize(&text);
        assert!(
            a == b,
            "{name}, {label}: {}",
            first_difference(&a, &b, |t| ours.piece(t).to_vec())
        );
    }
}

#[test]
fn own_tokenizer_gives_every_token_the_bytes_llama_cpp_gives() {
    same_pieces(models::SMOLLM2);
}

#[test]
fn own_tokenizer_tokenizes_the_corpus_text_as_llama_cpp_does() {
    same_tokens(models::SMOLLM2);
}

#[test]
#[ignore = "slow: the Qwen tier's model; scripts/test runs it"]
fn own_tokenizer_matches_llama_cpp_on_qwen() {
    same_pieces(models::QWEN_1_5B);
    same_tokens(models::QWEN_1_5B);
}

#[test]
fn own_sentencepiece_matches_llama_cpp_on_gemma() {
    same_pieces(models::GEMMA3_270M);
    same_tokens(models::GEMMA3_270M);
}
