//! backend-cache against the conformance suite (in process and through its binary), and its
//! own rules: keys are remembered only after a flush, removals forget, a cache made for
//! another archive or bypassed by a garbage collection starts empty, and the admin commands.

use backend_cache::CacheBackend;
use backend_splitlog::{SplitlogBackend, SplitlogOptions};
use connect::{Client, ClientOptions};
use protocol::{Backend, CasOutcome};
use std::path::Path;
use std::sync::Arc;
use testkit::conformance::{run, test_data, test_key};

fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

fn splitlog(dir: &Path) -> Arc<dyn Backend> {
    Arc::new(SplitlogBackend::open(dir, SplitlogOptions::default()).unwrap())
}

/// Keys the cache file records for good (read straight from sqlite).
fn recorded(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT count(*) FROM blocks", [], |r| r.get(0))
        .unwrap()
}

fn admin_json(b: &dyn Backend, cmd: &str) -> serde_json::Value {
    serde_json::from_str(&b.admin(cmd, &[]).unwrap().json).unwrap()
}

#[test]
fn conformance_in_process() {
    let t = tempfile::tempdir().unwrap();
    let inner = t.path().join("archive");
    let b = CacheBackend::open(&t.path().join("c.db"), &inner.display().to_string()).unwrap();
    run(&b);
}

#[test]
fn conformance_through_the_binary() {
    let t = tempfile::tempdir().unwrap();
    let id = format!(
        "{} {} \"backend-splitlog {}\"",
        env!("CARGO_BIN_EXE_backend-cache"),
        quote(&t.path().join("cache dir/c.db")),
        quote(&t.path().join("archive"))
    );
    let c = Client::connect(&id).unwrap();
    assert!(c.info().server.starts_with("backend-cache"));
    run(&c);
    c.close().unwrap();
}

#[test]
fn keys_are_remembered_only_after_a_flush() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("c.db");
    let dir = t.path().join("archive");
    let id = dir.display().to_string();
    {
        let b = CacheBackend::open(&db, &id).unwrap();
        b.put(test_key(1), b"one").unwrap();
        assert_eq!(b.exists(&[test_key(1)]).unwrap(), vec![true]);
        // Dropped without a flush: what was acknowledged may not be durable.
    }
    assert_eq!(recorded(&db), 0);
    let b = CacheBackend::open(&db, &id).unwrap();
    assert_eq!(admin_json(&b, "stats")["unflushed"], 0);
    b.put(test_key(2), b"two").unwrap();
    b.flush().unwrap();
    assert_eq!(recorded(&db), 1);
    // A yes from the inner backend is remembered too, at the next flush.
    assert_eq!(b.exists(&[test_key(1)]).unwrap(), vec![true]);
    b.flush().unwrap();
    assert_eq!(recorded(&db), 2);
}

#[test]
fn a_failed_inner_flush_records_nothing() {
    // The inner backend dies at the flush: the put was acknowledged but never made durable.
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("c.db");
    let id = format!(
        "{} {} \"backend-fs {}\"",
        env!("CARGO_BIN_EXE_backend-cache"),
        quote(&db),
        quote(&t.path().join("archive"))
    );
    let opts = ClientOptions {
        env: vec![(
            "ORE_FAULT".into(),
            "kill,op=flush,after=0,server=backend-fs".into(),
        )],
        ..Default::default()
    };
    let c = Client::connect_with(&id, opts).unwrap();
    c.put(test_key(1), b"one").unwrap();
    let e = c.flush().unwrap_err().to_string();
    assert!(e.contains("backend-fs"), "{e}");
    drop(c);
    assert_eq!(recorded(&db), 0);
}

