//! The conformance suite: every rule of PROTOCOL.md, checked against any [`Backend`].
//!
//! Each backend crate runs [`run`] twice — on the backend in process and through a [`Client`]
//! against its real binary — so a rule holds the same way whether the frontend embeds a backend
//! or talks to one across ssh. The suite expects a fresh, empty, writable backend and panics
//! with a sentence naming the broken rule.
//!
//! [`Client`]: connect::Client

use protocol::backend::{Backend, CasOutcome};
use protocol::error::{ErrorCode, Result};
use protocol::frame::MAX_BLOCK_LIMIT;
use protocol::key::Key;
use std::collections::BTreeSet;

/// A key derived from a number (spread over the whole key space, as real keys are).
pub fn test_key(n: u64) -> Key {
    let mut out = [0u8; 32];
    let mut x = n ^ 0x5eed_0f0e_u64;
    for chunk in out.chunks_mut(8) {
        x = splitmix(x);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    Key(out)
}

/// Deterministic bytes of length `len` derived from `seed`.
pub fn test_data(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ len as u64;
    while out.len() < len {
        x = splitmix(x);
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn code_of<T: std::fmt::Debug>(r: Result<T>) -> ErrorCode {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.code(),
    }
}

/// Runs every check against `b`, which must be fresh, empty and writable.
pub fn run(b: &dyn Backend) {
    let mut stored = BTreeSet::new();
    welcome(b);
    blocks(b, &mut stored);
    large_blocks(b, &mut stored);
    tags(b);
    removal_and_listing(b, &mut stored);
    pipelining(b, &mut stored);
    concurrency(b, &mut stored);
    admin(b);
    tag_history(b);
    restricted_puts(b, &mut stored);
    let stats = b.stats().expect("stats");
    if let Some(n) = stats.blocks {
        assert_eq!(
            n,
            stored.len() as u64,
            "stats counts every stored block once"
        );
    }
    b.flush().expect("a final flush succeeds");
}

fn welcome(b: &dyn Backend) {
    let info = b.info();
    assert!(!info.server.is_empty(), "the welcome names the server");
    assert!(
        info.max_block_size > 0 && info.max_block_size <= MAX_BLOCK_LIMIT,
        "max block size {} is within 1..=64 MiB",
        info.max_block_size
    );
    assert!(
        info.writable,
        "the conformance suite needs a writable backend"
    );
    for c in ["help", "info"] {
        assert!(
            info.admin_commands.iter().any(|n| n == c),
            "every backend lists the `{c}` admin command"
        );
    }
}

fn blocks(b: &dyn Backend, stored: &mut BTreeSet<Key>) {
    let k = test_key(1);
    assert_eq!(
        b.get(k).expect("get of a missing key"),
        None,
        "missing is None"
    );
    assert_eq!(
        b.exists(&[]).expect("empty exists batch"),
        Vec::<bool>::new()
    );
    let data = test_data(1, 10_000);
    b.put(k, &data).expect("put");
    stored.insert(k);
    assert_eq!(
        b.get(k).expect("get").as_deref(),
        Some(&data[..]),
        "round trip"
    );
    // Idempotent, never overwrites.
    b.put(k, &data)
        .expect("a second put of the same key succeeds");
    b.put(k, b"other bytes")
        .expect("a put over an existing key succeeds");
    assert_eq!(
        b.get(k).expect("get").as_deref(),
        Some(&data[..]),
        "a put never overwrites a stored block"
    );
    // Empty and tiny blocks, every byte value.
    let empty = test_key(2);
    b.put(empty, b"").expect("empty block");
    stored.insert(empty);
    assert_eq!(b.get(empty).expect("get").as_deref(), Some(&b""[..]));
    let all: Vec<u8> = (0..=255u8).collect();
    let k3 = test_key(3);
    b.put(k3, &all).expect("put");
    stored.insert(k3);
    assert_eq!(b.get(k3).expect("get"), Some(all));
    // Exists answers a batch in order, duplicates included.
    let probe = [k, test_key(999), empty, k, test_key(998), k3];
    assert_eq!(
        b.exists(&probe).expect("exists"),
        vec![true, false, true, true, false, true],
        "exists answers each key of the batch in order"
    );
}

fn large_blocks(b: &dyn Backend, stored: &mut BTreeSet<Key>) {
    let max = b.info().max_block_size as usize;
    let k = test_key(10);
    let data = test_data(10, max);
    b.put(k, &data)
        .expect("a block of exactly the maximum size is accepted");
    stored.insert(k);
    let back = b.get(k).expect("get of a maximum-size block");
    assert!(
        back.as_deref() == Some(&data[..]),
        "maximum-size block round trip"
    );
    let mut over = data;
    over.push(0);
    let k2 = test_key(11);
    assert_eq!(
        code_of(b.put(k2, &over)),
        ErrorCode::TooLarge,
        "a block one byte over the maximum is refused with too-large"
    );
    assert_eq!(
        b.get(k2).expect("get"),
        None,
        "a refused block is not stored"
    );
}

fn tags(b: &dyn Backend) {
    assert_eq!(b.get_tag("home").expect("get missing tag"), None);
    assert_eq!(b.list_tags().expect("list tags"), vec![]);
    assert_eq!(
        b.set_tag("home", None, b"v1").expect("create"),
        CasOutcome::Done,
        "creating a tag that does not exist with expected=None succeeds"
    );
    assert_eq!(
        b.set_tag("home", None, b"v2").expect("set"),
        CasOutcome::Conflict {
            current: Some(b"v1".to_vec())
        },
        "expected=None on an existing tag is a conflict that reports the current value"
    );
    assert_eq!(
        b.set_tag("home", Some(b"wrong"), b"v2").expect("set"),
        CasOutcome::Conflict {
            current: Some(b"v1".to_vec())
        },
        "a wrong expected value is a conflict"
    );
    assert_eq!(b.get_tag("home").expect("get").as_deref(), Some(&b"v1"[..]));
    assert_eq!(
        b.set_tag("home", Some(b"v1"), b"v2").expect("set"),
        CasOutcome::Done
    );
    assert_eq!(b.get_tag("home").expect("get").as_deref(), Some(&b"v2"[..]));
    assert_eq!(
        b.set_tag("work", Some(b"v1"), b"x").expect("set"),
        CasOutcome::Conflict { current: None },
        "an expected value on a missing tag is a conflict with current None"
    );
    b.set_tag("alpha", None, b"a").expect("set");
    b.set_tag("zeta ü", None, &[0u8, 255, 10])
        .expect("set binary value");
    let names: Vec<String> = b
        .list_tags()
        .expect("list")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        ["alpha", "home", "zeta ü"],
        "tags are listed sorted by name"
    );
    // Removal is a compare-and-swap too.
    assert_eq!(
        b.remove_tag("alpha", Some(b"nope")).expect("remove"),
        CasOutcome::Conflict {
            current: Some(b"a".to_vec())
        }
    );
    assert_eq!(
        b.remove_tag("alpha", Some(b"a")).expect("remove"),
        CasOutcome::Done
    );
    assert_eq!(b.get_tag("alpha").expect("get"), None);
    assert_eq!(
        b.remove_tag("alpha", None).expect("remove missing"),
        CasOutcome::Done,
        "removing a missing tag without an expected value is fine"
    );
    b.remove_tag("zeta ü", None).expect("remove");
    // Bad names and values are refused, nothing changes.
    for bad in ["", ".hidden", "a/b", "new\nline"] {
        assert_eq!(
            code_of(b.set_tag(bad, None, b"x")),
            ErrorCode::InvalidArgument,
            "tag name {bad:?} is refused"
        );
    }
    assert_eq!(
        code_of(b.set_tag("big", None, &vec![1u8; 4097])),
        ErrorCode::InvalidArgument,
        "a tag value over 4096 bytes is refused"
    );
    let names: Vec<String> = b
        .list_tags()
        .expect("list")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["home"]);
}

