//! The portable engine: nzip's own inference for Llama-family GGUF models, whose logits are an
//! exact function of (model file, token history, schedule) on every machine.
//!
//! Data flow, one module per stage: `gguf` reads the container → `weights` decodes the blocks
//! into integer matrices → `kernels` multiplies them by quantized activations exactly →
//! `model` runs the layers for a lockstep group with a sliding KV window. `numerics` holds
//! the only floating-point steps, each a fixed sequence of IEEE basic operations.

pub mod gguf;
pub mod kernels;
pub mod model;
pub mod numerics;
pub mod weights;

use std::ops::ControlFlow;
use std::path::Path;

use crate::container::Schedule;
use crate::predict::llama::ChunkDriver;

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

/// A model loaded for the portable engine.
pub struct PortableModel {
    pub model: model::Model,
}

impl PortableModel {
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let g = gguf::Gguf::open(path)?;
        Ok(Self {
            model: model::Model::load(&g)?,
        })
    }

    pub fn n_vocab(&self) -> usize {
        self.model.config.n_vocab
    }

    /// A runner for groups of up to `schedule.seqs` chunks.
    pub fn group_runner(&self, schedule: &Schedule) -> GroupRunner<'_> {
        GroupRunner {
            group: model::Group::new(&self.model, *schedule),
            schedule: *schedule,
        }
    }
}

/// Decodes groups of chunks in lockstep, with the same schedule and driver protocol as the
/// llama.cpp runner (`predict::llama::GroupRunner::run`).
pub struct GroupRunner<'m> {
    group: model::Group<'m>,
    schedule: Schedule,
}

impl GroupRunner<'_> {
    /// Step t feeds every chunk with `t < n_tokens` its token t (token 0 is the start token)
    /// and hands it the logits that predict token t+1; `on_step` may stop the run early.
    pub fn run<D: ChunkDriver>(
        &mut self,
        drivers: &mut [D],
        n_tokens: &[u64],
        mut on_step: impl FnMut(u64, &[D]) -> ControlFlow<()>,
    ) -> crate::Result<bool> {
        if drivers.len() > self.schedule.seqs as usize || drivers.len() != n_tokens.len() {
            return Err(crate::Error::Internal(
                "group larger than the runner's sequences".into(),
            ));
        }
        self.group.reset(drivers.len());
        let mut next: Vec<u32> = vec![self.schedule.start_token; drivers.len()];
        let steps = n_tokens.iter().copied().max().unwrap_or(0);
        let mut logits: Vec<Vec<f32>> = Vec::new();
        for t in 0..steps {
            let feed: Vec<(usize, u32)> = (0..drivers.len())
                .filter(|&i| t < n_tokens[i])
                .map(|i| (i, next[i]))
                .collect();
            logits.resize(feed.len(), Vec::new());
            self.group.step(&feed, &mut logits);
            for (slot, &(i, _)) in feed.iter().enumerate() {
                next[i] = drivers[i].next_token(&logits[slot])?;
            }
            if on_step(t + 1, drivers).is_break() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
