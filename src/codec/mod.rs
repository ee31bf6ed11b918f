//! Coding of one chunk: its segment table and its symbol stream (LLM tokens and raw bytes
//! interleaved in segment order, in one range-coder stream).
//!
//! A modelled chunk's payload is the segment table followed by the range-coded words. The
//! [`encode::ChunkEncoder`] and [`decode::ChunkDecoder`] walk the segments in the same order:
//! before each token, any raw segments that precede it; after the last token, the rest.

pub mod decode;
pub mod encode;
pub mod raw;

use crate::error::{Error, Result};
use crate::token::Segment;

/// Segment kinds in the table (low bit of each entry's first varint).
const KIND_RAW: u64 = 0;
const KIND_TEXT: u64 = 1;

/// A segment as the decoder knows it before decoding: kind, byte length, token count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentHeader {
    Text { len: u64, tokens: u64 },
    Raw { len: u64 },
}

/// Writes the segment table: a varint count, then per segment `len << 1 | kind` and, for text,
/// the token count.
pub fn write_segment_table(segments: &[Segment], out: &mut Vec<u8>) {
    write_varint(segments.len() as u64, out);
    for seg in segments {
        match seg {
            Segment::Raw { len } => write_varint((*len as u64) << 1 | KIND_RAW, out),
            Segment::Text { len, tokens } => {
                write_varint((*len as u64) << 1 | KIND_TEXT, out);
                write_varint(tokens.len() as u64, out);
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
) -> Result<(Vec<SegmentHeader>, usize)> {
    let corrupt = |why: &str| Error::Corrupt(format!("chunk {chunk}: segment table: {why}"));
    let mut at = 0;
    let count = read_varint(payload, &mut at).ok_or_else(|| corrupt("truncated"))?;
    // Every segment covers at least one byte and takes at least one byte of table.
    if count > chunk_len || count > payload.len() as u64 {
        return Err(corrupt("more segments than bytes"));
    }
    let mut segments = Vec::with_capacity(count as usize);
    let (mut bytes, mut tokens, mut raw) = (0u64, 0u64, 0u64);
    for _ in 0..count {
        let v = read_varint(payload, &mut at).ok_or_else(|| corrupt("truncated"))?;
        let len = v >> 1;
        if len == 0 {
            return Err(corrupt("empty segment"));
        }
        bytes = bytes
            .checked_add(len)
            .ok_or_else(|| corrupt("length overflow"))?;
        if v & 1 == KIND_TEXT {
            let n = read_varint(payload, &mut at).ok_or_else(|| corrupt("truncated"))?;
            if n == 0 || n > len {
                return Err(corrupt("text segment token count out of range"));
            }
            tokens += n;
            segments.push(SegmentHeader::Text { len, tokens: n });
        } else {
            raw += len;
            segments.push(SegmentHeader::Raw { len });
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

pub fn write_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// LEB128; `None` when truncated or longer than 10 bytes.
pub fn read_varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7F).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_table_round_trip() {
        let segs = vec![
            Segment::Text {
                len: 300,
                tokens: vec![1; 70],
            },
            Segment::Raw { len: 5 },
            Segment::Text {
                len: 9,
                tokens: vec![2, 3],
            },
        ];
        let mut buf = Vec::new();
        write_segment_table(&segs, &mut buf);
        buf.extend([0xAA, 0xBB]);
        let (table, used) = read_segment_table(&buf, 0, 314, 72, 5).unwrap();
        assert_eq!(used, buf.len() - 2);
        assert_eq!(
            table,
            vec![
                SegmentHeader::Text {
                    len: 300,
                    tokens: 70
                },
                SegmentHeader::Raw { len: 5 },
                SegmentHeader::Text { len: 9, tokens: 2 }
            ]
        );
        assert!(read_segment_table(&buf, 0, 315, 72, 5).is_err());
        assert!(read_segment_table(&buf, 0, 314, 71, 5).is_err());
        assert!(read_segment_table(&buf, 0, 314, 72, 4).is_err());
        assert!(read_segment_table(&buf[..3], 0, 314, 72, 5).is_err());
    }

    #[test]
    fn varints() {
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            let mut b = Vec::new();
            write_varint(v, &mut b);
            let mut at = 0;
            assert_eq!(read_varint(&b, &mut at), Some(v));
            assert_eq!(at, b.len());
        }
        assert_eq!(read_varint(&[0xFF; 11], &mut 0), None);
    }
}
