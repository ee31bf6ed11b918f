//! `nzip completions SHELL` and `nzip man`: shell completions and the man page, generated from
//! the same clap definitions as `--help`, so that they cannot drift from the real flags.

use std::io::Write;

use clap::CommandFactory;
use nzip::{Error, Result};

use crate::cli::args::Cli;

pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "nzip", &mut out);
    write_stdout(&out)
}

/// One page, as gzip's and zstd's: name, synopsis, description, the commands, then a section
/// with the options of each (`COMPRESS OPTIONS`, `MODEL FETCH OPTIONS`, ...).
pub fn man() -> Result<()> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let page = clap_mangen::Man::new(command.clone());
    let mut out = Vec::new();
    page.render_title(&mut out).map_err(man_error)?;
    page.render_name_section(&mut out).map_err(man_error)?;
    page.render_synopsis_section(&mut out).map_err(man_error)?;
    page.render_description_section(&mut out)
        .map_err(man_error)?;
    let mut commands = roff::Roff::new();
    commands.control("SH", ["COMMANDS"]);
    commands_list(&command, "nzip", &mut commands);
    commands.to_writer(&mut out).map_err(man_error)?;
    options_sections(&command, "", &mut out)?;
    page.render_version_section(&mut out).map_err(man_error)?;
    write_stdout(&out)
}

/// "nzip compress", "nzip model fetch", ... each with its one-line summary.
fn commands_list(command: &clap::Command, prefix: &str, roff: &mut roff::Roff) {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{prefix} {}", sub.get_name());
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        roff.control("TP", []);
        roff.text([roff::bold(name.clone())]);
        roff.text([roff::roman(about)]);
        commands_list(sub, &name, roff);
    }
}

fn options_sections(command: &clap::Command, prefix: &str, out: &mut Vec<u8>) -> Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let title = format!("{prefix}{} ", sub.get_name().to_uppercase());
        let heading = format!("{title}OPTIONS");
        let with_heading = sub.clone().mut_args(|a| a.help_heading(heading.clone()));
        // A subcommand with nothing but --help gets no section.
        if with_heading
            .get_arguments()
            .any(|a| !a.is_hide_set() && a.get_id() != "help")
        {
            clap_mangen::Man::new(with_heading)
                .render_options_section(out)
                .map_err(man_error)?;
        }
        options_sections(sub, &title, out)?;
    }
    Ok(())
}

fn man_error(e: std::io::Error) -> Error {
    Error::Internal(format!("man page: {e}"))
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::io("<stdout>", e))
}
