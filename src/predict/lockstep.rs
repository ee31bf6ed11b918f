//! The lockstep schedule of a group of chunks, once for every engine: step t feeds every chunk
//! with more than t tokens its token t (token 0 is the start token) and hands each chunk's
//! driver the logits that predict its token t + 1. An engine ([`LockstepModel`]) only computes
//! logits, sliding each sequence's window as the [`Schedule`] says; the schedule of steps is a
//! pure function of the group's token counts, so the encoder replays exactly what the decoder
//! will do (DESIGN.md, determinism rule 2).

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::container::Schedule;
use crate::error::{Error, Result};

/// Receives the logits that predict a chunk's next token and names the token to feed next.
///
/// The encoder's implementation codes its known token and returns it; the decoder's decodes
/// the token from the stream. Called exactly `n_tokens` times per chunk, in order.
pub trait ChunkDriver: Send {
    fn next_token(&mut self, logits: &[f32]) -> Result<u32>;
}

/// A group slot without a driver: a chunk of the group that codes no tokens, which the
/// schedule never steps.
impl<D: ChunkDriver> ChunkDriver for Option<D> {
    fn next_token(&mut self, logits: &[f32]) -> Result<u32> {
        match self {
            Some(d) => d.next_token(logits),
            None => Err(Error::Internal(
                "LLM step for a chunk without tokens".into(),
            )),
        }
    }
}

/// What an engine does for a lockstep group: one sequence per chunk, one token per sequence
/// per step.
pub trait LockstepModel {
    /// The schedule the model's sequences follow.
    fn schedule(&self) -> Schedule;

    /// Starts `seqs` empty sequences (a new group), at most the schedule's.
    fn start(&mut self, seqs: usize) -> Result<()>;

    /// Feeds `feed[k] = (sequence, token)` at each sequence's next position, first sliding a
    /// sequence whose next position would reach the window (positions `[sinks, sinks +
    /// slide)` dropped, the rest moved down by `slide`), and hands `use_logits` the logits
    /// that predict each fed sequence's next token, in feed order.
    fn step<R>(
        &mut self,
        feed: &[(usize, u32)],
        use_logits: impl FnOnce(&[&[f32]]) -> Result<R>,
    ) -> Result<R>;
}

/// Runs one group: `drivers[i]` is chunk i with `n_tokens[i]` tokens. After each step
/// `on_step(t, drivers)` may stop the run early (the encoder does, to drop chunks the LLM codes
/// badly); the result is then `Ok(false)`.
pub fn run_group<M: LockstepModel, D: ChunkDriver>(
    model: &mut M,
    drivers: &mut [D],
    n_tokens: &[u64],
    mut on_step: impl FnMut(u64, &[D]) -> ControlFlow<()>,
) -> Result<bool> {
    let schedule = model.schedule();
    if drivers.len() > schedule.seqs as usize || drivers.len() != n_tokens.len() {
        return Err(Error::Internal(
            "group larger than the runner's sequences".into(),
        ));
    }
    model.start(drivers.len())?;
    let mut next_token: Vec<u32> = vec![schedule.start_token; drivers.len()];
    let steps = n_tokens.iter().copied().max().unwrap_or(0);
    let mut feed: Vec<(usize, u32)> = Vec::with_capacity(drivers.len());
    for t in 0..steps {
        let step_started = Instant::now();
        feed.clear();
        feed.extend(
            (0..drivers.len())
                .filter(|&i| t < n_tokens[i])
                .map(|i| (i, next_token[i])),
        );
        let mut model_took = Duration::ZERO;
        model.step(&feed, |logits| {
            model_took = step_started.elapsed();
            // Each chunk's coder is independent, so the per-token work spreads over cores
            // without changing any result.
            let mut work: Vec<(&mut D, &[f32], &mut u32)> = Vec::with_capacity(feed.len());
            let mut rest: &mut [D] = drivers;
            let mut rest_next: &mut [u32] = &mut next_token;
            let mut offset = 0;
            for (&(i, _), &l) in feed.iter().zip(logits) {
                let (_, tail) = std::mem::take(&mut rest).split_at_mut(i - offset);
                let (d, tail) = tail.split_first_mut().expect("fed index in range");
                let (_, ntail) = std::mem::take(&mut rest_next).split_at_mut(i - offset);
                let (n, ntail) = ntail.split_first_mut().expect("fed index in range");
                work.push((d, l, n));
                rest = tail;
                rest_next = ntail;
                offset = i + 1;
            }
            work.into_par_iter()
                .try_for_each(|(d, l, n)| -> Result<()> {
                    *n = d.next_token(l)?;
                    Ok(())
                })
        })?;
        let stop = on_step(t + 1, drivers).is_break();
        TIMES[0].fetch_add(feed.len() as u64, Ordering::Relaxed);
        TIMES[1].fetch_add(1, Ordering::Relaxed);
        add_time(2, model_took);
        add_time(3, step_started.elapsed().saturating_sub(model_took));
        if stop {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Where LLM time went, summed over every group in the process (for `-v` and `nzip bench`:
/// the model's own speed is the bar the rest of the pipeline is held to).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LlmTimes {
    /// Tokens fed through the model.
    pub tokens: u64,
    /// Lockstep steps (one model call each).
    pub steps: u64,
    /// Time inside the model, until its logits were ready.
    pub decode: Duration,
    /// Everything else in the step (softmax, token ensemble, quantization, range coding,
    /// segment bookkeeping).
    pub rest: Duration,
}

impl LlmTimes {
    /// The process's totals so far; subtract an earlier snapshot to time one piece of work.
    pub fn now() -> Self {
        Self {
            tokens: TIMES[0].load(Ordering::Relaxed),
            steps: TIMES[1].load(Ordering::Relaxed),
            decode: Duration::from_nanos(TIMES[2].load(Ordering::Relaxed)),
            rest: Duration::from_nanos(TIMES[3].load(Ordering::Relaxed)),
        }
    }

    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            tokens: self.tokens - earlier.tokens,
            steps: self.steps - earlier.steps,
            decode: self.decode.saturating_sub(earlier.decode),
            rest: self.rest.saturating_sub(earlier.rest),
        }
    }
}

/// tokens, steps, model nanoseconds, other nanoseconds.
static TIMES: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

fn add_time(slot: usize, took: Duration) {
    TIMES[slot].fetch_add(
        u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}
