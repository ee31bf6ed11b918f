//! One file per subcommand; helpers they share.

/// `print!` for a command's report on standard output: a reader that stops early (`nzip info
/// f.nz | head -1`) ends nzip quietly with status 1, as a closed pipe ends other filters,
/// where the std macros would panic. No output file is open while a report prints.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::commands::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` for a command's report, as [`out!`].
macro_rules! outln {
    () => {
        $crate::commands::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::commands::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub mod bench;
pub mod compress;
pub mod decompress;
pub mod devices;
pub mod info;
pub mod input;
pub mod model;
pub mod output;
pub mod plot;
pub mod progress;
pub mod shell;
pub mod test;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nzip::predict::lockstep::LlmTimes;
use nzip::Error;

use crate::cli::args::IoArgs;

/// Writes a report's text to standard output (`out!`, `outln!`).
pub fn write_stdout(text: std::fmt::Arguments) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(text) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("nzip: standard output: {e}");
        }
        std::process::exit(1);
    }
}

/// What a command returns.
pub type CliResult<T = ()> = std::result::Result<T, Failure>;

/// How a command failed, as the binary reports it: the library's errors, and outcomes that
/// only the command line has.
#[derive(Debug)]
pub enum Failure {
    /// A library error (exit 2 for options it refused, else 1).
    Error(Error),
    /// Flags or arguments that cannot work (exit 2).
    Usage(String),
    /// The output file exists and -f was not given.
    OutputExists(PathBuf),
    /// `--verify`: the new archive did not decode to the input; nothing was written.
    VerifyFailed { path: PathBuf, why: String },
    /// `nzip test`: this many archives of those given failed (each already reported).
    TestFailed { failed: usize, total: usize },
    /// A refusal in gzip's manner (compressed data and a terminal): exit 1.
    Refused(String),
    /// Several files were processed and each failure was reported as it happened; the run
    /// ends with this exit status.
    Reported { code: i32 },
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Error(e)
    }
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) | Failure::Error(Error::InvalidOption(_)) => 2,
            Failure::Error(_)
            | Failure::Refused(_)
            | Failure::OutputExists(_)
            | Failure::VerifyFailed { .. }
            | Failure::TestFailed { .. } => 1,
            Failure::Reported { code } => *code,
        }
    }

    /// Whether the output went away (a closed pipe): nothing is worth saying, and nothing
    /// more can be written.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(
            self,
            Failure::Error(Error::Write(io) | Error::Io { source: io, .. })
                if io.kind() == std::io::ErrorKind::BrokenPipe
        )
    }

    /// One line on stderr in one style: "nzip: FILE: what is wrong", the file named once.
    pub fn report(&self, file: Option<&Path>) {
        let message = match self {
            // The path is the file's own: say it once, in front.
            Failure::Error(Error::Io { path, source }) if Some(path.as_path()) == file => {
                source.to_string()
            }
            Failure::Error(e) => e.to_string(),
            Failure::Usage(why) | Failure::Refused(why) => why.clone(),
            Failure::OutputExists(path) => {
                format!("{} already exists; use -f to overwrite", path.display())
            }
            Failure::VerifyFailed { path, why } => format!(
                "verification failed: the new archive of {} does not decode to the input \
                 ({why}); nothing was written and the input was kept",
                path.display()
            ),
            Failure::TestFailed { failed, total } => {
                format!("{failed} of {total} archives failed the test")
            }
            Failure::Reported { .. } => return,
        };
        match file {
            Some(f) if !input::is_stdin(f) => eprintln!("nzip: {}: {message}", f.display()),
            Some(_) => eprintln!("nzip: <stdin>: {message}"),
            None => eprintln!("nzip: {message}"),
        }
    }
}

/// Names the file an I/O error of the pipeline happened on: the input for a read, the output
/// for a write.
pub fn name_io_error(e: Error, input: &Path, output: &Path) -> Error {
    match e {
        Error::Read(source) => Error::io(input, source),
        Error::Write(source) => Error::io(output, source),
        e => e,
    }
}