#[test]
fn exists_is_answered_from_the_cache_and_removals_forget() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("c.db");
    let dir = t.path().join("archive");
    let id = dir.display().to_string();
    {
        let b = CacheBackend::open(&db, &id).unwrap();
        b.put(test_key(1), b"one").unwrap();
        b.put(test_key(2), b"two").unwrap();
        b.flush().unwrap();
        // Removed through the cache: forgotten, so the answer comes from the archive.
        b.remove(&[test_key(2)]).unwrap();
        assert_eq!(
            b.exists(&[test_key(1), test_key(2)]).unwrap(),
            vec![true, false]
        );
        b.flush().unwrap();
    }
    assert_eq!(recorded(&db), 1);
    // The unsafe setup, shown: a removal that bypasses the cache is not seen, because the
    // cache answers from its file without asking.
    let inner = splitlog(&dir);
    inner.remove(&[test_key(1)]).unwrap();
    inner.flush().unwrap();
    let b = CacheBackend::with_inner(&db, inner.clone(), &id).unwrap();
    assert_eq!(b.exists(&[test_key(1)]).unwrap(), vec![true]);
    // Two hits so far: key 1 in each session (key 2, asked in the first, was a miss).
    let stats = admin_json(&b, "stats");
    assert_eq!(
        (
            stats["hits"].as_u64(),
            stats["misses"].as_u64(),
            stats["keys"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    // `clear` is the remedy.
    b.admin("clear", &[]).unwrap();
    assert_eq!(b.exists(&[test_key(1)]).unwrap(), vec![false]);
}

#[test]
fn a_changed_gc_tag_or_another_archive_empties_the_cache() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("c.db");
    let dir = t.path().join("archive");
    let id = dir.display().to_string();
    let fill = |b: &CacheBackend| {
        b.put(test_key(1), b"one").unwrap();
        b.flush().unwrap();
    };
    {
        let b = CacheBackend::open(&db, &id).unwrap();
        fill(&b);
        // A collection that goes through the cache keeps it.
        assert_eq!(b.set_tag("ore:gc", None, b"1").unwrap(), CasOutcome::Done);
    }
    {
        let b = CacheBackend::open(&db, &id).unwrap();
        assert_eq!(admin_json(&b, "info")["keys"], 1);
    }
    // One that goes around it (the tag moves behind its back) empties it.
    {
        let inner = splitlog(&dir);
        inner.set_tag("ore:gc", Some(b"1"), b"2").unwrap();
        inner.flush().unwrap();
    }
    {
        let b = CacheBackend::open(&db, &id).unwrap();
        assert_eq!(admin_json(&b, "info")["keys"], 0);
        fill(&b);
        assert_eq!(admin_json(&b, "info")["keys"], 1);
    }
    // The same file in front of another archive starts empty too.
    let other = t.path().join("other").display().to_string();
    let b = CacheBackend::open(&db, &other).unwrap();
    assert_eq!(admin_json(&b, "info")["keys"], 0);
    assert_eq!(admin_json(&b, "info")["inner"], other.as_str());
}

#[test]
fn admin_commands_and_passing_through() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("c.db");
    let dir = t.path().join("archive");
    let b = CacheBackend::open(&db, &dir.display().to_string()).unwrap();
    for i in 0..10 {
        b.put(test_key(i), &test_data(i, 100)).unwrap();
    }
    b.flush().unwrap();
    let help = b.admin("help", &[]).unwrap().text;
    for word in [
        "rebuild",
        "clear",
        "inner COMMAND",
        "only correct if every removal",
        "reindex",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
    // Commands the cache does not have go to splitlog; `inner` reaches shadowed ones.
    let verify = b.admin("verify", &[]).unwrap().text;
    assert!(verify.contains("10"), "{verify}");
    let inner_info: serde_json::Value =
        serde_json::from_str(&b.admin("inner", &["info".into()]).unwrap().json).unwrap();
    assert_eq!(inner_info["kind"], "splitlog");
    let e = b.admin("frobnicate", &[]).unwrap_err().to_string();
    assert!(e.contains("unknown admin command `frobnicate`"), "{e}");
    // Rebuild from the listing: clear, then learn all ten back.
    b.admin("clear", &[]).unwrap();
    assert_eq!(admin_json(&b, "info")["keys"], 0);
    let rebuilt = admin_json(&b, "rebuild");
    assert_eq!(rebuilt["keys"], 10);
    assert_eq!(recorded(&db), 10);
    let e = b.admin("stats", &["x".into()]).unwrap_err().to_string();
    assert!(e.contains("takes no arguments"), "{e}");
}

#[test]
fn counters_survive_the_process() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("c.db");
    let id = t.path().join("archive").display().to_string();
    {
        let b = CacheBackend::open(&db, &id).unwrap();
        b.put(test_key(1), b"x").unwrap();
        b.flush().unwrap();
        assert_eq!(
            b.exists(&[test_key(1), test_key(2)]).unwrap(),
            vec![true, false]
        );
    }
    let b = CacheBackend::open(&db, &id).unwrap();
    let s = admin_json(&b, "stats");
    assert_eq!(
        (s["hits"].as_u64(), s["misses"].as_u64()),
        (Some(1), Some(1))
    );
}

/// A cache that stays open while a gc removes blocks behind its back (straight on the inner
/// archive) must not go on claiming them: reading `ore:gc` through it, as every Ore run does
/// when it takes its lease, shows the new epoch and empties it. A sweep still in progress
/// (same epoch) does not.
#[test]
fn a_gc_behind_a_running_cache_empties_it_when_the_epoch_is_read() {
    let t = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Backend> = Arc::new(testkit::memory::MemoryBackend::new(1 << 20));
    let cache = CacheBackend::with_inner(&t.path().join("c.db"), inner.clone(), "mem").unwrap();
    let k = test_key(1);
    cache.put(k, &test_data(1, 100)).unwrap();
    cache.flush().unwrap();
    let idle0 = br#"{"state":"idle","epoch":"e0"}"#;
    assert_eq!(
        cache.set_tag("ore:gc", None, idle0).unwrap(),
        CasOutcome::Done
    );
    // The sweep is announced (the epoch is unchanged): the cache keeps what it knows.
    let sweeping =
        br#"{"state":"sweeping","epoch":"e0","by":"gc","since":1,"heartbeat":1,"id":"x"}"#;
    inner.set_tag("ore:gc", Some(idle0), sweeping).unwrap();
    assert_eq!(cache.get_tag("ore:gc").unwrap().unwrap(), sweeping.to_vec());
    assert_eq!(admin_json(&cache, "info")["keys"], 1);
    // The gc removes the block and ends with a new epoch, all behind the cache.
    inner.remove(&[k]).unwrap();
    inner
        .set_tag(
            "ore:gc",
            Some(sweeping),
            br#"{"state":"idle","epoch":"e1"}"#,
        )
        .unwrap();
    assert_eq!(
        cache.exists(&[k]).unwrap(),
        vec![true],
        "stale before the epoch is read"
    );
    cache.get_tag("ore:gc").unwrap();
    assert_eq!(admin_json(&cache, "info")["keys"], 0);
    assert_eq!(
        cache.exists(&[k]).unwrap(),
        vec![false],
        "asked the archive again"
    );
}
