//! Whole-archive compression and decompression: plans chunks, segments them, runs groups of
//! chunks through the LLM in lockstep, keeps for each chunk the smallest of that, the byte
//! model alone, zstd and storing, and assembles or checks the container.

use std::io::{Read, Write};
use std::ops::{ControlFlow, Range};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::chunk::{plan_chunks, Schedule};
use crate::codec::encode::{ChunkEncoder, CHECKPOINT};
use crate::codec::{self, decode::ChunkDecoder};
use crate::container::header::{ByteModelKind, VERSION};
use crate::container::{Archive, ChunkEntry, ChunkKind, Header, Index, ModelSection};
use crate::error::{Error, Result};
use crate::models::{self, FetchPolicy};
use crate::predict::llama::{self, ChunkDriver, LanguageModel};
use crate::token::{segment_chunk, NoTokenizer, Segment, Tokenizer, Vocabulary};

/// Target chunk size. Every chunk starts cold (no context), which costs bits: on alice29.txt
/// (152 KB, default model, 2 cores) 16 KiB chunks gave 1.156 bits per byte at 0.31 KB/s and
/// one chunk 1.119 at 0.21 KB/s. Ratio comes first, so chunks are large; files of several MB
/// still fill a group.
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;
/// KV window per chunk and its slide (the bare model scores 1.11–1.13 bits per byte on
/// alice29.txt with 512–1024 tokens of context); 4 attention sinks stay at the front.
pub const DEFAULT_WINDOW: u32 = 1024;
pub const DEFAULT_SLIDE: u32 = 256;
pub const DEFAULT_SINKS: u32 = 4;
/// Chunks per lockstep group: one `decode` call carries one token of each.
pub const DEFAULT_SEQS: u32 = 16;
/// Chunk size in fast mode (byte model only): chunks are coded in parallel, one per core.
/// On enwik6 (2 cores): 1 MiB chunks (one chunk) 1.885 bits per byte at 0.78 MB/s; 512 KiB
/// chunks 1.964 at 1.47 MB/s; 256 KiB 2.057 at 1.6 MB/s. Fast mode is for speed: 512 KiB.
pub const DEFAULT_FAST_CHUNK_SIZE: usize = 512 * 1024;
/// Largest byte-model tables (2^18 slots: 128 MiB for a chunk of 1 MiB of raw bytes).
pub const DEFAULT_MAX_TABLE_BITS: u8 = 18;
/// zstd level of the per-chunk fallback: the strongest usual level where the LLM sets the pace;
/// a cheap one in fast mode, where the byte model nearly always wins and speed counts.
const ZSTD_LEVEL: i32 = 19;
const ZSTD_LEVEL_FAST: i32 = 3;

/// What `compress` needs besides the data.
#[derive(Clone, Debug)]
pub struct CompressOptions {
    /// Manifest name or GGUF path.
    pub model: String,
    /// No LLM: every chunk is coded by the byte model (or zstd, or stored); needs no model file.
    pub fast: bool,
    /// Keep the LLM coding of every chunk with text even where the byte model, zstd or storing
    /// would be smaller: for measuring the model itself and for tests with a toy model.
    pub always_llm: bool,
    pub chunk_size: usize,
    pub window: u32,
    pub slide: u32,
    pub sinks: u32,
    pub seqs: u32,
    pub threads: usize,
    pub fetch: FetchPolicy,
}

impl Default for CompressOptions {
    fn default() -> Self {
        Self {
            model: models::DEFAULT_MODEL.into(),
            fast: false,
            always_llm: false,
            chunk_size: DEFAULT_CHUNK_SIZE,
            window: DEFAULT_WINDOW,
            slide: DEFAULT_SLIDE,
            sinks: DEFAULT_SINKS,
            seqs: DEFAULT_SEQS,
            threads: default_threads(),
            fetch: FetchPolicy::Auto,
        }
    }
}

/// What `decompress` needs besides the archive.
#[derive(Clone, Debug)]
pub struct DecompressOptions {
    /// Use this GGUF file instead of looking the archive's model up by name.
    pub model_path: Option<std::path::PathBuf>,
    /// Decode even when the numerics fingerprint differs (the CRCs still guard the result).
    pub force_numerics: bool,
    /// Go on past damaged chunks: write zeros in their place and report them at the end as
    /// [`Error::Damaged`], after every good chunk has been written.
    pub keep_going: bool,
    pub threads: usize,
    pub fetch: FetchPolicy,
}

