//! The command line: argument parsing (`args`) and the gzip-style shorthands.

pub mod args;

use std::ffi::OsString;

/// Rewrites gzip habits into subcommands: `nzip -d X` → `nzip decompress X`, `nzip -t X` →
/// `nzip test X`, and `nzip FILE…` → `nzip compress FILE…`.
pub fn normalize(mut argv: Vec<OsString>) -> Vec<OsString> {
    const SUBCOMMANDS: &[&str] = &[
        "compress",
        "decompress",
        "test",
        "info",
        "model",
        "bench",
        "help",
    ];
    let Some(first) = argv.get(1).and_then(|a| a.to_str()).map(str::to_owned) else {
        return argv;
    };
    if first == "-d" || first == "--decompress" {
        argv[1] = "decompress".into();
    } else if first == "-t" || first == "--test" {
        argv[1] = "test".into();
    } else if !SUBCOMMANDS.contains(&first.as_str())
        && !matches!(first.as_str(), "-h" | "--help" | "-V" | "--version")
    {
        if argv
            .iter()
            .skip(1)
            .any(|a| a == "-d" || a == "--decompress")
        {
            argv.retain(|a| a != "-d" && a != "--decompress");
            argv.insert(1, "decompress".into());
        } else {
            argv.insert(1, "compress".into());
        }
    }
    argv
}
