//! SentencePiece's scored merges (Gemma 3, `tokenizer.ggml.model = "llama"`), as llama.cpp's
//! `llm_tokenizer_spm` runs them: spaces become U+2581, characters start as symbols, the
//! neighbouring pair whose joined text is the highest-scoring token merges first, and what
//! is left without a token is spelled in byte tokens.

use std::collections::{BinaryHeap, HashMap};

use super::super::gguf::{Gguf, Value};
use super::super::ModelError;
use super::{
    ends_generation, keeps_normal_end_s, sort_user_defined, split_user_defined, texts_and_types,
    Fragment, BYTE, NORMAL, USER_DEFINED,
};

/// The escaped space: SentencePiece spells ' ' as U+2581 in its pieces.
const ESCAPED_SPACE: &str = "\u{2581}";

/// A SentencePiece vocabulary and the bytes of every token.
pub struct SentencePiece {
    /// What each token stands for in plain text: a normal token's text with U+2581 as a
    /// space, a byte token's byte, a user-defined token's text as is, nothing for control,
    /// unknown and unused tokens (as llama.cpp renders them without special tokens).
    pieces: Vec<Box<[u8]>>,
    /// Text → (token, score); llama.cpp keeps the last of equal texts.
    by_text: HashMap<Box<[u8]>, (u32, f32)>,
    /// The token spelling each byte when no token covers a symbol: `<0xXX>`, else the byte's
    /// own one-byte text (llama.cpp's `byte_to_token`).
    byte_token: [Option<u32>; 256],
    /// Tokens matched in raw text before anything else, longest first (see
    /// `super::split_user_defined`).
    user_defined: Vec<(Box<str>, u32)>,
    /// Whether a text run that starts the text or follows a user-defined token gets a space
    /// in front (`tokenizer.ggml.add_space_prefix`, true unless the file says otherwise).
    add_space_prefix: bool,
}

