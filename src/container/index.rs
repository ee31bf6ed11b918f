//! The chunk index at the end of an archive: one entry per chunk (kind, lengths, symbol
//! counts, CRC32 of the original bytes), its own CRC, and a fixed footer that locates it, so a
//! reader can find every chunk from the end of the file. Layout in `formats/NZIP.md`.

use super::frame;
use super::reader::Reader;
use crate::error::{Error, FormatError, Result};

pub const INDEX_MAGIC: [u8; 4] = *b"NZIX";
pub const FOOTER_MAGIC: [u8; 8] = *b"NZIPTAIL";
pub const FOOTER_SIZE: usize = 16;
const ENTRY_SIZE: usize = 1 + 8 + 8 + 8 + 8 + 4;

/// How a chunk's payload is coded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkKind {
    /// The original bytes, as they are.
    Stored = 0,
    /// Segment table + range-coded tokens and raw bytes.
    Modelled = 1,
    /// A zstd frame (format version 2).
    Zstd = 2,
}

impl ChunkKind {
    pub fn name(self) -> &'static str {
        match self {
            ChunkKind::Stored => "stored",
            ChunkKind::Modelled => "modelled",
            ChunkKind::Zstd => "zstd",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    pub kind: ChunkKind,
    /// Original bytes in the chunk.
    pub len: u64,
    /// LLM tokens coded in the chunk (its steps in the group schedule).
    pub tokens: u64,
    /// Bytes coded by the byte model.
    pub raw_bytes: u64,
    pub payload_len: u64,
    pub crc32: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    pub chunks: Vec<ChunkEntry>,
}

impl Index {
    /// The index followed by the footer that points at it (`index_offset` = its file offset).
    pub fn to_bytes(&self, index_offset: u64) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + self.chunks.len() * ENTRY_SIZE + FOOTER_SIZE);
        b.extend(INDEX_MAGIC);
        b.extend((self.chunks.len() as u64).to_le_bytes());
        for c in &self.chunks {
            b.push(c.kind as u8);
            for v in [c.len, c.tokens, c.raw_bytes, c.payload_len] {
                b.extend(v.to_le_bytes());
            }
            b.extend(c.crc32.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend(crc.to_le_bytes());
        b.extend(index_offset.to_le_bytes());
        b.extend(FOOTER_MAGIC);
        b
    }

    /// Finds the index from the end of `file` and checks it against the payload area
    /// `[payload_start, index_offset)` (which in version 3 holds each payload's frame header
    /// too: `framed`) and, where the header knows it, the original size. Returns the index and
    /// its offset.
    pub fn locate(
        file: &[u8],
        payload_start: usize,
        original_size: Option<u64>,
        framed: bool,
    ) -> Result<(Index, usize)> {
        if file.len() < payload_start + FOOTER_SIZE {
            return Err(Error::truncated("no room for the index footer"));
        }
        let footer = &file[file.len() - FOOTER_SIZE..];
        if footer[8..] != FOOTER_MAGIC {
            return Err(Error::truncated("footer magic missing (file cut short?)"));
        }
        let index_offset = u64::from_le_bytes(footer[..8].try_into().expect("8 bytes"));
        let index_end = file.len() - FOOTER_SIZE;
        let index_offset = usize::try_from(index_offset)
            .ok()
            .filter(|&o| {
                o >= payload_start && o.checked_add(16).is_some_and(|end| end <= index_end)
            })
            .ok_or_else(|| Error::malformed(format!("index offset {index_offset} out of range")))?;
        let index = Index::parse(&file[index_offset..index_end])?;
        index.check_totals(original_size, (index_offset - payload_start) as u64, framed)?;
        Ok((index, index_offset))
    }

    /// Parses an index (magic, count, entries, CRC; no footer) and checks each entry.
    pub fn parse(body: &[u8]) -> Result<Index> {
        if body.len() < 16 {
            return Err(Error::truncated("index ends early"));
        }
        let stored = u32::from_le_bytes(body[body.len() - 4..].try_into().expect("4 bytes"));
        let computed = crc32fast::hash(&body[..body.len() - 4]);
        if stored != computed {
            return Err(Error::Format(FormatError::Crc {
                structure: "index".into(),
                stored,
                computed,
            }));
        }
        let mut r = Reader::new(&body[..body.len() - 4], "index");
        if r.array::<4>()? != INDEX_MAGIC {
            return Err(Error::malformed("index magic missing"));
        }
        let count = r.u64()?;
        if Some((body.len() - 4) as u64) != index_size(count).map(|n| n - 4) {
            return Err(Error::malformed(format!(
                "index of {count} chunks has the wrong size"
            )));
        }
        let mut chunks = Vec::with_capacity(count as usize);
        for i in 0..count {
            let kind = r.u8()?;
            let kind = ChunkKind::from_id(kind).ok_or_else(|| {
                Error::Format(FormatError::UnknownId {
                    field: format!("chunk {i}: kind"),
                    id: kind.into(),
                })
            })?;
            let entry = ChunkEntry {
                kind,
                len: r.u64()?,
                tokens: r.u64()?,
                raw_bytes: r.u64()?,
                payload_len: r.u64()?,
                crc32: r.u32()?,
            };
            entry.check(i)?;
            chunks.push(entry);
        }
        Ok(Index { chunks })
    }

    /// The chunks' lengths against the header's original size (when it records one), and
    /// their payloads (with frame headers when `framed`) against the space they occupy.
    pub fn check_totals(
        &self,
        original_size: Option<u64>,
        payload_space: u64,
        framed: bool,
    ) -> Result<()> {
        let overflow = || Error::malformed("size overflow");
        let (mut total_len, mut total_payload) = (0u64, 0u64);
        for c in &self.chunks {
            total_len = total_len.checked_add(c.len).ok_or_else(overflow)?;
            let framing = if framed { frame::header_len(c) } else { 0 };
            total_payload = total_payload
                .checked_add(c.payload_len)
                .and_then(|t| t.checked_add(framing as u64))
                .ok_or_else(overflow)?;
        }
        if let Some(size) = original_size.filter(|&s| s != total_len) {
            return Err(Error::malformed(format!(
                "chunks hold {total_len} bytes, header says {size}"
            )));
        }
        if total_payload != payload_space {
            return Err(Error::malformed(
                "chunk payloads do not fill the space before the index",
            ));
        }
        Ok(())
    }

    pub fn original_size(&self) -> u64 {
        self.chunks.iter().map(|c| c.len).sum()
    }
}

/// Bytes of an index of `count` chunks, from its magic to its CRC (no footer).
pub fn index_size(count: u64) -> Option<u64> {
    count
        .checked_mul(ENTRY_SIZE as u64)
        .and_then(|n| n.checked_add(4 + 8 + 4))
}

impl ChunkKind {
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            0 => Some(ChunkKind::Stored),
            1 => Some(ChunkKind::Modelled),
            2 => Some(ChunkKind::Zstd),
            _ => None,
        }
    }
}

