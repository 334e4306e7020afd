//! Dedup poisoning: a machine that holds the passphrase but only an append-only key stores
//! garbage under the key of data the owner will store later. Tried for real: a real sshd on
//! 127.0.0.1 whose `authorized_keys` forces `backend-splitlog --append-only DIR`, the attacker
//! computing the key with the passphrase, the owner's real `ore` afterwards. See
//! docs/THREAT-MODEL.md, "An append-only key".

use ore_tests::bin;
use ore_tests::ore::{scratch, Ore};
use ore_tests::sshd::Sshd;
use protocol::Backend;
use std::path::Path;
use std::sync::Arc;

/// Data the attacker expects the owner to snapshot (small: one chunk).
const SECRET: &[u8] = b"the owner's ledger, which the attacker has seen or guessed\n";

/// The attack through the restricted archive identifier `limited`, then the owner's check,
/// repair and restore through `owner`. `work` is a fresh directory.
fn plant_find_and_repair(owner: &Ore, limited: &str, work: &Path) {
    let what = &owner.archive;
    let src = work.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("other"), b"nothing to see").unwrap();
    owner.snapshot("home", &src);

    // The attacker: the passphrase and the append-only key. It computes the key the owner's
    // data will have and stores garbage under it.
    let client: Arc<dyn Backend> = Arc::new(connect::Client::connect(limited).unwrap());
    let pass = owner.passphrase.clone();
    let repo = ore::Repo::open(client.clone(), limited, &|_| Ok(pass.as_bytes().to_vec())).unwrap();
    let predicted = repo
        .keys()
        .key_of(ore::core::block::Kind::Chunk as u8, SECRET);
    client.put(predicted, b"garbage, not the ledger").unwrap();
    client.flush().unwrap();
    drop(repo);
    drop(client);

    // The owner snapshots the file; its chunk is deduplicated against the garbage.
    std::fs::write(src.join("ledger"), SECRET).unwrap();
    owner.snapshot("home", &src);
    let plain = owner.run(&["check"]);
    assert_eq!(
        plain.code, 0,
        "{what}: a plain check asks only whether blocks exist, so it cannot see the garbage: {plain:?}"
    );

    // The owner's check of what append-only connections stored finds it, naming block and path.
    let found = owner
        .run(&["check", "--unverified"])
        .expect(1, &format!("{what}: check --unverified"));
    assert!(
        found.stdout.contains(&predicted.to_hex()),
        "{what}: the bad block is named: {found:?}"
    );
    assert!(
        found.stdout.contains("home~0:/ledger"),
        "{what}: the path that uses it is named: {found:?}"
    );

    // The repair: remove the bad block, snapshot again without the file cache, restore.
    owner
        .run(&["check", "--unverified", "--remove-bad"])
        .expect(
            1,
            &format!("{what}: check --unverified --remove-bad still reports what it removed"),
        );
    owner
        .run(&["snapshot", "--no-cache", "home", src.to_str().unwrap()])
        .expect(0, &format!("{what}: the owner's snapshot after the repair"));
    let dest = work.join("dest");
    owner
        .restore("home", &dest)
        .expect(0, &format!("{what}: restore"));
    assert_eq!(
        std::fs::read(dest.join("ledger")).unwrap(),
        SECRET,
        "{what}"
    );

    // Everything is vouched for now: the next run reads nothing and finds nothing.
    let again = owner
        .run(&["check", "--unverified", "home"])
        .expect(0, &format!("{what}: a clean run"));
    assert!(
        again.stderr.contains("0 awaiting a check, 0 read, 0 bad"),
        "{what}: the run after is incremental: {again:?}"
    );
}

#[test]
fn garbage_planted_under_a_predicted_key_by_an_append_only_client_is_found_by_check_unverified_and_repaired(
) {
    let d = scratch();
    let archive = d.path().join("archive");
    let owner = Ore::new(archive.display().to_string());
    owner.run(&["init"]).expect(0, "init");
    let forced = format!(
        "command=\"{} --append-only {}\",restrict",
        bin("backend-splitlog").display(),
        archive.display()
    );
    let sshd = Sshd::start(Some(&forced));
    let work = d.path().join("work");
    plant_find_and_repair(&owner, &sshd.identifier("anything"), &work);
}

