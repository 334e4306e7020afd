//! Issue 22, finding 7: after `ore forget` rewrites the source's chain, `ore sync` called the
//! destination's tag "moved independently" (exit 3) on every later run. The destination's value
//! is one the source's tag itself once had, so sync now follows the rewrite; a destination that
//! really moved on its own is still a conflict. Both between archives that share keys (blocks
//! copied as stored) and between archives that do not (re-encrypted).

use ore_tests::ore::{scratch, Ore, Run};
use serde_json::Value;
use std::path::Path;

fn sync(src: &Ore, dst: &Ore) -> Run {
    src.run(&["sync", "--to", &dst.archive, "--json"])
}

fn status(r: &Run) -> (String, String) {
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    (
        v["tags"][0]["status"].as_str().unwrap().to_string(),
        v["tags"][0]["message"].as_str().unwrap().to_string(),
    )
}

fn head(ore: &Ore, tag: &str) -> String {
    let r = ore.run(&["--json", "log", tag]).expect(0, "log");
    let v: Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    v["key"].as_str().unwrap().to_string()
}

/// Three snapshots on the source, a sync, `forget --keep-last 1` on the source, and syncs
/// again: the destination follows, then stays in place; the data restores.
/// With `expire`, the source's reflog (and the tag history with it) is expired after the
/// forget, so nothing there records the move any more.
fn forget_then_sync(src: &Ore, dst: &Ore, data: &Path, out: &Path, expire: bool) {
    for i in 0..3 {
        std::fs::write(data.join("f"), format!("version {i}")).unwrap();
        src.snapshot("home", data);
    }
    assert_eq!(status(&sync(src, dst).expect(0, "first sync")).0, "created");
    let synced = head(dst, "home");
    src.run(&["forget", "home", "--keep-last", "1"])
        .expect(0, "forget");
    if expire {
        src.run(&["reflog", "expire", "--older-than", "0s"])
            .expect(0, "reflog expire");
    }
    let r = sync(src, dst).expect(0, "the sync after forget follows the rewrite");
    let (st, msg) = status(&r);
    assert_eq!(st, "moved", "{r:?}");
    assert!(
        msg.contains("followed the source") && msg.contains(&synced),
        "{msg}"
    );
    assert_eq!(
        dst.run(&["log", "home"]).stdout.lines().count(),
        1,
        "the destination's chain is the rewritten one"
    );
    assert_eq!(
        status(&sync(src, dst).expect(0, "and again")).0,
        "unchanged"
    );
    // The destination recorded the move; what it named before stays readable there.
    let r = dst.run(&["reflog", "home"]).expect(0, "reflog");
    assert!(
        r.stdout.lines().next().unwrap().contains("sync"),
        "{}",
        r.stdout
    );
    dst.run(&["ls", &synced])
        .expect(0, "the former head by key");
    dst.restore("home", out).expect(0, "restore");
    assert_eq!(std::fs::read(out.join("f")).unwrap(), b"version 2");
    dst.run(&["check"]).expect(0, "check of the destination");

    // A destination that moved on its own is still a conflict, and is left as it is.
    let elsewhere = out.with_file_name("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("x"), b"mine").unwrap();
    let theirs = dst.snapshot("home", &elsewhere);
    std::fs::write(data.join("f"), b"version 3").unwrap();
    src.snapshot("home", data);
    let r = sync(src, dst).expect(3, "an independent move is a conflict");
    assert_eq!(status(&r).0, "conflict", "{r:?}");
    assert_eq!(head(dst, "home"), theirs);
}

#[test]
fn a_sync_after_forget_follows_the_rewritten_chain_between_archives_sharing_keys() {
    let (src, d) = Ore::local();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let dst = Ore::new(format!(
        "backend-fs {}",
        ore_tests::quote(&d.path().join("dst"))
    ));
    dst.run(&["init", "--from", &src.archive])
        .expect(0, "init --from");
    forget_then_sync(&src, &dst, &data, &d.path().join("out"), false);
}

#[test]
fn a_sync_after_forget_follows_the_rewritten_chain_between_archives_with_other_keys() {
    let (src, d) = Ore::local();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let other = scratch();
    let dst = Ore::fs(&other.path().join("fs"));
    forget_then_sync(&src, &dst, &data, &d.path().join("out"), false);
}

/// Found by the crash campaign: once the source's reflog was expired after the forget (as a
/// routine `forget; reflog expire; gc` does), sync called the destination's tag "moved
/// independently" again. The destination's snapshot is the one the forget rewrote: the same
/// contents, time, host and user, only linked differently.
#[test]
fn a_sync_after_forget_and_reflog_expiry_still_follows_the_rewrite() {
    for shared_keys in [true, false] {
        let (src, d) = Ore::local();
        let data = d.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let other = scratch();
        let dst = if shared_keys {
            let dst = Ore::new(format!(
                "backend-fs {}",
                ore_tests::quote(&d.path().join("dst"))
            ));
            dst.run(&["init", "--from", &src.archive])
                .expect(0, "init --from");
            dst
        } else {
            Ore::fs(&other.path().join("fs"))
        };
        forget_then_sync(&src, &dst, &data, &d.path().join("out"), true);
    }
}

/// Found by the crash campaign: the destination's snapshot was one the forget dropped (newer
/// snapshots came after the sync), and the source's reflog was expired, so neither the
/// source's history nor a rewritten twin could show where it came from. The destination's own
/// reflog does: its newest move of the tag is the sync that set this value, so the tag did not
/// move on its own, and it follows. A tag moved on its own since still conflicts.
#[test]
fn a_destination_whose_snapshot_the_forget_dropped_follows_when_its_own_reflog_shows_a_sync() {
    let (src, d) = Ore::local();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let dst = Ore::fs(&d.path().join("dst"));
    for i in 0..2 {
        std::fs::write(data.join("f"), format!("version {i}")).unwrap();
        src.snapshot("home", &data);
    }
    sync(&src, &dst).expect(0, "first sync");
    for i in 2..4 {
        std::fs::write(data.join("f"), format!("version {i}")).unwrap();
        src.snapshot("home", &data);
    }
    src.run(&["forget", "home", "--keep-last", "1"])
        .expect(0, "forget");
    src.run(&["reflog", "expire", "--older-than", "0s"])
        .expect(0, "reflog expire");
    let r = sync(&src, &dst).expect(0, "the sync follows");
    assert_eq!(status(&r).0, "moved", "{r:?}");
    let out = d.path().join("out");
    dst.restore("home", &out).expect(0, "restore");
    assert_eq!(std::fs::read(out.join("f")).unwrap(), b"version 3");
    // Moved on its own since: a conflict, left alone.
    let mine = d.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("x"), b"mine").unwrap();
    let theirs = dst.snapshot("home", &mine);
    std::fs::write(data.join("f"), b"version 4").unwrap();
    src.snapshot("home", &data);
    src.run(&["forget", "home", "--keep-last", "1"])
        .expect(0, "forget");
    let r = sync(&src, &dst).expect(3, "an independent move is a conflict");
    assert_eq!(status(&r).0, "conflict", "{r:?}");
    assert_eq!(head(&dst, "home"), theirs);
}
