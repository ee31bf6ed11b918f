//! Compression: reads the input a group of chunks at a time, segments and tokenizes each
//! chunk, runs the group through the LLM in lockstep, keeps for each chunk the smallest of
//! that, the byte model alone, zstd and storing, and writes each chunk's frame as soon as its
//! group is done; the index and footer follow the last chunk. Memory is bounded by the group,
//! not the input.

use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::workers::{Engine, RunnerSlot, Workers};
use super::{
    thread_pool, BatchProgress, CompressOptions, DEFAULT_MAX_TABLE_BITS, ZSTD_LEVEL,
    ZSTD_LEVEL_FAST,
};
use crate::chunk::{self, ChunkReader};
use crate::codec::encode::{ChunkEncoder, CHECKPOINT};
use crate::container::Schedule;
use crate::container::TokenModelKind;
use crate::container::{
    write_segment_table, ArchiveWriter, ByteModelKind, ChunkEntry, ChunkKind, CodedChunk, Header,
    ModelSection, VERSION,
};
use crate::engine::Numerics;
use crate::error::{Error, FormatError, Result};
use crate::models;
use crate::predict::devices::Placement;
use crate::token::{segment_chunk, Segment, Vocabulary};

/// What a compression produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompressStats {
    pub original_bytes: u64,
    pub archive_bytes: u64,
}