/// The same through every other backend program started with `--append-only`, as a forced
/// command would start it: backend-fs, backend-cache in front of a splitlog program (so the
/// cache records through `mark-unvouched`), and backend-replicated with a splitlog member.
#[test]
fn dedup_poisoning_is_found_and_repaired_through_every_backend_program() {
    let d = scratch();
    let programs = ore_tests::programs::every_backend_program(d.path());
    for (i, (full, limited)) in programs.iter().enumerate() {
        let owner = Ore::new(full.clone());
        owner.run(&["init"]).expect(0, full);
        plant_find_and_repair(&owner, limited, &d.path().join(format!("work-{i}")));
    }
}

#[test]
fn an_append_only_connection_can_neither_vouch_for_a_block_nor_hide_it_from_the_owner() {
    let d = scratch();
    let archive = d.path().join("archive");
    let owner = Ore::new(archive.display().to_string());
    owner.run(&["init"]).expect(0, "init");
    let forced = format!(
        "command=\"{} --append-only {}\",restrict",
        bin("backend-splitlog").display(),
        archive.display()
    );
    let sshd = Sshd::start(Some(&forced));
    let c = connect::Client::connect(&sshd.identifier("anything")).unwrap();
    let planted = protocol::Key([7; 32]);
    c.put(planted, b"garbage").unwrap();
    for cmd in ["vouch", "mark-unvouched"] {
        let e = c.admin(cmd, &[planted.to_hex()]).unwrap_err().to_string();
        assert!(e.contains("not allowed"), "{cmd} refused: {e}");
    }
    assert_eq!(
        c.remove(&[planted]).unwrap_err().code(),
        protocol::ErrorCode::ReadOnly
    );
    let listed = c.admin("unvouched", &[]).unwrap();
    assert!(listed.text.contains(&planted.to_hex()), "{listed:?}");
    c.close().unwrap();
    // The owner reads it (it is not a block of this archive) and reports it.
    let found = owner
        .run(&["check", "--unverified"])
        .expect(1, "check --unverified");
    assert!(found.stdout.contains(&planted.to_hex()), "{found:?}");
}

/// What an honest backup machine stores — the whole archive, when it made it with `ore init` —
/// checks clean, the format record included (it is named by a plain hash, not a keyed one).
#[test]
fn an_archive_an_append_only_key_made_and_filled_checks_clean_with_unverified() {
    let d = scratch();
    let dir = ore_tests::quote(&d.path().join("archive"));
    let laptop = Ore::new(format!("backend-splitlog --append-only {dir}"));
    laptop
        .run(&["init"])
        .expect(0, "init through the append-only key");
    let src = d.path().join("src");
    ore_tests::trees::every_kind(&src);
    laptop.snapshot("home", &src);
    let owner = Ore::new(format!("backend-splitlog {dir}"));
    let first = owner
        .run(&["check", "--unverified"])
        .expect(0, "the owner's check of an honest machine's blocks");
    assert!(
        first.stderr.contains(", 0 bad, ") && !first.stderr.contains(" 0 awaiting"),
        "{first:?}"
    );
    let again = owner.run(&["check", "--unverified"]).expect(0, "again");
    assert!(
        again.stderr.contains(" 0 awaiting a check, 0 read"),
        "{again:?}"
    );
}

/// backend-fs gives a batch of blocks their names at the writer's flush, which the attacker
/// controls. A planted block still waiting when the owner's check runs is not there to read;
/// its record must outlast that check, or the block would arrive unrecorded afterwards.
#[test]
fn a_planted_block_published_after_the_owners_check_is_still_found_by_the_next_one() {
    let d = scratch();
    let dir = ore_tests::quote(&d.path().join("fs"));
    let owner = Ore::new(format!("backend-fs {dir}"));
    owner.run(&["init"]).expect(0, "init");
    let laptop = connect::Client::connect(&format!("backend-fs --append-only {dir}")).unwrap();
    let planted = protocol::Key([5; 32]);
    laptop.put(planted, b"garbage").unwrap();
    let first = owner
        .run(&["check", "--unverified"])
        .expect(0, "the check while the block waits for its name");
    assert!(
        first.stderr.contains("1 awaiting a check, 0 read"),
        "{first:?}"
    );
    laptop.flush().unwrap();
    laptop.close().unwrap();
    let next = owner
        .run(&["check", "--unverified"])
        .expect(1, "the check after the laptop's flush");
    assert!(next.stdout.contains(&planted.to_hex()), "{next:?}");
}
