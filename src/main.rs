//! The `nzip` binary: parse arguments, run one subcommand, map the outcome to an exit code
//! (0 ok, 1 error, 2 usage) in one place.

mod cli;
mod commands;

use clap::Parser;

use cli::args::{Cli, Command};
use commands::Failure;

fn main() {
    shorten_openmp_spin();
    let argv = cli::normalize(std::env::args_os().collect());
    let cli = Cli::parse_from(argv); // exits with 2 on usage errors
    let result = match &cli.command {
        Command::Compress(a) => commands::compress::run(a),
        Command::Decompress(a) => commands::decompress::run(a),
        Command::Test(a) => commands::test::run(a),
        Command::Info(a) => commands::info::run(a),
        Command::Model(c) => commands::model::run(c).map_err(Failure::from),
        Command::Bench(a) => commands::bench::run(a),
        Command::Devices => commands::devices::run().map_err(Failure::from),
        Command::Completions { shell } => {
            commands::shell::completions(*shell).map_err(Failure::from)
        }
        Command::Man => commands::shell::man().map_err(Failure::from),
    };
    if let Err(failure) = result {
        // A closed pipe (`nzip -dc f.nz | head`) ends quietly, as other filters do.
        if !failure.is_broken_pipe() {
            failure.report(None);
        }
        std::process::exit(failure.exit_code());
    }
}

/// llama.cpp's OpenMP threads keep spinning after each `decode` (libgomp's default is 300,000
/// rounds, milliseconds), holding the cores that the coder's work between decodes needs; on 2
/// cores with Gemma 3 a short spin made the model 4% and the whole pipeline 7% faster. libgomp
/// reads `GOMP_SPINCOUNT` only as it loads, before `main`, so nzip starts itself over once with
/// a short spin, unless the user chose one (or a wait policy). If that fails, it runs as it is.
/// A build without llama.cpp has no OpenMP to tune.
fn shorten_openmp_spin() {
    #[cfg(all(target_os = "linux", feature = "llama"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os("GOMP_SPINCOUNT").is_some()
            || std::env::var_os("OMP_WAIT_POLICY").is_some()
        {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            command.arg0(arg0);
        }
        // `exec` only returns on failure.
        let _ = command.args(args).env("GOMP_SPINCOUNT", "10000").exec();
    }
}