fn removal_and_listing(b: &dyn Backend, stored: &mut BTreeSet<Key>) {
    let info = b.info();
    for i in 100..400 {
        let k = test_key(i);
        b.put(k, &test_data(i, 100)).expect("put");
        stored.insert(k);
    }
    if info.can_remove {
        let gone = [test_key(100), test_key(101), test_key(5000)];
        b.remove(&gone).expect("remove (a missing key is ignored)");
        stored.remove(&gone[0]);
        stored.remove(&gone[1]);
        assert_eq!(b.exists(&gone[..2]).expect("exists"), vec![false, false]);
        assert_eq!(
            b.get(gone[0]).expect("get"),
            None,
            "a removed block is gone"
        );
        b.put(gone[0], b"again")
            .expect("a removed key can be stored again");
        assert_eq!(b.get(gone[0]).expect("get").as_deref(), Some(&b"again"[..]));
        stored.insert(gone[0]);
    } else {
        assert_eq!(
            code_of(b.remove(&[test_key(100)])),
            ErrorCode::NotSupported,
            "remove is refused where the welcome does not offer it"
        );
    }
    if info.can_list {
        let mut listed = Vec::new();
        let mut after = None;
        loop {
            let (keys, more) = b.list(after, 97).expect("list");
            assert!(keys.len() <= 97, "list returns at most `limit` keys");
            assert!(
                keys.windows(2).all(|w| w[0] < w[1]),
                "list returns keys in ascending order"
            );
            if let (Some(a), Some(first)) = (after, keys.first()) {
                assert!(*first > a, "list returns only keys after the cursor");
            }
            listed.extend_from_slice(&keys);
            after = keys.last().copied();
            if !more {
                break;
            }
            assert!(!keys.is_empty(), "a page that says `more` is not empty");
        }
        let expect: Vec<Key> = stored.iter().copied().collect();
        assert_eq!(
            listed, expect,
            "paging through list yields every stored key once"
        );
    } else {
        assert_eq!(code_of(b.list(None, 10)), ErrorCode::NotSupported);
    }
}

