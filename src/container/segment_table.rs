//! The segment table at the front of a modelled chunk's payload: which runs of the chunk are
//! LLM-coded text (and how many tokens each holds) and which are raw bytes, in order. Layout in
//! `formats/NZIP.md`, "Chunk payloads".

use super::varint::{read_varint, write_varint};
use crate::error::{Error, Result};

/// Segment kinds in the table (low bit of each entry's first varint).
const KIND_RAW: u64 = 0;
const KIND_TEXT: u64 = 1;

/// One entry of the table: a segment's kind, byte length and token count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentEntry {
    /// `len` bytes coded as `tokens` LLM tokens.
    Text { len: u64, tokens: u64 },
    /// `len` bytes coded by the byte model.
    Raw { len: u64 },
}

/// Writes the segment table: a varint count, then per segment `len << 1 | kind` and, for text,
/// the token count.
pub fn write_segment_table(
    segments: impl ExactSizeIterator<Item = SegmentEntry>,
    out: &mut Vec<u8>,
) {
    write_varint(segments.len() as u64, out);
    for seg in segments {
        match seg {
            SegmentEntry::Raw { len } => write_varint(len << 1 | KIND_RAW, out),
            SegmentEntry::Text { len, tokens } => {
                write_varint(len << 1 | KIND_TEXT, out);
                write_varint(tokens, out);
            }
        }
    }
}

/// Reads a segment table from the front of `payload`; returns it and the bytes consumed.
/// Lengths must add up to `chunk_len`, raw lengths to `chunk_raw` and token counts to
/// `chunk_tokens` (the index's figures).
pub fn read_segment_table(
    payload: &[u8],
    chunk: usize,
    chunk_len: u64,
    chunk_tokens: u64,
    chunk_raw: u64,
) -> Result<(Vec<SegmentEntry>, usize)> {
    let corrupt = |why: &str| Error::malformed(format!("chunk {chunk}: segment table: {why}"));
    let mut at = 0;
    let varint = |at: &mut usize| {
        read_varint(payload, at).map_err(|e| match e {
            super::varint::VarintError::Truncated => corrupt("truncated"),
            super::varint::VarintError::Malformed => corrupt("malformed varint"),
        })
    };
    let count = varint(&mut at)?;
    // Every segment covers at least one byte and takes at least one byte of table.
    if count > chunk_len || count > payload.len() as u64 {
        return Err(corrupt("more segments than bytes"));
    }
    let mut segments = Vec::with_capacity(count as usize);
    let (mut bytes, mut tokens, mut raw) = (0u64, 0u64, 0u64);
    for _ in 0..count {
        let v = varint(&mut at)?;
        let len = v >> 1;
        if len == 0 {
            return Err(corrupt("empty segment"));
        }
        bytes = bytes
            .checked_add(len)
            .ok_or_else(|| corrupt("length overflow"))?;
        if v & 1 == KIND_TEXT {
            let n = varint(&mut at)?;
            if n == 0 || n > len {
                return Err(corrupt("text segment token count out of range"));
            }
            tokens += n;
            segments.push(SegmentEntry::Text { len, tokens: n });
        } else {
            raw += len;
            segments.push(SegmentEntry::Raw { len });
        }
    }
    if bytes != chunk_len {
        return Err(corrupt(&format!(
            "segments cover {bytes} bytes, chunk has {chunk_len}"
        )));
    }
    if raw != chunk_raw {
        return Err(corrupt(&format!(
            "raw segments hold {raw} bytes, index says {chunk_raw}"
        )));
    }
    if tokens != chunk_tokens {
        return Err(corrupt(&format!(
            "segments hold {tokens} tokens, index says {chunk_tokens}"
        )));
    }
    Ok((segments, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_totals_checked() {
        let segs = [
            SegmentEntry::Text {
                len: 300,
                tokens: 70,
            },
            SegmentEntry::Raw { len: 5 },
            SegmentEntry::Text { len: 9, tokens: 2 },
        ];
        let mut buf = Vec::new();
        write_segment_table(segs.iter().copied(), &mut buf);
        buf.extend([0xAA, 0xBB]);
        let (table, used) = read_segment_table(&buf, 0, 314, 72, 5).unwrap();
        assert_eq!(used, buf.len() - 2);
        assert_eq!(table, segs);
        assert!(read_segment_table(&buf, 0, 315, 72, 5).is_err());
        assert!(read_segment_table(&buf, 0, 314, 71, 5).is_err());
        assert!(read_segment_table(&buf, 0, 314, 72, 4).is_err());
        assert!(read_segment_table(&buf[..3], 0, 314, 72, 5).is_err());
    }
}
