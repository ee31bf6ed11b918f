//! Every documented failure gives a clear error, exit code 1, and no output file; no input
//! makes nzip panic.

use std::path::Path;
use std::sync::OnceLock;

use nzip::pipeline::{compress, CompressOptions, Engine};
use nzip::{Error, FormatError};
use predicates::prelude::*;
use proptest::prelude::*;

use crate::util::{decode, edit_header, file_with, nzip, random_bytes};

const TEXT: &[u8] = b"A small archive for the error tests: long enough to have tokens.\n";

fn text_archive() -> Vec<u8> {
    static ARCHIVE: OnceLock<Vec<u8>> = OnceLock::new();
    ARCHIVE
        .get_or_init(|| {
            // llama.cpp's numerics: their fingerprint is what the mismatch test edits.
            let opts = CompressOptions {
                engine: Some(Engine::Llama),
                ..CompressOptions::default()
            };
            compress(TEXT, &opts, &|_| {}).unwrap()
        })
        .clone()
}

/// Decompresses `archive` with the CLI; asserts failure with `message` and no output left.
fn cli_refuses(archive: &[u8], message: &str, extra: &[&str]) {
    let (dir, path) = file_with("bad.txt.nz", archive);
    nzip()
        .arg("decompress")
        .args(extra)
        .arg(&path)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(message));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("bad.txt.nz")],
        "no output may be left behind"
    );
}

#[test]
fn not_an_nzip_file() {
    cli_refuses(
        b"\x1f\x8b\x08 this is gzip, not nzip",
        "not an nzip archive",
        &[],
    );
}

#[test]
fn truncated_files() {
    let a = text_archive();
    for cut in [3, 20, a.len() / 2, a.len() - 1] {
        let err = decode(&a[..cut]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Format(FormatError::Truncated(_)) | Error::Format(FormatError::Malformed(_))
            ),
            "cut at {cut}: {err}"
        );
    }
    cli_refuses(&a[..a.len() - 5], "truncated", &[]);
}

#[test]
fn flipped_bit_in_header_and_payload() {
    let a = text_archive();
    let mut h = a.clone();
    h[30] ^= 0x04;
    cli_refuses(&h, "header CRC mismatch", &[]);
    // A payload flip: the range decoder produces other tokens, and the chunk CRC says so.
    let header_size = u32::from_le_bytes(a[12..16].try_into().unwrap()) as usize;
    let mut p = a.clone();
    p[header_size + 6] ^= 0x01;
    let err = decode(&p).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Format(FormatError::Crc { .. }) | Error::Format(FormatError::Malformed(_))
        ),
        "{err}"
    );
    cli_refuses(&p, "chunk", &[]);
}

#[test]
fn unknown_version() {
    let mut a = text_archive();
    edit_header(&mut a, |h| h[8] = 4);
    cli_refuses(&a, "unsupported archive format version 4", &[]);
}

#[test]
fn reserved_bits_set() {
    let mut a = text_archive();
    edit_header(&mut a, |h| h[11] |= 0x40);
    cli_refuses(&a, "reserved bits", &[]);
}

#[test]
fn numerics_mismatch_and_forcing_it() {
    let mut a = text_archive();
    let at = a
        .windows(4)
        .position(|w| w == b"CPU;")
        .expect("numerics in header");
    edit_header(&mut a, |h| h[at..at + 3].copy_from_slice(b"GPU"));
    cli_refuses(&a, "numerics mismatch", &[]);
    // Forced, it decodes (the logits are in fact the same here), and the CRCs vouch for it.
    let (dir, path) = file_with("forced.txt.nz", &a);
    nzip()
        .args(["decompress", "--force-numerics"])
        .arg(&path)
        .assert()
        .success();
    assert_eq!(std::fs::read(dir.path().join("forced.txt")).unwrap(), TEXT);
}

/// An archive of a later portable arithmetic than this nzip computes is refused by that
/// name, before any model is loaded (never taken for llama.cpp's numerics).
#[test]
fn later_portable_numerics() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v3-portable2.bin.nz");
    let mut a = std::fs::read(golden).unwrap();
    let at = a
        .windows(15)
        .position(|w| w == b"nzip portable 2")
        .expect("numerics in header");
    edit_header(&mut a, |h| h[at + 14] = b'9');
    cli_refuses(
        &a,
        "numerics \"nzip portable 9\", which this nzip does not compute",
        &[],
    );
}

#[test]
fn model_missing() {
    let a = text_archive();
    let empty = tempfile::tempdir().unwrap();
    let (_dir, path) = file_with("m.txt.nz", &a);
    nzip()
        .env("NZIP_MODEL_DIR", empty.path())
        .env("NZIP_OFFLINE", "1")
        .arg("decompress")
        .arg(&path)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not installed"));
}

#[test]
fn model_hash_mismatch() {
    let a = text_archive();
    let (dir, wrong_model) = file_with("other.gguf", &random_bytes(1000, 3));
    let path = dir.path().join("h.txt.nz");
    std::fs::write(&path, &a).unwrap();
    nzip()
        .arg("decompress")
        .arg("--model")
        .arg(&wrong_model)
        .arg(&path)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("SHA-256"));
    assert!(!Path::new(&dir.path().join("h.txt")).exists());
}

#[test]
fn unknown_model_name() {
    let (_dir, input) = file_with("u.txt", TEXT);
    nzip()
        .args(["compress", "--model", "no-such-model"])
        .arg(&input)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown model"));
}

/// Archives without a model section decode fast, so they take the bulk of the mutations.
fn raw_archive() -> Vec<u8> {
    static ARCHIVE: OnceLock<Vec<u8>> = OnceLock::new();
    ARCHIVE
        .get_or_init(|| {
            let mut data = random_bytes(3000, 5);
            data.extend(b"\x00\x01\x02\x00\x01\x02\x00\x01\x02".repeat(50));
            let archive = compress(
                &data,
                &CompressOptions {
                    chunk_size: 700,
                    ..CompressOptions::default()
                },
                &|_| {},
            )
            .unwrap();
            let parsed = nzip::container::Archive::parse(&archive).unwrap();
            assert!(parsed.header.model.is_none());
            assert!(parsed
                .index
                .chunks
                .iter()
                .any(|c| c.kind == nzip::container::ChunkKind::Modelled));
            archive
        })
        .clone()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn mutated_raw_archives_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..6),
                                        cut in any::<prop::sample::Index>(), truncate in any::<bool>()) {
        let mut a = raw_archive();
        for (at, bit) in flips {
            let i = at.index(a.len());
            a[i] ^= 1 << bit;
        }
        if truncate {
            a.truncate(cut.index(a.len()));
        }
        // Any outcome but a panic is fine; a success must be the original length at least.
        let _ = decode(&a);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn mutated_llm_archives_never_panic_or_pass(flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let original = text_archive();
        let mut a = original.clone();
        let i = flip.index(a.len());
        a[i] ^= 1 << bit;
        if let Ok(out) = decode(&a) {
            prop_assert_eq!(out, TEXT.to_vec(), "a damaged archive decoded to wrong bytes");
        }
    }
}
