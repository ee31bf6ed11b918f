//! Fuzz target: both decoders on the same bytes; where both succeed they must agree.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    nzip::fuzzing::decode(data);
});
