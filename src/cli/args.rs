//! Command-line arguments as clap structs; doc comments become `--help`. Only parsing and
//! validation happen here; `commands/` turns them into work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use nzip::predict::devices::DeviceChoice;

#[derive(Parser, Debug)]
#[command(
    name = "nzip",
    version,
    about = "Lossless compression with a small language model as the entropy model",
    long_about = "Lossless compression with a small language model as the entropy model.\n\n\
                  `nzip FILE` is short for `nzip compress FILE`; `nzip -d FILE.nz` for \
                  `nzip decompress FILE.nz`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compress files into FILE.nz archives.
    Compress(CompressArgs),
    /// Decompress FILE.nz archives, checking every chunk's CRC32.
    Decompress(DecompressArgs),
    /// Decode archives and check every CRC without writing anything.
    Test(TestArgs),
    /// Print an archive's header and chunk table.
    Info(InfoArgs),
    /// List or fetch models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Compare nzip with gzip, bzip2, xz and zstd on real files, in one run.
    Bench(BenchArgs),
    /// List the devices this build can run the model on, and their numerics.
    Devices,
    /// Print a shell completion script (e.g. `nzip completions bash >
    /// ~/.local/share/bash-completion/completions/nzip`).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page in roff (`nzip man > nzip.1; man -l nzip.1`).
    Man,
}

/// Flags shared by compress and decompress, in the habits of gzip and zstd.
#[derive(Args, Debug, Clone)]
pub struct IoArgs {
    /// Files to process; `-` (or none) reads standard input.
    pub files: Vec<PathBuf>,
    /// Write to standard output.
    #[arg(short = 'c', long = "stdout")]
    pub stdout: bool,
    /// Write to this path (one input only).
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Keep the input file (the default).
    #[arg(short = 'k', long = "keep", overrides_with = "rm")]
    pub keep: bool,
    /// Remove the input file after the output has been written successfully.
    #[arg(long = "rm", overrides_with = "keep")]
    pub rm: bool,
    /// Overwrite existing output files.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// No progress or summary on stderr.
    #[arg(short = 'q', long = "quiet", conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on stderr.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Threads for the model and the coder (default: all cores). Does not change the output.
    #[arg(long = "threads", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

/// Where the model runs (compress, decompress, test).
#[derive(Args, Debug, Clone)]
pub struct PlacementArgs {
    /// Where the model runs: `auto` (every GPU this build can use, else the CPU), `cpu`, or
    /// device names from `nzip devices` (e.g. `CUDA0,CUDA1`). An archive
    /// decodes only on devices with its numerics. Does not change the output otherwise.
    #[arg(
        long = "device",
        value_name = "auto|cpu|NAME,...",
        default_value = "auto"
    )]
    pub device: DeviceChoice,
    /// Workers: llama.cpp contexts that each run a group of chunks (default 1). On the CPU
    /// they share the threads; on GPUs there are N per GPU, sharing its copy of the model, so
    /// that one's token step on the CPU overlaps another's batch on the GPU. Does not change
    /// the output.
    #[arg(long = "workers", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
}

/// `--engine`'s values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    Llama,
    Portable,
}

#[derive(Args, Debug)]
pub struct CompressArgs {
    #[command(flatten)]
    pub io: IoArgs,
    /// Compression level, also written -1 … -9: 1–2 byte model alone (no model file needed),
    /// 3–5 SmolLM2 135M, 6–7 Gemma 3 270M, 8–9 Qwen2.5-Coder 1.5B; within a model, higher
    /// levels cut bigger chunks (fewer bits, less parallelism). `nzip model list` shows them
    /// [default: 5].
    #[arg(long = "level", value_name = "1-9", value_parser = clap::value_parser!(u8).range(1..=9))]
    pub level: Option<u8>,
    /// Level 1: the context-mixing byte model alone (about 1 MB/s per core, and no model file
    /// needed to compress or decompress).
    #[arg(long = "fast", conflicts_with_all = ["level", "best"])]
    pub fast: bool,
    /// Level 9: the biggest model (Qwen2.5-Coder 1.5B, 1.1 GB; meant for a GPU).
    #[arg(long = "best", conflicts_with = "level")]
    pub best: bool,
    /// Model: a name from `nzip model list` or a path to a GGUF file, in place of the level's
    /// [default: $NZIP_MODEL unless a level is given, else the level's model].
    #[arg(long = "model", value_name = "NAME|PATH")]
    pub model: Option<String>,
    /// Decode each new archive and compare it with the input before writing it (and before
    /// --rm may remove the input).
    #[arg(long = "verify")]
    pub verify: bool,
    /// Code text under the LLM's softmax alone, without the token ensemble (token n-grams,
    /// match model, mixer): for measuring what the ensemble adds.
    #[arg(long = "bare-llm", conflicts_with = "fast")]
    pub bare_llm: bool,
    /// Keep the LLM's coding of every chunk even where the byte model's is smaller (for
    /// checks with a random-weight test model, e.g. scripts/cross-arch-check).
    #[arg(long = "always-llm", conflicts_with = "fast", hide = true)]
    pub always_llm: bool,
    /// Engine for the LLM levels: portable (nzip's own integer engine, for Llama, Qwen2 and
    /// Gemma 3 models: the archive decodes on any machine; formats/PORTABLE.md) or llama
    /// (llama.cpp; the archive decodes where its numerics fingerprint matches). Decoding
    /// follows the archive. [default: portable for every level's model on a CPU build;
    /// llama for other GGUF files and in GPU builds]
    #[arg(long, value_enum, conflicts_with = "fast")]
    pub engine: Option<EngineArg>,
    /// Compress only the input's bytes START..END (END open: to the end), so that workers can
    /// each code a slice of one big file; the archives of consecutive ranges, concatenated,
    /// decode to the whole. A named file only; needs -c or -o. A range past the end is
    /// clipped to it.
    #[arg(long = "input-range", value_name = "START..END", value_parser = parse_range)]
    pub input_range: Option<ByteRange>,
    /// Target chunk size in bytes; chunks are coded independently [default: the level's].
    #[arg(long = "chunk-size", value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=(1u64 << 30)))]
    pub chunk_size: Option<u64>,
    /// KV positions per chunk before the window slides.
    #[arg(long = "window", value_name = "TOKENS", hide_short_help = true)]
    pub window: Option<u32>,
    /// Positions dropped when the window slides.
    #[arg(long = "slide", value_name = "TOKENS", hide_short_help = true)]
    pub slide: Option<u32>,
    /// Positions at the start of a chunk that never slide out.
    #[arg(long = "sinks", value_name = "TOKENS", hide_short_help = true)]
    pub sinks: Option<u32>,
    /// Chunks decoded in lockstep by one llama.cpp context.
    #[arg(long = "seqs", value_name = "N", hide_short_help = true)]
    pub seqs: Option<u32>,
}

