//! The library's top-level modules form layers along the data flow: each depends only on
//! modules below it, so there is no cycle, and a new module must be given its place here.

use std::collections::BTreeSet;
use std::path::Path;

/// Bottom to top. A module may use only modules listed before it.
const LAYERS: &[&str] = &[
    "error",
    // Test and benchmark data.
    "seeded",
    "segment",
    "chunk",
    "models",
    // The format: every wire field, ID and limit.
    "container",
    // Range coder and integer CDFs.
    "entropy",
    // The tokenizer role and the segmenter.
    "token",
    // Byte model, token ensemble and the llama.cpp engine.
    "predict",
    // nzip's own inference engine.
    "engine",
    // A modelled chunk's symbol stream.
    "codec",
    "pipeline",
    "fuzzing",
];

/// The `crate::X` modules that the Rust files under `path` name.
fn uses(path: &Path, out: &mut BTreeSet<String>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            uses(&entry.unwrap().path(), out);
        }
        return;
    }
    if path.extension().is_none_or(|e| e != "rs") {
        return;
    }
    let text = std::fs::read_to_string(path).unwrap();
    for (at, _) in text.match_indices("crate::") {
        let name: String = text[at + 7..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `crate::Error` and the like are the root's re-exports of `error`.
        if name.starts_with(|c: char| c.is_ascii_lowercase()) {
            out.insert(name);
        }
    }
}

#[test]
fn library_modules_depend_only_on_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(
        declared.len() >= 10,
        "modules found in lib.rs: {declared:?}"
    );
    let mut wrong = Vec::new();
    for module in &declared {
        let Some(rank) = LAYERS.iter().position(|m| m == module) else {
            wrong.push(format!("{module} has no place in LAYERS"));
            continue;
        };
        let dir = src.join(module);
        let path = if dir.is_dir() {
            dir
        } else {
            src.join(format!("{module}.rs"))
        };
        let mut used = BTreeSet::new();
        uses(&path, &mut used);
        for dep in used.iter().filter(|d| *d != module) {
            match LAYERS.iter().position(|m| m == dep) {
                Some(r) if r < rank => {}
                Some(_) => wrong.push(format!("{module} uses {dep}, a layer above it")),
                None => wrong.push(format!("{module} uses crate::{dep}, unknown")),
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}
