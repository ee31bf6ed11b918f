//! The LLM workers of one run, on either engine. llama.cpp: one context each, on the CPU
//! (sharing one copy of the weights) or on GPUs (one copy of the weights per GPU, shared by
//! that GPU's workers). The portable engine: one group state each over one copy of the
//! weights, on the CPU. Lockstep groups are independent, so a batch of groups runs on the
//! workers at once, and results come back in group order: the archive does not depend on how
//! many workers made it or decode it.

use std::ops::ControlFlow;
use std::path::Path;

use crate::container::Schedule;
use crate::engine::{self, Numerics, PortableModel};
use crate::error::{Error, Result};
use crate::predict::devices::Placement;
#[cfg(feature = "llama")]
use crate::predict::llama::{GroupRunner, LanguageModel};
use crate::predict::lockstep::{self, ChunkDriver};
use crate::token::Tokenizer;

/// Which engine computes the logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// llama.cpp: its float kernels' numerics, recorded as a fingerprint of build and CPU
    /// features (or GPU); such an archive decodes where that fingerprint matches.
    Llama,
    /// nzip's own integer engine (`engine`, `formats/PORTABLE.md`): the same logits on every
    /// machine, recorded as the version of its arithmetic ([`engine::NUMERICS`] for new
    /// archives).
    Portable,
}

impl Engine {
    /// The engine compress uses for `model` (a name or a path) unless told which: the
    /// portable engine where the model's manifest makes it the default (SmolLM2: as good and
    /// faster than llama.cpp on a CPU, docs/results.md) and the build has no GPU backend
    /// (the portable engine runs on CPUs only), llama.cpp otherwise; the portable engine
    /// in a build without llama.cpp.
    pub fn default_for(model: &str) -> Self {
        let gpu_build = cfg!(any(feature = "cuda", feature = "vulkan"));
        match crate::models::manifest(model) {
            _ if !cfg!(feature = "llama") => Engine::Portable,
            Some(m) if m.portable_by_default && !gpu_build => Engine::Portable,
            _ => Engine::Llama,
        }
    }

    /// The engine that computes the numerics an archive records, and for the portable
    /// engine which version of its arithmetic; a later version than this build knows is
    /// refused by name rather than taken for llama.cpp's.
    pub fn for_numerics(numerics: &str) -> Result<(Self, Numerics)> {
        if let Some(version) = Numerics::parse(numerics) {
            return Ok((Engine::Portable, version));
        }
        if Numerics::is_portable_name(numerics) {
            return Err(Error::Engine(format!(
                "the archive's LLM chunks were coded with numerics \"{numerics}\", which this \
                 nzip does not compute (it knows up to \"{}\"): decode it with a newer nzip",
                engine::NUMERICS
            )));
        }
        Ok((Engine::Llama, Numerics::CURRENT))
    }

    /// Whether this build has the engine: a clear refusal where it was built without it.
    pub fn check_available(self, numerics: Option<&str>) -> Result<()> {
        if self == Engine::Llama && !cfg!(feature = "llama") {
            let made = numerics.map_or(String::new(), |n| {
                format!(" (the archive's LLM chunks were coded by llama.cpp, numerics \"{n}\")")
            });
            return Err(Error::Engine(format!(
                "this nzip was built without llama.cpp (cargo feature `llama`){made}; use a \
                 build with it, or --engine portable to compress"
            )));
        }
        Ok(())
    }
}

/// The loaded models of a run.
enum Models {
    /// One per GPU, or one for the CPU.
    #[cfg(feature = "llama")]
    Llama(Vec<LanguageModel>),
    /// The portable engine's weights and tokenizer, and the version of its arithmetic.
    Portable(Box<PortableModel>, Numerics),
}

pub(crate) struct Workers {
    models: Models,
    /// Per worker: its model and its threads.
    slots: Vec<(usize, usize)>,
}

impl Workers {
    /// Loads the model for `engine` and `placement`; `threads` are shared out between CPU
    /// workers (a GPU worker's threads only feed its device). The portable engine runs on the
    /// CPU, its workers sharing the run's thread pool, computing `numerics`.
    pub fn load(
        path: &Path,
        engine: Engine,
        numerics: Numerics,
        placement: &Placement,
        threads: usize,
    ) -> Result<Self> {
        let threads = threads.max(1);
        engine.check_available(None)?;
        if engine == Engine::Portable {
            let model = PortableModel::load(path)
                .map_err(|e| Error::Engine(format!("{}: {e}", path.display())))?;
            // The same logits under the oldest version that computes them, which a new
            // archive records (an archive's own version, decoding, gives the same bits).
            let numerics = numerics.oldest_equivalent(&model.model);
            let workers = match placement {
                Placement::Cpu { workers } => (*workers).clamp(1, threads),
                Placement::Gpus { .. } => 1,
            };
            return Ok(Self {
                models: Models::Portable(Box::new(model), numerics),
                slots: vec![(0, threads); workers],
            });
        }
        Self::load_llama(path, placement, threads)
    }

