//! The model's own tokenizer, read from its GGUF file, so that nzip tokenizes without
//! llama.cpp: byte-level BPE (`bpe`: SmolLM2, Qwen2.5) or SentencePiece's scored merges
//! (`spm`: Gemma 3), as `tokenizer.ggml.model` names it.
//!
//! Only the encoder tokenizes; the decoder maps tokens to their bytes. So any tokenization
//! whose pieces give back the text decodes, and the segmenter checks that every run does
//! (`token::segment_chunk`). The model still predicts best on the tokens it was trained on, so
//! both follow llama.cpp's tokenizers (`llama-vocab.cpp` and `unicode.cpp` of the vendored
//! release); the test suite compares them on every text file of the corpus and on every
//! token's bytes.

pub mod bpe;
pub mod spm;

pub use bpe::{ByteLevelBpe, PreTokenizer};
pub use spm::SentencePiece;

use super::gguf::{Gguf, Value};
use super::ModelError;

/// GGUF token types (`tokenizer.ggml.token_type`), as llama.cpp reads them.
const NORMAL: i64 = 1;
const USER_DEFINED: i64 = 4;
const BYTE: i64 = 6;

/// Texts llama.cpp takes for end-of-generation tokens, whatever their type says, and so
/// renders as nothing (llama-vocab.cpp's list; Qwen2.5 has a normal `</s>`).
const END_OF_GENERATION: [&str; 23] = [
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
    "[e~[",
    "<|plamo:eos|>",
];

/// A model's tokenizer, of the kind its GGUF file names.
pub enum Tokenizer {
    Bpe(ByteLevelBpe),
    SentencePiece(SentencePiece),
}

impl Tokenizer {
    /// Reads the tokenizer of a GGUF file.
    pub fn from_gguf(g: &Gguf) -> Result<Self, ModelError> {
        match g.string("tokenizer.ggml.model")? {
            b"gpt2" => Ok(Self::Bpe(ByteLevelBpe::from_gguf(g)?)),
            b"llama" => Ok(Self::SentencePiece(SentencePiece::from_gguf(g)?)),
            other => Err(ModelError::Unsupported(format!(
                "tokenizer {:?} (nzip's own tokenizer reads byte-level BPE, \"gpt2\", and \
                 SentencePiece, \"llama\")",
                String::from_utf8_lossy(other)
            ))),
        }
    }

    pub fn n_vocab(&self) -> usize {
        match self {
            Self::Bpe(t) => t.n_vocab(),
            Self::SentencePiece(t) => t.n_vocab(),
        }
    }

    /// The bytes `token` stands for (empty for control tokens and outside the vocabulary).
    pub fn piece(&self, token: u32) -> &[u8] {
        match self {
            Self::Bpe(t) => t.piece(token),
            Self::SentencePiece(t) => t.piece(token),
        }
    }

    /// Tokens of `text` as plain text (no special tokens parsed, none added).
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        match self {
            Self::Bpe(t) => t.tokenize(text),
            Self::SentencePiece(t) => t.tokenize(text),
        }
    }
}

impl crate::token::Tokenizer for Tokenizer {
    fn n_vocab(&self) -> usize {
        Tokenizer::n_vocab(self)
    }

    fn token_bytes(&self, token: u32) -> Vec<u8> {
        self.piece(token).to_vec()
    }

    fn tokenize(&self, text: &str) -> Vec<u32> {
        Tokenizer::tokenize(self, text)
    }
}

/// A vocabulary's token texts, their types and their count.
type TextsAndTypes<'g> = (&'g [Vec<u8>], Vec<i64>, u32);

/// The vocabulary's texts and their types (all normal where the file gives none).
fn texts_and_types(g: &Gguf) -> Result<TextsAndTypes<'_>, ModelError> {
    let Some(Value::Strings(texts)) = g.metadata.get("tokenizer.ggml.tokens") else {
        return Err(ModelError::BadMetadata(
            "tokenizer.ggml.tokens missing".into(),
        ));
    };
    let types = match g.metadata.get("tokenizer.ggml.token_type") {
        Some(Value::Ints(t)) if t.len() == texts.len() => t.clone(),
        Some(_) => {
            return Err(ModelError::BadMetadata(
                "tokenizer.ggml.token_type does not match the tokens".into(),
            ))
        }
        None => vec![NORMAL; texts.len()],
    };
    let n_vocab = u32::try_from(texts.len())
        .ok()
        .filter(|&n| n > 1)
        .ok_or_else(|| ModelError::BadMetadata(format!("{} tokens", texts.len())))?;
    Ok((texts, types, n_vocab))
}

/// Whether llama.cpp renders `text` as nothing because it ends generation (see
/// `END_OF_GENERATION`); `normal_end_s` where the vocabulary keeps a normal `</s>`.
fn ends_generation(text: &[u8], normal_end_s: bool) -> bool {
    END_OF_GENERATION.iter().any(|e| e.as_bytes() == text) && !(normal_end_s && text == b"</s>")
}

/// Whether llama.cpp keeps a normal `</s>` in this vocabulary (it has these markers).
fn keeps_normal_end_s(texts: &[Vec<u8>]) -> bool {
    texts
        .iter()
        .any(|t| t == b"<|tool_response>" || t == b"<|plamo:eos|>")
}

/// User-defined tokens, longest first as llama.cpp orders its special-token cache (equal
/// lengths by id): matched in raw text before anything else, even when special tokens are
/// not parsed.
fn sort_user_defined(user_defined: &mut [(Box<str>, u32)]) {
    user_defined.sort_by_key(|(text, id)| (std::cmp::Reverse(text.len()), *id));
}

enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

/// Cuts `text` at every occurrence of a user-defined token, longest tokens first, each over
/// what earlier ones left as text (llama.cpp's `tokenizer_st_partition`).
fn split_user_defined<'t>(text: &'t str, specials: &[(Box<str>, u32)]) -> Vec<Fragment<'t>> {
    let mut fragments = vec![Fragment::Text(text)];
    for (special, id) in specials {
        let mut next = Vec::with_capacity(fragments.len());
        for fragment in fragments {
            let Fragment::Text(mut rest) = fragment else {
                next.push(fragment);
                continue;
            };
            while let Some(at) = rest.find(&**special) {
                if at > 0 {
                    next.push(Fragment::Text(&rest[..at]));
                }
                next.push(Fragment::Token(*id));
                rest = &rest[at + special.len()..];
            }
            if !rest.is_empty() {
                next.push(Fragment::Text(rest));
            }
        }
        fragments = next;
    }
    fragments
}
