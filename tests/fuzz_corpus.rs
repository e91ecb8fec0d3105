//! Replays every seed and every saved crash in `fuzz/corpus/<target>/` through the checks the fuzz
//! targets run (`fuzz/src/lib.rs`, included here as a module), so that a regression shows up in
//! `cargo test` without libFuzzer. The `index_lookup` corpus and the parts of the other checks
//! that use `riverbed::internals` run only with `--features internals` (or `--all-features`).

#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// Runs `check` on every file of `fuzz/corpus/<target>/` and fails naming every file that panics.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let bytes = std::fs::read(path).expect("read corpus file");
            catch_unwind(AssertUnwindSafe(|| check(&bytes))).is_err()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} {target} corpus files fail (panic messages above):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn decode_batch_corpus() {
    replay("decode_batch", checks::decode_batch);
}

#[cfg(feature = "internals")]
#[test]
fn index_lookup_corpus() {
    replay("index_lookup", checks::index_lookup);
}

/// The wire front's request path (a served store over loopback): every seed and saved crash of
/// `fuzz/corpus/server_request`.
#[cfg(feature = "server")]
#[test]
fn server_request_corpus() {
    replay("server_request", checks::server_request);
}

#[test]
fn recover_segment_corpus() {
    replay("recover_segment", checks::recover_segment);
}

/// The CRC fix-up that lets `decode_batch` reach the record decoder really makes a batch with a
/// damaged CRC parse.
#[test]
fn crc_fix_up_makes_a_damaged_batch_parse() {
    let mut b = riverbed::BatchBuilder::new(riverbed::Compression::None);
    b.append(1, Some(b"k"), Some(b"v"), &[]);
    let mut bytes = b.build().expect("build").as_bytes().to_vec();
    bytes[20] ^= 1; // inside the CRC-covered range
    assert!(riverbed::BatchRef::parse(&bytes, usize::MAX).is_err());
    let fixed = checks::with_fixed_crc(&bytes).expect("the length fits");
    assert!(riverbed::BatchRef::parse(&fixed, usize::MAX).is_ok());
}

#[cfg(feature = "internals")]
#[test]
fn decode_files_corpus() {
    replay("decode_files", checks::decode_files);
}

/// The `decode_files` seeds are valid files (each decodes), so the fuzzer starts from inputs
/// that reach past the first check of every decoder.
#[cfg(feature = "internals")]
#[test]
fn decode_files_seeds_are_valid_files() {
    use riverbed::internals::files;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode_files");
    let mut seen = [false; 4];
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("seed-") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read seed");
        let (&which, file) = bytes.split_first().expect("a selector byte");
        let ok = match which % 4 {
            0 => files::decode_producer_state(file).is_ok(),
            1 => files::decode_txn_index(file, 0, 1 << 40).is_ok(),
            2 => files::decode_topics(file).is_ok(),
            _ => files::decode_streams_checkpoint(file, "app-store-changelog", 0).is_ok(),
        };
        assert!(ok, "{name} does not decode");
        seen[usize::from(which % 4)] = true;
    }
    assert_eq!(seen, [true; 4], "a seed per decoder");
}
