//! See `switchyard::fuzzing::adapter_replies` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard::fuzzing::adapter_replies(data));
