//! Arbitrary bytes as one of the store's small files (`producer-state`, `.txnindex`, `topics`,
//! a streams checkpoint), picked by the first byte. The checks are in `src/lib.rs`, shared with
//! `tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| riverbed_fuzz::decode_files(data));
