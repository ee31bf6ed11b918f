//! The chunk plan: where the input is cut into independently coded chunks, and how chunks are
//! grouped for lockstep decoding.
//!
//! Chunk `i` belongs to group `i / seqs`; the decoder reads cuts and groups from the archive,
//! so the planner may change without breaking old archives.

use crate::error::{Error, Result};

/// Everything needed to rebuild a group's schedule of `decode` calls. Stored in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// KV positions per sequence; a sequence slides when its next position would reach it.
    pub window: u32,
    /// Positions dropped per slide.
    pub slide: u32,
    /// Positions at the start of a sequence that are never dropped ("attention sinks").
    pub sinks: u32,
    /// Chunks per group: sequences in one llama.cpp context.
    pub seqs: u32,
    /// Token fed at position 0 of every chunk, so the first real token has a prediction.
    pub start_token: u32,
}

impl std::fmt::Display for Schedule {
    /// "window 1024, slide 256, 4 sinks, 16 sequences, start token 1", in the flags' words.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "window {}, slide {}, {} sinks, {} sequences, start token {}",
            self.window, self.slide, self.sinks, self.seqs, self.start_token
        )
    }
}

/// Largest `seqs` accepted (llama.cpp's own limit on sequences per context is 256).
pub const MAX_SEQS: u32 = 256;
/// Largest window accepted from an archive (the default model was trained on 8192).
pub const MAX_WINDOW: u32 = 1 << 16;
/// Largest total context (window × sequences) accepted, so a forged header cannot ask
/// llama.cpp for an absurd KV cache.
pub const MAX_CONTEXT: u64 = 1 << 20;

impl Schedule {
    /// Checks the invariants the group runner relies on; archives are validated with it too.
    pub fn validate(&self, n_vocab: Option<usize>) -> Result<()> {
        let bad = |why: &str| Err(Error::Corrupt(format!("invalid schedule ({self}): {why}")));
        if self.seqs == 0 || self.seqs > MAX_SEQS {
            return bad("sequences per group out of range");
        }
        if self.window < 2 || self.window > MAX_WINDOW {
            return bad("window out of range");
        }
        if u64::from(self.window) * u64::from(self.seqs) > MAX_CONTEXT {
            return bad("window × sequences exceeds the largest context nzip creates");
        }
        if self.slide == 0
            || self
                .sinks
                .checked_add(self.slide)
                .is_none_or(|e| e >= self.window)
        {
            return bad("sinks + slide must be below the window, slide at least 1");
        }
        if let Some(n) = n_vocab {
            if self.start_token as usize >= n {
                return bad("start token outside the vocabulary");
            }
        }
        Ok(())
    }
}

/// Cuts `data` into chunks of about `target` bytes. A cut prefers to follow a newline within
/// the last eighth of the chunk, then a space, and never splits a UTF-8 character that starts
/// within reach, so text chunks stay clean for the tokenizer.
pub fn plan_chunks(data: &[u8], target: usize) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let end = start + next_cut(&data[start..], target);
        chunks.push(start..end);
        start = end;
    }
    chunks
}

/// The most chunks [`plan_chunks`] can cut `len` bytes into: every chunk but the last keeps
/// at least seven eighths of the target, and at least the target less three bytes.
pub fn max_chunk_count(len: u64, target: usize) -> u64 {
    let target = target.max(1) as u64;
    if len <= target {
        return u64::from(len > 0);
    }
    let shortest = (target - target / 8).min(target.saturating_sub(3)).max(1);
    (len - 1) / shortest + 1
}

/// Length of the chunk that starts `rest`, which holds everything up to the end of the input
/// or at least `target + 1` bytes of it: the cut depends on nothing further, so a streaming
/// reader cuts exactly where [`plan_chunks`] does.
pub fn next_cut(rest: &[u8], target: usize) -> usize {
    let target = target.max(1);
    if rest.len() <= target {
        return rest.len();
    }
    let lo = target - target / 8;
    let window = &rest[lo..target];
    if let Some(p) = window.iter().rposition(|&b| b == b'\n') {
        lo + p + 1
    } else if let Some(p) = window.iter().rposition(|&b| b == b' ') {
        lo + p + 1
    } else {
        // Back off over UTF-8 continuation bytes (at most 3) to a character start.
        let mut e = target;
        while e > 1 && target - e < 3 && (rest[e] & 0xC0) == 0x80 {
            e -= 1;
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_input() {
        let text = "word ".repeat(1000) + "line\n" + &"é".repeat(3000);
        for target in [1, 7, 100, 4096, 100_000] {
            let chunks = plan_chunks(text.as_bytes(), target);
            let mut at = 0;
            for c in &chunks {
                assert_eq!(c.start, at);
                assert!(!c.is_empty() && c.len() <= target.max(1));
                at = c.end;
            }
            assert_eq!(at, text.len());
        }
        assert!(plan_chunks(b"", 10).is_empty());
    }

    #[test]
    fn chunk_count_bound_holds() {
        let text = "a line of text\nanother, longer line of text here\n".repeat(500);
        let binary: Vec<u8> = (0..30_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        for data in [text.as_bytes(), &binary[..]] {
            for target in [1, 7, 64, 100, 1000, 4096, 1 << 20] {
                for len in [0, 1, 99, 100, 101, data.len() / 3, data.len()] {
                    let n = plan_chunks(&data[..len], target).len() as u64;
                    assert!(n <= max_chunk_count(len as u64, target), "{len} {target}");
                }
            }
        }
    }

    #[test]
    fn cuts_prefer_newlines_and_char_boundaries() {
        let text = "a".repeat(95) + "\n" + &"b".repeat(50);
        assert_eq!(plan_chunks(text.as_bytes(), 100)[0], 0..96);
        let text = "é".repeat(100); // 2 bytes each, no spaces
        for c in plan_chunks(text.as_bytes(), 33) {
            assert!(std::str::from_utf8(&text.as_bytes()[c]).is_ok());
        }
    }

    #[test]
    fn schedule_validation() {
        let ok = Schedule {
            window: 1024,
            slide: 256,
            sinks: 4,
            seqs: 16,
            start_token: 0,
        };
        assert!(ok.validate(Some(49152)).is_ok());
        assert!(Schedule { slide: 1021, ..ok }.validate(None).is_err());
        assert!(Schedule { seqs: 0, ..ok }.validate(None).is_err());
        assert!(Schedule {
            start_token: 49152,
            ..ok
        }
        .validate(Some(49152))
        .is_err());
        assert!(Schedule {
            sinks: u32::MAX,
            ..ok
        }
        .validate(None)
        .is_err());
    }
}