impl SentencePiece {
    /// Reads the tokenizer of a GGUF file (its model must be "llama").
    pub fn from_gguf(g: &Gguf) -> Result<Self, ModelError> {
        let (texts, types, n_vocab) = texts_and_types(g)?;
        let scores = match g.metadata.get("tokenizer.ggml.scores") {
            Some(Value::Floats(s)) if s.len() == texts.len() => s,
            _ => {
                return Err(ModelError::BadMetadata(
                    "tokenizer.ggml.scores missing or not one per token".into(),
                ))
            }
        };
        if let Some(bad) = scores.iter().find(|s| !s.is_finite()) {
            return Err(ModelError::BadMetadata(format!("token score {bad}")));
        }
        let add_space_prefix = match g.metadata.get("tokenizer.ggml.add_space_prefix") {
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ModelError::BadMetadata(
                    "tokenizer.ggml.add_space_prefix is not a boolean".into(),
                ))
            }
            None => true,
        };
        let normal_end_s = keeps_normal_end_s(texts);
        let mut by_text = HashMap::with_capacity(texts.len());
        let mut pieces = Vec::with_capacity(texts.len());
        let mut user_defined = Vec::new();
        for (id, ((text, &kind), &score)) in (0..n_vocab).zip(texts.iter().zip(&types).zip(scores))
        {
            // The file's scores are f32; +0.0 for −0.0 so that equal scores compare equal.
            by_text.insert(text.clone().into_boxed_slice(), (id, score as f32 + 0.0));
            pieces.push(match kind {
                _ if ends_generation(text, normal_end_s) => Box::default(),
                NORMAL => unescape(text),
                USER_DEFINED => {
                    if let Ok(s) = std::str::from_utf8(text) {
                        if !s.is_empty() {
                            user_defined.push((s.into(), id));
                        }
                    }
                    text.clone().into_boxed_slice()
                }
                BYTE => Box::new([byte_of(text).ok_or_else(|| {
                    ModelError::BadMetadata(format!(
                        "byte token {id} spelled {:?}",
                        String::from_utf8_lossy(text)
                    ))
                })?]),
                _ => Box::default(),
            });
        }
        sort_user_defined(&mut user_defined);
        let mut byte_token = [None; 256];
        for (b, slot) in byte_token.iter_mut().enumerate() {
            let hex = format!("<0x{b:02X}>");
            *slot = by_text
                .get(hex.as_bytes())
                .or_else(|| by_text.get(&[b as u8][..]))
                .map(|&(id, _)| id);
        }
        Ok(Self {
            pieces,
            by_text,
            byte_token,
            user_defined,
            add_space_prefix,
        })
    }

    pub fn n_vocab(&self) -> usize {
        self.pieces.len()
    }

    /// The bytes `token` stands for (empty for control tokens and outside the vocabulary).
    pub fn piece(&self, token: u32) -> &[u8] {
        self.pieces.get(token as usize).map_or(&[], |p| &p[..])
    }

    /// Tokens of `text` as plain text: user-defined tokens split out first, then each run of
    /// text between them merged by score.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        // Nothing, not a lone space prefix, as llama.cpp gives for an empty text.
        if text.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(text.len() / 3);
        let mut state = MergeState::default();
        let mut escaped = String::new();
        let mut after_special = true;
        for fragment in split_user_defined(text, &self.user_defined) {
            match fragment {
                Fragment::Token(id) => {
                    out.push(id);
                    after_special = true;
                }
                Fragment::Text(t) => {
                    escaped.clear();
                    if self.add_space_prefix && after_special {
                        escaped.push_str(ESCAPED_SPACE);
                    }
                    escaped.push_str(&t.replace(' ', ESCAPED_SPACE));
                    self.merge(escaped.as_bytes(), &mut state, &mut out);
                    after_special = false;
                }
            }
        }
        out
    }

    /// Merges one escaped run: its characters start as symbols; the queue pops the pair with
    /// the highest score, leftmost among equals (llama.cpp's `llm_bigram_spm` order); a pair
    /// whose sides grew since it was queued is stale.
    fn merge(&self, text: &[u8], s: &mut MergeState, out: &mut Vec<u32>) {
        s.clear();
        let mut at = 0;
        while at < text.len() {
            let len = utf8_len(text[at]).min(text.len() - at);
            s.start.push(at);
            s.len.push(len);
            at += len;
        }
        let n = s.start.len();
        s.prev.extend((0..n).map(|i| i.checked_sub(1)));
        s.next.extend((1..=n).map(|i| (i < n).then_some(i)));
        for i in 1..n {
            self.queue_pair(text, s, i - 1, i);
        }
        while let Some(pair) = s.queue.pop() {
            let (left, right) = (pair.left.0, pair.right);
            if s.len[left] == 0 || s.len[right] == 0 || s.len[left] + s.len[right] != pair.size {
                continue;
            }
            s.len[left] += s.len[right];
            s.len[right] = 0;
            s.next[left] = s.next[right];
            if let Some(after) = s.next[right] {
                s.prev[after] = Some(left);
            }
            if let Some(before) = s.prev[left] {
                self.queue_pair(text, s, before, left);
            }
            if let Some(after) = s.next[left] {
                self.queue_pair(text, s, left, after);
            }
        }
        let mut at = (n > 0).then_some(0);
        while let Some(i) = at {
            let symbol = &text[s.start[i]..][..s.len[i]];
            match self.by_text.get(symbol) {
                Some(&(id, _)) => out.push(id),
                // A byte without a token is dropped, as llama.cpp cannot spell it either;
                // the segmenter's check then codes that run as raw bytes.
                None => out.extend(symbol.iter().filter_map(|&b| self.byte_token[b as usize])),
            }
            at = s.next[i];
        }
    }

    fn queue_pair(&self, text: &[u8], s: &mut MergeState, left: usize, right: usize) {
        let size = s.len[left] + s.len[right];
        if let Some(&(_, score)) = self.by_text.get(&text[s.start[left]..][..size]) {
            s.queue.push(QueuedPair {
                score: Score(score),
                left: std::cmp::Reverse(left),
                right,
                size,
            });
        }
    }
}

