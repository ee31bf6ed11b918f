//! Fuzz target: the container parser, whole and as a stream.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nzip::fuzzing::parse_container(data));
