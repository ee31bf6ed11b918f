//! Decompression: decodes an archive a group of chunks at a time (the lockstep groups of LLM
//! archives; batches of independent chunks otherwise), checks each chunk's CRC32 and writes
//! it. From a whole archive in memory (random access through the index: ranges, damaged
//! archives) or from a stream read front to back (pipes; memory bounded by one group).

use std::borrow::Cow;
use std::io::{Read, Write};
use std::ops::{ControlFlow, Range};

use rayon::prelude::*;

use super::workers::{Engine, RunnerSlot, Workers};
use super::{thread_pool, BatchProgress, DecompressOptions};
use crate::codec::decode::ChunkDecoder;
use crate::container::StreamReader;
use crate::container::{
    self, Archive, ChunkEntry, ChunkKind, Header, ModelSection, TokenModelKind,
};
use crate::container::{read_full, read_header, ByteModelKind};
use crate::error::{Error, FormatError, Result};
use crate::models;
use crate::predict::devices::{DeviceChoice, Placement};
use crate::predict::lockstep::ChunkDriver;
use crate::token::Vocabulary;

/// Decompresses a whole archive in memory, writing the original bytes to `out` chunk by
/// chunk after each chunk's CRC32 has been checked. `progress` receives bytes done so far.
pub fn decompress(
    archive: &[u8],
    opts: &DecompressOptions,
    out: &mut (dyn Write + Send),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    decompress_range(archive, None, opts, out, progress)
}

/// Like [`decompress`], but writes only the original bytes in `range` (all of them for
/// `None`), decoding only the chunks that cover it, and for LLM chunks the lockstep groups
/// they belong to (their schedule needs every chunk of the group). Every chunk that is written
/// from has its CRC32 checked. A range past the end is clipped to the end. Concatenated
/// archives (members) decode as the concatenation of their inputs, the range across them.
pub fn decompress_range(
    archive: &[u8],
    range: Option<Range<u64>>,
    opts: &DecompressOptions,
    out: &mut (dyn Write + Send),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    if let Some(r) = range.as_ref().filter(|r| r.start > r.end) {
        return Err(Error::InvalidOption(format!(
            "range {}..{} ends before it starts",
            r.start, r.end
        )));
    }
    let mut members = container::members(archive);
    if opts.keep_going {
        members = around_damage(archive, members);
    }
    if let [only] = &members[..] {
        return decompress_member(&archive[only.clone()], range, opts, out, progress);
    }
    // Every member but the last must be a whole archive. Where one is not, the boundary the
    // walk found is not confirmed (a damaged index can mimic one): the file is judged as one
    // archive, with that reader's checks, as before members. --keep-going has confirmed the
    // members around the damage from both ends instead.
    let parsed: Vec<Result<u64>> = members
        .iter()
        .map(|m| Archive::parse(&archive[m.clone()]).map(|a| a.original_size()))
        .collect();
    if !opts.keep_going && parsed[..parsed.len() - 1].iter().any(Result::is_err) {
        return decompress_member(archive, range, opts, out, progress);
    }
    // Each member's bytes follow the members before it; a member holding none of the range
    // is not decoded.
    let (mut start, mut written) = (0u64, 0u64);
    let mut damaged = Vec::new();
    for (k, (m, parsed)) in members.iter().zip(parsed).enumerate() {
        let data = &archive[m.clone()];
        // A damaged member's size is its header's, where that is readable and records one;
        // else it is known only once its recovered bytes are written.
        let size = match parsed {
            Ok(size) => Some(size),
            // A file that does not begin as an archive is none, whatever follows.
            Err(e @ Error::Format(FormatError::BadMagic)) if k == 0 => return Err(e),
            Err(Error::Format(FormatError::BadMagic)) if !opts.keep_going => {
                return Err(Error::malformed(format!(
                    "bytes after member {k}'s footer are not another archive"
                )))
            }
            Err(_) => Header::parse(data).ok().and_then(|(h, _)| h.original_size),
        };
        let end = start.saturating_add(size.unwrap_or(u64::MAX - start));
        let part = match &range {
            None => None,
            Some(r) if r.end <= start || r.start >= end => {
                start = end;
                continue;
            }
            Some(r) => Some(r.start.max(start) - start..r.end.min(end) - start),
        };
        let base = written;
        let member_progress = |done: u64| progress(base + done);
        match decompress_member(data, part, opts, out, &member_progress) {
            Ok(n) => written += n,
            Err(Error::Damaged { written: n, ranges }) => {
                written += n;
                damaged.extend(ranges.into_iter().map(|(r, why)| {
                    (
                        r.start + start..r.end + start,
                        format!("member {}: {why}", k + 1),
                    )
                }));
            }
            // --keep-going, after damage: bytes that do not even begin an archive. Nothing
            // of them can be placed; the members after them still decode.
            Err(e) if opts.keep_going && k > 0 => {
                damaged.push((start..start, format!("member {}: {e}", k + 1)));
            }
            Err(e) => return Err(e),
        }
        // After a member of unknown size, positions count the bytes written.
        start = size.map_or(start + (written - base), |_| end);
    }
    if !damaged.is_empty() {
        return Err(Error::Damaged {
            written,
            ranges: damaged,
        });
    }
    Ok(written)
}

