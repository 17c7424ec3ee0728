//! See `switchyard::fuzzing::config_loader` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard::fuzzing::config_loader(data));
