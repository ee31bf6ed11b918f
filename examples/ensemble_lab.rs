//! Development tool: tunes and measures the token ensemble. `record` runs the default model over a
//! text file as one chunk with nzip's own schedule and stores every step's logits; `score`
//! replays them through token-model designs and prints each one's ideal code length (what the
//! range coder spends, within a few bytes per chunk), so a design costs seconds, not a model run.
//!
//!   cargo run --release --example ensemble_lab record FILE LOGITS   # 196 KB per SmolLM2 token
//!   cargo run --release --example ensemble_lab score LOGITS [DESIGN...]
//!   cargo run --release --example ensemble_lab ablate BYTES FILE...   # the README's table
//!
//! `ablate` scores the ensemble's parts one by one (each added in turn) on the first BYTES of
//! each file during one model run, with gzip/xz/zstd on the same bytes and each design's CPU
//! time beside the model's.
//!
//! LOGITS: "NZLOGITS", then u64 little-endian text bytes, token count and vocabulary size, the
//! tokens (u32 each), then each step's logits (f32 each).

use std::io::{BufWriter, Read, Write};
use std::ops::ControlFlow;

use nzip::container::Schedule;
use nzip::container::TokenModelKind;
use nzip::models::{self, FetchPolicy};
use nzip::pipeline::{DEFAULT_SINKS, DEFAULT_SLIDE, DEFAULT_WINDOW};
use nzip::predict::ensemble::{Design, TokenModel};
use nzip::predict::llama::LanguageModel;
use nzip::predict::lockstep::{run_group, ChunkDriver};
use nzip::token::{segment_chunk, Segment, Vocabulary};

const MAGIC: &[u8; 8] = b"NZLOGITS";

struct Recorder<W: Write> {
    tokens: Vec<u32>,
    at: usize,
    out: W,
}

impl<W: Write + Send> ChunkDriver for Recorder<W> {
    fn next_token(&mut self, logits: &[f32]) -> nzip::Result<u32> {
        let bytes: Vec<u8> = logits.iter().flat_map(|l| l.to_le_bytes()).collect();
        self.out.write_all(&bytes).map_err(nzip::Error::Write)?;
        self.at += 1;
        Ok(self.tokens[self.at - 1])
    }
}

/// The LLM-coded tokens of `data` as nzip segments it, and how many bytes they stand for.
fn text_tokens(vocab: &Vocabulary, data: &[u8]) -> (Vec<u32>, usize) {
    let mut text_bytes = 0;
    let tokens = segment_chunk(vocab, data)
        .into_iter()
        .flat_map(|s| match s {
            Segment::Text { tokens, len } => {
                text_bytes += len;
                tokens
            }
            Segment::Raw { .. } => Vec::new(),
        })
        .collect();
    (tokens, text_bytes)
}

/// The default model and the schedule of a lone chunk with nzip's default window.
/// The lab's errors: the library's, and files it reads and writes itself.
type LabResult<T> = Result<T, Box<dyn std::error::Error>>;

fn load_default() -> LabResult<(LanguageModel, Schedule)> {
    let file = models::resolve(models::DEFAULT_MODEL, FetchPolicy::Auto)?;
    let lm = LanguageModel::load(&file.path)?;
    let schedule = Schedule {
        window: DEFAULT_WINDOW,
        slide: DEFAULT_SLIDE,
        sinks: DEFAULT_SINKS,
        seqs: 1,
        start_token: file.start_token,
    };
    Ok((lm, schedule))
}

fn record(input: &str, output: &str) -> LabResult<()> {
    let data = std::fs::read(input)?;
    let (lm, schedule) = load_default()?;
    let (tokens, text_bytes) = text_tokens(&Vocabulary::new(&lm), &data);
    let mut out = BufWriter::with_capacity(1 << 22, std::fs::File::create(output)?);
    out.write_all(MAGIC)?;
    for n in [text_bytes, tokens.len(), lm.n_vocab()].map(|n| n as u64) {
        out.write_all(&n.to_le_bytes())?;
    }
    for t in &tokens {
        out.write_all(&t.to_le_bytes())?;
    }
    let threads = nzip::pipeline::default_threads();
    let mut runner = lm.group_runner(&schedule, threads)?;
    let mut rec = [Recorder {
        tokens: tokens.clone(),
        at: 0,
        out,
    }];
    run_group(&mut runner, &mut rec, &[tokens.len() as u64], |_, _| {
        ControlFlow::Continue(())
    })?;
    let [rec] = rec;
    rec.out
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    eprintln!("{} tokens from {} text bytes", tokens.len(), text_bytes);
    Ok(())
}

