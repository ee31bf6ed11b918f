//! Opens an input: a file mapped into memory or all of standard input (for random access),
//! or a stream over either with its size where known (for reading front to back).

use std::io::Read;
use std::path::Path;

use nzip::{Error, Result};

pub enum Input {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Input::Mapped(m) => m,
            Input::Owned(v) => v,
        }
    }
}

pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

pub fn read(path: &Path) -> Result<Input> {
    if is_stdin(path) {
        let mut v = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut v)
            .map_err(|e| Error::io("<stdin>", e))?;
        return Ok(Input::Owned(v));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::io(path, std::io::Error::other("is a directory")));
    }
    if meta.len() == 0 || !meta.is_file() {
        // Empty files cannot be mapped; pipes and devices are read.
        let mut v = Vec::new();
        (&file)
            .read_to_end(&mut v)
            .map_err(|e| Error::io(path, e))?;
        return Ok(Input::Owned(v));
    }
    // SAFETY: the map is read-only; a file truncated by another process while we read it
    // could fault, which is the accepted risk of every mmap-based tool (zstd, ripgrep).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    Ok(Input::Mapped(map))
}

/// Bytes `start..end` of the file `path` (`end` open: to its end), clipped to its size, read
/// front to back.
pub fn open_range(path: &Path, start: u64, end: Option<u64>) -> Result<Stream> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::other("--input-range needs a regular file"),
        ));
    }
    let start = start.min(meta.len());
    let end = end.unwrap_or(u64::MAX).min(meta.len());
    file.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io(path, e))?;
    let len = end - start;
    Ok(Stream {
        size: Some(len),
        reader: Box::new(std::io::BufReader::with_capacity(1 << 20, file).take(len)),
    })
}

/// An input read front to back, and its size where known (a regular file).
pub struct Stream {
    pub reader: Box<dyn Read + Send>,
    pub size: Option<u64>,
}

pub fn open(path: &Path) -> Result<Stream> {
    if is_stdin(path) {
        return Ok(Stream {
            reader: Box::new(std::io::stdin()),
            size: None,
        });
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::io(path, std::io::Error::other("is a directory")));
    }
    Ok(Stream {
        size: meta.is_file().then_some(meta.len()),
        reader: Box::new(std::io::BufReader::with_capacity(1 << 20, file)),
    })
}
