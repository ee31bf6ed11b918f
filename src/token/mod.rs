//! Turns a chunk's bytes into coded segments: token lists for text, byte counts for raw runs.
//!
//! Losslessness is ours to guarantee: every text run is tokenized and its pieces concatenated
//! back; a run that does not come back byte for byte is bisected until the parts that do are
//! found, and the rest is coded as raw bytes.

use crate::container::SegmentEntry;
use crate::segment::{self, SegmentKind, MIN_TEXT_RUN};

/// A run of a chunk as it is coded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// `len` bytes that are exactly the concatenated pieces of `tokens`.
    Text { len: usize, tokens: Vec<u32> },
    /// `len` bytes coded by the byte model.
    Raw { len: usize },
}

impl Segment {
    pub fn len(&self) -> usize {
        match self {
            Segment::Text { len, .. } | Segment::Raw { len } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of `segments` coded by the byte model.
    pub fn raw_bytes_in(segments: &[Segment]) -> u64 {
        segments
            .iter()
            .filter(|s| matches!(s, Segment::Raw { .. }))
            .map(|s| s.len() as u64)
            .sum()
    }

    /// LLM tokens of `segments`.
    pub fn tokens_in(segments: &[Segment]) -> u64 {
        segments
            .iter()
            .map(|s| match s {
                Segment::Text { tokens, .. } => tokens.len() as u64,
                Segment::Raw { .. } => 0,
            })
            .sum()
    }

    /// The segment as the container's segment table records it.
    pub fn entry(&self) -> SegmentEntry {
        match self {
            Segment::Text { len, tokens } => SegmentEntry::Text {
                len: *len as u64,
                tokens: tokens.len() as u64,
            },
            Segment::Raw { len } => SegmentEntry::Raw { len: *len as u64 },
        }
    }
}

/// The tokenizer role: what an engine that supplies a model's vocabulary provides
/// (`predict::llama` through llama.cpp). Only the encoder tokenizes; the decoder only maps
/// tokens to their bytes.
pub trait Tokenizer: Sync {
    /// Tokens in the vocabulary.
    fn n_vocab(&self) -> usize;
    /// The bytes `token` stands for (empty for a control token).
    fn token_bytes(&self, token: u32) -> Vec<u8>;
    fn tokenize(&self, text: &str) -> Vec<u32>;
}

/// A model's vocabulary with every token's bytes looked up once, so decoding a token is a
/// table lookup and encoder and decoder share the very same table.
pub struct Vocabulary<'t> {
    tokenizer: Option<&'t dyn Tokenizer>,
    pieces: Vec<Box<[u8]>>,
}

impl<'t> Vocabulary<'t> {
    pub fn new(tokenizer: &'t dyn Tokenizer) -> Self {
        let pieces = (0..tokenizer.n_vocab() as u32)
            .map(|t| tokenizer.token_bytes(t).into_boxed_slice())
            .collect();
        Self {
            tokenizer: Some(tokenizer),
            pieces,
        }
    }

    /// The vocabulary of an archive without LLM-coded text: no tokens at all.
    pub fn empty() -> Vocabulary<'static> {
        Vocabulary {
            tokenizer: None,
            pieces: Vec::new(),
        }
    }

    /// The tokens of `text` (none without a tokenizer).
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.tokenizer.map_or_else(Vec::new, |t| t.tokenize(text))
    }

    /// Bytes of a token, or `None` outside the vocabulary.
    pub fn piece(&self, token: u32) -> Option<&[u8]> {
        self.pieces.get(token as usize).map(|p| &p[..])
    }
}

/// Segments of `bytes`, covering it exactly, with every text segment verified.
pub fn segment_chunk(vocab: &Vocabulary, bytes: &[u8]) -> Vec<Segment> {
    let mut out = Vec::new();
    for span in segment::split(bytes) {
        match span.kind {
            SegmentKind::Raw => push(
                &mut out,
                Segment::Raw {
                    len: span.range.len(),
                },
            ),
            SegmentKind::Text => {
                // split() hands out only valid UTF-8 as text.
                // A whole-chunk text span may be short; pieces of it may not.
                let min_run = if span.range.len() == bytes.len() {
                    1
                } else {
                    MIN_TEXT_RUN
                };
                let text = std::str::from_utf8(&bytes[span.range]).unwrap_or_default();
                tokenize_verified(vocab, text, min_run, &mut out);
            }
        }
    }
    out
}

