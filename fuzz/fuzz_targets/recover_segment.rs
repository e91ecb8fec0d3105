//! Arbitrary bytes after a valid file header as the only segment of a log: open (crash
//! recovery), read everything back, append, reopen; and `internals::scan` on the same bytes.
//! The checks are in `src/lib.rs`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| riverbed_fuzz::recover_segment(data));
