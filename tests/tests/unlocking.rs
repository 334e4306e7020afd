//! A snapshot asks for the passphrase first, then derives the archive's keys in a thread of its
//! own while it takes its lease and walks (`ore/src/core/unlock.rs`). A directory whose entries
//! are the ones the file cache made its tree from takes the tree's key from the cache
//! (`snapshot/walk/same.rs`), so an unchanged re-snapshot walks without the keys. These tests
//! give the archive a slow key derivation (about a second) so that any wait shows, and read
//! who waited from the debug lines `ORE_DEBUG` turns on.

use ore::core::crypto::KdfParams;
use ore::core::repo::{InitOptions, Repo};
use ore_tests::ore::{scratch, Ore};
use ore_tests::{bin, quote, shell_quote};
use std::path::Path;

const PASSPHRASE: &str = "correct horse battery staple";

/// A local archive in `dir` whose passphrase takes about a second to derive keys from.
fn slow_archive(dir: &Path) -> Ore {
    let id = dir.join("archive").display().to_string();
    let backend = ore::core::archive::open_single(&id).expect("backend");
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 64 * 1024,
            iterations: 16,
            ..KdfParams::new_default()
        },
        ..InitOptions::default()
    };
    let pass = |_: &str| Ok(PASSPHRASE.as_bytes().to_vec());
    Repo::init(backend, &id, &opts, &pass).expect("init");
    Ore::new(id)
}

/// A tree of 30 directories two levels deep, each with small files, a symlink and a file
/// large enough to be chunked alone.
fn tree(src: &Path) {
    for i in 0..6 {
        for j in 0..5 {
            let d = src.join(format!("d{i}")).join(format!("e{j}"));
            std::fs::create_dir_all(&d).expect("mkdir");
            for k in 0..8 {
                std::fs::write(d.join(format!("f{k}")), format!("{i} {j} {k}")).expect("write");
            }
            std::os::unix::fs::symlink(format!("target-{i}-{j}"), d.join("link")).expect("ln");
        }
    }
    std::fs::write(src.join("big"), ore_tests::trees::bytes(3, 300 << 10)).expect("write");
}

/// The names of the threads that waited for the key derivation, from a run's debug lines.
fn waiters(stderr: &str) -> Vec<String> {
    // `ore: debug: [0.058 s] thread ore-walk-1 waited 47 ms for the key derivation`
    stderr
        .lines()
        // On a terminal the line may follow the progress line's last drawing.
        .filter_map(|l| l.find("ore: debug: ").map(|at| &l[at..]))
        .filter(|l| l.ends_with(" for the key derivation"))
        .filter_map(|l| l.split_once("] thread "))
        .filter_map(|(_, l)| l.split_once(" waited "))
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Runs `ore snapshot TAG SRC` with debug lines on; its standard error.
fn snapshot(ore: &Ore, tag: &str, src: &Path) -> String {
    let out = ore
        .cmd(&["snapshot", tag, src.to_str().expect("utf-8")])
        .env("ORE_DEBUG", "1")
        .output()
        .expect("ore runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "snapshot failed: {err}");
    err
}

/// Restores the latest snapshot of `tag` and compares it with `src`.
fn restores_as(ore: &Ore, tag: &str, src: &Path, to: &Path) {
    ore.restore(tag, to).expect(0, "restore");
    ore_tests::trees::assert_same(src, to);
}

/// A slow archive with two snapshots of [`tree`] under tag `t`, the second of which made the
/// marks: its scratch directory, the archive, and the tree.
fn snapshot_twice() -> (tempfile::TempDir, Ore, std::path::PathBuf) {
    let d = scratch();
    let ore = slow_archive(d.path());
    let src = d.path().join("src");
    tree(&src);
    snapshot(&ore, "t", &src);
    snapshot(&ore, "t", &src);
    (d, ore, src)
}

#[test]
fn an_unchanged_re_snapshot_walks_without_waiting_for_the_key_derivation() {
    let d = scratch();
    let ore = slow_archive(d.path());
    let src = d.path().join("src");
    tree(&src);

    // The first snapshot has everything to store: its walk needs the keys, and waits. This
    // is what shows that a wait would be seen below.
    let first = waiters(&snapshot(&ore, "t", &src));
    assert!(
        first.iter().any(|t| t != "main"),
        "the first snapshot's walk did not wait for the keys: {first:?}"
    );
    // The second finds every directory's tree in the cache (and makes its marks): only
    // the end of the run, which stores the snapshot, may wait.
    snapshot(&ore, "t", &src);
    let third = waiters(&snapshot(&ore, "t", &src));
    assert!(
        third.iter().all(|t| t == "main"),
        "an unchanged re-snapshot's walk waited for the keys: {third:?}"
    );
    restores_as(&ore, "t", &src, &d.path().join("out"));
}

#[test]
fn a_symlink_retargeted_where_nothing_else_changed_is_saved_though_trees_come_from_the_cache() {
    let (d, ore, src) = snapshot_twice();
    // The file cache keeps no row for a symlink: the directory's entries, digested again,
    // tell that it changed.
    let link = src.join("d3").join("e2").join("link");
    std::fs::remove_file(&link).expect("rm");
    std::os::unix::fs::symlink("somewhere else", &link).expect("ln");
    snapshot(&ore, "t", &src);
    restores_as(&ore, "t", &src, &d.path().join("out"));
    ore.run(&["check"]).expect(0, "check");
}

#[test]
fn on_a_terminal_the_size_of_the_snapshot_before_is_read_beside_the_walk() {
    let (_d, ore, src) = snapshot_twice();
    // The progress line's ETA wants the last snapshot's size, which takes the keys to read:
    // the run's main thread once waited for them there, before the walk began.
    let cmd = format!(
        "{} -a {} snapshot t {}",
        quote(&bin("ore")),
        shell_quote(&ore.archive),
        quote(&src)
    );
    let out = std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("ORE_PASSPHRASE", PASSPHRASE)
        .env("XDG_CACHE_HOME", &ore.cache)
        .env("ORE_DEBUG", "1")
        .env("TERM", "xterm")
        .output()
        .expect("util-linux `script` runs");
    let shown = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    assert!(out.status.success(), "{shown}");
    let waited = waiters(&shown);
    assert!(
        waited.iter().any(|t| t == "ore previous size"),
        "the size was not read on its own thread: {waited:?}\n{shown}"
    );
    assert!(
        waited.iter().all(|t| !t.starts_with("ore-walk")),
        "the walk waited for the keys: {waited:?}"
    );
}