#[derive(Args, Debug)]
pub struct DecompressArgs {
    #[command(flatten)]
    pub io: IoArgs,
    #[command(flatten)]
    pub decode: DecodeArgs,
    #[command(flatten)]
    pub ignored_level: IgnoredLevelArgs,
    /// Only the original bytes START..END (half-open; either end may be left out), decoding
    /// only the chunks that cover them; needs -c or -o. A range past the end is clipped to
    /// it, as dd and tail read what is there.
    #[arg(long = "range", value_name = "START..END", value_parser = parse_range)]
    pub range: Option<ByteRange>,
    /// Recover what can be recovered from a damaged archive: damaged chunks are written as
    /// zeros and named at the end (exit status 1); the output is kept.
    #[arg(long = "keep-going")]
    pub keep_going: bool,
}

/// Compression levels, accepted and ignored when decoding (the archive records everything the
/// decoder needs), as zstd and xz accept them: `tar -I 'nzip --fast'` runs `nzip --fast -d` to
/// extract.
#[derive(Args, Debug)]
pub struct IgnoredLevelArgs {
    #[arg(long = "level", hide = true, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub level: Option<u8>,
    #[arg(long = "fast", hide = true)]
    pub fast: bool,
    #[arg(long = "best", hide = true)]
    pub best: bool,
}

/// A `--range` as given: the end may be open (the end of the original).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: Option<u64>,
}

fn parse_range(s: &str) -> Result<ByteRange, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("{s:?} is not START..END"))?;
    let number = |t: &str| t.parse::<u64>().map_err(|e| format!("{t:?}: {e}"));
    let start = if a.is_empty() { 0 } else { number(a)? };
    let end = if b.is_empty() { None } else { Some(number(b)?) };
    if end.is_some_and(|e| e < start) {
        return Err(format!("{s:?}: END is before START"));
    }
    Ok(ByteRange { start, end })
}

/// How archives are decoded (decompress and test).
#[derive(Args, Debug, Clone)]
pub struct DecodeArgs {
    /// Use this GGUF file instead of the cached model the archive names (its SHA-256 must match).
    #[arg(long = "model", value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Decode although the archive was made with other numerics (backend, ISA, llama.cpp);
    /// the chunk CRCs still reject a wrong result.
    #[arg(long = "force-numerics")]
    pub force_numerics: bool,
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Archives to test.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub decode: DecodeArgs,
    /// Report failures only.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Threads for the model and the coder (default: all cores).
    #[arg(long = "threads", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Archives to describe.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Show known and installed models.
    List,
    /// Download a model into the cache and verify it.
    Fetch {
        /// Model name [default: the default model].
        #[arg(conflicts_with = "all")]
        name: Option<String>,
        /// Every model of every level (about 1.5 GB).
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Files to benchmark [default: the text files of the corpus folder ($NZIP_CORPUS,
    /// ./corpus or the source tree's), cut to 8 KB; with --fast, every corpus file, whole].
    pub files: Vec<PathBuf>,
    /// Fast mode only (no LLM, no model needed).
    #[arg(long)]
    pub fast: bool,
    /// Also run the bare LLM (no token ensemble), to show what the ensemble adds.
    #[arg(long, conflicts_with = "fast")]
    pub ablation: bool,
    /// Also run each LLM column with the portable engine (nzip's own; --engine portable),
    /// beside llama.cpp's, in the same run.
    #[arg(long, conflicts_with = "fast")]
    pub portable: bool,
    /// Levels to run side by side (e.g. 1,5,7,9) instead of the default level and --fast.
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', conflicts_with = "fast",
          value_parser = clap::value_parser!(u8).range(1..=9))]
    pub levels: Option<Vec<u8>>,
    /// Use whole files instead of slices.
    #[arg(long, conflicts_with = "slice")]
    pub full: bool,
    /// Bytes taken from the start of each file [default: 8192; whole files with --fast].
    #[arg(long, value_name = "BYTES")]
    pub slice: Option<usize>,
    /// Model name or GGUF path, in place of the LLM levels' model.
    #[arg(long = "model", value_name = "NAME|PATH")]
    pub model: Option<String>,
    /// Threads for nzip.
    #[arg(long = "threads", value_name = "N")]
    pub threads: Option<u16>,
    /// Also draw the run as a chart (SVG): bits per byte against compress and decompress
    /// speed, every tool a point.
    #[arg(long = "plot", value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}