impl Default for DecompressOptions {
    fn default() -> Self {
        Self {
            model_path: None,
            force_numerics: false,
            keep_going: false,
            threads: default_threads(),
            fetch: FetchPolicy::Auto,
        }
    }
}

pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Compresses `data` into a complete archive. `progress` receives original bytes done so far.
pub fn compress(
    data: &[u8],
    opts: &CompressOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<u8>> {
    let chunks = plan_chunks(data, opts.chunk_size);
    let byte_model = ByteModelKind::ContextMixing {
        max_table_bits: DEFAULT_MAX_TABLE_BITS,
    };
    let mut header = Header {
        version: VERSION,
        original_size: data.len() as u64,
        chunk_target: opts.chunk_size as u64,
        byte_model,
        model: None,
    };
    if chunks.is_empty() {
        return Ok(assemble(&header, &[], &Index::default()));
    }
    if opts.fast {
        let pool = thread_pool(opts.threads)?;
        let done = AtomicU64::new(0);
        let coded: Vec<(ChunkEntry, Vec<u8>)> = pool.install(|| {
            chunks
                .par_iter()
                .map(|r| {
                    let coded = code_without_llm(&data[r.clone()], byte_model, ZSTD_LEVEL_FAST)?;
                    progress(done.fetch_add(r.len() as u64, Ordering::Relaxed) + r.len() as u64);
                    Ok((coded.entry, coded.payload))
                })
                .collect::<Result<_>>()
        })?;
        let (entries, payloads): (Vec<_>, Vec<_>) = coded.into_iter().unzip();
        return Ok(assemble(&header, &payloads, &Index { chunks: entries }));
    }
    let model_file = models::resolve(&opts.model, opts.fetch)?;
    let lm = LanguageModel::load(&model_file.path)?;
    let schedule = Schedule {
        window: opts.window,
        slide: opts.slide,
        sinks: opts.sinks,
        seqs: opts.seqs,
        start_token: model_file.start_token,
    };
    schedule
        .validate(Some(lm.n_vocab()))
        .map_err(|e| Error::Usage(e.to_string()))?;
    let pool = thread_pool(opts.threads)?;
    pool.install(|| {
        let vocab = Vocabulary::new(&lm);
        let segments: Vec<Vec<Segment>> = chunks
            .par_iter()
            .map(|r| segment_chunk(&vocab, &data[r.clone()]))
            .collect();
        let total_tokens: u64 = segments.iter().map(|s| token_count(s)).sum();
        if total_tokens > 0 {
            header.model = Some(ModelSection {
                name: model_file.name.clone(),
                size: model_file.size,
                sha256: model_file.sha256,
                numerics: lm.numerics_fingerprint(),
                n_vocab: lm.n_vocab() as u32,
                schedule,
            });
        }
        let mut runner = if total_tokens > 0 {
            Some(lm.group_runner(&schedule, opts.threads)?)
        } else {
            None
        };
        let mut entries = Vec::with_capacity(chunks.len());
        let mut payloads: Vec<Vec<u8>> = Vec::with_capacity(chunks.len());
        let mut done_bytes = 0u64;
        for (g, group) in chunks.chunks(schedule.seqs as usize).enumerate() {
            let first = g * schedule.seqs as usize;
            let group_segments = &segments[first..first + group.len()];
            let coded = encode_group(
                data,
                group,
                group_segments,
                byte_model,
                opts.always_llm,
                runner.as_mut(),
                &|frac| {
                    let group_bytes: u64 = group.iter().map(|r| r.len() as u64).sum();
                    progress(done_bytes + (group_bytes as f64 * frac) as u64);
                },
            )?;
            for (entry, payload) in coded {
                done_bytes += entry.len;
                entries.push(entry);
                payloads.push(payload);
            }
            progress(done_bytes);
        }
        if entries.iter().all(|e| e.tokens == 0) {
            // No chunk kept its tokens: decoding needs no model.
            header.model = None;
        }
        Ok(assemble(&header, &payloads, &Index { chunks: entries }))
    })
}

fn token_count(segments: &[Segment]) -> u64 {
    segments
        .iter()
        .map(|s| match s {
            Segment::Text { tokens, .. } => tokens.len() as u64,
            Segment::Raw { .. } => 0,
        })
        .sum()
}

/// A chunk's best coding without the LLM, and the byte model's cost curve over it.
struct WithoutLlm {
    entry: ChunkEntry,
    payload: Vec<u8>,
    /// Approximate bits the byte model spent on the first `(k + 1) * CHECKPOINT` bytes.
    byte_model_cost: Vec<f64>,
}

impl WithoutLlm {
    /// The byte model's approximate cost of bytes `from..to`, at checkpoint resolution.
    fn byte_model_cost(&self, from: usize, to: usize) -> Option<f64> {
        let at = |bytes: usize| match bytes / CHECKPOINT {
            0 => Some(0.0),
            k => self.byte_model_cost.get(k - 1).copied(),
        };
        Some(at(to)? - at(from)?)
    }
}

/// The smallest coding of a chunk without the LLM: the byte model over all of it, a zstd
/// frame, or the bytes as they are (which bounds every chunk at its size plus its index entry).
fn code_without_llm(
    bytes: &[u8],
    byte_model: ByteModelKind,
    zstd_level: i32,
) -> Result<WithoutLlm> {
    let mut best = (
        ChunkEntry {
            kind: ChunkKind::Stored,
            len: bytes.len() as u64,
            tokens: 0,
            raw_bytes: 0,
            payload_len: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        },
        None,
    );
    let segments = [Segment::Raw { len: bytes.len() }];
    let mut modelled = Vec::new();
    codec::write_segment_table(&segments, &mut modelled);
    let (stream, byte_model_cost) = ChunkEncoder::new(bytes, &segments, byte_model).finish()?;
    modelled.extend(stream);
    let zstd = zstd::bulk::compress(bytes, zstd_level)
        .map_err(|e| Error::Internal(format!("zstd: {e}")))?;
    for (kind, payload) in [(ChunkKind::Modelled, modelled), (ChunkKind::Zstd, zstd)] {
        if (payload.len() as u64) < best.0.payload_len {
            best.0.kind = kind;
            best.0.payload_len = payload.len() as u64;
            best.0.raw_bytes = if kind == ChunkKind::Modelled {
                bytes.len() as u64
            } else {
                0
            };
            best.1 = Some(payload);
        }
    }
    Ok(WithoutLlm {
        entry: best.0,
        payload: best.1.unwrap_or_else(|| bytes.to_vec()),
        byte_model_cost,
    })
}

/// How often (in lockstep steps) the encoder compares the LLM with the byte model alone, and
/// by how much the byte model must be cheaper on the bytes since the last comparison for the
/// chunk to leave the LLM. The LLM starts strong (the byte model starts cold) and the byte
/// model gains as it learns the file, so a chunk the LLM loses on a stretch is one it tends to
/// lose in the end; leaving then saves the rest of its run (measured, 2 cores: the whole of
/// paper-100k.pdf left after 6,144 steps, 92 s instead of about 6 minutes; html, where the
/// byte model overtakes after 30 KB, after 16,384 steps).
const COMPARE_EVERY: u64 = 2048;
const LEAVE_MARGIN: f64 = 0.95;

/// Codes one group. A chunk whose LLM coding does not beat its best coding without the LLM
/// takes that instead, and the group is run again without its tokens, so the decoder's
/// schedule is what was coded. Chunks on which the byte model is clearly winning leave during
/// the run, which stops it and starts it again without them.
fn encode_group(
    data: &[u8],
    group: &[Range<usize>],
    segments: &[Vec<Segment>],
    byte_model: ByteModelKind,
    always_llm: bool,
    mut runner: Option<&mut llama::GroupRunner<'_>>,
    progress: &dyn Fn(f64),
) -> Result<Vec<(ChunkEntry, Vec<u8>)>> {
    let without_llm: Vec<WithoutLlm> = group
        .par_iter()
        .map(|r| code_without_llm(&data[r.clone()], byte_model, ZSTD_LEVEL))
        .collect::<Result<_>>()?;
    let mut llm_off = vec![false; group.len()];
    loop {
        let n_tokens: Vec<u64> = (0..group.len())
            .map(|i| {
                if llm_off[i] {
                    0
                } else {
                    token_count(&segments[i])
                }
            })
            .collect();
        let mut encoders: Vec<Option<ChunkEncoder>> = (0..group.len())
            .map(|i| {
                (n_tokens[i] > 0)
                    .then(|| ChunkEncoder::new(&data[group[i].clone()], &segments[i], byte_model))
            })
            .collect();
        if n_tokens.iter().any(|&n| n > 0) {
            let runner = runner
                .as_deref_mut()
                .ok_or_else(|| Error::Internal("no LLM runner".into()))?;
            let steps = n_tokens.iter().copied().max().unwrap_or(1).max(1);
            let mut last_compared = vec![(0usize, 0f64); group.len()];
            let mut leaving = Vec::new();
            let completed = runner.run(&mut encoders, &n_tokens, |step, encoders| {
                progress(step as f64 / steps as f64);
                if always_llm || step % COMPARE_EVERY != 0 {
                    return ControlFlow::Continue(());
                }
                for (i, e) in encoders.iter().enumerate() {
                    let Some(e) = e.as_ref().filter(|_| step < n_tokens[i]) else {
                        continue;
                    };
                    let (done, llm_bits) = e.progress();
                    let (from, llm_before) = last_compared[i];
                    last_compared[i] = (done, llm_bits);
                    let Some(byte_model_bits) = without_llm[i].byte_model_cost(from, done) else {
                        continue;
                    };
                    if byte_model_bits < LEAVE_MARGIN * (llm_bits - llm_before) {
                        leaving.push(i);
                    }
                }
                if leaving.is_empty() {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            })?;
            if !completed {
                for i in leaving {
                    llm_off[i] = true;
                }
                continue;
            }
        }
        let streams: Vec<Option<Vec<u8>>> = encoders
            .into_par_iter()
            .map(|e| e.map(|e| e.finish().map(|(stream, _)| stream)).transpose())
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(group.len());
        let mut rerun = false;
        for (i, stream) in streams.into_iter().enumerate() {
            let fallback = &without_llm[i];
            let Some(stream) = stream else {
                out.push((fallback.entry.clone(), fallback.payload.clone()));
                continue;
            };
            let mut payload = Vec::with_capacity(stream.len() + 16);
            codec::write_segment_table(&segments[i], &mut payload);
            payload.extend_from_slice(&stream);
            if !always_llm && payload.len() as u64 >= fallback.entry.payload_len {
                llm_off[i] = true;
                rerun = true;
                out.push((fallback.entry.clone(), fallback.payload.clone()));
                continue;
            }
            let raw_bytes = segments[i]
                .iter()
                .filter(|s| matches!(s, Segment::Raw { .. }))
                .map(|s| s.len() as u64)
                .sum();
            out.push((
                ChunkEntry {
                    kind: ChunkKind::Modelled,
                    len: group[i].len() as u64,
                    tokens: n_tokens[i],
                    raw_bytes,
                    payload_len: payload.len() as u64,
                    crc32: fallback.entry.crc32,
                },
                payload,
            ));
        }
        if !rerun {
            return Ok(out);
        }
    }
}

fn assemble(header: &Header, payloads: &[Vec<u8>], index: &Index) -> Vec<u8> {
    let mut out = header.to_bytes();
    for p in payloads {
        out.extend_from_slice(p);
    }
    let index_offset = out.len() as u64;
    out.extend(index.to_bytes(index_offset));
    out
}

impl<D: ChunkDriver> ChunkDriver for Option<D> {
    fn next_token(&mut self, logits: &[f32]) -> Result<u32> {
        match self {
            Some(d) => d.next_token(logits),
            None => Err(Error::Internal(
                "LLM step for a chunk without tokens".into(),
            )),
        }
    }
}

/// Decompresses `archive`, writing the original bytes to `out` chunk by chunk after each
/// chunk's CRC32 has been checked. `progress` receives original bytes done so far.
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
/// from has its CRC32 checked. A range past the end is a usage error.
pub fn decompress_range(
    archive: &[u8],
    range: Option<Range<u64>>,
    opts: &DecompressOptions,
    out: &mut (dyn Write + Send),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    let archive = Archive::parse(archive)?;
    let entries = &archive.index.chunks;
    let size = archive.header.original_size;
    let range = range.unwrap_or(0..size);
    if range.start > range.end || range.end > size {
        return Err(Error::Usage(format!(
            "range {}..{} is not within the original's {size} bytes",
            range.start, range.end
        )));
    }
    let mut starts = Vec::with_capacity(entries.len());
    let mut at = 0u64;
    for e in entries {
        starts.push(at);
        at += e.len;
    }
    let needed: Vec<bool> = entries
        .iter()
        .zip(&starts)
        .map(|(e, &s)| s < range.end && s + e.len > range.start)
        .collect();
    let pool = thread_pool(opts.threads)?;
    pool.install(|| {
        let mut written = 0u64;
        let mut damaged: Vec<(Range<u64>, String)> = Vec::new();
        let mut write_group = |first: usize, decoded: Vec<Option<Result<Vec<u8>>>>| -> Result<()> {
            for (i, bytes) in decoded.into_iter().enumerate() {
                let index = first + i;
                let Some(bytes) = bytes.filter(|_| needed[index]) else {
                    continue;
                };
                let entry = &entries[index];
                let start = starts[index];
                let from = range.start.saturating_sub(start) as usize;
                let to = (range.end - start).min(entry.len) as usize;
                let checked = bytes.and_then(|bytes| {
                    let computed = crc32fast::hash(&bytes);
                    if computed == entry.crc32 {
                        Ok(bytes)
                    } else {
                        Err(Error::CrcMismatch {
                            what: format!(
                                "chunk {index} (original bytes {start}..{})",
                                start + entry.len
                            ),
                            stored: entry.crc32,
                            computed,
                        })
                    }
                });
                match checked {
                    Ok(bytes) => out.write_all(&bytes[from..to])?,
                    Err(e) if opts.keep_going => {
                        out.write_all(&vec![0; to - from])?;
                        damaged.push((start + from as u64..start + to as u64, e.to_string()));
                    }
                    Err(e) => return Err(e),
                }
                written += (to - from) as u64;
                progress(written);
            }
            Ok(())
        };
        let byte_model = archive.header.byte_model;
        match &archive.header.model {
            Some(m) => {
                let seqs = m.schedule.seqs as usize;
                let wanted = |g: usize, group: &[ChunkEntry]| {
                    needed[g * seqs..g * seqs + group.len()].iter().any(|&n| n)
                };
                // A range whose groups hold no tokens decodes without the model.
                let lm = entries
                    .chunks(seqs)
                    .enumerate()
                    .any(|(g, group)| wanted(g, group) && group.iter().any(|e| e.tokens > 0))
                    .then(|| load_model(m, opts))
                    .transpose()?;
                let vocab = lm.as_ref().map(Vocabulary::new);
                let mut runner = lm
                    .as_ref()
                    .map(|lm| lm.group_runner(&m.schedule, opts.threads))
                    .transpose()?;
                for (g, group) in entries.chunks(seqs).enumerate() {
                    if !wanted(g, group) {
                        continue;
                    }
                    let first = g * seqs;
                    let keep_going = opts.keep_going;
                    let decoded = match &vocab {
                        Some(v) => decode_group(
                            &archive,
                            first,
                            group,
                            &needed,
                            keep_going,
                            v,
                            runner.as_mut(),
                        )?,
                        None => decode_group(
                            &archive,
                            first,
                            group,
                            &needed,
                            keep_going,
                            &NoTokenizer,
                            None,
                        )?,
                    };
                    write_group(first, decoded)?;
                }
            }
            None => {
                // No model section: chunks are independent; a batch at a time bounds memory.
                let batch = 4 * opts.threads.max(1);
                for (b, group) in entries.chunks(batch).enumerate() {
                    let decoded = (0..group.len())
                        .into_par_iter()
                        .map(|i| {
                            let index = b * batch + i;
                            needed[index].then(|| decode_without_llm(&archive, index, byte_model))
                        })
                        .collect::<Vec<_>>();
                    write_group(b * batch, decoded)?;
                }
            }
        }
        out.flush()?;
        if !damaged.is_empty() {
            return Err(Error::Damaged {
                written,
                ranges: damaged,
            });
        }
        Ok(written)
    })
}

/// The archive's model, checked against its numerics fingerprint and vocabulary size.
fn load_model(m: &ModelSection, opts: &DecompressOptions) -> Result<LanguageModel> {
    let here = llama::numerics_fingerprint();
    if m.numerics != here && !opts.force_numerics {
        return Err(Error::NumericsMismatch {
            archive: m.numerics.clone(),
            here,
        });
    }
    let file = models::for_archive(&m.name, &m.sha256, opts.model_path.as_deref(), opts.fetch)?;
    let lm = LanguageModel::load(&file.path)?;
    if lm.n_vocab() != m.n_vocab as usize {
        return Err(Error::Corrupt(format!(
            "archive says the model has {} tokens, the model has {}",
            m.n_vocab,
            lm.n_vocab()
        )));
    }
    Ok(lm)
}

/// Decodes a chunk that holds no LLM tokens: stored, zstd, or byte model only.
fn decode_without_llm(
    archive: &Archive<'_>,
    index: usize,
    byte_model: ByteModelKind,
) -> Result<Vec<u8>> {
    let entry = &archive.index.chunks[index];
    let payload = archive.payload(index);
    match entry.kind {
        ChunkKind::Stored => Ok(payload.to_vec()),
        ChunkKind::Zstd => decode_zstd(payload, entry.len, index),
        ChunkKind::Modelled => chunk_decoder(archive, index, &NoTokenizer, byte_model)?.finish(),
    }
}

/// A modelled chunk's decoder, its segment table checked against the index.
fn chunk_decoder<'a, T: Tokenizer>(
    archive: &Archive<'a>,
    index: usize,
    tokenizer: &'a T,
    byte_model: ByteModelKind,
) -> Result<ChunkDecoder<'a, T>> {
    let entry = &archive.index.chunks[index];
    let payload = archive.payload(index);
    let (segments, used) =
        codec::read_segment_table(payload, index, entry.len, entry.tokens, entry.raw_bytes)?;
    ChunkDecoder::new(
        index,
        tokenizer,
        segments,
        &payload[used..],
        entry.len as usize,
        byte_model,
    )
}

