//! Replays every fuzz target's checked-in corpus (`fuzz/corpus/<target>/`) through the
//! same bodies the fuzzer runs (`fuzz/bodies.rs`), uninstrumented: seconds, in every
//! test run. A crash the fuzzer finds becomes a file in the corpus, and so a test.

#[allow(dead_code, unreachable_pub)]
#[path = "../../fuzz/bodies.rs"]
mod bodies;

use std::path::PathBuf;

#[test]
fn every_corpus_file_passes_its_target() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0;
    for (name, body) in bodies::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name}: no corpus");
        for file in files {
            let data = std::fs::read(&file).unwrap();
            // A panic names the file: `fuzz/run.sh` reproduces it instrumented.
            eprintln!("{name}: {}", file.display());
            body(&data);
            replayed += 1;
        }
    }
    eprintln!("{replayed} corpus files replayed");
}
