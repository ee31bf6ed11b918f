//! Integration tests, built as one binary: round trips through the real default model, the
//! CLI's behaviour, and every documented error. The model is fetched into the cache on first
//! use (`.ci/run` does it up front).

mod archival;
mod cli;
mod errors;
mod fast;
mod fuzz;
mod golden;
mod habits;
mod layers;
mod roundtrip;
mod second_decoder;
mod shell;
mod standalone;
#[cfg(feature = "llama")]
mod tiers;
mod tiny;
#[cfg(feature = "llama")]
mod tokenizer;
mod util;