impl ChunkEntry {
    /// The rules every entry obeys, wherever it was read (index or frame header).
    pub fn check(&self, i: u64) -> Result<()> {
        let bad = |why: &str| Err(Error::malformed(format!("chunk {i}: {why}")));
        if self.len == 0 {
            return bad("empty chunk");
        }
        if self.kind == ChunkKind::Stored
            && (self.payload_len != self.len || self.tokens != 0 || self.raw_bytes != 0)
        {
            return bad("stored chunk with inconsistent lengths");
        }
        if self.kind == ChunkKind::Zstd
            && (self.payload_len == 0 || self.tokens != 0 || self.raw_bytes != 0)
        {
            return bad("zstd chunk with inconsistent lengths");
        }
        if self.tokens > self.len || self.raw_bytes > self.len {
            return bad("more symbols than bytes");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Index {
        Index {
            chunks: vec![
                ChunkEntry {
                    kind: ChunkKind::Modelled,
                    len: 100,
                    tokens: 20,
                    raw_bytes: 3,
                    payload_len: 30,
                    crc32: 1,
                },
                ChunkEntry {
                    kind: ChunkKind::Stored,
                    len: 50,
                    tokens: 0,
                    raw_bytes: 0,
                    payload_len: 50,
                    crc32: 2,
                },
            ],
        }
    }

    #[test]
    fn round_trip_and_damage() {
        let payload_start = 10;
        let mut file = vec![0u8; payload_start + 80];
        let idx = sample();
        file.extend(idx.to_bytes((payload_start + 80) as u64));
        let (got, off) = Index::locate(&file, payload_start, Some(150), false).unwrap();
        assert_eq!(got, idx);
        assert_eq!(off, payload_start + 80);
        assert!(Index::locate(&file, payload_start, Some(151), false).is_err());
        assert!(matches!(
            Index::locate(&file[..file.len() - 1], payload_start, Some(150), false),
            Err(Error::Format(FormatError::Truncated(_)))
        ));
        for i in payload_start + 80..file.len() {
            let mut x = file.clone();
            x[i] ^= 1;
            assert!(
                Index::locate(&x, payload_start, Some(150), false).is_err(),
                "flip at {i} undetected"
            );
        }
    }
}
