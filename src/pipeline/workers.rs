//! The LLM workers of one run: one llama.cpp context each, on the CPU (sharing one copy of the
//! weights) or on GPUs (one copy of the weights per GPU, shared by that GPU's workers). Lockstep groups are independent, so a
//! batch of groups runs on the workers at once, and results come back in group order: the
//! archive does not depend on how many workers made it or decode it.

use std::path::Path;

use crate::container::Schedule;
use crate::error::{Error, Result};
use crate::predict::llama::{GroupRunner, LanguageModel, Placement};

pub(crate) struct Workers {
    /// One model for the CPU; one per GPU.
    models: Vec<LanguageModel>,
    /// Per worker: its model and its llama.cpp threads.
    slots: Vec<(usize, usize)>,
}

impl Workers {
    /// Loads the model for `placement`; `threads` are shared out between CPU workers (a GPU
    /// worker's threads only feed its device).
    pub fn load(path: &Path, placement: &Placement, threads: usize) -> Result<Self> {
        let threads = threads.max(1);
        match placement {
            Placement::Cpu { workers } => {
                let workers = (*workers).clamp(1, threads);
                let model = LanguageModel::load(path)?;
                // Spread the threads: the first `threads % workers` workers get one more.
                let slots = (0..workers)
                    .map(|w| (0, threads / workers + usize::from(w < threads % workers)))
                    .collect();
                Ok(Self {
                    models: vec![model],
                    slots,
                })
            }
            Placement::Gpus { gpus, per_gpu } => {
                let models = gpus
                    .iter()
                    .map(|gpu| LanguageModel::load_on(path, Some(gpu)))
                    .collect::<Result<Vec<_>>>()?;
                let slots = gpu_slots(models.len(), *per_gpu, threads);
                Ok(Self { models, slots })
            }
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The first worker's model: the tokenizer, vocabulary size and numerics are everyone's.
    pub fn model(&self) -> &LanguageModel {
        &self.models[0]
    }

    /// Runners for groups with `schedule`; their contexts are made when first needed.
    pub fn runners(&self, schedule: Schedule) -> Runners<'_> {
        Runners {
            slots: self
                .slots
                .iter()
                .map(|&(model, threads)| RunnerSlot {
                    model: &self.models[model],
                    threads,
                    schedule,
                    runner: None,
                })
                .collect(),
        }
    }
}

/// A worker's context, made on first use: a group without LLM tokens needs none.
pub(crate) struct RunnerSlot<'m> {
    model: &'m LanguageModel,
    threads: usize,
    schedule: Schedule,
    runner: Option<GroupRunner<'m>>,
}

impl<'m> RunnerSlot<'m> {
    pub fn get(&mut self) -> Result<&mut GroupRunner<'m>> {
        if self.runner.is_none() {
            self.runner = Some(self.model.group_runner(&self.schedule, self.threads)?);
        }
        self.runner
            .as_mut()
            .ok_or_else(|| Error::Internal("no LLM runner".into()))
    }
}

/// The workers on `gpus` GPUs, `per_gpu` each, as (model, threads): worker w on GPU w % gpus,
/// so that a batch of groups smaller than the worker count still spreads over every GPU.
fn gpu_slots(gpus: usize, per_gpu: usize, threads: usize) -> Vec<(usize, usize)> {
    (0..gpus * per_gpu.max(1))
        .map(|w| (w % gpus, threads))
        .collect()
}

pub(crate) struct Runners<'m> {
    slots: Vec<RunnerSlot<'m>>,
}

impl<'m> Runners<'m> {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Runs `jobs[i]` on worker `i`, all at once (at most one job per worker); the results
    /// come back in job order. Each job's own parallel work goes to `pool`.
    pub fn run<J, R>(
        &mut self,
        jobs: Vec<J>,
        pool: &rayon::ThreadPool,
        work: impl Fn(J, &mut RunnerSlot<'m>) -> Result<R> + Sync,
    ) -> Result<Vec<R>>
    where
        J: Send,
        R: Send,
    {
        if jobs.len() > self.slots.len() {
            return Err(Error::Internal("more jobs than workers".into()));
        }
        if jobs.len() <= 1 {
            // One group: no thread to start.
            return jobs
                .into_iter()
                .zip(&mut self.slots)
                .map(|(job, slot)| pool.install(|| work(job, slot)))
                .collect();
        }
        let work = &work;
        std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .into_iter()
                .zip(&mut self.slots)
                .map(|(job, slot)| scope.spawn(move || pool.install(|| work(job, slot))))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| Error::Internal("an LLM worker panicked".into()))?
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_workers_alternate_over_the_gpus() {
        assert_eq!(gpu_slots(1, 1, 4), vec![(0, 4)]);
        assert_eq!(gpu_slots(1, 2, 4), vec![(0, 4), (0, 4)]);
        let slots: Vec<usize> = gpu_slots(3, 2, 1).into_iter().map(|(m, _)| m).collect();
        assert_eq!(slots, vec![0, 1, 2, 0, 1, 2]);
        // Two groups on three GPUs with two workers each land on two different GPUs.
        assert_ne!(slots[0], slots[1]);
    }
}