fn pipelining(b: &dyn Backend, stored: &mut BTreeSet<Key>) {
    let n = 1000u64;
    let base = 10_000;
    let tickets: Vec<_> = (0..n)
        .map(|i| b.start_put(test_key(base + i), test_data(base + i, (i % 5000) as usize)))
        .collect();
    for t in tickets {
        t.wait().expect("pipelined put");
    }
    let gets: Vec<_> = (0..n).map(|i| b.start_get(test_key(base + i))).collect();
    for (i, t) in gets.into_iter().enumerate() {
        let i = i as u64;
        let got = t.wait().expect("pipelined get");
        assert!(
            got.as_deref() == Some(&test_data(base + i, (i % 5000) as usize)[..]),
            "pipelined answers come back in request order (request {i})"
        );
        stored.insert(test_key(base + i));
    }
    let batch: Vec<Key> = (0..n + 10).map(|i| test_key(base + i)).collect();
    let present = b.start_exists(batch).wait().expect("exists");
    assert_eq!(present.iter().filter(|&&p| p).count() as u64, n);
}

fn concurrency(b: &dyn Backend, stored: &mut BTreeSet<Key>) {
    let threads = 8u64;
    let per = 150u64;
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in 0..per {
                    let n = 50_000 + t * 1000 + i;
                    let data = test_data(n, 1000 + (n % 3000) as usize);
                    b.put(test_key(n), &data).expect("concurrent put");
                    assert_eq!(
                        b.get(test_key(n)).expect("concurrent get"),
                        Some(data),
                        "a thread reads back what it wrote"
                    );
                }
            });
        }
        // Compare-and-swap increments from several threads: none may be lost.
        for _ in 0..4 {
            s.spawn(move || {
                let mut done = 0;
                while done < 25 {
                    let cur = b.get_tag("counter").expect("get counter");
                    let n: u64 = cur
                        .as_deref()
                        .map(|v| String::from_utf8_lossy(v).parse().unwrap_or(0))
                        .unwrap_or(0);
                    let next = (n + 1).to_string();
                    if b.set_tag("counter", cur.as_deref(), next.as_bytes())
                        .expect("set counter")
                        == CasOutcome::Done
                    {
                        done += 1;
                    }
                }
            });
        }
    });
    for t in 0..threads {
        for i in 0..per {
            stored.insert(test_key(50_000 + t * 1000 + i));
        }
    }
    assert_eq!(
        b.get_tag("counter").expect("get").as_deref(),
        Some(&b"100"[..]),
        "compare-and-swap loses no update under concurrency"
    );
    b.remove_tag("counter", None).expect("remove counter");
}

fn admin(b: &dyn Backend) {
    for c in ["help", "info"] {
        let out = b.admin(c, &[]).expect("admin command");
        assert!(!out.text.trim().is_empty(), "`{c}` says something");
        serde_json::from_str::<serde_json::Value>(&out.json)
            .unwrap_or_else(|e| panic!("`{c}` JSON does not parse: {e}"));
    }
    let help = b.admin("help", &[]).expect("help").text;
    for c in b.info().admin_commands {
        assert!(help.contains(&c), "`help` explains `{c}`");
    }
    assert_eq!(
        code_of(b.admin("no-such-command", &[])),
        ErrorCode::Admin,
        "an unknown admin command is an admin error"
    );
}

