//! Concatenated archives (gzip's and zstd's convention): several archives back to back form
//! one valid archive that decodes to the concatenation of their inputs, so `cat`, `split` and
//! any job runner can assemble one from parts made apart. Each member is a whole archive;
//! `formats/NZIP.md`, "Members".

use std::ops::Range;

use super::index::{index_size, FOOTER_MAGIC, FOOTER_SIZE, INDEX_MAGIC};
use super::{frame, Header};

/// The byte ranges of the members of `data`, in order, found from the front: a framed member
/// (version 3 on) ends after its frames, index and footer. Where that walk fails (damage, a
/// cut, a member of a version without frames, which cannot be followed by another), the rest
/// of `data` from that member on is the last member, for the single-archive reader to judge
/// (and `--keep-going` to recover from).
pub fn members(data: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        match member_len(&data[at..]) {
            Some(len) => {
                out.push(at..at + len);
                at += len;
            }
            None => {
                out.push(at..data.len());
                break;
            }
        }
    }
    if out.is_empty() {
        // An empty file is one (invalid) member, so that its error is the usual one.
        out.push(0..0);
    }
    out
}

/// The members at the end of `data` that parse as whole archives (header, index and footer
/// checked), found from the end, in file order. `--keep-going` reaches with it the members
/// after a damaged one, which the walk from the front cannot pass: each footer gives its
/// index's offset from its own member's start, and the index begins where its chunk count
/// says, so the member's start follows without searching the data.
pub fn members_from_end(data: &[u8]) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut end = data.len();
    while let Some(start) = last_member_start(&data[..end]) {
        found.push(start..end);
        end = start;
        if end == 0 {
            break;
        }
    }
    found.reverse();
    found
}

/// Where the member that ends `data` starts, if it parses whole.
fn last_member_start(data: &[u8]) -> Option<usize> {
    let footer = data.len().checked_sub(FOOTER_SIZE)?;
    if data[footer + 8..] != FOOTER_MAGIC {
        return None;
    }
    let index_offset = usize::try_from(u64::from_le_bytes(
        data[footer..footer + 8].try_into().ok()?,
    ))
    .ok()?;
    // The index of `count` chunks would begin at `footer - index_size(count)`; its magic and
    // count say whether it does. Each chunk takes at least a byte before the index, so the
    // count cannot pass the index's offset.
    for count in 0..=index_offset as u64 {
        let at = footer.checked_sub(usize::try_from(index_size(count)?).ok()?)?;
        if data[at..at + 4] == INDEX_MAGIC && data[at + 4..at + 12] == count.to_le_bytes() {
            // A coincidence in the index entries is ruled out by the whole member's checks.
            match at.checked_sub(index_offset) {
                Some(start) if super::Archive::parse(&data[start..]).is_ok() => return Some(start),
                _ => {}
            }
        }
    }
    None
}

/// The original size of everything `data` holds, over all its members; `None` where a member
/// cannot be parsed.
pub fn original_size(data: &[u8]) -> Option<u64> {
    members(data).into_iter().try_fold(0u64, |sum, m| {
        sum.checked_add(super::Archive::parse(&data[m]).ok()?.original_size())
    })
}

/// The length of the framed member at the start of `data`, walking its frames to its index.
fn member_len(data: &[u8]) -> Option<usize> {
    let (header, mut at) = Header::parse(data).ok()?;
    if !header.framed() {
        return None;
    }
    let mut chunk = 0u64;
    loop {
        if *data.get(at)? == INDEX_MAGIC[0] {
            let count = u64::from_le_bytes(data.get(at + 4..at + 12)?.try_into().ok()?);
            let end = at
                .checked_add(usize::try_from(index_size(count)?).ok()?)?
                .checked_add(FOOTER_SIZE)?;
            return (end <= data.len()).then_some(end);
        }
        let frame = frame::parse_header(&data[at..], chunk).ok()??;
        at = at
            .checked_add(frame.header_len)?
            .checked_add(usize::try_from(frame.entry.payload_len).ok()?)?;
        chunk += 1;
    }
}
