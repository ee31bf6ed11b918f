//! Chunk frame headers (format version 3): each payload is preceded by its own index entry,
//! varint-coded, with a CRC32 of the payload and one of the header itself, so a reader that
//! cannot seek to the trailing index (a pipe) can still decode chunk after chunk, as xz's
//! block headers allow, and any change to a payload is caught before it is decoded (a flipped
//! bit in a range coder's last word can leave the decoded bytes, and so their CRC, intact).
//! Layout in `formats/NZIP.md`.

use super::index::{ChunkEntry, ChunkKind};
use super::varint::{read_varint, varint_len, write_varint, VarintError, MAX_VARINT_LEN};
use crate::error::{Error, FormatError, Result};

/// Longest frame header: kind, four 10-byte varints, the chunk's, the payload's and the
/// header's CRCs.
pub const MAX_HEADER_LEN: usize = 1 + 4 * MAX_VARINT_LEN + 3 * 4;

/// A parsed frame header: the chunk's entry and the CRC32 its payload must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub entry: ChunkEntry,
    pub payload_crc32: u32,
    /// Bytes the header takes.
    pub header_len: usize,
}

impl Frame {
    /// Checks `payload` (which must be `entry.payload_len` bytes) against its CRC.
    pub fn check_payload(&self, payload: &[u8], i: u64) -> Result<()> {
        let computed = crc32fast::hash(payload);
        if computed != self.payload_crc32 {
            return Err(Error::Format(FormatError::Crc {
                structure: format!("chunk {i} payload"),
                stored: self.payload_crc32,
                computed,
            }));
        }
        Ok(())
    }
}

/// The frame header written before a chunk's `payload`.
pub fn header(entry: &ChunkEntry, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(MAX_HEADER_LEN);
    b.push(entry.kind as u8);
    for v in [entry.len, entry.tokens, entry.raw_bytes, entry.payload_len] {
        write_varint(v, &mut b);
    }
    b.extend(entry.crc32.to_le_bytes());
    b.extend(crc32fast::hash(payload).to_le_bytes());
    let crc = crc32fast::hash(&b);
    b.extend(crc.to_le_bytes());
    b
}

pub fn header_len(entry: &ChunkEntry) -> usize {
    1 + [entry.len, entry.tokens, entry.raw_bytes, entry.payload_len]
        .into_iter()
        .map(varint_len)
        .sum::<usize>()
        + 12
}

/// Parses the frame header of chunk `i` at the start of `data`. `Ok(None)` means `data` ends
/// inside it (a stream reader then needs more).
pub fn parse_header(data: &[u8], i: u64) -> Result<Option<Frame>> {
    let Some(&kind) = data.first() else {
        return Ok(None);
    };
    let kind = ChunkKind::from_id(kind).ok_or_else(|| {
        Error::Format(FormatError::UnknownId {
            field: format!("chunk {i}: frame header: kind"),
            id: kind.into(),
        })
    })?;
    let mut at = 1;
    let mut fields = [0u64; 4];
    for f in &mut fields {
        match read_varint(data, &mut at) {
            Ok(v) => *f = v,
            // Ran off the end: the caller may have more bytes.
            Err(VarintError::Truncated) => return Ok(None),
            Err(VarintError::Malformed) => {
                return Err(Error::malformed(format!(
                    "chunk {i}: frame header has a malformed length (a varint over 64 bits or not minimal)"
                )))
            }
        }
    }
    if data.len() < at + 12 {
        return Ok(None);
    }
    let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
    let (crc32, payload_crc32, stored) = (word(at), word(at + 4), word(at + 8));
    let computed = crc32fast::hash(&data[..at + 8]);
    if stored != computed {
        return Err(Error::Format(FormatError::Crc {
            structure: format!("chunk {i} frame header"),
            stored,
            computed,
        }));
    }
    let [len, tokens, raw_bytes, payload_len] = fields;
    let entry = ChunkEntry {
        kind,
        len,
        tokens,
        raw_bytes,
        payload_len,
        crc32,
    };
    entry.check(i)?;
    Ok(Some(Frame {
        entry,
        payload_crc32,
        header_len: at + 12,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_lengths_and_damage() {
        for (len, tokens, payload_len) in [(1, 0, 1), (300, 20, 17), (1 << 40, 1 << 33, 12345)] {
            let e = ChunkEntry {
                kind: if tokens > 0 {
                    ChunkKind::Modelled
                } else {
                    ChunkKind::Stored
                },
                len,
                tokens,
                raw_bytes: tokens / 2,
                payload_len: if tokens > 0 { payload_len } else { len },
                crc32: 0xDEAD_BEEF,
            };
            let payload = vec![9; 20];
            let h = header(&e, &payload);
            assert_eq!(h.len(), header_len(&e));
            let mut with_payload = h.clone();
            with_payload.extend(&payload);
            let frame = parse_header(&with_payload, 3).unwrap().unwrap();
            assert_eq!((&frame.entry, frame.header_len), (&e, h.len()));
            assert!(frame.check_payload(&payload, 3).is_ok());
            assert!(frame.check_payload(&payload[1..], 3).is_err());
            for cut in 0..h.len() {
                assert!(matches!(parse_header(&h[..cut], 3), Ok(None)), "cut {cut}");
            }
            for bit in 0..h.len() * 8 {
                let mut x = h.clone();
                x[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    !matches!(parse_header(&x, 3), Ok(Some(_))),
                    "flip of bit {bit} undetected"
                );
            }
        }
    }

    #[test]
    fn non_minimal_varints_are_refused() {
        // Chunk length 1 written as the two bytes 0x81 0x00, with both CRCs made to match: only
        // the minimal-varint rule can catch it (and a frame's length must follow from its
        // values, which `header_len` relies on).
        let mut h = vec![ChunkKind::Stored as u8, 0x81, 0x00, 0, 0, 1];
        h.extend(0u32.to_le_bytes());
        h.extend(crc32fast::hash(&[7]).to_le_bytes());
        let crc = crc32fast::hash(&h);
        h.extend(crc.to_le_bytes());
        assert!(matches!(
            parse_header(&h, 0),
            Err(Error::Format(FormatError::Malformed(_)))
        ));
    }
}
