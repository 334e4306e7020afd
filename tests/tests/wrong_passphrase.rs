//! A snapshot given a wrong passphrase stores nothing and moves no tag, however much of its
//! tree is new: the keys every block is named and sealed with are never known. A snapshot
//! starts its walk while the keys are still being derived (`core/unlock.rs`), so it may have
//! read much of the tree when it learns the passphrase was wrong.

use ore_tests::ore::{scratch, Ore};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let name = p.strip_prefix(dir).expect("below").display().to_string();
                out.insert(name, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

/// The tags of the backend-fs archive at `fsdir` other than its lease slots, with values.
fn tags(fsdir: &Path) -> BTreeMap<String, Vec<u8>> {
    files(&fsdir.join("tags"))
        .into_iter()
        .filter(|(name, _)| !name.starts_with("ore:lease:"))
        .collect()
}

#[test]
fn a_snapshot_with_a_wrong_passphrase_stores_no_block_and_moves_no_tag() {
    let d = scratch();
    let fsdir = d.path().join("fs");
    let ore = Ore::fs(&fsdir);
    let src = d.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("first"), b"the first snapshot").expect("write");
    ore.snapshot("t", &src);
    // Much that is new: a run that went ahead before the keys were known would store it.
    for i in 0..3000 {
        std::fs::write(src.join(format!("new-{i:05}")), format!("new file {i}")).expect("write");
    }
    std::fs::write(src.join("big"), ore_tests::trees::bytes(7, 4 << 20)).expect("write");
    let blocks = files(&fsdir.join("blocks"));
    let before = tags(&fsdir);

    let mut wrong = ore.cmd(&["snapshot", "t", src.to_str().expect("utf-8")]);
    let out = wrong
        .env("ORE_PASSPHRASE", "not it")
        .output()
        .expect("ore runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("wrong passphrase"), "{err}");
    assert!(
        !err.contains("new-0"),
        "no file is blamed for the passphrase: {err}"
    );

    // The same through a stream, which stores its first block at once.
    let mut stream = ore
        .cmd(&["snapshot", "t", "-", "--stdin-name", "piped"])
        .env("ORE_PASSPHRASE", "not it")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ore runs");
    let mut input = stream.stdin.take().expect("stdin");
    // The run may stop reading at the wrong passphrase: a closed pipe is expected then.
    let _ = input.write_all(&ore_tests::trees::bytes(8, 1 << 20));
    drop(input);
    let out = stream.wait_with_output().expect("ore ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("wrong passphrase"), "{err}");

    assert!(
        files(&fsdir.join("blocks")) == blocks,
        "no block was stored or changed"
    );
    assert_eq!(tags(&fsdir), before, "no tag moved");
    // And the right passphrase stores it all.
    ore.snapshot("t", &src);
    assert!(files(&fsdir.join("blocks")).len() > blocks.len() + 2);
}
