//! Fuzzes `ore load` (the dump reader, FORMAT.md §11) end to end into an unencrypted archive
//! in memory: the input follows the stream's magic and version, and when its first byte is odd
//! a correct trailer is appended, so that streams the fuzzer shapes well become snapshots and
//! the whole path is exercised. No input may panic, hang or allocate without bound; whatever
//! loads must read back (every entry of a loaded snapshot passed the decoders' checks).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ore::core::repo::{InitOptions, Repo};
use testkit::MemoryBackend;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut stream = b"ORE-DUMP\x01".to_vec();
    stream.extend_from_slice(rest);
    if mode & 1 == 1 {
        let sum = *blake3::hash(&stream).as_bytes();
        stream.push(7);
        stream.extend_from_slice(&32u32.to_le_bytes());
        stream.extend_from_slice(&sum);
    }
    let opts = InitOptions {
        encrypt: false,
        ..InitOptions::default()
    };
    let backend = Arc::new(MemoryBackend::new(64 << 20));
    let repo = Repo::init(backend, "fuzz", &opts, &|_| Ok(Vec::new())).expect("init in memory");
    if let Ok((key, _, _)) = ore::commands::dump::load(&repo, "fuzz", &mut stream.as_slice()) {
        let snap = repo.snapshot(key).expect("a loaded snapshot reads back");
        let mut out = Vec::new();
        ore::commands::dump::dump(&repo, &snap, &mut out).expect("a loaded snapshot dumps again");
    }
});
