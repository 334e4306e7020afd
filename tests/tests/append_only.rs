//! An append-only key: `authorized_keys` forces `backend-splitlog --append-only DIR`, as the
//! README shows. Through it a machine can add snapshots but cannot remove blocks or tags, nor
//! run admin commands that change anything; a tag it moves elsewhere is recovered from the
//! tag history by someone with full access. (The attacks on the owner's routine commands are
//! in `append_only_attacks.rs`.)

use connect::Client;
use ore_tests::bin;
use ore_tests::ore::{scratch, Ore};
use ore_tests::sshd::Sshd;
use ore_tests::trees::{assert_same, every_kind};
use protocol::{Backend, CasOutcome, ErrorCode};
use std::process::Command;

#[test]
fn an_append_only_key_adds_snapshots_and_destroys_nothing() {
    let d = scratch();
    let archive = d.path().join("archive");
    let forced = format!(
        "command=\"{} --append-only {}\",restrict",
        bin("backend-splitlog").display(),
        archive.display()
    );
    let sshd = Sshd::start(Some(&forced));
    // Whatever command the client asks for, the forced one runs.
    let id = sshd.identifier("anything");
    let src = d.path().join("src");
    every_kind(&src);
    let o = Ore::new(id.clone());
    o.run(&["init"])
        .expect(0, "init through the append-only key");
    let first = o.snapshot("home", &src);
    let first_node = o.node("home");
    std::fs::write(src.join("new file"), b"more").unwrap();
    o.snapshot("home", &src);

    // What the key cannot do.
    let c = Client::connect(&id).unwrap();
    assert!(c.info().description.contains("append-only"));
    assert!(!c.info().can_remove);
    let some_key = c.list(None, 1).unwrap().0[0];
    assert_eq!(
        c.remove(&[some_key]).unwrap_err().code(),
        ErrorCode::ReadOnly
    );
    assert_eq!(
        c.remove_tag("home", None).unwrap_err().code(),
        ErrorCode::ReadOnly
    );
    for cmd in ["compact", "reindex", "write-unprotect"] {
        let e = c.admin(cmd, &[]).unwrap_err().to_string();
        assert!(e.contains("not allowed"), "{cmd}: {e}");
    }
    // A compromised machine moves the tag to a block that does not exist: allowed (a value that
    // is not a key at all is refused), but not the end of it.
    let current = c.get_tag("home").unwrap();
    assert_eq!(
        c.set_tag("home", current.as_deref(), b"garbage")
            .unwrap_err()
            .code(),
        ErrorCode::ReadOnly
    );
    let nowhere = testkit::conformance::test_key(77).to_hex();
    assert_eq!(
        c.set_tag("home", current.as_deref(), nowhere.as_bytes())
            .unwrap(),
        CasOutcome::Done
    );
    let history = c.admin("tag-history", &["home".into()]).unwrap().text;
    assert!(history.contains(&first_node), "{history}");
    c.close().unwrap();

    // The owner, with full access, restores the first snapshot and sets the tag back.
    let owner = Ore::new(archive.display().to_string());
    let out = Command::new(bin("ore-admin"))
        .arg(archive.display().to_string())
        .args(["tag-history", "home", "--json"])
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let values: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["value"].as_str())
        .collect();
    assert_eq!(values.len(), 3, "{rows}");
    assert_eq!(values[0], first_node);
    assert_eq!(values[2], nowhere);
    let second = values[1];
    owner
        .run(&["fork", second, "home-recovered"])
        .expect(0, "fork from the history");
    // The tag itself is set back with `ore reset`, found with `ore tag-history`; gc, which
    // refuses while a tag names a missing snapshot, then runs.
    let h = owner.run(&["tag-history", "home"]).expect(0, "tag-history");
    assert!(
        h.stdout.contains(second) && h.stdout.contains("current"),
        "{}",
        h.stdout
    );
    owner.run(&["reset", "home", second]).expect(0, "reset");
    owner.run(&["gc"]).expect(0, "gc");
    let dest = d.path().join("dest");
    owner.restore("home-recovered", &dest).expect(0, "restore");
    assert_same(&src, &dest);
    let dest1 = d.path().join("dest1");
    owner
        .restore(&first, &dest1)
        .expect(0, "restore the first by key");
    assert!(!dest1.join("new file").exists());
}
