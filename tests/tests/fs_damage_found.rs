//! Two backend-fs findings of the crash-and-damage campaign (issue 22, finding 6: damage is
//! reported, never silently lost, and the message names what is wrong).
//!
//! - A damaged line in a tag's history file (`DIR/tag-history/TAG`) was skipped: the tag's
//!   history came back shorter, `ore check` and `verify` said nothing, and gc would have
//!   removed what the lost line kept. Now `verify` names the file and line, the history is
//!   refused rather than shortened (so `ore tag-history` and `ore gc` stop with that error),
//!   and `ore check` reports it. Lines carry a checksum, so a flipped hex digit of a key is
//!   found too; lines of the older layout, without one, still read.
//! - With `DIR/tags/ore:format` deleted, every command advised `ore init` — on an archive full
//!   of data. Now the error says the format record is missing, that `ore init` is not the fix,
//!   and how to recover; `ore init` refuses there; `ore restore-format` puts it back.

use ore_tests::ore::{scratch, Ore, Run};
use ore_tests::{bin, quote};
use std::path::Path;
use std::process::{Command, Stdio};

/// `ore-admin ID WORDS... --json`.
fn admin(id: &str, words: &[&str]) -> Run {
    Run::of(
        Command::new(bin("ore-admin"))
            .arg(id)
            .args(words)
            .arg("--json")
            .stdin(Stdio::null())
            .output()
            .expect("ore-admin runs"),
    )
}

/// The `problems` of a `--json` answer (empty when it has none).
fn problems(r: &Run) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", r.stdout, r.stderr));
    v["problems"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|p| p.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A backend-fs archive in `d/archive` with two snapshots of tag `main` (two tree versions).
fn archive_with_two_snapshots(d: &Path) -> (Ore, String, String) {
    let dir = d.join("archive");
    let o = Ore::fs(&dir);
    let src = d.join("src");
    std::fs::create_dir_all(&src).expect("source dir");
    std::fs::write(src.join("a"), "the first version\n").expect("source file");
    let first = o.snapshot("main", &src);
    std::fs::write(src.join("a"), "the second version\n").expect("source file");
    let second = o.snapshot("main", &src);
    (o, first, second)
}

/// Rewrites line `number` (from 1) of `path` with `edit`.
fn edit_line(path: &Path, number: usize, edit: impl FnOnce(&str) -> String) {
    let text = std::fs::read_to_string(path).expect("the history file");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[number - 1] = edit(&lines[number - 1]);
    std::fs::write(path, lines.join("\n") + "\n").expect("the damaged history file");
}

fn all(r: &Run) -> String {
    format!("{}{}", r.stdout, r.stderr)
}

#[test]
fn a_damaged_line_in_a_backend_fs_tag_history_is_reported_and_stops_gc_instead_of_shortening_the_history(
) {
    let d = scratch();
    let (o, first, second) = archive_with_two_snapshots(d.path());
    let history = d.path().join("archive/tag-history/main");
    // The line that set the tag to its current value no longer parses ("set" → "sat").
    edit_line(&history, 2, |l| l.replacen(" set ", " sat ", 1));

    let verify = admin(&o.archive, &["verify"]).expect(1, "verify of a damaged tag history");
    let found = problems(&verify);
    assert!(
        found
            .iter()
            .any(|p| p.contains(&history.display().to_string()) && p.contains("line 2")),
        "verify names the history file and line: {found:?}"
    );

    // The history is refused, not answered without the line.
    let shown = o.run(&["tag-history", "main"]);
    assert_ne!(shown.code, 0, "tag-history of a damaged file: {shown:?}");
    assert!(
        shown.stderr.contains("tag-history/main line 2") && shown.stderr.contains("damaged"),
        "{shown:?}"
    );
    assert!(!shown.stdout.contains(&first), "{shown:?}");

    let check = o.run(&["check"]);
    assert_ne!(check.code, 0, "check of a damaged tag history: {check:?}");
    assert!(
        all(&check).contains("tag-history/main line 2"),
        "check names the file and line: {check:?}"
    );

    // gc roots on the history: it stops, naming the file, and removes nothing.
    let blocks_before = count_files(&d.path().join("archive/blocks"));
    let gc = o.run(&["gc"]);
    assert_ne!(gc.code, 0, "gc on a damaged tag history: {gc:?}");
    assert!(gc.stderr.contains("tag-history/main line 2"), "{gc:?}");
    assert_eq!(count_files(&d.path().join("archive/blocks")), blocks_before);
    // Both snapshots still restore.
    for key in [&first, &second] {
        o.restore(key, &d.path().join(format!("out-{key}")))
            .expect(0, "restore after the refused gc");
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        count_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_flipped_hex_digit_in_a_tag_history_key_fails_the_line_checksum_and_old_lines_still_read() {
    let d = scratch();
    let (o, first, second) = archive_with_two_snapshots(d.path());
    let history = d.path().join("archive/tag-history/main");
    // A key digit flipped to another hex digit still parses as a key: only a checksum sees it.
    edit_line(&history, 1, |l| {
        let at = l.find(" set ").expect("a set line") + 5 + 10;
        let mut b = l.as_bytes().to_vec();
        b[at] = if b[at] == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).expect("text")
    });
    let verify = admin(&o.archive, &["verify"]).expect(1, "verify of a flipped key digit");
    let found = problems(&verify);
    assert!(
        found
            .iter()
            .any(|p| p.contains("tag-history/main line 1") && p.contains("checksum")),
        "{found:?}"
    );

    // A history written before lines carried checksums (`NANOSECONDS set HEX`) still reads.
    let old: String = [&first, &second]
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let hex: String = k.bytes().map(|b| format!("{b:02x}")).collect();
            format!("{} set {hex}\n", 1_700_000_000_000_000_000u64 + i as u64)
        })
        .collect();
    std::fs::write(&history, old).expect("an old-layout history");
    admin(&o.archive, &["verify"]).expect(0, "verify of an old-layout history");
    let shown = o
        .run(&["tag-history", "main"])
        .expect(0, "tag-history, old layout");
    assert!(
        shown.stdout.contains(&first) && shown.stdout.contains(&second),
        "{shown:?}"
    );
}

