//! Helpers for tests that drive Ore's real binaries.
//!
//! The binaries of every workspace member are built into the target directory by
//! `cargo build --workspace`, the first half of the test command in `.ci/run` (docs/TESTING.md).
//! A missing binary is a loud failure, never a skipped test.

use std::path::PathBuf;

/// The path of a workspace binary, panicking with instructions when it was not built.
pub fn bin(name: &str) -> PathBuf {
    for dir in connect::spawn::sibling_dirs() {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "the binary `{name}` was not found next to the test executable; \
         run `cargo build --workspace && cargo test --workspace` so every program is built"
    );
}

/// Quotes a path for an archive identifier.
pub fn quote(p: &std::path::Path) -> String {
    shell_quote(&p.display().to_string())
}

/// Quotes a string as one word of an archive identifier.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Bytes in the log files of the splitlog archive in `dir` (0 when it cannot be read).
pub fn logged(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("log-"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub mod archival;
pub mod campaign;
pub mod crafted;
pub mod dumps;
pub mod fuse;
pub mod liveness;
pub mod measure;
pub mod media;
pub mod ore;
pub mod powercut;
pub mod programs;
pub mod s3objects;
pub mod seaweed;
pub mod sshd;
pub mod tmpfs;
pub mod trees;
pub mod users;
