//! Coding of one modelled chunk's symbol stream (LLM tokens and raw bytes
//! interleaved in segment order, in one range-coder stream).
//!
//! A modelled chunk's payload is the segment table followed by the range-coded words. The
//! [`encode::ChunkEncoder`] and [`decode::ChunkDecoder`] walk the segments in the same order:
//! before each token, any raw segments that precede it; after the last token, the rest.

pub mod bytes;
pub mod decode;
pub mod encode;
