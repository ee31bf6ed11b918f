//! Reads a version-3 archive front to back from a stream that cannot seek (a pipe): the
//! header, then frame after frame, then the trailing index, which must repeat the frames
//! exactly, then the footer and the end of the stream.

use std::io::Read;

use super::frame;
use super::header::read_full;
use super::index::{index_size, FOOTER_MAGIC, FOOTER_SIZE, INDEX_MAGIC};
use super::{ChunkEntry, Header, Index};
use crate::error::{Error, Result};

pub struct StreamReader<R: Read> {
    r: R,
    header: Header,
    header_len: u64,
    /// Bytes consumed so far (the file offset of what comes next).
    pos: u64,
    /// The frames read so far; the index must list exactly these.
    frames: Vec<ChunkEntry>,
    finished: bool,
}

impl<R: Read> StreamReader<R> {
    /// A reader positioned just after `header`, which took `header_len` bytes. Only framed
    /// archives (version 3 on) can be read this way.
    pub fn new(r: R, header: Header, header_len: usize) -> Result<Self> {
        if !header.framed() {
            return Err(Error::Internal(
                "stream reading needs a framed archive".into(),
            ));
        }
        Ok(Self {
            r,
            header,
            header_len: header_len as u64,
            pos: header_len as u64,
            frames: Vec::new(),
            finished: false,
        })
    }

    /// The stream, positioned after the footer once [`StreamReader::next_chunk`] returned
    /// `None`.
    pub fn into_inner(self) -> R {
        self.r
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next chunk's entry and payload; `None` once the index and footer have been read and
    /// checked against the frames. What follows the footer (the end, or another member) is
    /// the caller's: [`StreamReader::into_inner`].
    pub fn next_chunk(&mut self) -> Result<Option<(ChunkEntry, Vec<u8>)>> {
        if self.finished {
            return Ok(None);
        }
        let i = self.frames.len() as u64;
        let mut head = Vec::with_capacity(frame::MAX_HEADER_LEN);
        let frame = loop {
            let mut byte = [0u8];
            if read_full(&mut self.r, &mut byte)? == 0 {
                return Err(Error::truncated(format!(
                    "stream ends before chunk {i} or the index"
                )));
            }
            if head.is_empty() && byte[0] == INDEX_MAGIC[0] {
                self.read_index()?;
                return Ok(None);
            }
            head.push(byte[0]);
            if let Some(parsed) = frame::parse_header(&head, i)? {
                break parsed;
            }
        };
        let entry = frame.entry.clone();
        let mut payload = Vec::new();
        (&mut self.r)
            .take(entry.payload_len)
            .read_to_end(&mut payload)
            .map_err(Error::Read)?;
        if (payload.len() as u64) < entry.payload_len {
            return Err(Error::truncated(format!(
                "chunk {i}: payload ends after {} of {} bytes",
                payload.len(),
                entry.payload_len
            )));
        }
        frame.check_payload(&payload, i)?;
        self.pos += frame.header_len as u64 + entry.payload_len;
        self.frames.push(entry.clone());
        Ok(Some((entry, payload)))
    }

    /// Reads the index (its first byte already taken) and the footer, and checks them against
    /// the frames, the header and the end of the stream.
    fn read_index(&mut self) -> Result<()> {
        let index_offset = self.pos;
        let mut body = vec![0u8; 12];
        body[0] = INDEX_MAGIC[0];
        if read_full(&mut self.r, &mut body[1..])? < 11 {
            return Err(Error::truncated("stream ends inside the index"));
        }
        if body[..4] != INDEX_MAGIC {
            return Err(Error::malformed(format!(
                "neither chunk {} nor the index follows at byte {index_offset}",
                self.frames.len()
            )));
        }
        let count = u64::from_le_bytes(body[4..12].try_into().expect("8 bytes"));
        if count != self.frames.len() as u64 {
            return Err(Error::malformed(format!(
                "index lists {count} chunks, the stream held {}",
                self.frames.len()
            )));
        }
        let size = index_size(count).expect("as many entries as frames read") as usize;
        body.resize(size + FOOTER_SIZE, 0);
        if read_full(&mut self.r, &mut body[12..])? < size + FOOTER_SIZE - 12 {
            return Err(Error::truncated("stream ends inside the index"));
        }
        let footer = body.split_off(size);
        let index = Index::parse(&body)?;
        if index.chunks != self.frames {
            return Err(Error::malformed(
                "the index differs from the chunk frame headers",
            ));
        }
        index.check_totals(
            self.header.original_size,
            index_offset - self.header_len,
            true,
        )?;
        if footer[8..] != FOOTER_MAGIC
            || u64::from_le_bytes(footer[..8].try_into().expect("8 bytes")) != index_offset
        {
            return Err(Error::malformed("footer does not point at the index"));
        }
        self.finished = true;
        Ok(())
    }
}
