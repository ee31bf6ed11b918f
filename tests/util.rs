//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The repository's corpus folder (`corpus/`, real files with their sources in its README).
fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// One file of the repository's corpus.
pub fn corpus(name: &str) -> Vec<u8> {
    let path = corpus_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("corpus file {}: {e}", path.display()))
}

/// Names of every file in the repository's corpus (its README and checksums aside), sorted.
pub fn corpus_files() -> Vec<String> {
    let dir = corpus_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| {
            e.expect("corpus entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n != "README.md" && n != "SHA256SUMS")
        .collect();
    names.sort();
    names
}

/// Decompresses an archive in memory with default options.
pub fn decode(archive: &[u8]) -> Result<Vec<u8>, nzip::Error> {
    let mut out = Vec::new();
    nzip::pipeline::decompress(
        archive,
        &nzip::pipeline::DecompressOptions::default(),
        &mut out,
        &|_| {},
    )?;
    Ok(out)
}

/// The `nzip` binary.
pub fn nzip() -> Command {
    let mut c = Command::cargo_bin("nzip").expect("nzip binary");
    c.env_remove("NZIP_MODEL").env_remove("NZIP_OFFLINE");
    c
}

/// Runs `nzip ARGS FILE`, asserts success, and returns its standard output.
pub fn nzip_stdout(args: &[&str], file: &Path) -> Vec<u8> {
    nzip()
        .args(args)
        .arg(file)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone()
}

/// Runs `nzip ARGS` with `input` on standard input, asserts success, returns standard output.
pub fn nzip_piped(args: &[&str], input: Vec<u8>) -> Vec<u8> {
    nzip()
        .args(args)
        .write_stdin(input)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone()
}

/// Fast-mode options with `chunk_size`, naming a model that does not exist: fast mode must
/// never look for one.
pub fn fast_options(chunk_size: usize) -> nzip::pipeline::CompressOptions {
    nzip::pipeline::CompressOptions {
        fast: true,
        chunk_size,
        model: "no-such-model".into(),
        ..nzip::pipeline::CompressOptions::default()
    }
}

/// A temp dir holding `name` with `data`; returns both.
pub fn file_with(name: &str, data: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, data).expect("write input");
    (dir, path)
}

/// Deterministic pseudo-random bytes, so failures reproduce.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    nzip::seeded::Seeded::new(seed).bytes(n)
}

/// Rewrites header bytes with `edit` and fixes the header CRC, to test the checks behind it.
pub fn edit_header(archive: &mut [u8], edit: impl FnOnce(&mut [u8])) {
    let size = u32::from_le_bytes(archive[12..16].try_into().unwrap()) as usize;
    edit(&mut archive[..size - 4]);
    let crc = crc32fast::hash(&archive[..size - 4]);
    archive[size - 4..size].copy_from_slice(&crc.to_le_bytes());
}

/// Text that tokenizers get wrong: special-token text, invalid UTF-8, characters some
/// tokenizers drop or map elsewhere, NULs, CRLF, astral code points, a cut UTF-8 sequence.
pub fn awkward_text() -> Vec<u8> {
    let mut data = Vec::new();
    data.extend(b"Plain prose to start with, then the tricky parts follow.\r\n");
    data.extend(b"Special tokens as text: <|endoftext|> and <|im_start|>user\nhi<|im_end|>\n");
    data.extend(b"More of them: <bos><start_of_turn>model <eos> <|fim_prefix|> </s> <pad>\n");
    data.extend(b"Invalid UTF-8: \xff\xfe\xc3\x28 and a lone continuation \x80 byte.\n");
    data.extend(
        "Dropped characters: \u{4} \u{13} \u{6}\u{14}\u{16}\u{1d} \u{40000}\u{FFFFF} end.\n"
            .as_bytes(),
    );
    data.extend(
        "SentencePiece's space mark \u{2581} between words\u{2581}\u{2581}here.\n".as_bytes(),
    );
    data.extend(b"NUL bytes \0\0 in the middle\0 of text, and a tab\there.\r\n");
    data.extend("Unicode: café, naïve, 日本語, emoji 😀, U+FFFD \u{FFFD}.\n".as_bytes());
    data.extend(&[0xF0, 0x9F, 0x98]); // truncated 4-byte sequence at the very end
    data
}
