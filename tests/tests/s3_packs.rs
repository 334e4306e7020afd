//! backend-s3 keeps blocks in packs: a few large objects instead of one per block, with an
//! index any process can rebuild from the packs themselves (LAYOUT.md, "Packs").

use connect::Client;
use ore_tests::s3objects::{delete, objects, operator};
use ore_tests::seaweed::Cluster;
use protocol::Backend;
use testkit::conformance::{test_data, test_key};

#[test]
fn blocks_are_packed_into_few_objects_and_a_lost_index_is_rebuilt_from_the_packs() {
    let c = Cluster::shared();
    let op = operator(c, "packed");
    let a = Client::connect(&c.archive("packed", "")).expect("connect");
    for i in 0..500 {
        a.put(test_key(i), &test_data(i, 3000)).expect("put");
    }
    a.flush().expect("flush");
    drop(a);
    let packs = objects(&op, "packs/");
    assert_eq!(packs.len(), 1, "500 small blocks make one pack: {packs:?}");
    let indexes = objects(&op, "index/");
    assert_eq!(indexes.len(), 1, "and one index object: {indexes:?}");

    delete(&op, &indexes);
    let b = Client::connect(&c.archive("packed", "")).expect("connect");
    assert_eq!(
        b.get(test_key(7)).expect("get"),
        None,
        "without its index the pack is unseen"
    );
    // The pack is seconds old: reindex would leave it to a writer that may still index it.
    let out = b
        .admin("reindex", &["--grace".into(), "0s".into()])
        .expect("reindex");
    assert!(out.text.contains("reindexed 1 pack"), "{}", out.text);
    for i in 0..500 {
        assert_eq!(
            b.get(test_key(i)).expect("get"),
            Some(test_data(i, 3000)),
            "block {i} is back"
        );
    }
    assert_eq!(b.list(None, 1000).expect("list").0.len(), 500);
    assert_eq!(
        objects(&op, "index/").len(),
        1,
        "the index object is written again"
    );
}

/// Sums the request counts that backend-s3 processes appended to `file`.
fn requests(file: &std::path::Path) -> (usize, serde_json::Map<String, serde_json::Value>) {
    let text = std::fs::read_to_string(file).expect("the request counts were written");
    let mut total = serde_json::Map::new();
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
        for (k, n) in v["requests"].as_object().expect("counts") {
            let sum = total.get(k).and_then(|t| t.as_u64()).unwrap_or(0) + n.as_u64().unwrap_or(0);
            total.insert(k.clone(), sum.into());
        }
    }
    (lines.len(), total)
}

#[test]
fn a_snapshot_of_many_small_files_costs_a_few_puts_not_one_per_block() {
    let c = Cluster::shared();
    let d = ore_tests::ore::scratch();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let files = 1000;
    for i in 0..files {
        std::fs::write(
            src.join(format!("f{i:04}")),
            ore_tests::trees::bytes(i, 2000),
        )
        .expect("write");
    }
    let o = ore_tests::ore::Ore::new(c.archive("counted", ""));
    o.run(&["init"]).expect(0, "init");
    let counts = d.path().join("requests.jsonl");
    let r = ore_tests::ore::Run::of(
        o.cmd(&["snapshot", "home", src.to_str().expect("utf-8")])
            .env("ORE_S3_REQUESTS", &counts)
            .output()
            .expect("ore runs"),
    )
    .expect(0, "snapshot");
    let (processes, total) = requests(&counts);
    eprintln!(
        "{}snapshot of {files} files through {processes} backend process(es): {total:?}",
        r.stdout
    );
    let puts = total["PUT"].as_u64().unwrap_or(u64::MAX);
    assert!(
        puts < 20 * processes as u64 + 10,
        "a snapshot of {files} one-block files made {puts} PUTs: {total:?}"
    );
}

