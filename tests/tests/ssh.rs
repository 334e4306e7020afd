//! Archives over ssh, against a real OpenSSH server on 127.0.0.1: the conformance suite through
//! `ssh ... backend-splitlog DIR`, and a snapshot and restore through it.
//!
//! The backend programs are named by absolute path in the identifiers (the remote side's PATH
//! is the server's default one); installed ones would be found on PATH.

use ore_tests::ore::{scratch, Ore};
use ore_tests::sshd::Sshd;
use ore_tests::trees::{assert_same, every_kind};
use ore_tests::{bin, quote};
use protocol::{Backend, Client};

#[test]
fn conformance_through_ssh() {
    let sshd = Sshd::start(None);
    let d = scratch();
    let id = sshd.identifier(&format!(
        "{} {}",
        bin("backend-splitlog").display(),
        quote(&d.path().join("archive"))
    ));
    let c = Client::connect(&id).unwrap();
    assert!(c.info().server.starts_with("backend-splitlog"));
    protocol::conformance::run(&c);
    c.close().unwrap();
}

#[test]
fn snapshot_and_restore_through_ssh() {
    let sshd = Sshd::start(None);
    let d = scratch();
    let src = d.path().join("src");
    every_kind(&src);
    let id = sshd.identifier(&format!(
        "{} {}",
        bin("backend-splitlog").display(),
        quote(&d.path().join("archive"))
    ));
    let o = Ore::new(id);
    o.run(&["init"]).expect(0, "init over ssh");
    o.snapshot("t", &src);
    // Unchanged: the file cache and the archive agree over ssh too.
    o.snapshot("t", &src);
    let dest = d.path().join("dest");
    o.restore("t", &dest).expect(0, "restore over ssh");
    assert_same(&src, &dest);
    // The same archive, opened locally, holds what came through ssh.
    let local = Ore::new(d.path().join("archive").display().to_string());
    let log = local.run(&["log", "t"]).expect(0, "log");
    let snapshots = log.stdout.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(snapshots >= 2, "{}", log.stdout);
}
