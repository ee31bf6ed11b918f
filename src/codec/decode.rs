//! The decoder's side of one chunk: decodes tokens from the LLM's predictions and raw bytes
//! from the byte model, in exactly the order the encoder coded them, rebuilding the bytes.

use super::bytes::ByteModel;
use crate::container::ByteModelKind;
use crate::container::SegmentEntry;
use crate::container::TokenModelKind;
use crate::entropy::range::SymbolDecoder;
use crate::error::{Error, Result};
use crate::predict::ensemble::TokenModel;
use crate::predict::lockstep::ChunkDriver;
use crate::token::Vocabulary;

pub struct ChunkDecoder<'a> {
    index: usize,
    vocab: &'a Vocabulary<'a>,
    segments: Vec<SegmentEntry>,
    segment: usize,
    /// Tokens decoded in the current text segment.
    within: u64,
    /// Output length when the current segment started.
    segment_start: usize,
    coder: SymbolDecoder,
    token_model: TokenModel,
    raw_model: ByteModel,
    cdf: Vec<u32>,
    out: Vec<u8>,
}

impl<'a> ChunkDecoder<'a> {
    /// `stream` is the chunk's range-coded words; `index` names the chunk in errors.
    pub fn new(
        index: usize,
        vocab: &'a Vocabulary<'a>,
        segments: Vec<SegmentEntry>,
        stream: &[u8],
        len: usize,
        byte_model: ByteModelKind,
        token_model: TokenModelKind,
    ) -> Result<Self> {
        let raw_bytes = segments
            .iter()
            .map(|s| match s {
                SegmentEntry::Raw { len } => *len,
                SegmentEntry::Text { .. } => 0,
            })
            .sum();
        Ok(Self {
            index,
            vocab,
            segments,
            segment: 0,
            within: 0,
            segment_start: 0,
            coder: SymbolDecoder::new(stream, index)?,
            token_model: TokenModel::new(token_model),
            raw_model: ByteModel::new(byte_model, raw_bytes),
            cdf: Vec::new(),
            // A hint only: the length comes from the archive and is checked as bytes arrive.
            out: Vec::with_capacity(len.min(1 << 24)),
        })
    }

    fn corrupt(&self, why: &str) -> Error {
        Error::malformed(format!("chunk {}: {why}", self.index))
    }

    /// Decodes raw segments up to the next text segment with tokens left; returns whether one
    /// was found.
    fn advance_to_text(&mut self) -> Result<bool> {
        while let Some(&seg) = self.segments.get(self.segment) {
            match seg {
                SegmentEntry::Text { tokens, .. } if self.within < tokens => return Ok(true),
                SegmentEntry::Text { len, .. } => {
                    if (self.out.len() - self.segment_start) as u64 != len {
                        return Err(self.corrupt("text segment decoded to the wrong length"));
                    }
                }
                SegmentEntry::Raw { len } => {
                    for _ in 0..len {
                        let b = self.raw_model.decode(&mut self.coder, self.index)?;
                        self.out.push(b);
                    }
                }
            }
            self.segment += 1;
            self.within = 0;
            self.segment_start = self.out.len();
        }
        Ok(false)
    }

    /// Decodes trailing raw segments and returns the chunk's bytes.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        if self.advance_to_text()? {
            return Err(self.corrupt("stream ended with tokens left"));
        }
        Ok(self.out)
    }
}

impl ChunkDriver for ChunkDecoder<'_> {
    fn next_token(&mut self, logits: &[f32]) -> Result<u32> {
        if !self.advance_to_text()? {
            return Err(self.corrupt("more LLM steps than tokens"));
        }
        let SegmentEntry::Text { len, .. } = self.segments[self.segment] else {
            return Err(self.corrupt("expected a text segment"));
        };
        self.token_model.predict(logits, &mut self.cdf);
        let token = self.coder.decode(&self.cdf, self.index)? as u32;
        self.token_model.update(token);
        let piece = self
            .vocab
            .piece(token)
            .ok_or_else(|| self.corrupt("token out of range"))?;
        if (self.out.len() - self.segment_start + piece.len()) as u64 > len {
            return Err(self.corrupt("text segment decodes past its length"));
        }
        for &b in piece {
            self.raw_model.observe_text(b);
        }
        self.out.extend_from_slice(piece);
        self.within += 1;
        Ok(token)
    }
}
