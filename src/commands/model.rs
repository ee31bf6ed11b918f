//! `nzip model list` and `nzip model fetch`.

use nzip::models::{self, FetchPolicy};
use nzip::{Error, Result};

use crate::cli::args::ModelCommand;

pub fn run(cmd: &ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::List => {
            println!("model cache: {}", models::cache_dir().display());
            for m in models::manifests() {
                let path = models::cached_path(&m.name);
                let state = if path.exists() {
                    "installed"
                } else {
                    "not installed"
                };
                let default = if m.name == models::DEFAULT_MODEL {
                    " (default)"
                } else {
                    ""
                };
                println!("{}{default}: {} MB, {state}", m.name, m.size / 1_000_000);
                println!("    {}; license {}", m.description, m.license);
            }
            Ok(())
        }
        ModelCommand::Fetch { name } => {
            let name = name.as_deref().unwrap_or(models::DEFAULT_MODEL);
            let m = models::manifest(name).ok_or_else(|| Error::UnknownModel {
                name: name.to_string(),
                hint: "see `nzip model list`".into(),
            })?;
            let file = models::resolve(&m.name, FetchPolicy::Auto)?;
            println!(
                "{} ({} bytes, sha256 {}) at {}",
                file.name,
                file.size,
                models::hex(&file.sha256),
                file.path.display()
            );
            Ok(())
        }
    }
}
