//! Compression levels `-1` … `-9`: one knob over the model tiers (byte model alone, SmolLM2,
//! Gemma 3 270M, Qwen2.5-Coder 1.5B) and, within a tier, the chunk size.
//!
//! A level only chooses compression settings; the archive records the model and the schedule
//! they lead to, so decompression needs no level. Within an LLM tier smaller chunks cost bits
//! (each chunk starts without context) and buy speed (more chunks run in lockstep, one
//! `decode` call per step for all of them), as zstd's lower levels trade ratio for speed.

use crate::models;

use super::{CompressOptions, DEFAULT_CHUNK_SIZE, DEFAULT_FAST_CHUNK_SIZE, DEFAULT_WINDOW};

/// What a level sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    pub level: u8,
    /// Manifest name of the model that codes text; `None`: the byte model alone.
    pub model: Option<&'static str>,
    pub chunk_size: usize,
    /// KV positions per chunk before the window slides.
    pub window: u32,
    /// One line for `--help` and `nzip model list`.
    pub summary: &'static str,
}

pub const MIN_LEVEL: u8 = 1;
pub const MAX_LEVEL: u8 = 9;
/// The level used when none is given: the default model at the default chunk size.
pub const DEFAULT_LEVEL: u8 = 5;

const KIB: usize = 1024;

/// Every level, `LEVELS[n - 1]` being level `n`.
pub const LEVELS: [Level; 9] = [
    Level {
        level: 1,
        model: None,
        chunk_size: DEFAULT_FAST_CHUNK_SIZE,
        window: DEFAULT_WINDOW,
        summary: "byte model alone, 512 KiB chunks in parallel (--fast)",
    },
    Level {
        level: 2,
        model: None,
        chunk_size: 2048 * KIB,
        window: DEFAULT_WINDOW,
        summary: "byte model alone, 2 MiB chunks",
    },
    Level {
        level: 3,
        model: Some(models::SMOLLM2),
        chunk_size: 16 * KIB,
        window: DEFAULT_WINDOW,
        summary: "SmolLM2 135M, 16 KiB chunks in lockstep",
    },
    Level {
        level: 4,
        model: Some(models::SMOLLM2),
        chunk_size: 64 * KIB,
        window: DEFAULT_WINDOW,
        summary: "SmolLM2 135M, 64 KiB chunks",
    },
    Level {
        level: DEFAULT_LEVEL,
        model: Some(models::SMOLLM2),
        chunk_size: DEFAULT_CHUNK_SIZE,
        window: DEFAULT_WINDOW,
        summary: "SmolLM2 135M, 256 KiB chunks (default)",
    },
    Level {
        level: 6,
        model: Some(models::GEMMA3_270M),
        chunk_size: 64 * KIB,
        window: DEFAULT_WINDOW,
        summary: "Gemma 3 270M, 64 KiB chunks",
    },
    Level {
        level: 7,
        model: Some(models::GEMMA3_270M),
        chunk_size: DEFAULT_CHUNK_SIZE,
        window: DEFAULT_WINDOW,
        summary: "Gemma 3 270M, 256 KiB chunks",
    },
    Level {
        level: 8,
        model: Some(models::QWEN_1_5B),
        chunk_size: 64 * KIB,
        window: DEFAULT_WINDOW,
        summary: "Qwen2.5-Coder 1.5B, 64 KiB chunks",
    },
    Level {
        level: MAX_LEVEL,
        model: Some(models::QWEN_1_5B),
        chunk_size: DEFAULT_CHUNK_SIZE,
        // alice29.txt whole: 0.867 bits per byte with 1,024 positions, 0.854 with 2,048, 0.846
        // with 4,096 (--best aims at 0.85 or less). The price is speed: on 2 CPU cores the
        // model runs at 19 tokens/s with 2,048 positions and 7 with 4,096, as attention over
        // the window outgrows the weights; and 115 MB of KV cache per chunk (28 KB a position).
        window: 4096,
        summary: "Qwen2.5-Coder 1.5B, 256 KiB chunks, 4,096-token window (--best)",
    },
];

/// Level `n`, if it exists.
pub fn level(n: u8) -> Option<&'static Level> {
    LEVELS.get(usize::from(n).checked_sub(1)?)
}

impl Level {
    /// Compression options of this level (everything else at its default).
    pub fn options(&self) -> CompressOptions {
        CompressOptions {
            model: self.model.unwrap_or(models::DEFAULT_MODEL).to_string(),
            fast: self.model.is_none(),
            chunk_size: self.chunk_size,
            window: self.window,
            ..CompressOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_numbered_in_order_and_name_known_models() {
        for (i, l) in LEVELS.iter().enumerate() {
            assert_eq!(usize::from(l.level), i + 1);
            assert_eq!(level(l.level), Some(l));
            if let Some(m) = l.model {
                assert!(models::manifest(m).is_some(), "{m}");
            }
        }
        assert_eq!(level(0), None);
        assert_eq!(level(MAX_LEVEL + 1), None);
        let default = level(DEFAULT_LEVEL).unwrap().options();
        let plain = CompressOptions::default();
        assert_eq!(
            (
                default.model,
                default.fast,
                default.chunk_size,
                default.window
            ),
            (plain.model, plain.fast, plain.chunk_size, plain.window)
        );
        assert_eq!(level(MAX_LEVEL).unwrap().options().window, 4096);
    }

    #[test]
    fn higher_levels_use_bigger_models_or_bigger_chunks() {
        let tier = |l: &Level| match l.model {
            None => 0,
            Some(models::SMOLLM2) => 1,
            Some(models::GEMMA3_270M) => 2,
            Some(_) => 3,
        };
        for pair in LEVELS.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(
                tier(b) > tier(a) || (tier(b) == tier(a) && b.chunk_size > a.chunk_size),
                "level {} is not a step up from level {}",
                b.level,
                a.level
            );
        }
    }
}
