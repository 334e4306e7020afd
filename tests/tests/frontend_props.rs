//! Property test: random trees (random names including bytes that are not UTF-8, random
//! sizes around the chunk boundaries, nested directories, symlinks) survive a snapshot and
//! restore through the binary unchanged. Plus warnings: files that cannot be read are
//! reported and stored in the snapshot, and the run still succeeds with exit status 3.

use ore_tests::ore::{scratch, Ore};
use ore_tests::trees::{assert_same, bytes, is_root};
use proptest::prelude::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

#[derive(Debug, Clone)]
enum Node {
    File(u64, usize),
    Link(Vec<u8>),
    Dir(Vec<(Vec<u8>, Node)>),
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b'a'),
            Just(b'Z'),
            Just(b' '),
            Just(b'\n'),
            Just(0xe9u8),
            Just(0xffu8),
            Just(b'.'),
            1u8..=255u8
        ],
        1..12,
    )
    .prop_filter("a valid file name", |n| {
        !n.contains(&b'/') && !n.contains(&0) && n != b"." && n != b".."
    })
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        4 => (any::<u64>(), prop_oneof![0usize..100, 60_000usize..70_000, 250_000usize..1_300_000]).prop_map(|(s, l)| Node::File(s, l)),
        1 => name().prop_map(Node::Link),
    ];
    leaf.prop_recursive(3, 40, 6, |inner| {
        prop::collection::vec((name(), inner), 0..6).prop_map(Node::Dir)
    })
}

fn build(dir: &Path, entries: &[(Vec<u8>, Node)]) {
    let mut seen = std::collections::HashSet::new();
    for (n, node) in entries {
        if !seen.insert(n.clone()) {
            continue;
        }
        let p = dir.join(OsStr::from_bytes(n));
        match node {
            Node::File(seed, len) => std::fs::write(&p, bytes(*seed, *len)).unwrap(),
            Node::Link(t) => std::os::unix::fs::symlink(OsStr::from_bytes(t), &p).unwrap(),
            Node::Dir(children) => {
                std::fs::create_dir(&p).unwrap();
                build(&p, children);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn random_trees_round_trip(entries in prop::collection::vec((name(), node()), 0..8)) {
        let (ore, d) = Ore::local();
        let src = d.path().join("src");
        std::fs::create_dir(&src).unwrap();
        build(&src, &entries);
        ore.snapshot("t", &src);
        let dest = d.path().join("dest");
        ore.restore("t", &dest).expect(0, "restore");
        assert_same(&src, &dest);
    }
}

#[test]
fn unreadable_files_become_warnings() {
    // Run as an unprivileged user so that permissions apply (as root, via setpriv).
    let d = scratch();
    let base = Path::new("/dev/shm").join(format!("ore-warn-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let _cleanup = Cleanup(base.clone());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
    let src = base.join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("readable"), b"fine").unwrap();
    std::fs::write(src.join("secret"), b"no").unwrap();
    std::fs::create_dir(src.join("closed")).unwrap();
    std::fs::write(src.join("closed/inside"), b"x").unwrap();
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(src.join("closed"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let ore_bin = base.join("ore");
    std::fs::copy(ore_tests::bin("ore"), &ore_bin).unwrap();
    let arch = base.join("archive");
    let run = |args: &[&str]| {
        let mut c = if is_root() {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&ore_bin);
            c
        } else {
            std::process::Command::new(&ore_bin)
        };
        c.arg("-a")
            .arg(&arch)
            .args(args)
            .env("ORE_PASSPHRASE", "p")
            .env("XDG_CACHE_HOME", base.join("cache"))
            .env("XDG_CONFIG_HOME", base.join("config"))
            .env("HOME", &base)
            .output()
            .unwrap()
    };
    if is_root() {
        // The tree belongs to root; hand the readable parts to the unprivileged user.
        for p in [&src, &src.join("readable")] {
            std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
        }
    }
    let out = run(&["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["snapshot", "t", src.to_str().unwrap(), "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "completed with warnings: {err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["warnings_total"], 2, "{v}");
    let paths: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"secret") && paths.contains(&"closed"),
        "{paths:?}"
    );
    let log = run(&["log", "t"]);
    assert!(String::from_utf8_lossy(&log.stdout).contains("2 warning(s)"));
    let dest = base.join("dest");
    let out = run(&["restore", "t", dest.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(dest.join("readable")).unwrap(), b"fine");
    assert!(!dest.join("secret").exists());
    drop(d);
}

struct Cleanup(std::path::PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(
            self.0.join("src/closed"),
            std::fs::Permissions::from_mode(0o700),
        );
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