/// Restores `src`'s snapshot from `id` into a fresh directory, checks it is the same, and
/// returns the GETs the backend made. A fresh backend process, whose first reads all miss at
/// once, must share one refresh of the index among them, not list the store for each.
fn restore_counting_gets(id: &str, src: &std::path::Path, d: &std::path::Path) -> u64 {
    let o = ore_tests::ore::Ore::new(id.to_string());
    let counts = d.join("restore-requests.jsonl");
    let _ = std::fs::remove_file(&counts);
    let dest = d.join("dest");
    let _ = std::fs::remove_dir_all(&dest);
    ore_tests::ore::Run::of(
        o.cmd(&["restore", "home", dest.to_str().expect("utf-8")])
            .env("ORE_S3_REQUESTS", &counts)
            // One backend process: on a loaded machine the round trip can call for lanes,
            // each a process with its own start-up requests (counted by the lanes test).
            .env("ORE_LANES", "1")
            .output()
            .expect("ore runs"),
    )
    .expect(0, "restore");
    ore_tests::trees::assert_same(src, &dest);
    let (_, total) = requests(&counts);
    let lists = total.get("LIST").and_then(|n| n.as_u64()).unwrap_or(0);
    assert!(
        lists <= 12,
        "a restore listed the store {lists} times: reads that missed each refreshed the index"
    );
    total.get("GET").and_then(|n| n.as_u64()).unwrap_or(0)
}

#[test]
fn a_restore_reads_hot_packs_whole_instead_of_one_get_per_block() {
    let c = Cluster::shared();
    let d = ore_tests::ore::scratch();
    let src = d.path().join("src");
    // 2,400 files of 16 KB that do not compress: about 38 MB, three packs.
    for dir in 0..24 {
        let sub = src.join(format!("d{dir:02}"));
        std::fs::create_dir_all(&sub).expect("mkdir");
        for i in 0..100u64 {
            let n = dir * 100 + i;
            std::fs::write(
                sub.join(format!("f{i:03}")),
                ore_tests::trees::bytes(n, 16_000),
            )
            .expect("write");
        }
    }
    let id = c.archive("hot", "");
    let o = ore_tests::ore::Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    o.snapshot("home", &src);
    let whole = restore_counting_gets(&id, &src, d.path());
    // Without scratch space every block is still restored, through read-ahead alone, which
    // gathers neighbours into segments when the restore walks a pack in order.
    let ahead = restore_counting_gets(&c.archive("hot", "--spill 0"), &src, d.path());
    eprintln!("GETs for 2,400 one-block files: {whole} with scratch space, {ahead} without");
    assert!(
        whole < 60,
        "restoring 2,400 one-block files made {whole} GETs: packs are not read whole"
    );
    assert!(
        ahead < 600,
        "restoring 2,400 one-block files with --spill 0 made {ahead} GETs: no read-ahead"
    );
}

#[test]
fn a_large_file_is_restored_from_packs_read_whole() {
    let c = Cluster::shared();
    let d = ore_tests::ore::scratch();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("big"), ore_tests::trees::bytes(1, 40 << 20)).expect("write");
    let id = c.archive("sequential", "");
    let o = ore_tests::ore::Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    o.snapshot("home", &src);
    let gets = restore_counting_gets(&id, &src, d.path());
    // About 40 MiB in blocks of about 1 MiB on average: one GET per block would be 40 or
    // more; three packs read whole, a few blocks before each, and the archive's small objects
    // (format, tags, index) are about 25.
    assert!(gets < 30, "a 40 MiB file made {gets} GETs");
}

