//! Varints as the format defines them: unsigned LEB128, at most 10 bytes, and minimal (no
//! trailing zero groups), so every value has exactly one encoding and a frame header's length
//! follows from its values.

/// Longest varint: ⌈64 / 7⌉ bytes.
pub const MAX_VARINT_LEN: usize = 10;

/// Why a varint could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarintError {
    /// The bytes end inside it.
    Truncated,
    /// Longer than needed (a zero last group after the first byte), over 10 bytes, or over
    /// 64 bits in its 10th byte.
    Malformed,
}

pub fn write_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes [`write_varint`] takes for `v`.
pub fn varint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(7).max(1)
}

/// Reads the varint at `*at`, advancing `at` past it.
pub fn read_varint(buf: &[u8], at: &mut usize) -> Result<u64, VarintError> {
    let mut v = 0u64;
    for i in 0..MAX_VARINT_LEN {
        let b = *buf.get(*at + i).ok_or(VarintError::Truncated)?;
        let group = u64::from(b & 0x7F);
        // The 10th byte holds bit 63 alone.
        if i == MAX_VARINT_LEN - 1 && group > 1 {
            return Err(VarintError::Malformed);
        }
        v |= group << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && group == 0 {
                return Err(VarintError::Malformed);
            }
            *at += i + 1;
            return Ok(v);
        }
    }
    Err(VarintError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_length() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            1 << 56,
            (1 << 63) - 1,
            1 << 63,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            write_varint(v, &mut b);
            assert_eq!(b.len(), varint_len(v), "{v}");
            let mut at = 0;
            assert_eq!(read_varint(&b, &mut at), Ok(v));
            assert_eq!(at, b.len());
            for cut in 0..b.len() {
                assert_eq!(read_varint(&b[..cut], &mut 0), Err(VarintError::Truncated));
            }
        }
    }

    #[test]
    fn only_minimal_encodings_in_range() {
        let malformed = |b: &[u8]| assert_eq!(read_varint(b, &mut 0), Err(VarintError::Malformed));
        // 0 and 1 padded with a zero group.
        malformed(&[0x80, 0x00]);
        malformed(&[0x81, 0x80, 0x00]);
        // 11 bytes, and a 10th byte with bits above 63 (it used to wrap silently).
        malformed(&[0xFF; 11]);
        let mut over = vec![0xFF; 9];
        over.push(0x02);
        malformed(&over);
        let mut at = 3;
        assert_eq!(read_varint(&[9, 9, 9, 0x05], &mut at), Ok(5));
        assert_eq!(at, 4);
    }
}