/// Compresses `data` into a complete archive in memory.
pub fn compress(
    data: &[u8],
    opts: &CompressOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<u8>> {
    let mut archive = Vec::new();
    compress_stream(
        &mut { data },
        Some(data.len() as u64),
        &mut archive,
        opts,
        progress,
    )?;
    Ok(archive)
}

/// Compresses everything `input` yields into `out`. `size` is the input's length where known
/// (a file): the header records it and a different length read is an error; `None` (a pipe)
/// leaves the size to the index. `progress` receives original bytes done so far.
pub fn compress_stream(
    input: &mut (dyn Read + Send),
    size: Option<u64>,
    out: &mut (dyn Write + Send),
    opts: &CompressOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<CompressStats> {
    let byte_model = ByteModelKind::ContextMixing {
        max_table_bits: DEFAULT_MAX_TABLE_BITS,
    };
    let header = Header {
        version: VERSION,
        original_size: size,
        chunk_target: opts.chunk_size as u64,
        byte_model,
        model: None,
    };
    let mut chunks = ChunkReader::new(input, opts.chunk_size);
    let mut writer = ArchiveWriter::new(out, header);
    let pool = thread_pool(opts.threads)?;
    let mut done = 0u64;
    if opts.fast {
        // Chunks are independent: a few per thread at a time keeps every core busy.
        let batch = 2 * opts.threads.max(1);
        loop {
            let group = chunks.next_chunks(batch)?;
            if group.is_empty() {
                break;
            }
            let counter = AtomicU64::new(done);
            let coded: Vec<CodedChunk> = pool.install(|| {
                group
                    .par_iter()
                    .map(|bytes| {
                        let coded = code_without_llm(bytes, byte_model, ZSTD_LEVEL_FAST)?;
                        let n = bytes.len() as u64;
                        progress(counter.fetch_add(n, Ordering::Relaxed) + n);
                        Ok(coded.chunk)
                    })
                    .collect::<Result<_>>()
            })?;
            done += group.iter().map(|c| c.len() as u64).sum::<u64>();
            writer.write_chunks(coded, chunks.at_end()?)?;
        }
        return finish(writer, size, done);
    }
    let engine = opts
        .engine
        .unwrap_or_else(|| Engine::default_for(&opts.model));
    engine.check_available(None)?;
    if chunks.at_end()? {
        // Nothing to code: the archive names no model, so none is fetched, read or loaded;
        // but one that cannot be named is still refused, as it would be with bytes (an
        // options check with no input, as nzip-ray makes, relies on it).
        models::check_spec(&opts.model)?;
        return finish(writer, size, 0);
    }
    let model_file = models::resolve(&opts.model, opts.fetch)?;
    let placement = Placement::resolve(&opts.device, opts.workers)?;
    let workers = Workers::load(
        &model_file.path,
        engine,
        Numerics::CURRENT,
        &placement,
        opts.threads,
    )?;
    // A context holds window × seqs positions; an input of fewer chunks than the workers'
    // sequences needs fewer (Qwen 1.5B: 28 KB of KV cache per position), spread so that every
    // worker gets a group.
    let seqs = match size {
        Some(n) => {
            let chunks = chunk::max_chunk_count(n, opts.chunk_size).max(1);
            let per_worker = chunks.div_ceil(workers.len() as u64);
            opts.seqs.min(u32::try_from(per_worker).unwrap_or(u32::MAX))
        }
        None => opts.seqs,
    };
    let schedule = Schedule {
        window: opts.window,
        slide: opts.slide,
        sinks: opts.sinks,
        seqs,
        start_token: model_file.start_token,
    };
    // The same rule that rejects a forged archive, in the words of the flags that set it.
    schedule
        .validate(Some(workers.n_vocab()))
        .map_err(|e| match e {
            Error::Format(FormatError::Malformed(why)) => {
                Error::InvalidOption(format!("--window, --slide, --sinks, --seqs give an {why}"))
            }
            e => e,
        })?;
    writer.set_model(ModelSection {
        name: model_file.name.clone(),
        size: model_file.size,
        sha256: model_file.sha256,
        numerics: workers.numerics(),
        n_vocab: workers.n_vocab() as u32,
        schedule,
        token_model: opts.token_model,
    })?;
    let vocab = pool.install(|| Vocabulary::new(workers.tokenizer()));
    let mut runners = workers.runners(schedule);
    loop {
        // One group per worker at a time.
        let mut groups = Vec::with_capacity(runners.len());
        while groups.len() < runners.len() {
            let group = chunks.next_chunks(schedule.seqs as usize)?;
            if group.is_empty() {
                break;
            }
            groups.push(group);
        }
        if groups.is_empty() {
            break;
        }
        let batch = BatchProgress::new(
            done,
            groups
                .iter()
                .map(|g| g.iter().map(|c| c.len() as u64).sum())
                .collect(),
            progress,
        );
        let jobs: Vec<(usize, Vec<Vec<u8>>)> = groups.into_iter().enumerate().collect();
        let coded = runners.run(jobs, &pool, |(k, group), runner| {
            let segments: Vec<Vec<Segment>> = group
                .par_iter()
                .map(|bytes| segment_chunk(&vocab, bytes))
                .collect();
            let group_bytes: u64 = group.iter().map(|c| c.len() as u64).sum();
            let slices: Vec<&[u8]> = group.iter().map(|c| c.as_slice()).collect();
            let coded = encode_group(
                &slices,
                &segments,
                byte_model,
                opts.token_model,
                opts.always_llm,
                runner,
                &|fraction| batch.set(k, fraction),
            )?;
            Ok((group_bytes, coded))
        })?;
        let at_end = chunks.at_end()?;
        let n = coded.len();
        for (k, (group_bytes, coded)) in coded.into_iter().enumerate() {
            done += group_bytes;
            writer.write_chunks(coded, at_end && k + 1 == n)?;
        }
        progress(done);
    }
    finish(writer, size, done)
}

fn finish(writer: ArchiveWriter<'_>, size: Option<u64>, read: u64) -> Result<CompressStats> {
    if let Some(size) = size.filter(|&s| s != read) {
        return Err(Error::InputChanged {
            expected: size,
            read,
        });
    }
    let archive_bytes = writer.finish()?;
    Ok(CompressStats {
        original_bytes: read,
        archive_bytes,
    })
}

/// A chunk's best coding without the LLM, and the byte model's cost curve over it.
struct WithoutLlm {
    chunk: CodedChunk,
    /// Approximate bits the byte model spent on the first `(k + 1) * CHECKPOINT` bytes
    /// (empty when the byte model was not run).
    byte_model_cost: Vec<f64>,
    /// zstd alone shrank the chunk [`TRIVIAL_RATIO`] times: no model is worth running on it.
    trivial: bool,
}

/// A chunk that zstd shrinks this many times is kept as zstd without running the byte model
/// or the LLM: they could save at most 8/256 = 0.03 bits per byte more, and would spend
/// seconds per MB on it (runs of zeros, sparse files, dumps with long repeats).
const TRIVIAL_RATIO: usize = 256;

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
    let zstd = zstd::bulk::compress(bytes, zstd_level)
        .map_err(|e| Error::Internal(format!("zstd: {e}")))?;
    let trivial = zstd.len() * TRIVIAL_RATIO <= bytes.len();
    let mut candidates = vec![(ChunkKind::Zstd, zstd)];
    let mut byte_model_cost = Vec::new();
    if !trivial {
        let segments = [Segment::Raw { len: bytes.len() }];
        let mut modelled = Vec::new();
        write_segment_table(segments.iter().map(Segment::entry), &mut modelled);
        let (stream, cost) =
            ChunkEncoder::new(bytes, &segments, byte_model, TokenModelKind::Bare).finish()?;
        modelled.extend(stream);
        byte_model_cost = cost;
        candidates.insert(0, (ChunkKind::Modelled, modelled));
    }
    for (kind, payload) in candidates {
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
        chunk: CodedChunk {
            entry: best.0,
            payload: best.1.unwrap_or_else(|| bytes.to_vec()),
        },
        byte_model_cost,
        trivial,
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
    group: &[&[u8]],
    segments: &[Vec<Segment>],
    byte_model: ByteModelKind,
    token_model: TokenModelKind,
    always_llm: bool,
    runner: &mut RunnerSlot<'_>,
    progress: &dyn Fn(f64),
) -> Result<Vec<CodedChunk>> {
    let without_llm: Vec<WithoutLlm> = group
        .par_iter()
        .map(|bytes| code_without_llm(bytes, byte_model, ZSTD_LEVEL))
        .collect::<Result<_>>()?;
    let mut llm_off: Vec<bool> = without_llm.iter().map(|w| w.trivial).collect();
    loop {
        let n_tokens: Vec<u64> = (0..group.len())
            .map(|i| {
                if llm_off[i] {
                    0
                } else {
                    Segment::tokens_in(&segments[i])
                }
            })
            .collect();
        let mut encoders: Vec<Option<ChunkEncoder>> = (0..group.len())
            .map(|i| {
                (n_tokens[i] > 0)
                    .then(|| ChunkEncoder::new(group[i], &segments[i], byte_model, token_model))
            })
            .collect();
        if n_tokens.iter().any(|&n| n > 0) {
            let runner = runner.get()?;
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
                out.push(fallback.chunk.clone());
                continue;
            };
            let mut payload = Vec::with_capacity(stream.len() + 16);
            write_segment_table(segments[i].iter().map(Segment::entry), &mut payload);
            payload.extend_from_slice(&stream);
            if !always_llm && payload.len() as u64 >= fallback.chunk.entry.payload_len {
                llm_off[i] = true;
                rerun = true;
                out.push(fallback.chunk.clone());
                continue;
            }
            let raw_bytes = Segment::raw_bytes_in(&segments[i]);
            out.push(CodedChunk {
                entry: ChunkEntry {
                    kind: ChunkKind::Modelled,
                    len: group[i].len() as u64,
                    tokens: n_tokens[i],
                    raw_bytes,
                    payload_len: payload.len() as u64,
                    crc32: fallback.chunk.entry.crc32,
                },
                payload,
            });
        }
        if !rerun {
            return Ok(out);
        }
    }
}
