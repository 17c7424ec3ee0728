//! See `switchyard::fuzzing::tag_parser` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard::fuzzing::tag_parser(data));
