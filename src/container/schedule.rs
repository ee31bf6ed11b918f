//! The schedule of a group of chunks run in lockstep through the language model: window,
//! slide, sinks, sequences and start token. An archive records it; the decoder replays it, and
//! rejects one outside the limits below (`formats/NZIP.md`, "Decoder limits").

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
        let bad = |why: &str| {
            Err(Error::malformed(format!(
                "invalid schedule ({self}): {why}"
            )))
        };
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

#[cfg(test)]
mod tests {
    use super::*;

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