/// Appends `text` as verified text segments, bisecting around what fails the round trip;
/// pieces shorter than `min_run` bytes become raw.
fn tokenize_verified(vocab: &Vocabulary, text: &str, min_run: usize, out: &mut Vec<Segment>) {
    if text.is_empty() {
        return;
    }
    if text.len() >= min_run {
        let tokens = vocab.tokenize(text);
        if round_trips(vocab, &tokens, text.as_bytes()) {
            push(
                out,
                Segment::Text {
                    len: text.len(),
                    tokens,
                },
            );
            return;
        }
    }
    if text.len() < 2 * MIN_TEXT_RUN {
        push(out, Segment::Raw { len: text.len() });
        return;
    }
    let cut = split_point(text);
    tokenize_verified(vocab, &text[..cut], MIN_TEXT_RUN, out);
    tokenize_verified(vocab, &text[cut..], MIN_TEXT_RUN, out);
}

/// A character boundary near the middle, moved to just before whitespace when one is close,
/// so both halves tokenize naturally.
fn split_point(text: &str) -> usize {
    let mut mid = text.len() / 2;
    while !text.is_char_boundary(mid) {
        mid += 1;
    }
    let reach = (text.len() / 8).max(1);
    let lo = mid.saturating_sub(reach);
    match text.as_bytes()[lo..mid]
        .iter()
        .rposition(|&b| b == b' ' || b == b'\n')
    {
        Some(p) if lo + p > 0 => lo + p,
        _ => mid,
    }
}

fn round_trips(vocab: &Vocabulary, tokens: &[u32], expected: &[u8]) -> bool {
    let mut at = 0;
    for &t in tokens {
        let Some(piece) = vocab.piece(t) else {
            return false;
        };
        if piece.is_empty() || expected.get(at..at + piece.len()) != Some(piece) {
            return false;
        }
        at += piece.len();
    }
    at == expected.len()
}

/// Appends a segment, merging it into the previous one of the same kind.
fn push(out: &mut Vec<Segment>, seg: Segment) {
    match (out.last_mut(), seg) {
        (Some(Segment::Raw { len }), Segment::Raw { len: more }) => *len += more,
        (
            Some(Segment::Text { len, tokens }),
            Segment::Text {
                len: more,
                tokens: more_tokens,
            },
        ) => {
            *len += more;
            tokens.extend(more_tokens);
        }
        (_, seg) => out.push(seg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per byte, except that it "drops" the letter 'z', like the real tokenizer
    /// drops some control characters.
    struct ByteTokenizer;

    impl Tokenizer for ByteTokenizer {
        fn n_vocab(&self) -> usize {
            256
        }
        fn token_bytes(&self, token: u32) -> Vec<u8> {
            vec![token as u8]
        }
        fn tokenize(&self, text: &str) -> Vec<u32> {
            text.bytes().filter(|&b| b != b'z').map(u32::from).collect()
        }
    }

    fn covered(segments: &[Segment]) -> usize {
        segments.iter().map(Segment::len).sum()
    }

    #[test]
    fn clean_text_is_one_segment() {
        let t = Vocabulary::new(&ByteTokenizer);
        let segs = segment_chunk(&t, b"hello world, this is text");
        assert_eq!(segs.len(), 1);
        assert!(matches!(&segs[0], Segment::Text { len: 25, tokens } if tokens.len() == 25));
    }

    #[test]
    fn dropped_characters_are_isolated_as_raw() {
        let t = Vocabulary::new(&ByteTokenizer);
        let words = "a long run of plain words, and more plain words after them. ".repeat(5);
        let text = format!("{words}then z and {words}");
        let segs = segment_chunk(&t, text.as_bytes());
        assert_eq!(covered(&segs), text.len());
        let raw: usize = segs
            .iter()
            .filter(|s| matches!(s, Segment::Raw { .. }))
            .map(Segment::len)
            .sum();
        assert!(
            raw > 0 && raw < text.len() / 2,
            "only the region around 'z' is raw: {segs:?}"
        );
        for s in &segs {
            if let Segment::Text { len, tokens } = s {
                assert_eq!(*len, tokens.len());
            }
        }
    }

    #[test]
    fn binary_and_text_mix() {
        let t = Vocabulary::new(&ByteTokenizer);
        let mut bytes =
            b"header text that is long enough to be worth the language model's time".to_vec();
        bytes.extend([0xff, 0x00, 0x81]);
        bytes.extend(b"trailing text that is long, long enough for the language model too");
        let segs = segment_chunk(&t, &bytes);
        assert_eq!(covered(&segs), bytes.len());
        assert!(matches!(segs[1], Segment::Raw { len: 3 }));
    }
}
