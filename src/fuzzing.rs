//! Entry points for fuzzing, shared by the cargo-fuzz targets in `fuzz/` and the test suite's
//! fixed-seed run, so both exercise exactly the same code. Each must return for any input —
//! an error is fine, a panic, a hang or an unbounded allocation is a bug.

use crate::container::read_header;
use crate::container::Archive;
use crate::container::StreamReader;
use crate::models::FetchPolicy;
use crate::pipeline::{decompress, decompress_stream, DecompressOptions};

/// Parses `data` as an archive both ways: whole (header, index, every frame header) and as a
/// stream (header, then frame after frame up to the index).
pub fn parse_container(data: &[u8]) {
    if let Ok(archive) = Archive::parse(data) {
        for i in 0..archive.index.chunks.len() {
            let _ = archive.payload(i);
        }
        let _ = archive.original_size();
    }
    let mut input = data;
    if let Ok((header, bytes)) = read_header(&mut input) {
        if let Ok(mut reader) = StreamReader::new(input, header, bytes.len()) {
            while let Ok(Some(_)) = reader.next_chunk() {}
        }
    }
}

/// Decodes `data` whole and as a stream, without a model (LLM archives stop where the model
/// would be loaded). Where both decoders succeed they must agree: returns their output.
pub fn decode(data: &[u8]) -> Option<Vec<u8>> {
    let opts = DecompressOptions {
        model_path: Some("/nonexistent/nzip-fuzzing-has-no-model.gguf".into()),
        fetch: FetchPolicy::Never,
        threads: 1,
        ..DecompressOptions::default()
    };
    let mut whole = Vec::new();
    let whole = decompress(data, &opts, &mut whole, &|_| {}).map(|_| whole);
    let mut streamed = Vec::new();
    let streamed =
        decompress_stream(&mut { data }, &opts, &mut streamed, &|_| {}).map(|_| streamed);
    match (whole, streamed) {
        (Ok(a), Ok(b)) => {
            assert!(a == b, "whole and stream decoders disagree");
            Some(a)
        }
        (Ok(a), Err(e)) | (Err(e), Ok(a)) if data.get(8..10) == Some(&[3, 0]) => {
            panic!(
                "one decoder accepted what the other refused ({e}); {} bytes",
                a.len()
            )
        }
        _ => None,
    }
}