/// The members of `archive` for --keep-going: where the walk from the front stops at a member
/// that does not parse (damaged, or bytes that are no archive), the members after it that
/// parse whole are found from the end of the file, so that damage costs only its own member.
fn around_damage(archive: &[u8], mut members: Vec<Range<usize>>) -> Vec<Range<usize>> {
    let Some(k) = members
        .iter()
        .position(|m| Archive::parse(&archive[m.clone()]).is_err())
    else {
        return members;
    };
    let rest = members[k].start..archive.len();
    members.truncate(k);
    let after = container::members_from_end(&archive[rest.clone()]);
    let damaged_end = after.first().map_or(rest.end, |m| rest.start + m.start);
    if damaged_end > rest.start || (members.is_empty() && after.is_empty()) {
        members.push(rest.start..damaged_end);
    }
    members.extend(
        after
            .into_iter()
            .map(|m| rest.start + m.start..rest.start + m.end),
    );
    members
}

/// [`decompress_range`] of one member.
fn decompress_member(
    archive: &[u8],
    range: Option<Range<u64>>,
    opts: &DecompressOptions,
    out: &mut (dyn Write + Send),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    // --keep-going recovers what lies before the damage even where the index is lost (a cut
    // archive): the chunks whose frames check out, then the rest is named as lost.
    let (archive, lost) = match Archive::parse(archive) {
        Ok(archive) => (archive, None),
        Err(e) if opts.keep_going => {
            let (archive, why) = Archive::recover(archive, e)?;
            (archive, Some(why))
        }
        Err(e) => return Err(e),
    };
    let recovered = archive.index.original_size();
    let size = archive.original_size();
    // A range past the end is clipped to it, as dd, head and tail read what is there: a
    // fixed-size block read of a file's last block gives its bytes, a range wholly after the
    // end gives none.
    let range = range.map_or(0..size, |r| r.start.min(size)..r.end.min(size));
    let entries = &archive.index.chunks;
    let per_group = group_size(&archive.header, opts);
    let mut first = 0;
    let mut start = 0u64;
    let wanted = range.clone();
    let groups = std::iter::from_fn(|| {
        while first < entries.len() {
            let group = &entries[first..entries.len().min(first + per_group)];
            let len: u64 = group.iter().map(|e| e.len).sum();
            let batch = Batch {
                first,
                start,
                entries: group.to_vec(),
                payloads: (first..first + group.len())
                    .map(|i| archive.payload(i).map(Cow::Borrowed))
                    .collect(),
            };
            first += group.len();
            start += len;
            if start > wanted.start && batch.start < wanted.end {
                return Some(Ok(batch));
            }
        }
        None
    });
    let mut sink = Sink::new(out, range, opts.keep_going, progress);
    let decoder = GroupDecoder::new(&archive.header, opts)?;
    decoder.run(groups, &mut sink)?;
    if let Some(why) = lost {
        let what = match archive.header.original_size {
            Some(n) if n == recovered => format!("{why}; every chunk was recovered"),
            Some(_) => format!("{why}; the chunks of these bytes are missing"),
            None => format!(
                "{why}; the chunks after byte {recovered} are missing, and the original's \
                 size with them"
            ),
        };
        sink.lose(recovered..size.max(recovered), what);
    }
    sink.finish()
}