    #[cfg(not(feature = "llama"))]
    fn load_llama(_: &Path, _: &Placement, _: usize) -> Result<Self> {
        Err(Error::Internal(
            "llama.cpp engine in a build without it".into(),
        ))
    }

    #[cfg(feature = "llama")]
    fn load_llama(path: &Path, placement: &Placement, threads: usize) -> Result<Self> {
        match placement {
            Placement::Cpu { workers } => {
                let workers = (*workers).clamp(1, threads);
                let model = LanguageModel::load(path)?;
                // Spread the threads: the first `threads % workers` workers get one more.
                let slots = (0..workers)
                    .map(|w| (0, threads / workers + usize::from(w < threads % workers)))
                    .collect();
                Ok(Self {
                    models: Models::Llama(vec![model]),
                    slots,
                })
            }
            Placement::Gpus { gpus, per_gpu } => {
                let models = gpus
                    .iter()
                    .map(|gpu| LanguageModel::load_on(path, Some(gpu)))
                    .collect::<Result<Vec<_>>>()?;
                let slots = gpu_slots(models.len(), *per_gpu, threads);
                Ok(Self {
                    models: Models::Llama(models),
                    slots,
                })
            }
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The model's tokenizer (every worker's).
    pub fn tokenizer(&self) -> &dyn Tokenizer {
        match &self.models {
            #[cfg(feature = "llama")]
            Models::Llama(models) => &models[0],
            Models::Portable(model, _) => &model.tokenizer,
        }
    }

    pub fn n_vocab(&self) -> usize {
        match &self.models {
            #[cfg(feature = "llama")]
            Models::Llama(models) => models[0].n_vocab(),
            Models::Portable(model, _) => model.n_vocab(),
        }
    }

    /// The numerics the workers compute with, as an archive records them.
    pub fn numerics(&self) -> String {
        match &self.models {
            #[cfg(feature = "llama")]
            Models::Llama(models) => models[0].numerics_fingerprint(),
            Models::Portable(_, numerics) => numerics.name().into(),
        }
    }

    /// Runners for groups with `schedule`; their contexts are made when first needed.
    pub fn runners(&self, schedule: Schedule) -> Runners<'_> {
        Runners {
            slots: self
                .slots
                .iter()
                .map(|&(model, threads)| RunnerSlot {
                    model: match &self.models {
                        #[cfg(feature = "llama")]
                        Models::Llama(models) => ModelRef::Llama(&models[model]),
                        Models::Portable(portable, numerics) => {
                            // One copy of the weights, shared by every worker.
                            debug_assert_eq!(model, 0);
                            ModelRef::Portable(portable, *numerics)
                        }
                    },
                    threads,
                    schedule,
                    runner: None,
                })
                .collect(),
        }
    }
}

#[derive(Clone, Copy)]
enum ModelRef<'m> {
    #[cfg(feature = "llama")]
    Llama(&'m LanguageModel),
    Portable(&'m PortableModel, Numerics),
}

/// A worker's group runner, made on first use: a group without LLM tokens needs none.
pub(crate) struct RunnerSlot<'m> {
    model: ModelRef<'m>,
    /// llama.cpp's threads for this worker's context (the portable engine's work goes to the
    /// run's thread pool).
    #[cfg_attr(not(feature = "llama"), allow(dead_code))]
    threads: usize,
    schedule: Schedule,
    runner: Option<Runner<'m>>,
}

impl<'m> RunnerSlot<'m> {
    pub fn get(&mut self) -> Result<&mut Runner<'m>> {
        if self.runner.is_none() {
            self.runner = Some(match self.model {
                #[cfg(feature = "llama")]
                ModelRef::Llama(m) => Runner::Llama(m.group_runner(&self.schedule, self.threads)?),
                ModelRef::Portable(m, numerics) => {
                    Runner::Portable(m.group_runner(&self.schedule, numerics))
                }
            });
        }
        self.runner
            .as_mut()
            .ok_or_else(|| Error::Internal("no LLM runner".into()))
    }
}

/// A group runner of either engine.
pub(crate) enum Runner<'m> {
    #[cfg(feature = "llama")]
    Llama(GroupRunner<'m>),
    Portable(engine::GroupRunner<'m>),
}

impl Runner<'_> {
    /// Runs one group (`predict::lockstep::run_group`).
    pub fn run<D: ChunkDriver>(
        &mut self,
        drivers: &mut [D],
        n_tokens: &[u64],
        on_step: impl FnMut(u64, &[D]) -> ControlFlow<()>,
    ) -> Result<bool> {
        match self {
            #[cfg(feature = "llama")]
            Runner::Llama(r) => lockstep::run_group(r, drivers, n_tokens, on_step),
            Runner::Portable(r) => lockstep::run_group(r, drivers, n_tokens, on_step),
        }
    }
}

#[cfg(feature = "llama")]
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

#[cfg(all(test, feature = "llama"))]
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
