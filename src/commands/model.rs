//! `nzip model list` and `nzip model fetch`.

use nzip::models::{self, FetchPolicy};
use nzip::pipeline::{levels, Engine};
use nzip::{Error, Result};

use crate::cli::args::ModelCommand;

/// The engines that run a model in this build.
fn engines(m: &models::Manifest) -> String {
    let llama = if cfg!(feature = "llama") {
        "llama.cpp"
    } else {
        "llama.cpp (not in this build)"
    };
    if m.portable && Engine::default_for(&m.name) == Engine::Portable {
        format!("portable (the default: decodes on any machine), {llama} (--engine llama)")
    } else if m.portable {
        format!("{llama}, portable (--engine portable: decodes on any machine)")
    } else {
        format!("{llama} only (the portable engine does not run it yet)")
    }
}

pub fn run(cmd: &ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::List => {
            outln!("model cache: {}", models::cache_dir().display());
            for m in models::manifests() {
                let path = models::cached_path(&m.name);
                let state = if path.exists() {
                    "installed"
                } else {
                    "not installed"
                };
                let at: Vec<String> = levels::LEVELS
                    .iter()
                    .filter(|l| l.model == Some(m.name.as_str()))
                    .map(|l| format!("-{}", l.level))
                    .collect();
                let mut roles = Vec::new();
                if m.name == models::DEFAULT_MODEL {
                    roles.push("default".to_string());
                }
                if !at.is_empty() {
                    roles.push(format!("levels {}", at.join(" ")));
                }
                outln!(
                    "{} ({}): {} MB, {state}",
                    m.name,
                    roles.join("; "),
                    m.size / 1_000_000
                );
                outln!("    {}; license {}", m.description, m.license);
                outln!("    engines: {}", engines(&m));
                outln!(
                    "    {:.3} bits per byte, {:.0} tokens/s ({})",
                    m.measured.bits_per_byte,
                    m.measured.tokens_per_second,
                    m.measured.on
                );
            }
            outln!("levels (-1 … -9, or --level N; --fast is -1, --best is -9):");
            for l in &levels::LEVELS {
                outln!("  -{}  {}", l.level, l.summary);
            }
            Ok(())
        }
        ModelCommand::Fetch { name, all } => {
            let wanted: Vec<models::Manifest> = if *all {
                models::manifests()
            } else {
                let name = name.as_deref().unwrap_or(models::DEFAULT_MODEL);
                vec![models::manifest(name).ok_or_else(|| Error::UnknownModel {
                    name: name.to_string(),
                    hint: "see `nzip model list`".into(),
                })?]
            };
            for m in wanted {
                let file = models::resolve(&m.name, FetchPolicy::Auto)?;
                outln!(
                    "{} ({} bytes, sha256 {}) at {}",
                    file.name,
                    file.size,
                    models::hex(&file.sha256),
                    file.path.display()
                );
            }
            Ok(())
        }
    }
}
