//! Development tool: finds which text a model's tokenizer cannot carry losslessly. Every Unicode
//! scalar value is tokenized between two letters (blocks first, single characters where a block
//! fails), with nzip's own settings (no special-token parsing, no BOS); characters whose token
//! pieces do not give the bytes back are printed as ranges, with what came back instead. Then
//! the model's special-token texts and a few whitespace shapes are tried the same way.
//! `cargo run --release --example tokenizer_probe MODEL` (a manifest name or a GGUF path).

use nzip::models::{self, FetchPolicy};
use nzip::predict::llama::LanguageModel;

fn main() -> nzip::Result<()> {
    let spec = std::env::args()
        .nth(1)
        .unwrap_or(models::DEFAULT_MODEL.into());
    let file = models::resolve(&spec, FetchPolicy::Never)?;
    let model = LanguageModel::load_vocab_only(&file.path)?;
    println!("model {} ({} tokens)", file.name, model.n_vocab());

    let mut failures: Vec<(u32, String)> = Vec::new();
    let chars: Vec<char> = (0..=0x10FFFFu32).filter_map(char::from_u32).collect();
    for block in chars.chunks(64) {
        let text: String = block.iter().flat_map(|&c| [c, ' ']).collect();
        if round_trip(&model, &text).is_none() {
            continue;
        }
        for &c in block {
            if let Some(got) = round_trip(&model, &format!("a{c}b")) {
                failures.push((c as u32, got));
            }
        }
    }
    println!(
        "characters that do not round-trip between two letters: {}",
        failures.len()
    );
    for (first, last, got) in ranges(&failures) {
        println!("  U+{first:04X}..=U+{last:04X}  e.g. \"a\\u{{{first:X}}}b\" -> {got}");
    }

    let specials = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<bos>",
        "<eos>",
        "<pad>",
        "<unk>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<|fim_prefix|>",
        "<|file_sep|>",
        "<s>",
        "</s>",
        "<mask>",
        "[multimodal]",
        "<start_of_image>",
    ];
    let shapes = [
        " leading space",
        "  two leading spaces",
        "\ttab",
        "\r\nCRLF",
        "trailing space ",
        "many     spaces",
        "\n\n\n\nnewlines",
        "1234567890123456789012345678901234567890",
        "\u{FEFF}BOM",
        "e\u{301} combining",
        "\u{200B}zero width",
        "\u{FFFD} replacement",
    ];
    for text in specials.iter().chain(shapes.iter()) {
        match round_trip(&model, text) {
            None => println!("  ok    {text:?}"),
            Some(got) => println!("  FAILS {text:?} -> {got}"),
        }
    }
    Ok(())
}

/// `None` when the pieces of `text`'s tokens concatenate to `text`; otherwise what they gave.
fn round_trip(model: &LanguageModel, text: &str) -> Option<String> {
    let back: Vec<u8> = model
        .tokenize(text)
        .into_iter()
        .flat_map(|t| model.piece(t))
        .collect();
    (back != text.as_bytes()).then(|| format!("{:?}", String::from_utf8_lossy(&back)))
}

/// Consecutive failing code points merged into ranges, with the first one's result.
fn ranges(failures: &[(u32, String)]) -> Vec<(u32, u32, String)> {
    let mut out: Vec<(u32, u32, String)> = Vec::new();
    for (c, got) in failures {
        match out.last_mut() {
            Some((_, last, _)) if *last + 1 == *c || (*last == 0xD7FF && *c == 0xE000) => {
                *last = *c
            }
            _ => out.push((*c, *c, got.clone())),
        }
    }
    out
}
