//! Offset and time index lookups over arbitrary index bytes and targets, checked against a
//! linear scan.
//! The checks are in `src/lib.rs`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| riverbed_fuzz::index_lookup(data));