fn read_u64(r: &mut impl Read) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn score(input: &str, designs: &[String]) -> LabResult<()> {
    let mut r = std::io::BufReader::with_capacity(1 << 22, std::fs::File::open(input)?);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(format!("{input}: not a logits file").into());
    }
    let text_bytes = read_u64(&mut r)?;
    let n_tokens = read_u64(&mut r)? as usize;
    let n_vocab = read_u64(&mut r)? as usize;
    let mut tokens = vec![0u32; n_tokens];
    let mut buf = vec![0u8; 4 * n_vocab.max(n_tokens)];
    r.read_exact(&mut buf[..4 * n_tokens])?;
    for (t, b) in tokens.iter_mut().zip(buf.chunks_exact(4)) {
        *t = u32::from_le_bytes(b.try_into().unwrap());
    }
    let mut models: Vec<(String, TokenModel)> = vec![
        ("bare".into(), TokenModel::new(TokenModelKind::Bare)),
        (
            "ensemble (id 1)".into(),
            TokenModel::new(TokenModelKind::Ensemble),
        ),
        (
            "biased ensemble (id 2)".into(),
            TokenModel::new(TokenModelKind::BiasedEnsemble),
        ),
    ];
    for d in designs {
        let design: Design = d
            .parse()
            .map_err(|e: String| nzip::Error::InvalidOption(e))?;
        models.push((d.clone(), TokenModel::with_design(design)));
    }
    let mut bits = vec![0.0f64; models.len()];
    let mut logits = vec![0f32; n_vocab];
    let mut cdf = Vec::new();
    let started = std::time::Instant::now();
    for &token in &tokens {
        r.read_exact(&mut buf[..4 * n_vocab])?;
        for (l, b) in logits.iter_mut().zip(buf.chunks_exact(4)) {
            *l = f32::from_le_bytes(b.try_into().unwrap());
        }
        for ((_, m), bits) in models.iter_mut().zip(&mut bits) {
            m.predict(&logits, &mut cdf);
            let f = cdf[token as usize + 1] - cdf[token as usize];
            *bits += 24.0 - f64::from(f).log2();
            m.update(token);
        }
    }
    println!(
        "{n_tokens} tokens, {text_bytes} text bytes, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let bare = bits[0];
    for ((name, _), b) in models.iter().zip(&bits) {
        println!(
            "{:>8.4} bpb {:>+7.3}% {:>12.1} bits  {name}",
            b / text_bytes as f64,
            100.0 * (b / bare - 1.0),
            b
        );
    }
    Ok(())
}

/// The ablation rows: each part of the ensemble added in turn, then the bias alone and the
/// default without a learning mixer.
const ABLATION: [(&str, &str); 6] = [
    ("bare LLM", ""),
    ("+ n-grams", "orders=3,matches=0,bias=0"),
    ("+ match (id 1)", "orders=3,matches=1,bias=0"),
    ("+ bias (id 2)", "orders=3,matches=1"),
    ("bias alone", "orders=0,matches=0"),
    ("id 2, mixer frozen", "mix=0"),
];

/// Scores every ablation design on the same logits as the model produces them.
struct Scorer {
    tokens: Vec<u32>,
    at: usize,
    models: Vec<TokenModel>,
    bits: Vec<f64>,
    busy: Vec<std::time::Duration>,
    cdf: Vec<u32>,
}

impl ChunkDriver for Scorer {
    fn next_token(&mut self, logits: &[f32]) -> nzip::Result<u32> {
        let token = self.tokens[self.at];
        self.at += 1;
        for (k, m) in self.models.iter_mut().enumerate() {
            let started = std::time::Instant::now();
            m.predict(logits, &mut self.cdf);
            let f = self.cdf[token as usize + 1] - self.cdf[token as usize];
            m.update(token);
            self.busy[k] += started.elapsed();
            self.bits[k] += 24.0 - f64::from(f).log2();
        }
        Ok(token)
    }
}

/// Bytes that `tool args` makes of `data`.
fn tool_size(tool: &str, args: &[&str], data: &[u8]) -> LabResult<usize> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let data = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output()?;
    feeder.join().expect("feeder")?;
    Ok(out.stdout.len())
}