#[test]
fn a_fresh_process_far_from_its_store_lists_the_index_once_not_once_per_waiting_read() {
    // Regression: every read that missed in a fresh backend-s3 refreshed the index itself, so
    // a restore 40 ms from its store, whose lanes (more backend processes) joined it while it
    // ran, began each of them with a burst of LISTs (772 were counted on /usr/share).
    let c = Cluster::shared();
    let d = ore_tests::ore::scratch();
    let src = d.path().join("src");
    for dir in 0..8 {
        let sub = src.join(format!("d{dir}"));
        std::fs::create_dir_all(&sub).expect("mkdir");
        for i in 0..50u64 {
            std::fs::write(
                sub.join(format!("f{i}")),
                ore_tests::trees::bytes(dir * 50 + i, 3000),
            )
            .expect("write");
        }
    }
    let (mut link, id) = far(c, "far");
    let o = ore_tests::ore::Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    o.snapshot("home", &src);
    // Without local copies of the index, as on a new machine.
    let cache = d.path().join("fresh-cache");
    let counts = d.path().join("far.jsonl");
    let dest = d.path().join("dest");
    let run = ore_tests::ore::Run::of(
        o.cmd(&["restore", "home", dest.to_str().expect("utf-8")])
            .env("ORE_S3_REQUESTS", &counts)
            .env("XDG_CACHE_HOME", &cache)
            // Lanes join a run in full swing: each new process gets many reads at once.
            .env("ORE_LANES", "4")
            .output()
            .expect("ore runs"),
    );
    let _ = link.kill();
    let _ = link.wait();
    run.expect(0, "restore");
    ore_tests::trees::assert_same(&src, &dest);
    let (_, total) = requests(&counts);
    let lists = total.get("LIST").and_then(|n| n.as_u64()).unwrap_or(0);
    // Measured: 14 (two LISTs per refresh, about two refreshes per process); 46 when every
    // read that missed refreshed on its own.
    assert!(
        lists <= 24,
        "a far restore over 4 processes listed the store {lists} times: {total:?}"
    );
}

#[test]
fn an_archive_is_created_beside_a_probe_object_a_crashed_process_left() {
    // Regression: the start-up probe runs beside the format object's read, and the check that
    // refuses to create an archive in a prefix holding objects counted the probe's own
    // scratch object ("holds objects but no ore-s3.json").
    let c = Cluster::shared();
    let rt = ore_tests::seaweed::runtime();
    rt.block_on(operator(c, "leftover").write("probe/4242-1", b"first".to_vec()))
        .expect("write a probe object");
    let o = ore_tests::ore::Ore::new(c.archive("leftover", ""));
    o.run(&["init"]).expect(0, "init beside a probe object");
    // Anything else still makes the prefix someone else's.
    rt.block_on(operator(c, "taken").write("notes.txt", b"x".to_vec()))
        .expect("write an object");
    let refused = ore_tests::ore::Ore::new(c.archive("taken", "")).run(&["init"]);
    assert_ne!(
        refused.code, 0,
        "init over someone's objects: {}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("holds objects but no ore-s3.json"),
        "{}",
        refused.stderr
    );
}

#[test]
fn short_runs_leave_no_probe_object_behind() {
    // The probe runs in the background while a run goes on; a run as short as the probe
    // (here `ore tags`, 40 ms from the store, against the probe's four round trips) must
    // still delete the probe's scratch object before its backend exits. (A guard: with the
    // backend's wait at exit removed, these runs still outlasted their probes here.)
    let c = Cluster::shared();
    let (mut link, id) = far(c, "brief");
    let o = ore_tests::ore::Ore::new(id);
    o.run(&["init"]).expect(0, "init");
    for _ in 0..5 {
        o.run(&["tags"]).expect(0, "tags");
    }
    let _ = link.kill();
    let _ = link.wait();
    let left = objects(&operator(c, "brief"), "probe/");
    assert!(left.is_empty(), "probe objects left behind: {left:?}");
}

/// A `delay-link` adding 20 ms each way in front of the cluster's gateway, and the identifier
/// of the archive under `prefix` reached through it.
fn far(c: &Cluster, prefix: &str) -> (std::process::Child, String) {
    let port = ore_tests::sshd::free_port();
    let link = std::process::Command::new(ore_tests::bin("delay-link"))
        .args(["--tcp", "20"])
        .arg(format!("127.0.0.1:{port}"))
        .arg(format!("127.0.0.1:{}", c.s3_port))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("delay-link starts");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let id = c
        .archive(prefix, "")
        .replace(&c.endpoint(), &format!("http://127.0.0.1:{port}"));
    (link, id)
}
