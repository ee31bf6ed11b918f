//! Predictors: the LLM (through llama.cpp) and the token ensemble around it for text tokens,
//! and the byte model for raw bytes.

pub mod cm;
pub mod devices;
pub mod ensemble;
#[cfg(feature = "llama")]
pub mod llama;
pub mod lockstep;
pub mod order2;
