//! The encoder's side of one chunk: codes its known tokens under the LLM's predictions and its
//! raw bytes under the byte model, in the order the decoder will need them.

use super::bytes::ByteModel;
use crate::container::ByteModelKind;
use crate::container::TokenModelKind;
use crate::entropy::range::SymbolEncoder;
use crate::error::{Error, Result};
use crate::predict::ensemble::TokenModel;
use crate::predict::lockstep::ChunkDriver;
use crate::token::Segment;

pub struct ChunkEncoder<'a> {
    bytes: &'a [u8],
    segments: &'a [Segment],
    /// Next segment to code, and how far into it (tokens for text).
    segment: usize,
    within: usize,
    /// Byte offset in the chunk where the current segment starts.
    offset: usize,
    coder: SymbolEncoder,
    token_model: TokenModel,
    raw_model: ByteModel,
    cdf: Vec<u32>,
    /// Approximate bits spent so far, and after every [`CHECKPOINT`] bytes of raw segments
    /// (for the pipeline's choice between codings; the stream does not depend on them).
    cost_bits: f64,
    raw_done: usize,
    raw_checkpoints: Vec<f64>,
}

/// Raw bytes between cost checkpoints.
pub const CHECKPOINT: usize = 1024;

impl<'a> ChunkEncoder<'a> {
    pub fn new(
        bytes: &'a [u8],
        segments: &'a [Segment],
        byte_model: ByteModelKind,
        token_model: TokenModelKind,
    ) -> Self {
        let raw_bytes = Segment::raw_bytes_in(segments);
        Self {
            bytes,
            segments,
            segment: 0,
            within: 0,
            offset: 0,
            coder: SymbolEncoder::new(),
            token_model: TokenModel::new(token_model),
            raw_model: ByteModel::new(byte_model, raw_bytes),
            cdf: Vec::new(),
            cost_bits: 0.0,
            raw_done: 0,
            raw_checkpoints: Vec::new(),
        }
    }

    /// Codes raw segments up to the next text segment that still has tokens; returns whether
    /// one was found.
    fn advance_to_text(&mut self) -> Result<bool> {
        while let Some(seg) = self.segments.get(self.segment) {
            match seg {
                Segment::Text { tokens, .. } if self.within < tokens.len() => return Ok(true),
                Segment::Text { len, .. } => self.observe_text(*len),
                Segment::Raw { len } => {
                    for &b in &self.bytes[self.offset..self.offset + len] {
                        self.cost_bits += self.raw_model.encode(b, &mut self.coder)?;
                        self.raw_done += 1;
                        if self.raw_done.is_multiple_of(CHECKPOINT) {
                            self.raw_checkpoints.push(self.cost_bits);
                        }
                    }
                    self.offset += len;
                }
            }
            self.segment += 1;
            self.within = 0;
        }
        Ok(false)
    }

    /// A finished text segment goes by the byte model.
    fn observe_text(&mut self, len: usize) {
        for &b in &self.bytes[self.offset..self.offset + len] {
            self.raw_model.observe_text(b);
        }
        self.offset += len;
    }

    /// How far coding has got: bytes of the chunk done (within a text segment, in proportion
    /// to its tokens) and approximate bits spent on them.
    pub fn progress(&self) -> (usize, f64) {
        let mut done = self.offset;
        if let Some(Segment::Text { len, tokens }) = self.segments.get(self.segment) {
            done += len * self.within / tokens.len().max(1);
        }
        (done, self.cost_bits)
    }

    /// Codes trailing raw segments and returns the coded stream, with the approximate bits
    /// spent after every [`CHECKPOINT`] raw bytes (for a chunk that is all raw, the cost of
    /// each prefix of it).
    pub fn finish(mut self) -> Result<(Vec<u8>, Vec<f64>)> {
        if self.advance_to_text()? {
            return Err(Error::Internal("chunk finished with tokens left".into()));
        }
        Ok((self.coder.finish()?, self.raw_checkpoints))
    }
}

impl ChunkDriver for ChunkEncoder<'_> {
    fn next_token(&mut self, logits: &[f32]) -> Result<u32> {
        if !self.advance_to_text()? {
            return Err(Error::Internal("more LLM steps than tokens".into()));
        }
        let token = match &self.segments[self.segment] {
            Segment::Text { tokens, .. } => tokens[self.within],
            Segment::Raw { .. } => return Err(Error::Internal("expected a text segment".into())),
        };
        self.token_model.predict(logits, &mut self.cdf);
        self.coder.encode(token as usize, &self.cdf)?;
        self.token_model.update(token);
        let freq = self.cdf[token as usize + 1] - self.cdf[token as usize];
        self.cost_bits += f64::from(crate::entropy::quantize::PRECISION) - f64::from(freq).log2();
        self.within += 1;
        Ok(token)
    }
}
