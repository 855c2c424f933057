//! A valid, mapped queue whose shared words and ring bytes are overwritten
//! between operations.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mproc_fuzz::segment_mutate(data));
