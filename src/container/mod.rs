//! The `.nz` container: header, chunk payloads back to back (each after its frame header from
//! version 3 on), trailing index and footer. `formats/NZIP.md` is the specification; this
//! module is its only reader and writer.

// Every field's bytes are read and written in these files and nowhere else; the rest of the
// crate sees the types below.
pub mod frame;
mod header;
mod index;
mod members;
mod reader;
mod schedule;
mod segment_table;
mod stream;
mod varint;
mod writer;

pub use header::{
    read_full, read_header, ByteModelKind, Header, ModelSection, TokenModelKind, MAX_TABLE_BITS,
    MIN_TABLE_BITS, OLDEST_VERSION, VERSION,
};
pub use index::{ChunkEntry, ChunkKind, Index};
pub use members::{members, members_from_end, original_size};
pub use schedule::{Schedule, MAX_CONTEXT, MAX_SEQS, MAX_WINDOW};
pub use segment_table::{read_segment_table, write_segment_table, SegmentEntry};
pub use stream::StreamReader;
pub use writer::{ArchiveWriter, CodedChunk};

use crate::error::{Error, Result};

/// A parsed archive over its bytes: header, index, and where each chunk's payload lies.
pub struct Archive<'a> {
    pub header: Header,
    pub index: Index,
    data: &'a [u8],
    /// Where each chunk's frame header (version 3) or payload (older) starts.
    chunk_offsets: Vec<usize>,
}

impl<'a> Archive<'a> {
    /// Parses and checks the header and the index (CRCs, sizes, consistency). Frame headers
    /// are checked chunk by chunk in [`Archive::payload`], so damage to one stays with it.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        let (header, header_size) = Header::parse(data)?;
        let (index, _) = Index::locate(data, header_size, header.original_size, header.framed())?;
        if header.model.is_none() && index.chunks.iter().any(|c| c.tokens > 0) {
            return Err(Error::malformed(
                "chunks with LLM tokens but no model section",
            ));
        }
        let mut chunk_offsets = Vec::with_capacity(index.chunks.len());
        let mut at = header_size;
        for c in &index.chunks {
            chunk_offsets.push(at);
            at += c.payload_len as usize;
            if header.framed() {
                at += frame::header_len(c);
            }
        }
        Ok(Self {
            header,
            index,
            data,
            chunk_offsets,
        })
    }

    /// For `--keep-going` when [`Archive::parse`] failed after the header (`why`): an archive
    /// cut short (an interrupted copy) or with a damaged index. Walks the frames forward from
    /// the header and keeps every chunk whose frame header and payload CRCs check, up to the
    /// first that does not; returns that archive and the reason the rest is missing. Frames
    /// carry no original offset, so nothing after a damaged frame can be placed (see
    /// `formats/NZIP.md`, "Recovery"); versions before 3 have no frames to walk.
    pub fn recover(data: &'a [u8], why: Error) -> Result<(Self, Error)> {
        let (header, header_size) = Header::parse(data)?;
        if !header.framed() {
            return Err(why);
        }
        let mut chunks = Vec::new();
        let mut chunk_offsets = Vec::new();
        let mut at = header_size;
        while let Ok(Some(frame)) = frame::parse_header(&data[at..], chunks.len() as u64) {
            let payload_start = at + frame.header_len;
            let Some(payload) = usize::try_from(frame.entry.payload_len)
                .ok()
                .and_then(|n| data.get(payload_start..payload_start.checked_add(n)?))
            else {
                break;
            };
            if frame.check_payload(payload, chunks.len() as u64).is_err()
                || (frame.entry.tokens > 0 && header.model.is_none())
            {
                break;
            }
            chunk_offsets.push(at);
            chunks.push(frame.entry);
            at = payload_start + payload.len();
        }
        let archive = Self {
            header,
            index: Index { chunks },
            data,
            chunk_offsets,
        };
        Ok((archive, why))
    }

    /// The original size: the header's, or the index's sum for a streamed archive.
    pub fn original_size(&self) -> u64 {
        self.header
            .original_size
            .unwrap_or_else(|| self.index.original_size())
    }

    /// Chunk `chunk`'s payload; in version 3 its frame header must agree with the index and
    /// the payload with the frame's CRC.
    pub fn payload(&self, chunk: usize) -> Result<&'a [u8]> {
        let entry = &self.index.chunks[chunk];
        let start = self.chunk_offsets[chunk];
        if !self.header.framed() {
            return Ok(&self.data[start..start + entry.payload_len as usize]);
        }
        let end = start + frame::header_len(entry);
        let frame = frame::parse_header(&self.data[start..end], chunk as u64)?
            .filter(|f| f.entry == *entry)
            .ok_or_else(|| {
                Error::malformed(format!(
                    "chunk {chunk}: frame header differs from the index"
                ))
            })?;
        let payload = &self.data[end..end + entry.payload_len as usize];
        frame.check_payload(payload, chunk as u64)?;
        Ok(payload)
    }

    /// File offset of chunk `chunk`'s payload.
    pub fn payload_offset(&self, chunk: usize) -> usize {
        let frame = if self.header.framed() {
            frame::header_len(&self.index.chunks[chunk])
        } else {
            0
        };
        self.chunk_offsets[chunk] + frame
    }
}
