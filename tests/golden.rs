//! Archives written by earlier nzip versions, kept under `tests/golden/`: every later version
//! must decode them to the bytes beside them, or refuse them with the documented error. This
//! is the format's compatibility promise (formats/NZIP.md).

use std::path::Path;

use nzip::Error;

use crate::util::decode;

fn golden(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Format version 1 (nzip 0.1): one stored chunk; needs no model.
#[test]
fn v1_stored() {
    assert_eq!(
        decode(&golden("v1-stored.bin.nz")).unwrap(),
        golden("v1-stored.bin")
    );
}

/// Format version 1: text through the default model, raw bytes through the order-2 byte
/// model, in one stream. Made on x86_64 with AVX2 on the CPU backend: elsewhere the only
/// acceptable answer is the numerics mismatch, never other bytes.
#[test]
fn v1_text_and_raw_bytes() {
    decodes_where_numerics_match("v1-mixed.bin");
}

/// An LLM archive decodes to its original here, or is refused for its numerics, never
/// anything else. A refusal is a skip, and says so: on a CPU whose kernels differ from the
/// one that made the archive, this test checks only the refusal. `NZIP_GOLDEN_STRICT=1`
/// (CI sets it: its machines compute the numerics the archives were made with, x86_64 with
/// AVX2 on the CPU backend) turns the skip into a failure. A build without llama.cpp must
/// refuse it for that reason.
fn decodes_where_numerics_match(original: &str) {
    match decode(&golden(&format!("{original}.nz"))) {
        Ok(bytes) => assert_eq!(bytes, golden(original)),
        Err(Error::Engine(why)) if !cfg!(feature = "llama") => {
            assert!(why.contains("without llama.cpp"), "{original}.nz: {why}");
        }
        Err(Error::NumericsMismatch { archive, here }) => {
            let strict = std::env::var("NZIP_GOLDEN_STRICT").is_ok_and(|v| v == "1");
            assert!(!strict, "{original}.nz: numerics {archive} here {here}");
            eprintln!(
                "SKIPPED {original}.nz: made with numerics {archive}, this build computes \
                 {here}; only the refusal was checked"
            );
        }
        Err(e) => panic!("{original}.nz refused: {e}"),
    }
}

/// Format version 2, fast mode: three chunks under the context-mixing byte model alone. Its
/// arithmetic is integer-only, so this must decode identically on every machine.
#[test]
fn v2_byte_model() {
    assert_eq!(
        decode(&golden("v2-fast.bin.nz")).unwrap(),
        golden("v2-fast.bin")
    );
}

/// Format version 2: text through the default model, raw bytes through the byte model in the
/// same stream. Like the version-1 one, it decodes exactly or meets a numerics mismatch.
#[test]
fn v2_text_and_raw_bytes() {
    decodes_where_numerics_match("v2-mixed.bin");
}

/// Format version 3, streamed from standard input in fast mode: frame headers before each of
/// three byte-model chunks, and no size in the header (the index gives it). Decodes whole and
/// as a stream.
#[test]
fn v3_streamed_byte_model() {
    decodes_whole_and_as_a_stream("v3-streamed.bin");
}

/// The golden archive of `original` decodes to it from memory and from a stream.
fn decodes_whole_and_as_a_stream(original: &str) {
    let archive = golden(&format!("{original}.nz"));
    let original = golden(original);
    assert_eq!(decode(&archive).unwrap(), original);
    let mut out = Vec::new();
    nzip::pipeline::decompress_stream(
        &mut archive.as_slice(),
        &nzip::pipeline::DecompressOptions::default(),
        &mut out,
        &|_| {},
    )
    .unwrap();
    assert_eq!(out, original);
}

/// Format version 3: text through the default model and raw bytes through the byte model, in
/// a framed chunk. Decodes exactly or meets a numerics mismatch.
#[test]
fn v3_text_and_raw_bytes() {
    decodes_where_numerics_match("v3-mixed.bin");
}

/// Format version 3 with token model 2 (nzip 0.4: the learned per-token bias), text and raw
/// bytes in one chunk. Decodes exactly or meets a numerics mismatch.
#[test]
fn v3_token_model_2() {
    decodes_where_numerics_match("v3-biased.bin");
}

/// Format version 3 with the portable engine's first arithmetic ("nzip portable 1"): text and
/// raw bytes in two chunks of one lockstep group, with a window small enough to slide. Its
/// logits are the same on every machine, so it must decode everywhere: no skip.
#[test]
fn v3_portable_engine() {
    assert_eq!(
        decode(&golden("v3-portable.bin.nz")).unwrap(),
        golden("v3-portable.bin")
    );
}

/// The same input and schedule under "nzip portable 2" (keys scaled per 16 dimensions): a
/// different archive, decoded everywhere too.
#[test]
fn v3_portable_engine_version_2() {
    let archive = golden("v3-portable2.bin.nz");
    assert!(archive.windows(15).any(|w| w == b"nzip portable 2"));
    assert_eq!(decode(&archive).unwrap(), golden("v3-portable2.bin"));
}

/// Gemma 3 on the portable engine ("nzip portable 3", 2026-12-04): a chunk of 726 tokens, so
/// the window of 640 slides and the local layers' 512 positions cut off the oldest ones, then
/// a chunk with raw bytes.
#[test]
fn v3_portable_engine_gemma3() {
    let archive = golden("v3-portable-gemma.bin.nz");
    assert!(archive.windows(15).any(|w| w == b"nzip portable 3"));
    assert_eq!(decode(&archive).unwrap(), golden("v3-portable-gemma.bin"));
}

/// Members (nzip 0.4, still format version 3): a sized member, an empty one and a streamed
/// one, concatenated with `cat`, decode to their inputs one after the other, whole and as a
/// stream.
#[test]
fn v3_members() {
    assert_eq!(
        nzip::container::members(&golden("v3-members.bin.nz")).len(),
        3
    );
    decodes_whole_and_as_a_stream("v3-members.bin");
}