#[test]
fn a_deleted_format_tag_on_a_backend_fs_archive_with_data_says_so_refuses_init_and_restores() {
    let d = scratch();
    let (o, _first, second) = archive_with_two_snapshots(d.path());
    let tag = d.path().join("archive/tags/ore:format");
    let kept = std::fs::read(&tag).expect("the format tag");
    std::fs::remove_file(&tag).expect("deleting the format tag");

    let ls = o.run(&["ls", "main"]);
    assert_ne!(ls.code, 0, "{ls:?}");
    assert!(!ls.stderr.contains("not initialised"), "{ls:?}");
    for said in [
        "format record is missing",
        "ore:format",
        "Do NOT run `ore init`",
        "restore-format",
    ] {
        assert!(ls.stderr.contains(said), "the error says {said:?}: {ls:?}");
    }

    // `ore init` never writes a new format over an archive with blocks.
    let init = o.run(&["init"]);
    assert_ne!(init.code, 0, "init over an archive with data: {init:?}");
    assert!(init.stderr.contains("refusing"), "{init:?}");
    assert!(!tag.exists(), "init wrote a new format record");

    o.run(&["restore-format"]).expect(0, "restore-format");
    assert_eq!(std::fs::read(&tag).expect("the restored tag"), kept);
    let out = d.path().join("out");
    o.restore(&second, &out)
        .expect(0, "restore after the repair");
    assert_eq!(
        std::fs::read_to_string(out.join("a")).expect("restored file"),
        "the second version\n"
    );
    // With the record there, restore-format refuses and changes nothing.
    o.run(&["restore-format"])
        .expect(1, "restore-format with a record");
    o.run(&["check"]).expect(0, "check after the repair");
}

#[test]
fn an_empty_backend_fs_archive_is_still_just_not_initialised() {
    let d = scratch();
    let dir = d.path().join("archive");
    let o = Ore::new(format!("backend-fs {}", quote(&dir)));
    let ls = o.run(&["tags"]);
    assert_ne!(ls.code, 0, "{ls:?}");
    assert!(ls.stderr.contains("is not initialised"), "{ls:?}");
    o.run(&["init"]).expect(0, "init of an empty archive");
}

#[test]
fn a_tag_history_line_cut_short_by_a_crash_is_reported_and_the_next_change_stays_whole() {
    let d = scratch();
    let (o, _first, _second) = archive_with_two_snapshots(d.path());
    let history = d.path().join("archive/tag-history/main");
    let mut text = std::fs::read_to_string(&history).expect("the history file");
    text.push_str("1700000000000000000 se");
    std::fs::write(&history, &text).expect("a torn last line");
    let src = d.path().join("src");
    std::fs::write(src.join("a"), "the third version\n").expect("source file");
    let third = o.snapshot("main", &src);

    let verify = admin(&o.archive, &["verify"]).expect(1, "verify of a torn line");
    let found = problems(&verify);
    assert_eq!(found.len(), 1, "only the torn line is damaged: {found:?}");
    assert!(found[0].contains("tag-history/main line 3"), "{found:?}");
    // Without the torn line, the change after it reads whole.
    edit_line(&history, 3, |_| String::new());
    let whole: String = std::fs::read_to_string(&history)
        .expect("the history file")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&history, whole).expect("the repaired history file");
    let shown = o
        .run(&["tag-history", "main"])
        .expect(0, "tag-history after the repair");
    assert!(shown.stdout.contains(&third), "{shown:?}");
}