/// Decompresses an archive read front to back from `input`. A framed archive (version 3 on)
/// is decoded group by group as it arrives; an older one is read whole first (its chunk
/// lengths are only in the trailing index). Members (concatenated archives) decode one after
/// the other, to the concatenation of their inputs.
pub fn decompress_stream(
    input: &mut (dyn Read + Send),
    opts: &DecompressOptions,
    out: &mut (dyn Write + Send),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    let mut written = 0u64;
    let mut peeked: Vec<u8> = Vec::new();
    for member in 1.. {
        let mut member_input = std::io::Cursor::new(std::mem::take(&mut peeked)).chain(&mut *input);
        let base = written;
        let member_progress = |done: u64| progress(base + done);
        match decompress_member_stream(&mut member_input, opts, out, &member_progress) {
            Ok(MemberEnd::Footer(n)) => written += n,
            // Read whole to its end: nothing can follow.
            Ok(MemberEnd::Input(n)) => return Ok(written + n),
            Err(Error::Format(FormatError::BadMagic)) if member > 1 => {
                return Err(Error::malformed(format!(
                    "bytes after member {}'s footer are not another archive",
                    member - 1
                )))
            }
            Err(e) => return Err(e),
        }
        let mut next = [0u8];
        if read_full(&mut member_input, &mut next)? == 0 {
            break;
        }
        peeked.push(next[0]);
    }
    Ok(written)
}

/// How a member read from a stream ended, and the bytes it decoded to.
enum MemberEnd {
    /// At its footer: another member may follow.
    Footer(u64),
    /// At the end of the input (a member without frames is read whole).
    Input(u64),
}

fn decompress_member_stream(
    input: &mut (dyn Read + Send),
    opts: &DecompressOptions,
    out: &mut (dyn Write + Send),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<MemberEnd> {
    let (header, header_bytes) = read_header(input)?;
    if !header.framed() {
        let mut archive = header_bytes;
        input.read_to_end(&mut archive).map_err(Error::Read)?;
        return decompress(&archive, opts, out, progress).map(MemberEnd::Input);
    }
    let mut reader = StreamReader::new(input, header, header_bytes.len())?;
    let header = reader.header().clone();
    let per_group = group_size(&header, opts);
    let mut first = 0;
    let mut start = 0u64;
    let groups = std::iter::from_fn(|| {
        let mut batch = Batch {
            first,
            start,
            entries: Vec::with_capacity(per_group),
            payloads: Vec::with_capacity(per_group),
        };
        while batch.entries.len() < per_group {
            match reader.next_chunk() {
                Ok(Some((entry, payload))) => {
                    if entry.tokens > 0 && header.model.is_none() {
                        return Some(Err(Error::malformed(
                            "chunks with LLM tokens but no model section",
                        )));
                    }
                    start += entry.len;
                    batch.entries.push(entry);
                    batch.payloads.push(Ok(Cow::Owned(payload)));
                }
                Ok(None) => break,
                Err(e) => return Some(Err(e)),
            }
        }
        first += batch.entries.len();
        (!batch.entries.is_empty()).then_some(Ok(batch))
    });
    let mut sink = Sink::new(out, 0..u64::MAX, opts.keep_going, progress);
    let decoder = GroupDecoder::new(&header, opts)?;
    decoder.run(groups, &mut sink)?;
    sink.finish().map(MemberEnd::Footer)
}

/// Chunks decoded together: an LLM archive's lockstep group, or a batch of independent
/// chunks (enough to keep every thread busy, few enough to bound memory).
fn group_size(header: &Header, opts: &DecompressOptions) -> usize {
    match &header.model {
        Some(m) => m.schedule.seqs as usize,
        None => 4 * opts.threads.max(1),
    }
}

/// Consecutive chunks to decode together, with their payloads (or why a payload could not be
/// read: a damaged frame header stays with its chunk).
struct Batch<'a> {
    /// Index of the first chunk, and its offset in the original.
    first: usize,
    start: u64,
    entries: Vec<ChunkEntry>,
    payloads: Vec<Result<Cow<'a, [u8]>>>,
}

/// Where decoded chunks go: the part of each inside the wanted range is written once its CRC
/// matched; with `keep_going` a damaged chunk's part becomes zeros and is remembered.
struct Sink<'o> {
    out: &'o mut (dyn Write + Send),
    range: Range<u64>,
    keep_going: bool,
    progress: &'o (dyn Fn(u64) + Sync),
    written: u64,
    damaged: Vec<(Range<u64>, String)>,
}

