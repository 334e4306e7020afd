//! What the archival-mode tests share: making small trees, importing them through the real
//! binary, and reading `ore search` and `ore props` answers.

use crate::ore::Ore;
use std::path::Path;

/// Makes `dir` with one file of each `(name, text)`.
pub fn tree(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write");
    }
}

/// `ore import ARGS...`: the key it prints.
pub fn import(ore: &Ore, args: &[&str]) -> String {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    ore.run(&all).expect(0, "import").stdout.trim().to_string()
}

/// Output of `--json` that lists things: one document per line.
pub fn json_lines(out: &str) -> Vec<serde_json::Value> {
    (out.lines())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The keys `ore search --json TAG QUERY` gives, sorted.
pub fn found(ore: &Ore, tag: &str, query: &str) -> Vec<String> {
    let r = ore.run(&["--json", "search", tag, query]).expect(0, query);
    let mut keys: Vec<String> = (json_lines(&r.stdout).iter())
        .map(|h| h["key"].as_str().expect("key").to_string())
        .collect();
    keys.sort();
    keys
}

/// `ore --json props OBJECT`, parsed.
pub fn props_json(ore: &Ore, object: &str) -> serde_json::Value {
    let r = ore.run(&["--json", "props", object]).expect(0, "props");
    serde_json::from_str(r.stdout.trim()).expect("json")
}

/// Bytes of every file under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        let m = e.metadata().expect("metadata");
        n += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}
