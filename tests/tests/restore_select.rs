//! `ore restore --include/--exclude`, `--dry-run` and `--delete` (issue 26, item 6): restoring
//! a few paths with the directories on the way, seeing what a restore would do before it
//! does it, and making a destination match the snapshot, one removal printed at a time.

use ore_tests::ore::{scratch, Ore};
use ore_tests::trees::write_file as write;
use std::path::Path;

/// Every path below `dir`, relative, sorted; directories end with `/`.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut open = vec![dir.to_path_buf()];
    while let Some(d) = open.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let rel = p.strip_prefix(dir).expect("below").display().to_string();
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            if m.is_dir() {
                out.push(format!("{rel}/"));
                open.push(p);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// An archive with one snapshot `t` of a small tree.
fn archive(d: &Path) -> Ore {
    let o = Ore::new(d.join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = d.join("src");
    write(&src.join("docs/a.pdf"), b"a");
    write(&src.join("docs/old/b.pdf"), b"b");
    write(&src.join("docs/notes.txt"), b"n");
    write(&src.join("music/c.mp3"), b"c");
    write(&src.join("deep/er/d.pdf"), b"d");
    write(&src.join("top.txt"), b"t");
    o.snapshot("t", &src);
    o
}

#[test]
fn an_include_restores_what_matches_with_the_directories_on_the_way_and_an_exclude_wins() {
    let d = scratch();
    let o = archive(d.path());
    let dest = d.path().join("pdfs");
    let to = dest.to_str().expect("UTF-8");
    o.run(&["restore", "t", to, "--include", "*.pdf", "--exclude", "old"])
        .expect(0, "restore PDFs");
    assert_eq!(
        tree(&dest),
        ["deep/", "deep/er/", "deep/er/d.pdf", "docs/", "docs/a.pdf"]
    );
    // A directory included takes everything below it; a path pattern takes that path only.
    let dest = d.path().join("docs");
    let to = dest.to_str().expect("UTF-8");
    o.run(&[
        "restore",
        "t",
        to,
        "--include",
        "docs",
        "--exclude",
        "*.txt",
    ])
    .expect(0, "restore docs");
    assert_eq!(
        tree(&dest),
        ["docs/", "docs/a.pdf", "docs/old/", "docs/old/b.pdf"]
    );
    let dest = d.path().join("one");
    let to = dest.to_str().expect("UTF-8");
    o.run(&["restore", "t", to, "--include", "docs/old/*.pdf"])
        .expect(0, "restore by path");
    assert_eq!(tree(&dest), ["docs/", "docs/old/", "docs/old/b.pdf"]);
    let r = o
        .run(&["restore", "t", to, "--exclude", "[x"])
        .expect(1, "bad pattern");
    assert!(
        r.stderr.contains("--exclude `[x`: not a pattern"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_dry_run_says_what_a_restore_would_do_and_changes_nothing() {
    let d = scratch();
    let o = archive(d.path());
    let dest = d.path().join("dest");
    write(&dest.join("docs/a.pdf"), b"changed");
    write(&dest.join("stray/x"), b"x");
    let before = tree(&dest);
    let to = dest.to_str().expect("UTF-8");
    let r = o
        .run(&[
            "restore",
            "t",
            to,
            "--dry-run",
            "--delete",
            "--exclude",
            "music",
        ])
        .expect(0, "dry run");
    let at = |p: &str| format!(" {}", dest.join(p).display());
    let lines: Vec<&str> = r.stdout.lines().collect();
    let has = |mark: &str, p: &str| lines.iter().any(|l| *l == format!("{mark}{}", at(p)));
    assert!(has("-", "stray/"), "{}", r.stdout);
    assert!(
        has("~", "docs/a.pdf"),
        "--delete implies if-changed: {}",
        r.stdout
    );
    assert!(has("+", "docs/old/b.pdf"), "{}", r.stdout);
    assert!(has("+", "top.txt"), "{}", r.stdout);
    assert!(!r.stdout.contains("music"), "excluded: {}", r.stdout);
    assert!(
        r.stderr.contains("dry run, nothing changed"),
        "{}",
        r.stderr
    );
    assert_eq!(tree(&dest), before);
    assert_eq!(
        std::fs::read(dest.join("docs/a.pdf")).expect("read"),
        b"changed"
    );
    // Without --delete, what exists is kept: that is what the plan says too.
    let r = o.run(&["restore", "t", to, "-n"]).expect(0, "dry run");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines.contains(&format!("={}", at("docs/a.pdf")).as_str()),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("stray"), "{}", r.stdout);
}

#[test]
fn delete_makes_the_destination_match_the_snapshot_and_says_each_removal() {
    let d = scratch();
    let o = archive(d.path());
    let dest = d.path().join("dest");
    write(&dest.join("docs/a.pdf"), b"changed");
    write(&dest.join("stray/deep/x"), b"x");
    write(&dest.join("stray.txt"), b"x");
    // Something else than a directory where the snapshot has one, and the other way round.
    write(&dest.join("music"), b"a file where a directory goes");
    write(
        &dest.join("top.txt/inner"),
        b"a directory where a file goes",
    );
    let to = dest.to_str().expect("UTF-8");
    let r = o
        .run(&["restore", "t", to, "--delete"])
        .expect(0, "restore --delete");
    for gone in ["stray", "stray.txt", "music", "top.txt"] {
        assert!(
            r.stderr
                .contains(&format!("removed {}", dest.join(gone).display())),
            "{gone}: {}",
            r.stderr
        );
    }
    assert!(
        r.stderr.contains("and the 2 entries it held"),
        "stray/ with deep/x: {}",
        r.stderr
    );
    let src = d.path().join("src");
    assert_eq!(tree(&dest), tree(&src));
    o.run(&["check", "t", "--compare", to])
        .expect(0, "the destination matches");
}

#[test]
fn delete_leaves_alone_what_the_selection_does_not_take() {
    let d = scratch();
    let o = archive(d.path());
    let dest = d.path().join("dest");
    write(&dest.join("docs/stray.pdf"), b"x");
    write(&dest.join("docs/stray.txt"), b"x");
    write(&dest.join("docs/keep.log"), b"x");
    let to = dest.to_str().expect("UTF-8");
    o.run(&[
        "restore",
        "t",
        to,
        "--delete",
        "--include",
        "docs",
        "--exclude",
        "*.log",
    ])
    .expect(0, "restore");
    assert!(!dest.join("docs/stray.pdf").exists());
    assert!(!dest.join("docs/stray.txt").exists());
    assert!(dest.join("docs/keep.log").exists(), "excluded: left alone");
    write(&dest.join("docs/stray.txt"), b"x");
    o.run(&["restore", "t", to, "--delete", "--include", "*.pdf"])
        .expect(0, "restore");
    assert!(
        dest.join("docs/stray.txt").exists(),
        "not included: left alone"
    );
}

#[test]
fn delete_removes_a_symlink_itself_and_never_what_it_points_at() {
    let d = scratch();
    let o = archive(d.path());
    let outside = d.path().join("outside");
    write(&outside.join("precious"), b"p");
    let dest = d.path().join("dest");
    std::fs::create_dir(&dest).expect("mkdir");
    // A stray link to a directory, and a link where the snapshot has a directory.
    std::os::unix::fs::symlink(&outside, dest.join("link")).expect("symlink");
    std::os::unix::fs::symlink(&outside, dest.join("docs")).expect("symlink");
    let to = dest.to_str().expect("UTF-8");
    o.run(&["restore", "t", to, "--delete"])
        .expect(0, "restore");
    assert!(outside.join("precious").exists());
    assert_eq!(tree(&outside), ["precious"]);
    assert!(!dest.join("link").exists());
    assert!(dest.join("docs/a.pdf").is_file(), "a real directory now");
}

#[test]
fn delete_refuses_a_destination_that_holds_the_archive() {
    let d = scratch();
    let o = archive(d.path());
    let to = d.path().to_str().expect("UTF-8");
    let r = o
        .run(&["restore", "t", to, "--delete"])
        .expect(1, "refused");
    assert!(
        r.stderr.contains("--delete: the archive") && r.stderr.contains("is inside"),
        "{}",
        r.stderr
    );
    assert!(d.path().join("arch").is_dir(), "the archive is still there");
    assert!(d.path().join("src/top.txt").is_file(), "nothing removed");
}

#[test]
fn a_name_with_a_newline_cannot_forge_a_line_of_the_report() {
    let d = scratch();
    let o = archive(d.path());
    let dest = d.path().join("dest");
    std::fs::create_dir(&dest).expect("mkdir");
    std::fs::write(dest.join("x\n~ forged"), b"planted").expect("write");
    let to = dest.to_str().expect("UTF-8");
    let r = o
        .run(&["restore", "t", to, "--delete", "--dry-run"])
        .expect(0, "dry run");
    assert!(
        !r.stdout.lines().any(|l| l.starts_with("~ forged")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("x\\n~ forged"), "escaped: {}", r.stdout);
    let r = o
        .run(&["restore", "t", to, "--delete"])
        .expect(0, "restore");
    assert!(
        !r.stderr.lines().any(|l| l.starts_with("~ forged")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("x\\n~ forged"), "{}", r.stderr);
}
