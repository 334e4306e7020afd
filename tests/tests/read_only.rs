//! A read-only key, tried for real: a real sshd on 127.0.0.1 whose `authorized_keys` forces
//! `backend-splitlog --read-only DIR`, the real binaries. The reader holds the passphrase: it
//! reads and restores everything, and changes nothing (docs/THREAT-MODEL.md).

use ore_tests::bin;
use ore_tests::ore::{scratch, Ore};
use ore_tests::sshd::Sshd;
use protocol::{Backend, ErrorCode};

#[test]
fn a_read_only_key_restores_and_checks_but_can_change_nothing() {
    let d = scratch();
    let archive = d.path().join("archive");
    let owner = Ore::new(archive.display().to_string());
    owner.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    ore_tests::trees::every_kind(&src);
    let snap = owner.snapshot("home", &src);
    let forced = format!(
        "command=\"{} --read-only {}\",restrict",
        bin("backend-splitlog").display(),
        archive.display()
    );
    let sshd = Sshd::start(Some(&forced));
    let id = sshd.identifier("anything");
    let reader = Ore::new(id.clone());

    let dest = d.path().join("dest");
    reader
        .restore("home", &dest)
        .expect(0, "restore through the read-only key");
    owner
        .run(&["check", "home", "--compare", dest.to_str().unwrap()])
        .expect(0, "the reader's restore is whole");
    let checked = reader
        .run(&["check", "--unverified"])
        .expect(0, "check --unverified through the read-only key");
    assert!(
        checked.stderr.contains("not marked checked"),
        "a restricted connection cannot vouch: {checked:?}"
    );

    reader
        .run(&["snapshot", "home", src.to_str().unwrap()])
        .expect(1, "a snapshot through the read-only key");
    reader
        .run(&["forget", "home", "--keep-last", "0"])
        .expect(1, "forget through the read-only key");
    reader
        .run(&["gc"])
        .expect(1, "gc through the read-only key");

    let c = connect::Client::connect(&id).unwrap();
    let key = protocol::Key([9; 32]);
    assert_eq!(c.put(key, b"x").unwrap_err().code(), ErrorCode::ReadOnly);
    let home = c.get_tag("home").unwrap();
    assert_eq!(
        c.set_tag("home", home.as_deref(), key.to_hex().as_bytes())
            .unwrap_err()
            .code(),
        ErrorCode::ReadOnly
    );
    assert_eq!(
        c.remove_tag("home", None).unwrap_err().code(),
        ErrorCode::ReadOnly
    );
    for cmd in ["vouch", "compact", "expire-tag-history"] {
        let e = c.admin(cmd, &[key.to_hex()]).unwrap_err().to_string();
        assert!(e.contains("not allowed"), "{cmd}: {e}");
    }
    c.close().unwrap();
    let log = owner.run(&["log", "home"]).expect(0, "log");
    assert_eq!(log.stdout.matches(&snap[..8]).count(), 1, "{log:?}");
    assert_eq!(
        owner
            .run(&["tag-history", "home"])
            .expect(0, "history")
            .stdout
            .lines()
            .count(),
        1,
        "the tag never moved"
    );
}
