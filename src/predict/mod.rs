//! Predictors: the LLM (through llama.cpp) and the token ensemble around it for text tokens,
//! and the byte model for raw bytes.

pub mod cm;
pub mod ensemble;
pub mod llama;
pub mod lockstep;
pub mod order2;
