//! Splits a chunk's bytes into text runs (for the tokenizer and the LLM) and raw-byte runs.
//!
//! The tokenizer may only ever see strict UTF-8 that is free of the code points it drops,
//! mangles or chokes on (DESIGN.md, losslessness rules). Everything else, and text runs too
//! short to be worth a trip through the LLM, goes to the raw-byte path. The tokenizer's round
//! trip is verified afterwards (see `token`), which can demote further text to raw bytes.

use std::ops::Range;

/// Text runs shorter than this (in bytes) are coded as raw bytes: the strings inside binary
/// formats (protobuf fields, PDF operators) are short and predicted well by the byte model's
/// context, while each trip into the LLM starts from a context that has not seen them. In
/// random data a 64-byte printable run practically never occurs, so noise stays out of the
/// LLM path.
pub const MIN_TEXT_RUN: usize = 64;

/// What a run of bytes is coded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    Text,
    Raw,
}

/// A segment as the splitter proposes it, before tokenization: its kind and its bytes as a
/// range into the chunk (`token::Segment` is what it becomes once verified).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSpan {
    pub kind: SegmentKind,
    pub range: Range<usize>,
}

/// Whether the tokenizer can be trusted with this character.
///
/// The rule covers every model tier (`examples/tokenizer_probe.rs` tries every code point):
/// C0 controls other than tab, LF and CR (SmolLM2 drops U+0004, U+0006, U+0013, U+0014,
/// U+0016, U+001D), DEL and the C1 controls (conservative), everything from U+40000 up
/// (SmolLM2 mangles U+40000–U+BFFFF; the planes above are private use), and U+2581, the space
/// mark of SentencePiece vocabularies, which Gemma's gives back as a space. Qwen's byte-level
/// vocabulary carries every code point. What slips through is still caught by the round-trip
/// check.
pub fn is_tokenizer_safe(c: char) -> bool {
    match c {
        '\t' | '\n' | '\r' => true,
        '\u{0}'..='\u{1F}' | '\u{7F}'..='\u{9F}' | '\u{2581}' => false,
        c => (c as u32) < 0x40000,
    }
}

/// Cuts `bytes` into alternating text and raw spans covering it exactly, in order. Input that
/// is all safe text is one text span whatever its length (short text files are still text);
/// otherwise text runs shorter than [`MIN_TEXT_RUN`] join the raw bytes around them.
pub fn split(bytes: &[u8]) -> Vec<SegmentSpan> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if !text.is_empty() && text.chars().all(is_tokenizer_safe) {
            return vec![SegmentSpan {
                kind: SegmentKind::Text,
                range: 0..bytes.len(),
            }];
        }
    }
    let mut spans: Vec<SegmentSpan> = Vec::new();
    let mut push = |kind: SegmentKind, range: Range<usize>| {
        if range.is_empty() {
            return;
        }
        let kind = if kind == SegmentKind::Text && range.len() < MIN_TEXT_RUN {
            SegmentKind::Raw
        } else {
            kind
        };
        match spans.last_mut() {
            Some(last) if last.kind == kind => last.range.end = range.end,
            _ => spans.push(SegmentSpan { kind, range }),
        }
    };

    let mut pos = 0;
    while pos < bytes.len() {
        let (valid, invalid_len) = match std::str::from_utf8(&bytes[pos..]) {
            Ok(s) => (s, 0),
            Err(e) => {
                // SAFETY-free: the prefix up to valid_up_to is valid UTF-8 by definition.
                let s = std::str::from_utf8(&bytes[pos..pos + e.valid_up_to()]).unwrap_or("");
                // error_len None means an incomplete sequence at the end: all of it is raw.
                (
                    s,
                    e.error_len().unwrap_or(bytes.len() - pos - e.valid_up_to()),
                )
            }
        };
        // Within the valid prefix, break text at unsafe characters.
        let mut run_start = pos;
        for (offset, c) in valid.char_indices() {
            if !is_tokenizer_safe(c) {
                let at = pos + offset;
                push(SegmentKind::Text, run_start..at);
                push(SegmentKind::Raw, at..at + c.len_utf8());
                run_start = at + c.len_utf8();
            }
        }
        let valid_end = pos + valid.len();
        push(SegmentKind::Text, run_start..valid_end);
        push(SegmentKind::Raw, valid_end..valid_end + invalid_len);
        pos = valid_end + invalid_len;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(bytes: &[u8]) -> Vec<(SegmentKind, usize)> {
        split(bytes)
            .into_iter()
            .map(|s| (s.kind, s.range.len()))
            .collect()
    }

    #[test]
    fn spans_cover_input_exactly() {
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"plain text, long enough".to_vec(),
            b"hello world\xff\xfe more text here\x00\x04 and the end".to_vec(),
            "caf\u{e9} \u{40000} and \u{1F600} emoji text"
                .as_bytes()
                .to_vec(),
            vec![0xE2, 0x82], // truncated multi-byte at the end
            (0..=255u8).collect(),
        ];
        for bytes in cases {
            let spans = split(&bytes);
            let mut at = 0;
            for (i, s) in spans.iter().enumerate() {
                assert_eq!(s.range.start, at);
                assert!(!s.range.is_empty());
                if i > 0 {
                    assert_ne!(s.kind, spans[i - 1].kind, "adjacent spans must alternate");
                }
                if s.kind == SegmentKind::Text {
                    let t = std::str::from_utf8(&bytes[s.range.clone()]).expect("text is UTF-8");
                    assert!(t.chars().all(is_tokenizer_safe));
                    assert!(s.range.len() >= MIN_TEXT_RUN || spans.len() == 1);
                }
                at = s.range.end;
            }
            assert_eq!(at, bytes.len());
        }
    }

    #[test]
    fn unsafe_characters_become_raw() {
        use SegmentKind::*;
        let run = "0123456789abcdef".repeat(4);
        assert_eq!(
            kinds(format!("{run}\u{4}{run}").as_bytes()),
            vec![(Text, 64), (Raw, 1), (Text, 64)]
        );
        assert_eq!(
            kinds(format!("{run}\u{40000}").as_bytes()),
            vec![(Text, 64), (Raw, 4)]
        );
        assert_eq!(kinds(b"line one\r\nline two\r\n"), vec![(Text, 20)]);
        assert_eq!(kinds(b"short"), vec![(Text, 5)], "all text stays text");
        assert_eq!(
            kinds(b"ab\xffcd"),
            vec![(Raw, 5)],
            "short text merges into raw"
        );
        assert_eq!(
            kinds(format!("{}\x04{run}", &run[..63]).as_bytes()),
            vec![(Raw, 64), (Text, 64)]
        );
    }
}
