//! The `.nz` container: header, chunk payloads back to back, trailing index and footer.
//! `formats/NZIP.md` is the specification; this module is its only reader and writer.

pub mod header;
pub mod index;
mod reader;

pub use header::{Header, ModelSection};
pub use index::{ChunkEntry, ChunkKind, Index};

use crate::error::Result;

/// A parsed archive over its bytes: header, index, and where each chunk's payload lies.
pub struct Archive<'a> {
    pub header: Header,
    pub index: Index,
    data: &'a [u8],
    payload_offsets: Vec<usize>,
}

impl<'a> Archive<'a> {
    /// Parses and checks the header and the index (CRCs, sizes, consistency).
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        let (header, header_size) = Header::parse(data)?;
        let (index, _) = Index::locate(data, header_size, header.original_size)?;
        if header.model.is_none() && index.chunks.iter().any(|c| c.tokens > 0) {
            return Err(crate::error::Error::Corrupt(
                "chunks with LLM tokens but no model section".into(),
            ));
        }
        let mut payload_offsets = Vec::with_capacity(index.chunks.len());
        let mut at = header_size;
        for c in &index.chunks {
            payload_offsets.push(at);
            at += c.payload_len as usize;
        }
        Ok(Self {
            header,
            index,
            data,
            payload_offsets,
        })
    }

    pub fn payload(&self, chunk: usize) -> &'a [u8] {
        let start = self.payload_offsets[chunk];
        &self.data[start..start + self.index.chunks[chunk].payload_len as usize]
    }

    pub fn payload_offset(&self, chunk: usize) -> usize {
        self.payload_offsets[chunk]
    }
}