/// Every value a tag has had is kept and listed until expired, the current one always
/// (PROTOCOL.md §6, "Tag history").
fn tag_history(b: &dyn Backend) {
    use protocol::history::{parse, EXPIRE, TAG_HISTORY};
    let values: Vec<String> = (1..=3).map(|n| test_key(900 + n).to_hex()).collect();
    let mut expected = None;
    for v in &values {
        assert_eq!(
            b.set_tag("kept", expected.as_deref(), v.as_bytes())
                .expect("set kept"),
            CasOutcome::Done
        );
        expected = Some(v.as_bytes().to_vec());
    }
    let kept = |asked: &[String]| -> Vec<String> {
        let out = b
            .admin(TAG_HISTORY, asked)
            .unwrap_or_else(|e| panic!("every backend answers `{TAG_HISTORY}`: {e}"));
        parse(&out.json)
            .expect("`tag-history` JSON is a list of kept values")
            .into_iter()
            .filter(|e| e.tag == "kept")
            .map(|e| e.value)
            .collect()
    };
    assert_eq!(
        kept(&["kept".into()]),
        values,
        "`tag-history NAME` lists every value the tag has had, oldest first"
    );
    assert_eq!(kept(&[]), values, "`tag-history` lists every tag's values");
    b.admin(EXPIRE, &["0".into()])
        .unwrap_or_else(|e| panic!("every backend answers `{EXPIRE}`: {e}"));
    assert_eq!(
        kept(&["kept".into()]),
        values[2..],
        "expiring tag history keeps the current value"
    );
    assert_eq!(
        code_of(b.admin(EXPIRE, &["soon".into()])),
        ErrorCode::Admin,
        "`expire-tag-history` wants whole seconds"
    );
    b.remove_tag("kept", None).expect("remove kept");
}

/// A block a restricted connection newly stores is recorded until vouched for or removed; a
/// block stored before is not (PROTOCOL.md §6, "Blocks written by restricted connections").
fn restricted_puts(b: &dyn Backend, stored: &mut BTreeSet<Key>) {
    use protocol::provenance::{parse_page, UNVOUCHED, VOUCH};
    let [owners, planted, removed] = [test_key(950), test_key(951), test_key(952)];
    b.put(owners, &test_data(950, 100)).expect("put");
    for k in [owners, planted, removed] {
        b.put_restricted(k, &test_data(7, 100))
            .expect("a restricted put");
    }
    stored.extend([owners, planted]);
    let listed = |b: &dyn Backend| -> BTreeSet<Key> {
        let mut out = BTreeSet::new();
        let mut after = "-".to_string();
        loop {
            let page = b
                .admin(UNVOUCHED, &[after.clone(), "2".into()])
                .unwrap_or_else(|e| panic!("every backend answers `{UNVOUCHED}`: {e}"));
            let (keys, more) = parse_page(&page.json).expect("an `unvouched` page");
            out.extend(keys.iter().copied());
            match (more, keys.last()) {
                (true, Some(k)) => after = k.to_hex(),
                _ => break,
            }
        }
        out.retain(|k| [owners, planted, removed].contains(k));
        out
    };
    assert_eq!(
        b.get(owners).expect("get"),
        Some(test_data(950, 100)),
        "a restricted put never overwrites a stored block"
    );
    assert_eq!(
        listed(b),
        BTreeSet::from([planted, removed]),
        "`unvouched` lists the blocks restricted puts newly stored, not the owner's"
    );
    b.admin(VOUCH, &[planted.to_hex()])
        .unwrap_or_else(|e| panic!("every backend answers `{VOUCH}`: {e}"));
    b.remove(&[removed]).expect("remove");
    assert_eq!(
        listed(b),
        BTreeSet::new(),
        "vouching for a block or removing it forgets its record"
    );
    assert_eq!(
        code_of(b.admin(VOUCH, &["nonsense".into()])),
        ErrorCode::Admin,
        "`vouch` wants block keys"
    );
}

/// Runs the suite through [`connect::Lanes`] of `n` connections to the archive `id`, each a
/// process of its own started from the identifier.
pub fn run_through_lanes(id: &str, n: usize) {
    let open = || connect::Client::connect(id).expect("a connection to the archive");
    let first = open();
    let rest = (1..n).map(|_| open()).collect();
    run(&connect::Lanes::new(first, rest));
}
