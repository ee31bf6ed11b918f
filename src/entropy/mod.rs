//! From probabilities to bits: integer quantization of distributions and range coding.

pub mod quantize;
pub mod range;
