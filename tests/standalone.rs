//! The repository stands alone: no file of it names a path beside the checkout, and the corpus
//! the tests read is the one committed here, byte for byte.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Every file under `dir`, build output, git data and fuzzing work folders aside.
fn project_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read project folder") {
        let path = entry.expect("project entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | "artifacts" | "corpus") {
                project_files(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

#[test]
fn no_file_reaches_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    project_files(root, &mut files);
    assert!(files.len() > 50, "project files: {}", files.len());
    // Spelled in two parts so that this file does not match itself.
    let sibling = format!("../{}", "shared");
    let mut offenders = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue; // binary files (golden archives, seeds) hold no paths
        };
        if text.contains(&sibling) {
            offenders.push(file.strip_prefix(root).unwrap().display().to_string());
        }
    }
    assert!(
        offenders.is_empty(),
        "files naming {sibling}: {offenders:?}"
    );
}

#[test]
fn corpus_matches_its_checksums() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).expect("corpus/SHA256SUMS");
    let mut checked = 0;
    for line in sums.lines() {
        let (hex, name) = line.split_once("  ").expect("sha256sum line");
        let data = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("corpus/{name}: {e}"));
        let digest: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, hex, "corpus/{name}");
        checked += 1;
    }
    assert_eq!(checked, 9, "corpus files listed in SHA256SUMS");
}
