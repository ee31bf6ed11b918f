//! Writes an archive as its chunks are coded: the header before the first chunk, then each
//! chunk's frame header and payload, then the index and footer. Memory holds the index
//! entries, not the chunks.

use std::io::Write;

use super::{frame, ChunkEntry, Header, Index, ModelSection};
use crate::error::{Error, Result};

/// A coded chunk: its index entry and its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodedChunk {
    pub entry: ChunkEntry,
    pub payload: Vec<u8>,
}

pub struct ArchiveWriter<'w> {
    out: &'w mut (dyn Write + Send),
    header: Header,
    /// The model section of an LLM run; whether it goes into the header is decided with the
    /// first group (see [`ArchiveWriter::write_chunks`]).
    model: Option<ModelSection>,
    header_written: bool,
    entries: Vec<ChunkEntry>,
    written: u64,
}

impl<'w> ArchiveWriter<'w> {
    /// A writer of `header` (its model section is set by [`ArchiveWriter::set_model`]).
    pub fn new(out: &'w mut (dyn Write + Send), header: Header) -> Self {
        Self {
            out,
            header,
            model: None,
            header_written: false,
            entries: Vec::new(),
            written: 0,
        }
    }

    /// The model section of an LLM run, before the first chunk is written.
    pub fn set_model(&mut self, model: ModelSection) -> Result<()> {
        if self.header_written {
            return Err(Error::Internal(
                "model section set after the header was written".into(),
            ));
        }
        self.model = Some(model);
        Ok(())
    }

    /// Writes a group's chunks; `last` says no chunk follows them. The header goes out with
    /// the first group: when that group is the whole input the model section is written only
    /// if a chunk kept its tokens (so such an archive decodes without the model); otherwise an
    /// LLM run always writes it, since later groups may need it.
    pub fn write_chunks(&mut self, coded: Vec<CodedChunk>, last: bool) -> Result<()> {
        if !self.header_written {
            let tokens = coded.iter().any(|c| c.entry.tokens > 0);
            if tokens || !last {
                self.header.model = self.model.clone();
            }
            let header = self.header.to_bytes();
            self.put(&header)?;
            self.header_written = true;
        }
        for CodedChunk { entry, payload } in coded {
            if entry.tokens > 0 && self.header.model.is_none() {
                return Err(Error::Internal("LLM chunk without a model section".into()));
            }
            self.put(&frame::header(&entry, &payload))?;
            self.put(&payload)?;
            self.entries.push(entry);
        }
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(Error::Write)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes the index and footer (and the header, for an empty input); returns the
    /// archive's size.
    pub fn finish(mut self) -> Result<u64> {
        if !self.header_written {
            self.write_chunks(Vec::new(), true)?;
        }
        let index = Index {
            chunks: std::mem::take(&mut self.entries),
        };
        let tail = index.to_bytes(self.written);
        self.put(&tail)?;
        self.out.flush().map_err(Error::Write)?;
        Ok(self.written)
    }
}