/// A normal token's text with U+2581 back to a space.
fn unescape(text: &[u8]) -> Box<[u8]> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if rest.starts_with(ESCAPED_SPACE.as_bytes()) {
            out.push(b' ');
            rest = &rest[ESCAPED_SPACE.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out.into_boxed_slice()
}

/// The byte a byte token `<0xXX>` stands for.
fn byte_of(text: &[u8]) -> Option<u8> {
    let hex = text.strip_prefix(b"<0x")?.strip_suffix(b">")?;
    u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// A UTF-8 sequence's length from its first byte (llama.cpp's `unicode_len_utf8`).
fn utf8_len(first: u8) -> usize {
    const LEN: [usize; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    LEN[usize::from(first >> 4)]
}

/// A token score, ordered as f32 (the file's scores are finite).
#[derive(Clone, Copy, PartialEq)]
struct Score(f32);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Two neighbouring symbols whose joined text is a token. Ordered by score, then leftmost
/// first, so the max-heap pops what llama.cpp's queue pops.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct QueuedPair {
    score: Score,
    left: std::cmp::Reverse<usize>,
    right: usize,
    /// Bytes of the joined text: a pair whose sides grew since is stale.
    size: usize,
}

/// One run's symbols while merging, kept between runs to reuse the allocations.
#[derive(Default)]
struct MergeState {
    start: Vec<usize>,
    /// Bytes of each symbol; 0 once merged into its left neighbour.
    len: Vec<usize>,
    prev: Vec<Option<usize>>,
    next: Vec<Option<usize>>,
    queue: BinaryHeap<QueuedPair>,
}

impl MergeState {
    fn clear(&mut self) {
        self.start.clear();
        self.len.clear();
        self.prev.clear();
        self.next.clear();
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GGUF-shaped SentencePiece vocabulary: control tokens, byte tokens, scored pieces and a
    /// user-defined token.
    fn toy(add_space_prefix: Option<bool>) -> SentencePiece {
        let mut texts: Vec<Vec<u8>> = vec![b"<pad>".to_vec(), b"<eos>".to_vec()];
        let mut types = vec![3, 3];
        let mut scores = vec![0.0, 0.0];
        for b in 0..=255u8 {
            texts.push(format!("<0x{b:02X}>").into_bytes());
            types.push(BYTE);
            scores.push(0.0);
        }
        // Higher scores merge first: "▁h" beats "he", so "▁hello" is ▁h + ello.
        for (piece, score) in [
            ("▁", -1.0),
            ("h", -2.0),
            ("e", -2.0),
            ("l", -2.0),
            ("o", -2.0),
            ("▁h", -3.0),
            ("he", -4.0),
            ("ll", -5.0),
            ("lo", -6.0),
            ("llo", -7.0),
            ("ello", -8.0),
            // Equal scores: the leftmost pair merges first.
            ("a", -2.0),
            ("b", -2.0),
            ("c", -2.0),
            ("ab", -9.0),
            ("bc", -9.0),
        ] {
            texts.push(piece.as_bytes().to_vec());
            types.push(NORMAL);
            scores.push(score);
        }
        texts.push(b"\n\n".to_vec());
        types.push(USER_DEFINED);
        scores.push(0.0);
        let mut metadata = HashMap::new();
        metadata.insert(
            "tokenizer.ggml.model".into(),
            Value::String(b"llama".to_vec()),
        );
        metadata.insert("tokenizer.ggml.tokens".into(), Value::Strings(texts));
        metadata.insert("tokenizer.ggml.token_type".into(), Value::Ints(types));
        metadata.insert("tokenizer.ggml.scores".into(), Value::Floats(scores));
        if let Some(prefix) = add_space_prefix {
            metadata.insert(
                "tokenizer.ggml.add_space_prefix".into(),
                Value::Bool(prefix),
            );
        }
        SentencePiece::from_gguf(&Gguf::from_metadata(metadata)).expect("toy vocabulary")
    }

    fn spelled(spm: &SentencePiece, tokens: &[u32]) -> Vec<u8> {
        tokens.iter().flat_map(|&t| spm.piece(t).to_vec()).collect()
    }

    #[test]
    fn merges_run_by_score_and_pieces_give_the_bytes_back() {
        let spm = toy(Some(false));
        let id = |t: &str| spm.by_text[t.as_bytes()].0;
        let tokens = spm.tokenize(" hello\n\nhé");
        assert_eq!(
            tokens[..3],
            [id("▁h"), id("ello"), id("\n\n")],
            "\"▁h\" (−3) merges before \"he\" (−4), which is then stale; \"ll\" (−5) before \
             \"lo\", then \"llo\" (−7) and \"ello\" (−8)"
        );
        // 'é' has no token: its two UTF-8 bytes are spelled in byte tokens.
        assert_eq!(tokens[3..], [id("h"), id("<0xC3>"), id("<0xA9>")]);
        assert_eq!(spelled(&spm, &tokens), " hello\n\nhé".as_bytes());
        assert_eq!(spm.piece(0), b"", "a control token renders as nothing");
        assert_eq!(
            spm.tokenize("abc"),
            [id("ab"), id("c")],
            "leftmost among equals"
        );
        assert_eq!(spm.tokenize(""), [] as [u32; 0]);
        assert_eq!(spm.piece(id("▁")), b" ");
    }

    #[test]
    fn a_space_prefix_goes_before_each_run_that_starts_the_text_or_follows_a_user_token() {
        let spm = toy(None);
        let id = |t: &str| spm.by_text[t.as_bytes()].0;
        let tokens = spm.tokenize("he\n\nhe");
        assert_eq!(
            tokens,
            [id("▁h"), id("e"), id("\n\n"), id("▁h"), id("e")],
            "the default is a prefix"
        );
        assert_eq!(spelled(&spm, &tokens), b" he\n\n he");
    }
}
