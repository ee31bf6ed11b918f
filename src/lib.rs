//! nzip: a lossless compressor whose entropy model is a small language model.
//!
//! Data flow (see `formats/NZIP.md`): chunk plan →
//! segments → tokens → LLM predictions in lockstep groups → integer CDFs → range coder →
//! container. [`pipeline`] ties it together; the CLI lives in the `nzip` binary.

pub mod chunk;
pub mod codec;
pub mod coder;
pub mod container;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod models;
pub mod pipeline;
pub mod predict;
pub mod segment;
pub mod token;

pub use error::{Error, Result};
