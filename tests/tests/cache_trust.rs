//! The file cache is trusted per directory (`core/filecache.rs`): after blocks were removed
//! from the archive, a run checks the rows of each directory it visits against the archive and
//! marks them with a new generation; rows it does not visit stay behind, untrusted, until a run
//! meets them. A whole-cache flag vouched for rows no run had checked, and a snapshot could
//! then name blocks gc had removed. Each test here is one way that happened.

use ore_tests::ore::Ore;
use std::path::Path;

fn write(p: &Path, bytes: &str) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, bytes).expect("write");
}

/// Keeps the last snapshot of `tag` only, and removes whatever nothing reaches any more.
fn prune(ore: &Ore, tag: &str) {
    ore.run(&["forget", tag, "--keep-last", "1", "--prune"])
        .expect(0, "forget");
    ore.run(&["gc", "--expire-reflog"]).expect(0, "gc");
}

fn snapshot(ore: &Ore, tag: &str, path: &Path) {
    ore.run(&["snapshot", tag, path.to_str().expect("utf-8")])
        .expect(0, "snapshot");
}

/// `ore check` finds nothing missing, and the last snapshot of `tag` restores as `src`.
fn whole(ore: &Ore, tag: &str, src: &Path, to: &Path) {
    ore.run(&["check"]).expect(0, "check");
    ore.restore(tag, to).expect(0, "restore");
    ore_tests::trees::assert_same(src, to);
}

#[test]
fn a_directory_that_was_a_file_while_blocks_were_removed_is_stored_again_when_it_comes_back() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    // Entries with no content block of their own: nothing but the directory's tree names
    // anything the archive must hold.
    std::fs::create_dir_all(src.join("p")).expect("mkdir");
    std::os::unix::fs::symlink("a target no other tree has", src.join("p").join("link"))
        .expect("ln");
    write(&src.join("p").join("empty"), "");
    write(&src.join("keep"), "keep");
    snapshot(&ore, "t", &src);
    let saved = d.path().join("p.saved");
    std::fs::rename(src.join("p"), &saved).expect("mv");
    write(&src.join("p"), "now a file");
    snapshot(&ore, "t", &src);
    // The tree of `p` is gone from the archive; the run after gc checks the cache, but meets
    // `p` as a file.
    prune(&ore, "t");
    snapshot(&ore, "t", &src);
    std::fs::remove_file(src.join("p")).expect("rm");
    std::fs::rename(&saved, src.join("p")).expect("mv back");
    snapshot(&ore, "t", &src);
    whole(&ore, "t", &src, &d.path().join("out"));
}

#[test]
fn a_tree_another_tag_left_in_the_cache_is_checked_after_blocks_were_removed() {
    let (ore, d) = Ore::local();
    let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
    for dir in [&a, &b] {
        for sub in ["x", "y"] {
            for i in 1..=3 {
                let name = format!("{}/{sub} {i}", dir.display());
                write(&dir.join(sub).join(format!("f{i}")), &name);
            }
        }
    }
    write(&c.join("f"), "c");
    snapshot(&ore, "tb", &b);
    snapshot(&ore, "ta", &a);
    // tb moves to another tree, and gc removes what only b's snapshot held.
    snapshot(&ore, "tb", &c);
    prune(&ore, "tb");
    // This run checks the cache, but only below a: b's rows stay as they were.
    snapshot(&ore, "ta", &a);
    snapshot(&ore, "tb", &b);
    whole(&ore, "tb", &b, &d.path().join("out"));
}
