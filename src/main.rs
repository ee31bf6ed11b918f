//! The `nzip` binary: parse arguments, run one subcommand, map the outcome to an exit code
//! (0 ok, 1 error, 2 usage) in one place.

mod cli;
mod commands;

use clap::Parser;

use cli::args::{Cli, Command};

fn main() {
    let argv = cli::normalize(std::env::args_os().collect());
    let cli = Cli::parse_from(argv); // exits with 2 on usage errors
    let result = match &cli.command {
        Command::Compress(a) => commands::compress::run(a),
        Command::Decompress(a) => commands::decompress::run(a),
        Command::Test(a) => commands::test::run(a),
        Command::Info(a) => commands::info::run(a),
        Command::Model(c) => commands::model::run(c),
        Command::Bench(a) => commands::bench::run(a),
        Command::Devices => commands::devices::run(),
    };
    if let Err(e) = result {
        if let nzip::Error::IoOther(io) | nzip::Error::Io { source: io, .. } = &e {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(1);
            }
        }
        eprintln!("nzip: error: {e}");
        let code = if matches!(e, nzip::Error::Usage(_)) {
            2
        } else {
            1
        };
        std::process::exit(code);
    }
}
