//! `ore snapshot TAG --files-from LIST` (issue 26, item 3): every listed path kept at its own
//! absolute place in the snapshot, so same-named files never collide; `-0` for NUL-separated
//! lists; a path that does not exist named with its line before anything is saved.

use ore_tests::ore::{scratch, Ore, Run};
use ore_tests::trees::write_file as write;
use std::path::Path;

/// `ore [PRE] snapshot t [FLAGS] --files-from LIST`.
fn from_list(o: &Ore, pre: &[&str], flags: &[&str], list: &Path) -> Run {
    let mut args = pre.to_vec();
    args.extend(["snapshot", "t"]);
    args.extend_from_slice(flags);
    args.extend(["--files-from", list.to_str().expect("UTF-8")]);
    o.run(&args)
}

/// `ore ls -R TAG`, as paths.
fn listing(o: &Ore, tag: &str) -> Vec<String> {
    let r = o.run(&["ls", "-R", tag]).expect(0, "ls");
    r.stdout.lines().map(String::from).collect()
}

/// `path` as the snapshot keeps it: absolute, without the leading `/`.
fn kept(path: &Path) -> String {
    path.display()
        .to_string()
        .trim_start_matches('/')
        .to_string()
}

#[test]
fn listed_paths_are_kept_at_their_own_place_and_same_names_never_collide() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    write(&src.join("x/config"), b"x");
    write(&src.join("y/config"), b"y");
    write(&src.join("dir/a"), b"a");
    write(&src.join("dir/sub/b"), b"b");
    write(&src.join("unlisted/c"), b"c");
    let list = d.path().join("list");
    let text = format!(
        "# what to save\n{}\n\n{}\n{}\n{}\n",
        src.join("x/config").display(),
        src.join("y/config").display(),
        src.join("dir").display(),
        src.join("dir/sub/b").display(),
    );
    std::fs::write(&list, text).expect("write");
    from_list(&o, &[], &[], &list).expect(0, "snapshot");
    let all = listing(&o, "t");
    for p in ["x/config", "y/config", "dir/a", "dir/sub/b"] {
        assert!(all.contains(&kept(&src.join(p))), "{p} in {all:?}");
    }
    assert!(
        !all.iter().any(|p| p.contains("unlisted")),
        "only what the list reaches: {all:?}"
    );
    // Restored where it was, below the destination.
    let dest = d.path().join("dest");
    o.restore("t", &dest).expect(0, "restore");
    let back = dest.join(kept(&src.join("y/config")));
    assert_eq!(std::fs::read(back).expect("restored"), b"y");
    // A second run reads nothing again (the file cache works here too).
    let r = from_list(&o, &["--json"], &[], &list).expect(0, "again");
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("JSON");
    assert_eq!(v["stats"]["files_read"], 0, "{v}");
}

#[test]
fn a_nul_separated_list_takes_names_with_newlines_as_they_are() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let odd = d.path().join("src/new\nline");
    write(&odd, b"odd");
    let list = d.path().join("list0");
    let mut bytes = odd.display().to_string().into_bytes();
    bytes.push(0);
    std::fs::write(&list, bytes).expect("write");
    from_list(&o, &[], &["-0"], &list).expect(0, "snapshot");
    let name = format!("t:{}", kept(&odd));
    let cat = o.cmd(&["cat", &name]).output().expect("cat");
    assert_eq!(cat.stdout, b"odd", "{cat:?}");
}

#[test]
fn a_listed_path_that_does_not_exist_is_named_with_its_line_and_nothing_is_saved() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    write(&d.path().join("src/a"), b"a");
    let list = d.path().join("list");
    let text = format!(
        "{}\n{}\n",
        d.path().join("src/a").display(),
        d.path().join("src/missing").display()
    );
    std::fs::write(&list, text).expect("write");
    let r = from_list(&o, &[], &[], &list).expect(1, "refused");
    assert!(
        r.stderr.contains("(line 2)") && r.stderr.contains("missing"),
        "{}",
        r.stderr
    );
    assert!(o.run(&["tags"]).expect(0, "tags").stdout.is_empty());
}

/// Found by attacking `--files-from`: a listed symlink (`/etc/localtime`) was saved as what it
/// points to, under the target's path, and the snapshot held no `localtime`.
#[test]
fn a_listed_symlink_is_kept_as_the_symlink_at_its_place() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    write(&src.join("real/zone"), b"zone");
    std::fs::create_dir_all(src.join("etc")).expect("mkdir");
    std::os::unix::fs::symlink("../real/zone", src.join("etc/localtime")).expect("symlink");
    let list = d.path().join("list");
    std::fs::write(&list, format!("{}\n", src.join("etc/localtime").display())).expect("write");
    from_list(&o, &[], &[], &list).expect(0, "snapshot");
    let r = o.run(&["ls", "-l", "-R", "t"]).expect(0, "ls").stdout;
    let line = r
        .lines()
        .find(|l| l.ends_with("etc/localtime -> ../real/zone"))
        .unwrap_or_else(|| panic!("the symlink itself in\n{r}"));
    assert!(line.starts_with('l'), "{line}");
    assert!(
        !r.lines()
            .any(|l| l.ends_with("src/real/zone") || l.ends_with("src/real")),
        "not its target: {r}"
    );
}