/// Runs `one` on every file as gzip and zstd do: a file that fails is reported and the rest
/// are still processed; the run then fails with status 1 (2 when every failure was a usage
/// error such as a wrong suffix). A closed output pipe stops at once.
pub fn each_file(
    files: &[PathBuf],
    mut one: impl FnMut(&Path) -> std::result::Result<(), Failure>,
) -> std::result::Result<(), Failure> {
    let mut code = 0;
    for file in files {
        if let Err(failure) = one(file) {
            if failure.is_broken_pipe() {
                return Err(Failure::Reported { code: 1 });
            }
            failure.report(Some(file));
            code = match (code, failure.exit_code()) {
                (1, _) | (_, 1) => 1,
                (_, c) => c,
            };
        }
    }
    match code {
        0 => Ok(()),
        code => Err(Failure::Reported { code }),
    }
}

/// gzip's rule: compressed data is never read from or written to a terminal unless forced
/// (a terminal would show bytes, or wait for typed ones). `-f` overrides.
pub fn refuse_terminal(
    reading: bool,
    stream_is_terminal: bool,
    force: bool,
) -> std::result::Result<(), Failure> {
    if force || !stream_is_terminal {
        return Ok(());
    }
    Err(Failure::Refused(if reading {
        "standard input is a terminal, not compressed data; use -f to read it anyway".into()
    } else {
        "compressed data not written to a terminal; redirect it or use -f to force".into()
    }))
}

/// `--rm` with `-c` keeps the input (the archive went to standard output, not to a file that
/// could stand in for it): say so once rather than ignore the flag silently.
pub fn note_rm_with_stdout(io: &IoArgs) {
    if io.rm && io.stdout && !io.quiet {
        eprintln!("nzip: --rm has no effect with -c: the input files are kept");
    }
}

/// `--rm`: removes the input once its output file is in place (never standard input, and
/// never when the output went to standard output).
pub fn remove_input_if_asked(io: &IoArgs, file: &Path, output_is_a_file: bool) -> CliResult {
    if io.rm && !input::is_stdin(file) && output_is_a_file {
        std::fs::remove_file(file).map_err(|e| Error::io(file, e))?;
    }
    Ok(())
}

/// Whether standard input / output is a terminal.
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// The inputs to process: the named files, or standard input when none.
pub fn inputs(files: &[PathBuf], output: Option<&Path>) -> CliResult<Vec<PathBuf>> {
    let files = if files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        files.to_vec()
    };
    if output.is_some() && files.len() > 1 {
        return Err(Failure::Usage("-o takes exactly one input file".into()));
    }
    Ok(files)
}

/// The one-line summary on stderr (with -v), like `zstd -v`, and where the LLM's time went
/// since `llm_before`.
pub fn report(
    io: &IoArgs,
    file: &Path,
    original: u64,
    compressed: u64,
    took: Duration,
    llm_before: &LlmTimes,
) {
    if io.quiet || !io.verbose {
        return;
    }
    let llm = LlmTimes::now().since(llm_before);
    let bpb = if original > 0 {
        8.0 * compressed as f64 / original as f64
    } else {
        0.0
    };
    let secs = took.as_secs_f64().max(1e-9);
    eprintln!(
        "{}: {original} bytes <-> {compressed} bytes ({bpb:.3} bits per byte), {:.1} s, {:.2} KB/s",
        file.display(),
        secs,
        original as f64 / secs / 1000.0
    );
    if llm.tokens > 0 {
        let decode = llm.decode.as_secs_f64().max(1e-9);
        eprintln!(
            "  LLM: {} tokens in {} steps; model {decode:.1} s ({:.0} tokens/s), the rest of \
             each step {:.2} s ({:.1}% of the model's time)",
            llm.tokens,
            llm.steps,
            llm.tokens as f64 / decode,
            llm.rest.as_secs_f64(),
            100.0 * llm.rest.as_secs_f64() / decode
        );
    }
}
