//! Arbitrary bytes as a segment file, opened as a queue, joinable queue or lock.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mproc_fuzz::segment_bytes(data));
