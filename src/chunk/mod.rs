//! The chunk plan: where the input is cut into independently coded chunks.
//!
//! Chunk `i` belongs to group `i / seqs`; the decoder reads cuts and groups from the archive,
//! so the planner may change without breaking old archives.

use std::io::Read;

use crate::error::{Error, Result};

/// The most chunks [`next_cut`] can cut `len` bytes into: every chunk but the last keeps
/// at least seven eighths of the target, and at least the target less three bytes.
pub fn max_chunk_count(len: u64, target: usize) -> u64 {
    let target = target.max(1) as u64;
    if len <= target {
        return u64::from(len > 0);
    }
    let shortest = (target - target / 8).min(target.saturating_sub(3)).max(1);
    (len - 1) / shortest + 1
}

/// Length of the chunk that starts `rest`, which holds everything up to the end of the input
/// or at least `target + 1` bytes of it: the cut depends on nothing further, so a reader of a
/// stream cuts exactly where one of the whole input would. A cut prefers to follow a newline
/// within the last eighth of the chunk, then a space, and never splits a UTF-8 character that
/// starts within reach, so text chunks stay clean for the tokenizer.
pub fn next_cut(rest: &[u8], target: usize) -> usize {
    let target = target.max(1);
    if rest.len() <= target {
        return rest.len();
    }
    let lo = target - target / 8;
    let window = &rest[lo..target];
    if let Some(p) = window.iter().rposition(|&b| b == b'\n') {
        lo + p + 1
    } else if let Some(p) = window.iter().rposition(|&b| b == b' ') {
        lo + p + 1
    } else {
        // Back off over UTF-8 continuation bytes (at most 3) to a character start.
        let mut e = target;
        while e > 1 && target - e < 3 && (rest[e] & 0xC0) == 0x80 {
            e -= 1;
        }
        e
    }
}

/// Reads an input and cuts it into chunks where [`next_cut`] says, holding only the chunks
/// asked for and one chunk's lookahead.
pub struct ChunkReader<'r> {
    input: &'r mut (dyn Read + Send),
    target: usize,
    buf: Vec<u8>,
    eof: bool,
}

impl<'r> ChunkReader<'r> {
    pub fn new(input: &'r mut (dyn Read + Send), target: usize) -> Self {
        Self {
            input,
            target: target.max(1),
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Up to `n` next chunks; fewer only at the end of the input.
    pub fn next_chunks(&mut self, n: usize) -> Result<Vec<Vec<u8>>> {
        let mut chunks = Vec::with_capacity(n);
        while chunks.len() < n {
            self.fill(self.target + 1)?;
            if self.buf.is_empty() {
                break;
            }
            let len = next_cut(&self.buf, self.target);
            let rest = self.buf.split_off(len);
            chunks.push(std::mem::replace(&mut self.buf, rest));
        }
        Ok(chunks)
    }

    /// Whether everything has been handed out.
    pub fn at_end(&mut self) -> Result<bool> {
        self.fill(1)?;
        Ok(self.buf.is_empty())
    }

    /// Reads until the buffer holds `want` bytes or the input ends.
    fn fill(&mut self, want: usize) -> Result<()> {
        while !self.eof && self.buf.len() < want {
            let room = (want - self.buf.len()).max(64 << 10) as u64;
            // take + read_to_end retries interrupted reads and stops only at `room` or the end.
            let got = (&mut self.input)
                .take(room)
                .read_to_end(&mut self.buf)
                .map_err(Error::Read)?;
            self.eof = (got as u64) < room;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cuts of the whole of `data`, chunk after chunk.
    fn plan_chunks(data: &[u8], target: usize) -> Vec<std::ops::Range<usize>> {
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < data.len() {
            let end = start + next_cut(&data[start..], target);
            chunks.push(start..end);
            start = end;
        }
        chunks
    }

    #[test]
    fn chunks_cover_the_input() {
        let text = "word ".repeat(1000) + "line\n" + &"é".repeat(3000);
        for target in [1, 7, 100, 4096, 100_000] {
            let chunks = plan_chunks(text.as_bytes(), target);
            let mut at = 0;
            for c in &chunks {
                assert_eq!(c.start, at);
                assert!(!c.is_empty() && c.len() <= target.max(1));
                at = c.end;
            }
            assert_eq!(at, text.len());
        }
        assert!(plan_chunks(b"", 10).is_empty());
    }

    #[test]
    fn chunk_count_bound_holds() {
        let text = "a line of text\nanother, longer line of text here\n".repeat(500);
        let binary: Vec<u8> = (0..30_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        for data in [text.as_bytes(), &binary[..]] {
            for target in [1, 7, 64, 100, 1000, 4096, 1 << 20] {
                for len in [0, 1, 99, 100, 101, data.len() / 3, data.len()] {
                    let n = plan_chunks(&data[..len], target).len() as u64;
                    assert!(n <= max_chunk_count(len as u64, target), "{len} {target}");
                }
            }
        }
    }

    #[test]
    fn cuts_prefer_newlines_and_char_boundaries() {
        let text = "a".repeat(95) + "\n" + &"b".repeat(50);
        assert_eq!(plan_chunks(text.as_bytes(), 100)[0], 0..96);
        let text = "é".repeat(100); // 2 bytes each, no spaces
        for c in plan_chunks(text.as_bytes(), 33) {
            assert!(std::str::from_utf8(&text.as_bytes()[c]).is_ok());
        }
    }
}