/// A zstd frame that must hold exactly `len` bytes. The output grows only as the frame
/// delivers, so a forged length cannot make us allocate it up front.
fn decode_zstd(payload: &[u8], len: u64, index: usize) -> Result<Vec<u8>> {
    let corrupt = |why: String| Error::Corrupt(format!("chunk {index}: zstd: {why}"));
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

/// A chunk in a lockstep group being decoded. A chunk whose stream turns out damaged keeps
/// its place in the schedule with a stand-in token, so the group's other chunks still see the
/// batches the encoder made (each sequence's logits depend on its own tokens only).
enum GroupMember<'a, T: Tokenizer> {
    Decoding(Box<ChunkDecoder<'a, T>>),
    Failed(Error),
    /// No tokens: decoded on its own, outside the run.
    Outside,
}

impl<T: Tokenizer> ChunkDriver for GroupMember<'_, T> {
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
fn decode_group<T: Tokenizer>(
    archive: &Archive<'_>,
    first: usize,
    group: &[ChunkEntry],
    needed: &[bool],
    keep_going: bool,
    tokenizer: &T,
    runner: Option<&mut llama::GroupRunner<'_>>,
) -> Result<Vec<Option<Result<Vec<u8>>>>> {
    let byte_model = archive.header.byte_model;
    let mut members: Vec<GroupMember<'_, T>> = group
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            if entry.tokens == 0 {
                return GroupMember::Outside;
            }
            match chunk_decoder(archive, first + i, tokenizer, byte_model) {
                Ok(d) => GroupMember::Decoding(Box::new(d)),
                Err(e) => GroupMember::Failed(e),
            }
        })
        .collect();
    let n_tokens: Vec<u64> = group.iter().map(|e| e.tokens).collect();
    if n_tokens.iter().any(|&n| n > 0) {
        let runner = runner.ok_or_else(|| Error::Internal("LLM chunks without a model".into()))?;
        runner.run(&mut members, &n_tokens, |_, members| {
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
        .enumerate()
        .map(|(i, member)| match member {
            GroupMember::Decoding(d) => Some(d.finish()),
            GroupMember::Failed(e) => Some(Err(e)),
            GroupMember::Outside => {
                needed[first + i].then(|| decode_without_llm(archive, first + i, byte_model))
            }
        })
        .collect())
}

fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))
}