impl<'o> Sink<'o> {
    fn new(
        out: &'o mut (dyn Write + Send),
        range: Range<u64>,
        keep_going: bool,
        progress: &'o (dyn Fn(u64) + Sync),
    ) -> Self {
        Self {
            out,
            range,
            keep_going,
            progress,
            written: 0,
            damaged: Vec::new(),
        }
    }

    /// Whether any byte of the chunk at `start` with `len` bytes is wanted.
    fn wants(&self, start: u64, len: u64) -> bool {
        start < self.range.end && start + len > self.range.start
    }

    fn write(
        &mut self,
        index: usize,
        start: u64,
        entry: &ChunkEntry,
        bytes: Result<Vec<u8>>,
    ) -> Result<()> {
        let from = self.range.start.saturating_sub(start) as usize;
        let to = (self.range.end - start).min(entry.len) as usize;
        let checked = bytes.and_then(|bytes| {
            let computed = crc32fast::hash(&bytes);
            if computed == entry.crc32 && bytes.len() as u64 == entry.len {
                Ok(bytes)
            } else {
                Err(Error::Format(FormatError::Crc {
                    structure: format!(
                        "chunk {index} (original bytes {start}..{})",
                        start + entry.len
                    ),
                    stored: entry.crc32,
                    computed,
                }))
            }
        });
        match checked {
            Ok(bytes) => self.out.write_all(&bytes[from..to]).map_err(Error::Write)?,
            Err(e) if self.keep_going => {
                // In pieces: the length comes from the archive, which is damaged.
                self.zeros((to - from) as u64)?;
                self.damaged
                    .push((start + from as u64..start + to as u64, e.to_string()));
            }
            Err(e) => return Err(e),
        }
        self.written += (to - from) as u64;
        (self.progress)(self.written);
        Ok(())
    }

    /// Original bytes `lost` at the end that no chunk of the archive holds any more: named,
    /// not written. Zeros would keep no later byte in place, and the size behind them comes
    /// from a header nothing else can confirm (a forged one could ask for exabytes).
    fn lose(&mut self, lost: Range<u64>, why: String) {
        let from = lost.start.max(self.range.start);
        let to = lost.end.min(self.range.end).max(from);
        self.damaged.push((from..to, why));
    }

    fn zeros(&mut self, mut left: u64) -> Result<()> {
        let zeros = [0u8; 64 << 10];
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            self.out.write_all(&zeros[..n]).map_err(Error::Write)?;
            left -= n as u64;
        }
        Ok(())
    }

    fn finish(self) -> Result<u64> {
        self.out.flush().map_err(Error::Write)?;
        if !self.damaged.is_empty() {
            return Err(Error::Damaged {
                written: self.written,
                ranges: self.damaged,
            });
        }
        Ok(self.written)
    }
}

/// Decodes groups: loads the model (checked against the archive's fingerprint) when the first
/// group with LLM tokens needs it, so archives and ranges without tokens need no model.
struct GroupDecoder<'h> {
    byte_model: ByteModelKind,
    model: Option<&'h ModelSection>,
    opts: &'h DecompressOptions,
    pool: rayon::ThreadPool,
}

impl<'h> GroupDecoder<'h> {
    fn new(header: &'h Header, opts: &'h DecompressOptions) -> Result<Self> {
        Ok(Self {
            byte_model: header.byte_model,
            model: header.model.as_ref(),
            opts,
            pool: thread_pool(opts.threads)?,
        })
    }

