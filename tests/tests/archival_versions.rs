//! Naming the newest version of an object that was replaced (`core::objects::newest_version`):
//! a new version asked of an older one is refused with the one to replace instead. Only a
//! version names its parent, so the newest is found through the current objects holding
//! the older one's files. Found by an attack on the first way of finding it: a content that
//! another object held at 64 paths used up its look-ups, each followed back through 150
//! versions, so a refusal read 38,666 blocks (and over a slow link did not end within a
//! minute), and it still named nothing.

use ore_tests::archival::{import, tree};
use ore_tests::ore::Ore;

#[test]
fn a_content_held_at_many_paths_by_a_long_line_of_versions_does_not_hide_the_newest_version() {
    let (ore, d) = Ore::local();
    let p = d.path();
    // Four files of one content in `y`; seventy more of it in `u`, at paths that sort first.
    let same: Vec<(String, &str)> = (1..=4).map(|i| (format!("f{i}"), "same")).collect();
    let refs: Vec<(&str, &str)> = same.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    tree(&p.join("y"), &refs);
    let many: Vec<(String, &str)> = (0..70).map(|i| (format!("a{i:02}"), "same")).collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    tree(&p.join("u"), &refs);

    let y = import(
        &ore,
        &["t", p.join("y").to_str().unwrap(), "--set", "title=y"],
    );
    let newer = |of: &str, comment: &str| {
        let r = ore.run(&["props", of, "--set", &format!("comment={comment}")]);
        r.expect(0, "props --set").stdout.trim().to_string()
    };
    let y2 = newer(&y, "second");
    let mut u = import(
        &ore,
        &["t", p.join("u").to_str().unwrap(), "--set", "title=u"],
    );
    for i in 0..20 {
        u = newer(&u, &format!("u{i}"));
    }

    let r = ore.run(&["props", &y, "--set", "comment=again"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("replaced by a newer version") && r.stderr.contains(&y2),
        "the refusal names the newest version of y: {}",
        r.stderr
    );
    assert!(!r.stderr.contains(&u), "{}", r.stderr);

    // Three versions on, through a `--replace` that holds the files at other paths.
    tree(&p.join("z"), &[("moved", "same")]);
    let y3 = import(
        &ore,
        &["t", p.join("z").to_str().unwrap(), "--replace", &y2],
    );
    let r = ore.run(&["props", &y, "--set", "comment=again"]);
    assert!(
        r.code == 1 && r.stderr.contains(&y3) && !r.stderr.contains(&y2),
        "{}",
        r.stderr
    );
    ore.run(&["check"]).expect(0, "check");
}
