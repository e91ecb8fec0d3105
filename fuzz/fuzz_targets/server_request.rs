//! Arbitrary bytes as Kafka requests to a served store, over loopback: framing, headers,
//! version checks, every advertised API's decoder and handler. The checks are in `src/lib.rs`
//! (`server_request`), shared with `tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| riverbed_fuzz::server_request(data));
