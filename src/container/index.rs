//! The chunk index at the end of an archive: one entry per chunk (kind, lengths, symbol
//! counts, CRC32 of the original bytes), its own CRC, and a fixed footer that locates it, so a
//! reader can find every chunk from the end of the file. Layout in `formats/NZIP.md`.

use super::reader::Reader;
use crate::error::{Error, Result};

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
    /// `[payload_start, index_offset)` and the original size. Returns the index and its offset.
    pub fn locate(file: &[u8], payload_start: usize, original_size: u64) -> Result<(Index, usize)> {
        if file.len() < payload_start + FOOTER_SIZE {
            return Err(Error::Truncated("no room for the index footer".into()));
        }
        let footer = &file[file.len() - FOOTER_SIZE..];
        if footer[8..] != FOOTER_MAGIC {
            return Err(Error::Truncated(
                "footer magic missing (file cut short?)".into(),
            ));
        }
        let index_offset = u64::from_le_bytes(footer[..8].try_into().expect("8 bytes"));
        let index_end = file.len() - FOOTER_SIZE;
        let index_offset = usize::try_from(index_offset)
            .ok()
            .filter(|&o| {
                o >= payload_start && o.checked_add(16).is_some_and(|end| end <= index_end)
            })
            .ok_or_else(|| Error::Corrupt(format!("index offset {index_offset} out of range")))?;
        let body = &file[index_offset..index_end];
        let stored = u32::from_le_bytes(body[body.len() - 4..].try_into().expect("4 bytes"));
        let computed = crc32fast::hash(&body[..body.len() - 4]);
        if stored != computed {
            return Err(Error::CrcMismatch {
                what: "index".into(),
                stored,
                computed,
            });
        }
        let mut r = Reader::new(&body[..body.len() - 4], "index");
        if r.array::<4>()? != INDEX_MAGIC {
            return Err(Error::Corrupt("index magic missing".into()));
        }
        let count = r.u64()?;
        let expected = count
            .checked_mul(ENTRY_SIZE as u64)
            .and_then(|n| n.checked_add(12));
        if expected != Some((body.len() - 4) as u64) {
            return Err(Error::Corrupt(format!(
                "index of {count} chunks has the wrong size"
            )));
        }
        let mut chunks = Vec::with_capacity(count as usize);
        let (mut total_len, mut total_payload) = (0u64, 0u64);
        for i in 0..count {
            let kind = match r.u8()? {
                0 => ChunkKind::Stored,
                1 => ChunkKind::Modelled,
                2 => ChunkKind::Zstd,
                k => return Err(Error::Corrupt(format!("chunk {i}: unknown kind {k}"))),
            };
            let entry = ChunkEntry {
                kind,
                len: r.u64()?,
                tokens: r.u64()?,
                raw_bytes: r.u64()?,
                payload_len: r.u64()?,
                crc32: r.u32()?,
            };
            let bad = |why: &str| Err(Error::Corrupt(format!("chunk {i}: {why}")));
            if entry.len == 0 {
                return bad("empty chunk");
            }
            if entry.kind == ChunkKind::Stored
                && (entry.payload_len != entry.len || entry.tokens != 0 || entry.raw_bytes != 0)
            {
                return bad("stored chunk with inconsistent lengths");
            }
            if entry.kind == ChunkKind::Zstd
                && (entry.payload_len == 0 || entry.tokens != 0 || entry.raw_bytes != 0)
            {
                return bad("zstd chunk with inconsistent lengths");
            }
            if entry.tokens > entry.len || entry.raw_bytes > entry.len {
                return bad("more symbols than bytes");
            }
            total_len = total_len
                .checked_add(entry.len)
                .ok_or(Error::Corrupt("size overflow".into()))?;
            total_payload = total_payload
                .checked_add(entry.payload_len)
                .ok_or(Error::Corrupt("size overflow".into()))?;
            chunks.push(entry);
        }
        if total_len != original_size {
            return Err(Error::Corrupt(format!(
                "chunks hold {total_len} bytes, header says {original_size}"
            )));
        }
        if total_payload != (index_offset - payload_start) as u64 {
            return Err(Error::Corrupt(
                "chunk payloads do not fill the space before the index".into(),
            ));
        }
        Ok((Index { chunks }, index_offset))
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
        let (got, off) = Index::locate(&file, payload_start, 150).unwrap();
        assert_eq!(got, idx);
        assert_eq!(off, payload_start + 80);
        assert!(Index::locate(&file, payload_start, 151).is_err());
        assert!(matches!(
            Index::locate(&file[..file.len() - 1], payload_start, 150),
            Err(Error::Truncated(_))
        ));
        for i in payload_start + 80..file.len() {
            let mut x = file.clone();
            x[i] ^= 1;
            assert!(
                Index::locate(&x, payload_start, 150).is_err(),
                "flip at {i} undetected"
            );
        }
    }
}
