//! `ore diff` through the binary: every kind of change, renames, a subtree, JSON, and that
//! unchanged directories are not read.

use ore_tests::ore::Ore;
use ore_tests::trees::bytes;
use serde_json::Value;

#[test]
fn diff_reports_each_change_and_skips_unchanged_directories() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    for i in 0..60 {
        let dir = src.join(format!("quiet{i:02}/deeper"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), format!("{i}")).unwrap();
    }
    std::fs::create_dir_all(src.join("work/sub")).unwrap();
    std::fs::write(src.join("work/edit"), b"before").unwrap();
    std::fs::write(src.join("work/chmod"), b"same").unwrap();
    std::fs::write(src.join("work/big"), bytes(1, 400_000)).unwrap();
    std::fs::write(src.join("work/gone"), b"bye").unwrap();
    std::fs::write(src.join("work/sub/x"), b"x").unwrap();
    std::os::unix::fs::symlink("edit", src.join("work/link")).unwrap();
    ore.snapshot("t", &src);

    std::fs::write(src.join("work/edit"), b"after!").unwrap();
    std::fs::set_permissions(
        src.join("work/chmod"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::rename(src.join("work/big"), src.join("work/sub/moved-big")).unwrap();
    std::fs::remove_file(src.join("work/gone")).unwrap();
    std::fs::write(src.join("work/new"), b"hello").unwrap();
    std::fs::remove_file(src.join("work/link")).unwrap();
    std::os::unix::fs::symlink("new", src.join("work/link")).unwrap();
    ore.snapshot("t", &src);

    let r = ore.run(&["diff", "t~1", "t"]).expect(0, "diff");
    for line in [
        "M work/edit (content",
        "M work/chmod (mode",
        "R work/big -> work/sub/moved-big",
        "- work/gone",
        "+ work/new",
        "M work/link (target",
    ] {
        assert!(
            r.stdout.contains(line),
            "{line:?} missing from:\n{}",
            r.stdout
        );
    }
    assert!(
        !r.stdout.contains("quiet"),
        "unchanged directories reported:\n{}",
        r.stdout
    );
    // The root, work and work/sub, in both snapshots: 6 trees, not the 120 quiet ones.
    assert!(
        r.stderr.contains("(6 directory trees read)"),
        "{}",
        r.stderr
    );

    let r = ore
        .run(&["diff", "t~1", "t", "--json"])
        .expect(0, "diff --json");
    let changes: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let renamed = changes.iter().find(|c| c["change"] == "renamed").unwrap();
    assert_eq!(renamed["from"], "work/big");
    assert_eq!(renamed["path"], "work/sub/moved-big");
    let edit = changes.iter().find(|c| c["path"] == "work/edit").unwrap();
    assert_eq!(edit["change"], "modified");
    assert!(edit["what"]
        .as_array()
        .unwrap()
        .contains(&Value::from("content")));

    // Under one directory only: the rename's source is outside, so it is an addition there.
    let r = ore
        .run(&["diff", "t~1", "t", "work/sub"])
        .expect(0, "diff PATH");
    assert!(r.stdout.contains("+ work/sub/moved-big"), "{}", r.stdout);
    assert!(!r.stdout.contains("edit"), "{}", r.stdout);
    // The same snapshot twice: nothing, and nothing read.
    let r = ore.run(&["diff", "t", "t"]).expect(0, "no change");
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.contains("(0 directory trees read)"),
        "{}",
        r.stderr
    );
    ore.run(&["diff", "t", "nosuch"])
        .expect(1, "unknown snapshot");
}
