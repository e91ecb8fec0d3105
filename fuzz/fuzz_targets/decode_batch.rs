//! Arbitrary bytes as a record batch: parse (framing + CRC), then every record and header;
//! also the same bytes with their CRC fixed up, so that the record decoder sees deep inputs.
//! The checks are in `src/lib.rs`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| riverbed_fuzz::decode_batch(data));
