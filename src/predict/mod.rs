//! Predictors: the LLM (through llama.cpp) for text tokens and the byte model for raw bytes.

pub mod bytes;
pub mod cm;
pub mod llama;