fn ablate(files: &[String], limit: usize) -> LabResult<()> {
    let (lm, schedule) = load_default()?;
    let vocab = Vocabulary::new(&lm);
    let threads = nzip::pipeline::default_threads();
    let mut header = "| file | text bytes |".to_string();
    for (name, _) in ABLATION {
        header += &format!(" {name} |");
    }
    header += " gzip -9 | xz -9e | zstd -19 |";
    let mut rows = vec![
        header,
        format!("|---|---:|{}", "---:|".repeat(ABLATION.len() + 3)),
    ];
    let mut speed = vec![
        format!(
            "| file | model ms/token | {} ms/token |",
            ABLATION.map(|(name, _)| name).join(" ms/token | ")
        ),
        format!("|---|---:|{}", "---:|".repeat(ABLATION.len())),
    ];
    for path in files {
        let data = std::fs::read(path)?;
        let data = &data[..data.len().min(limit)];
        let (tokens, text_bytes) = text_tokens(&vocab, data);
        let models: Vec<TokenModel> = ABLATION
            .iter()
            .map(|&(_, design)| match design {
                "" => Ok(TokenModel::new(TokenModelKind::Bare)),
                d => d
                    .parse()
                    .map(TokenModel::with_design)
                    .map_err(nzip::Error::InvalidOption),
            })
            .collect::<nzip::Result<_>>()?;
        let n = models.len();
        let mut scorer = [Scorer {
            tokens: tokens.clone(),
            at: 0,
            models,
            bits: vec![0.0; n],
            busy: vec![std::time::Duration::ZERO; n],
            cdf: Vec::new(),
        }];
        let started = std::time::Instant::now();
        let mut runner = lm.group_runner(&schedule, threads)?;
        run_group(&mut runner, &mut scorer, &[tokens.len() as u64], |_, _| {
            ControlFlow::Continue(())
        })?;
        let wall = started.elapsed();
        let [scorer] = scorer;
        let name = std::path::Path::new(path)
            .file_name()
            .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
        let bpb = |bits: f64| bits / text_bytes as f64;
        let best = scorer.bits.iter().copied().fold(f64::INFINITY, f64::min);
        let mut row = format!("| {name} | {text_bytes} |");
        for &b in &scorer.bits {
            row += &if b == best {
                format!(" **{:.3}** |", bpb(b))
            } else {
                format!(" {:.3} |", bpb(b))
            };
        }
        for (tool, args) in [
            ("gzip", &["-9", "-c"][..]),
            ("xz", &["-9e", "-c", "-T1"][..]),
            ("zstd", &["-19", "-c", "-q"][..]),
        ] {
            row += &format!(
                " {:.3} |",
                8.0 * tool_size(tool, args, data)? as f64 / data.len() as f64
            );
        }
        rows.push(row);
        let per_token = |d: std::time::Duration| 1e3 * d.as_secs_f64() / tokens.len().max(1) as f64;
        let model = wall - scorer.busy.iter().sum::<std::time::Duration>();
        let mut row = format!("| {name} | {:.1} |", per_token(model));
        for &b in &scorer.busy {
            row += &format!(" {:.2} |", per_token(b));
        }
        speed.push(row);
        eprintln!(
            "{name}: {} tokens, {:.0} s",
            tokens.len(),
            wall.as_secs_f64()
        );
    }
    println!(
        "Ideal code length in bits per text byte, first {limit} bytes of each file, one chunk, \
         SmolLM2 window {DEFAULT_WINDOW}; gzip/xz/zstd on the same bytes.\n"
    );
    println!("{}\n\n{}", rows.join("\n"), speed.join("\n"));
    Ok(())
}

fn main() -> LabResult<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("record") if args.len() == 4 => record(&args[2], &args[3]),
        Some("score") if args.len() >= 3 => score(&args[2], &args[3..]),
        Some("ablate") if args.len() >= 4 => match args[2].parse() {
            Ok(limit) => ablate(&args[3..], limit),
            Err(_) => Err(format!("{}: not a byte count", args[2]).into()),
        },
        _ => Err(
            "ensemble_lab record FILE LOGITS | score LOGITS [DESIGN...] | ablate BYTES FILE..."
                .into(),
        ),
    }
}
