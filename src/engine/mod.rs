//! The portable engine: nzip's own inference for Llama-family GGUF models, whose logits are an
//! exact function of (model file, token history, schedule) on every machine.
//!
//! Data flow, one module per stage: `gguf` reads the container → `weights` decodes the blocks
//! into integer matrices → `kernels` multiplies them by quantized activations exactly →
//! `model` runs the layers for a lockstep group with a sliding KV window, each head's
//! attention over its cache in `attention`. `numerics` holds
//! the only floating-point steps, each a fixed sequence of IEEE basic operations. `tokenizer`
//! reads the model's own tokenizer (byte-level BPE or SentencePiece) from the same file.

pub mod attention;
pub mod gguf;
pub mod kernels;
pub mod model;
pub mod numerics;
pub mod tokenizer;
pub mod weights;

use std::path::Path;

use crate::container::Schedule;
use crate::predict::lockstep::LockstepModel;

/// The numerics identity new archives record for this engine: the arithmetic
/// formats/PORTABLE.md specifies. Any change to a bit of the logits needs a new one.
pub const NUMERICS: &str = Numerics::CURRENT.name();

/// The versions of the portable arithmetic this build computes: new archives get the current
/// one, and every older one still decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Numerics {
    /// `nzip portable 1` (2026-12-03): one power-of-two scale per cached key head.
    V1,
    /// `nzip portable 2` (2026-12-04): cached keys scaled per block of 16 dimensions.
    V2,
    /// `nzip portable 3` (2026-12-04): in a vector that only K-quant matrices read, no block's
    /// exponent lies more than 3 below the largest of its 256 values.
    V3,
}

impl Numerics {
    pub const CURRENT: Numerics = Numerics::V3;
    const ALL: [Numerics; 3] = [Numerics::V1, Numerics::V2, Numerics::V3];

    /// The identity an archive records.
    pub const fn name(self) -> &'static str {
        match self {
            Numerics::V1 => "nzip portable 1",
            Numerics::V2 => "nzip portable 2",
            Numerics::V3 => "nzip portable 3",
        }
    }

    /// The version an archive's numerics name, if it is one of this engine's.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.name() == name)
    }

    /// Whether `name` claims to be the portable engine's (perhaps a later version's).
    pub fn is_portable_name(name: &str) -> bool {
        name.starts_with("nzip portable ")
    }

    /// How a cached key head is quantized: its int8 values, a multiplier per 16 dimensions
    /// and the base exponent returned.
    pub fn key_quantizer(self) -> fn(&[f32], &mut [i8], &mut [i16]) -> i32 {
        match self {
            Numerics::V1 => numerics::quantize_key_v1,
            Numerics::V2 | Numerics::V3 => numerics::quantize_key,
        }
    }

    /// The oldest version that computes the same logits as `self` for `model`, which is what
    /// a new archive records, so that every nzip able to decode it does. Version 3 differs
    /// from 2 only where a vector is read by K-quant matrices alone (`act_group`): a model
    /// without such a vector (SmolLM2) computes version 2's logits.
    pub fn oldest_equivalent(self, model: &model::Model) -> Self {
        match self {
            Numerics::V3 if !model.groups_activations(self) => Numerics::V2,
            other => other,
        }
    }

    /// Blocks per exponent of a quantized vector that `readers` multiply.
    pub fn act_group(self, readers: &[&weights::Matrix]) -> usize {
        let all_k = readers.iter().all(|m| m.kind.is_k_quant());
        match self {
            Numerics::V3 if all_k => numerics::GROUP_BLOCKS,
            _ => 1,
        }
    }
}

/// Why a model cannot be used by the portable engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("reading the model: {0}")]
    Io(String),
    #[error("not a GGUF file (bad magic number)")]
    NotGguf,
    #[error("GGUF file cut short at byte {0}")]
    Truncated(usize),
    #[error("GGUF metadata: {0}")]
    BadMetadata(String),
    #[error("tensor {0} missing")]
    MissingTensor(String),
    #[error("tensor {0}: {1}")]
    BadTensor(String, String),
    #[error("the portable engine does not support {0} yet")]
    Unsupported(String),
}

/// A model loaded for the portable engine: its weights and its tokenizer.
pub struct PortableModel {
    pub model: model::Model,
    pub tokenizer: tokenizer::Tokenizer,
}

impl PortableModel {
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let g = gguf::Gguf::open(path)?;
        let model = model::Model::load(&g)?;
        let tokenizer = tokenizer::Tokenizer::from_gguf(&g)?;
        if tokenizer.n_vocab() != model.config.n_vocab {
            return Err(ModelError::BadMetadata(format!(
                "{} tokens in the vocabulary, {} in the model",
                tokenizer.n_vocab(),
                model.config.n_vocab
            )));
        }
        Ok(Self { model, tokenizer })
    }

    pub fn n_vocab(&self) -> usize {
        self.model.config.n_vocab
    }

    /// A runner for groups of up to `schedule.seqs` chunks computing `numerics`.
    pub fn group_runner(&self, schedule: &Schedule, numerics: Numerics) -> GroupRunner<'_> {
        GroupRunner {
            group: model::Group::new(&self.model, *schedule, numerics),
            schedule: *schedule,
            logits: Vec::new(),
        }
    }
}

/// Runs lockstep groups on the portable engine (the schedule: `predict::lockstep`).
pub struct GroupRunner<'m> {
    group: model::Group<'m>,
    schedule: Schedule,
    logits: Vec<Vec<f32>>,
}

impl LockstepModel for GroupRunner<'_> {
    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn start(&mut self, seqs: usize) -> crate::Result<()> {
        self.group.reset(seqs);
        Ok(())
    }

    fn step<R>(
        &mut self,
        feed: &[(usize, u32)],
        use_logits: impl FnOnce(&[&[f32]]) -> crate::Result<R>,
    ) -> crate::Result<R> {
        self.logits.resize(feed.len(), Vec::new());
        self.group.step(feed, &mut self.logits[..feed.len()]);
        let logits: Vec<&[f32]> = self.logits[..feed.len()].iter().map(|l| &l[..]).collect();
        use_logits(&logits)
    }
}

#[cfg(test)]
mod tests;