    fn run<'a>(
        &self,
        groups: impl Iterator<Item = Result<Batch<'a>>> + Send,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        let mut groups = groups.peekable();
        // Until a group has tokens, decode without the model.
        while let Some(group) = groups.next_if(|g| {
            g.as_ref()
                .map_or(true, |g| g.entries.iter().all(|e| e.tokens == 0))
        }) {
            let mut group = group?;
            let needed = needed(&group, sink);
            let decoded = self
                .pool
                .install(|| self.decode(&mut group, &needed, &Vocabulary::empty(), None))?;
            write(group, &needed, decoded, sink)?;
        }
        if groups.peek().is_none() {
            return Ok(());
        }
        let m = self
            .model
            .ok_or_else(|| Error::Internal("LLM chunks without a model section".into()))?;
        let workers = load_model(m, self.opts)?;
        let vocab = self.pool.install(|| Vocabulary::new(workers.tokenizer()));
        let mut runners = workers.runners(m.schedule);
        loop {
            // One group per worker at a time, written in order. A group that cannot be read
            // (a truncated stream) ends the run after the groups before it are written.
            let mut batch = Vec::with_capacity(runners.len());
            let mut unreadable = None;
            while batch.len() < runners.len() {
                match groups.next() {
                    Some(Ok(group)) => batch.push(group),
                    Some(Err(e)) => {
                        unreadable = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            if batch.is_empty() {
                return unreadable.map_or(Ok(()), Err);
            }
            let jobs: Vec<(Batch<'a>, Vec<bool>)> = batch
                .into_iter()
                .map(|group| {
                    let needed = needed(&group, sink);
                    (group, needed)
                })
                .collect();
            // Within a batch, progress moves with the model's steps: a lone chunk of a slow
            // model takes hours.
            // Counted as the sink counts: only the bytes inside the wanted range.
            let range = sink.range.clone();
            let wanted: Vec<u64> = jobs
                .iter()
                .map(|(group, needed)| {
                    let chunks = group.entries.iter().zip(starts(group)).zip(needed);
                    chunks
                        .filter(|(_, &n)| n)
                        .map(|((e, start), _)| {
                            let end = (start + e.len).min(range.end);
                            end.saturating_sub(start.max(range.start))
                        })
                        .sum()
                })
                .collect();
            let batch = BatchProgress::new(sink.written, wanted, sink.progress);
            let jobs: Vec<(usize, (Batch<'a>, Vec<bool>))> = jobs.into_iter().enumerate().collect();
            let decoded = runners.run(jobs, &self.pool, |(k, (mut group, needed)), runner| {
                let on_step = |fraction: f64| batch.set(k, fraction);
                let decoded = self.decode(&mut group, &needed, &vocab, Some((runner, &on_step)));
                Ok((group, needed, decoded))
            })?;
            for (group, needed, decoded) in decoded {
                write(group, &needed, decoded?, sink)?;
            }
            if let Some(e) = unreadable {
                return Err(e);
            }
        }
    }

    /// Decodes one group's chunks (those with tokens, and the others where `needed`); the
    /// payloads are used up.
    fn decode(
        &self,
        batch: &mut Batch<'_>,
        needed: &[bool],
        vocab: &Vocabulary,
        runner: Option<(&mut RunnerSlot<'_>, &dyn Fn(f64))>,
    ) -> Result<Vec<ChunkOutcome>> {
        decode_group(
            batch.first,
            &batch.entries,
            std::mem::take(&mut batch.payloads),
            needed,
            vocab,
            runner,
            Settings {
                byte_model: self.byte_model,
                token_model: self.model.map_or(TokenModelKind::Bare, |m| m.token_model),
                keep_going: self.opts.keep_going,
            },
        )
    }
}

/// Where each chunk of a group starts in the original.
fn starts(batch: &Batch<'_>) -> Vec<u64> {
    let mut at = batch.start;
    batch
        .entries
        .iter()
        .map(|e| {
            let start = at;
            at += e.len;
            start
        })
        .collect()
}

/// Which chunks of a group the sink wants.
fn needed(batch: &Batch<'_>, sink: &Sink<'_>) -> Vec<bool> {
    batch
        .entries
        .iter()
        .zip(starts(batch))
        .map(|(e, s)| sink.wants(s, e.len))
        .collect()
}

/// Writes a decoded group's wanted chunks.
fn write(
    batch: Batch<'_>,
    needed: &[bool],
    decoded: Vec<ChunkOutcome>,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let starts = starts(&batch);
    for (i, outcome) in decoded.into_iter().enumerate() {
        let bytes = match outcome {
            ChunkOutcome::NotNeeded => continue,
            _ if !needed[i] => continue,
            ChunkOutcome::Decoded(bytes) => Ok(bytes),
            ChunkOutcome::Failed(e) => Err(e),
        };
        sink.write(batch.first + i, starts[i], &batch.entries[i], bytes)?;
    }
    Ok(())
}

/// The archive's model on the engine its numerics name, checked against the numerics
/// fingerprint (llama.cpp's) and the vocabulary size. The portable engine's numerics are the
/// same on every machine.
fn load_model(m: &ModelSection, opts: &DecompressOptions) -> Result<Workers> {
    let (engine, numerics) = Engine::for_numerics(&m.numerics)?;
    engine.check_available(Some(&m.numerics))?;
    let file = || models::for_archive(&m.name, &m.sha256, opts.model_path.as_deref(), opts.fetch);
    let workers = if engine == Engine::Portable {
        let placement = Placement::Cpu {
            workers: opts.workers,
        };
        Workers::load(&file()?.path, engine, numerics, &placement, opts.threads)?
    } else {
        Workers::load(
            &file()?.path,
            engine,
            numerics,
            &llama_placement(m, opts)?,
            opts.threads,
        )?
    };
    if workers.n_vocab() != m.n_vocab as usize {
        return Err(Error::malformed(format!(
            "archive says the model has {} tokens, the model has {}",
            m.n_vocab,
            workers.n_vocab()
        )));
    }
    Ok(workers)
}

/// Where llama.cpp computes the archive's numerics (refused unless forced where it cannot).
fn llama_placement(m: &ModelSection, opts: &DecompressOptions) -> Result<Placement> {
    let mut placement = Placement::resolve(&opts.device, opts.workers)?;
    // `auto` decodes where the archive's numerics are computed: an archive made on the CPU
    // decodes on the CPU of a GPU build too.
    if opts.device == DeviceChoice::Auto && placement.numerics_fingerprint() != m.numerics {
        let cpu = Placement::Cpu {
            workers: opts.workers,
        };
        if cpu.numerics_fingerprint() == m.numerics {
            placement = cpu;
        }
    }
    let here = placement.numerics_fingerprint();
    if m.numerics != here && !opts.force_numerics {
        return Err(Error::NumericsMismatch {
            archive: m.numerics.clone(),
            here,
        });
    }
    Ok(placement)
}

/// Decodes a chunk that holds no LLM tokens: stored, zstd, or byte model only.
fn decode_without_llm(
    index: usize,
    entry: &ChunkEntry,
    payload: &[u8],
    byte_model: ByteModelKind,
) -> Result<Vec<u8>> {
    match entry.kind {
        ChunkKind::Stored => Ok(payload.to_vec()),
        ChunkKind::Zstd => decode_zstd(payload, entry.len, index),
        ChunkKind::Modelled => chunk_decoder(
            index,
            entry,
            payload,
            &Vocabulary::empty(),
            byte_model,
            TokenModelKind::Bare,
        )?
        .finish(),
    }
}

/// A modelled chunk's decoder, its segment table checked against the index.
fn chunk_decoder<'a>(
    index: usize,
    entry: &ChunkEntry,
    payload: &'a [u8],
    vocab: &'a Vocabulary<'a>,
    byte_model: ByteModelKind,
    token_model: TokenModelKind,
) -> Result<ChunkDecoder<'a>> {
    let (segments, used) =
        container::read_segment_table(payload, index, entry.len, entry.tokens, entry.raw_bytes)?;
    ChunkDecoder::new(
        index,
        vocab,
        segments,
        &payload[used..],
        entry.len as usize,
        byte_model,
        token_model,
    )
}

/// A zstd frame that must hold exactly `len` bytes. The output grows only as the frame
/// delivers, so a forged length cannot make us allocate it up front.
fn decode_zstd(payload: &[u8], len: u64, index: usize) -> Result<Vec<u8>> {
    let corrupt = |why: String| Error::malformed(format!("chunk {index}: zstd: {why}"));
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(payload)
        .map_err(|e| corrupt(e.to_string()))?
        .take(len.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| corrupt(e.to_string()))?;
    if out.len() as u64 != len {
        return Err(corrupt(format!(
            "frame holds {} bytes, index says {len}",
            out.len()
        )));
    }
    Ok(out)
}

/// What decoding a group did for one of its chunks.
enum ChunkOutcome {
    /// Outside the wanted range and not needed by the group's schedule: not decoded.
    NotNeeded,
    /// Its bytes, to be checked against the chunk's CRC32 before any is written.
    Decoded(Vec<u8>),
    /// Why it could not be decoded.
    Failed(Error),
}

/// How a group's chunks are decoded.
#[derive(Clone, Copy)]
struct Settings {
    byte_model: ByteModelKind,
    token_model: TokenModelKind,
    /// Run the group to its end past a damaged chunk, so the others still decode.
    keep_going: bool,
}

/// A chunk in a lockstep group being decoded. A chunk whose stream turns out damaged keeps
/// its place in the schedule with a stand-in token, so the group's other chunks still see the
/// batches the encoder made (each sequence's logits depend on its own tokens only).
enum GroupMember<'a> {
    Decoding(Box<ChunkDecoder<'a>>),
    Failed(Error),
    /// No tokens: decoded on its own, outside the run.
    Outside,
}

impl ChunkDriver for GroupMember<'_> {
    fn next_token(&mut self, logits: &[f32]) -> Result<u32> {
        match self {
            GroupMember::Decoding(d) => match d.next_token(logits) {
                Ok(token) => Ok(token),
                Err(e) => {
                    *self = GroupMember::Failed(e);
                    Ok(0)
                }
            },
            GroupMember::Failed(_) => Ok(0),
            GroupMember::Outside => Err(Error::Internal(
                "LLM step for a chunk without tokens".into(),
            )),
        }
    }
}

/// Decodes one group: runs the LLM schedule the encoder ran over the chunks with tokens (their
/// decoders, byte models included, live for the whole run; the schedule needs all of them);
/// the other chunks are decoded on their own, in parallel, where `needed`. A damaged chunk
/// stops the group unless `keep_going`; either way it is reported in its own slot.
fn decode_group(
    first: usize,
    entries: &[ChunkEntry],
    payloads: Vec<Result<Cow<'_, [u8]>>>,
    needed: &[bool],
    vocab: &Vocabulary,
    runner: Option<(&mut RunnerSlot<'_>, &dyn Fn(f64))>,
    settings: Settings,
) -> Result<Vec<ChunkOutcome>> {
    let Settings {
        byte_model,
        token_model,
        keep_going,
    } = settings;
    // Payloads that could not be read (a damaged frame header) fail their own chunk only.
    let mut readable = Vec::with_capacity(payloads.len());
    let mut unreadable = Vec::with_capacity(payloads.len());
    for p in payloads {
        match p {
            Ok(p) => {
                readable.push(Some(p));
                unreadable.push(None);
            }
            Err(e) => {
                readable.push(None);
                unreadable.push(Some(e));
            }
        }
    }
    let payloads = readable;
    let mut members: Vec<GroupMember<'_>> = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            if entry.tokens == 0 {
                return GroupMember::Outside;
            }
            match (&payloads[i], unreadable[i].take()) {
                (Some(p), _) => {
                    match chunk_decoder(first + i, entry, p, vocab, byte_model, token_model) {
                        Ok(d) => GroupMember::Decoding(Box::new(d)),
                        Err(e) => GroupMember::Failed(e),
                    }
                }
                (None, Some(e)) => GroupMember::Failed(e),
                (None, None) => GroupMember::Failed(Error::Internal("payload missing".into())),
            }
        })
        .collect();
    let n_tokens: Vec<u64> = entries.iter().map(|e| e.tokens).collect();
    if n_tokens.iter().any(|&n| n > 0) {
        let (runner, progress) =
            runner.ok_or_else(|| Error::Internal("LLM chunks without a model".into()))?;
        let runner = runner.get()?;
        let steps = n_tokens.iter().copied().max().unwrap_or(1).max(1);
        runner.run(&mut members, &n_tokens, |step, members| {
            progress(step as f64 / steps as f64);
            let failed = members.iter().any(|m| matches!(m, GroupMember::Failed(_)));
            if failed && !keep_going {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
    }
    Ok(members
        .into_par_iter()
        .zip(unreadable)
        .enumerate()
        .map(|(i, (member, unreadable))| {
            let decoded = match member {
                GroupMember::Decoding(d) => d.finish(),
                GroupMember::Failed(e) => Err(e),
                GroupMember::Outside if !needed[i] => return ChunkOutcome::NotNeeded,
                GroupMember::Outside => match (&payloads[i], unreadable) {
                    (Some(p), _) => decode_without_llm(first + i, &entries[i], p, byte_model),
                    (None, Some(e)) => Err(e),
                    (None, None) => Err(Error::Internal("payload missing".into())),
                },
            };
            decoded.map_or_else(ChunkOutcome::Failed, ChunkOutcome::Decoded)
        })
        .collect())
}
