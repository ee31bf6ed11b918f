//! The portable engine: nzip's own inference for Llama-family GGUF models, whose logits are an
//! exact function of (model file, token history, schedule) on every machine.
//!
//! Data flow, one module per stage: `gguf` reads the container → `weights` decodes the blocks
//! into integer matrices → `kernels` multiplies them by quantized activations exactly →
//! `model` runs the layers for a lockstep group with a sliding KV window, each head's
//! attention over its cache in `attention`. `numerics` holds
//! the only floating-point steps, each a fixed sequence of IEEE basic operations. `tokenizer`
//! reads the model's own byte-level BPE from the same file.

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

/// The numerics identity an archive records for this engine: the arithmetic formats/NZIP.md
/// specifies under "Portable numerics". Any change to a bit of the logits needs a new one.
pub const NUMERICS: &str = "nzip portable 1";

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
    pub tokenizer: tokenizer::ByteLevelBpe,
}

impl PortableModel {
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let g = gguf::Gguf::open(path)?;
        let model = model::Model::load(&g)?;
        let tokenizer = tokenizer::ByteLevelBpe::from_gguf(&g)?;
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

    /// A runner for groups of up to `schedule.seqs` chunks.
    pub fn group_runner(&self, schedule: &Schedule) -> GroupRunner<'_> {
        GroupRunner {
            group: model::Group::new(&self.model, *schedule),
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
