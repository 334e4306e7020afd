//! What SeaweedFS 4.48 does with the S3 requests backend-s3 relies on, pinned through OpenDAL
//! (the library backend-s3 is built on) on a real cluster: conditional creates and replaces,
//! listing by prefix, ranged reads, deletes, and the errors a misconfiguration gives.
//! If a SeaweedFS upgrade changes any of these, this file says which.

use opendal::{ErrorKind, Operator};
use ore_tests::seaweed::{Cluster, ACCESS_KEY, BUCKET, SECRET_KEY};

fn operator(endpoint: &str, bucket: &str, secret: &str) -> Operator {
    let b = opendal::services::S3::default()
        .bucket(bucket)
        .root("/caps")
        .region("us-east-1")
        .endpoint(endpoint)
        .access_key_id(ACCESS_KEY)
        .secret_access_key(secret)
        .disable_config_load()
        .disable_ec2_metadata();
    Operator::new(b).expect("an S3 operator").finish()
}

fn rt() -> &'static tokio::runtime::Runtime {
    ore_tests::seaweed::runtime()
}

#[test]
fn seaweedfs_honours_conditional_puts_lists_reads_ranges_and_deletes() {
    let c = Cluster::start();
    let op = operator(&c.endpoint(), BUCKET, SECRET_KEY);
    let caps = op.info().full_capability();
    assert!(
        caps.write_with_if_not_exists && caps.write_with_if_match && caps.list_with_start_after
    );
    rt().block_on(async {
        // If-None-Match: * creates once, then refuses; the object keeps its first bytes.
        op.write_with("a/one", "first")
            .if_not_exists(true)
            .await
            .expect("create");
        let e = op
            .write_with("a/one", "second")
            .if_not_exists(true)
            .await
            .expect_err("a second create is refused");
        assert_eq!(e.kind(), ErrorKind::ConditionNotMatch, "{e}");
        assert_eq!(op.read("a/one").await.expect("read").to_vec(), b"first");
        // If-Match: a stale ETag is refused, the current one replaces.
        let etag = op
            .stat("a/one")
            .await
            .expect("stat")
            .etag()
            .expect("an etag")
            .to_string();
        let e = op
            .write_with("a/one", "stale")
            .if_match("\"0123456789abcdef0123456789abcdef\"")
            .await
            .expect_err("a stale If-Match is refused");
        assert_eq!(e.kind(), ErrorKind::ConditionNotMatch, "{e}");
        op.write_with("a/one", "third")
            .if_match(&etag)
            .await
            .expect("CAS with the current etag");
        let e = op
            .write_with("a/one", "fourth")
            .if_match(&etag)
            .await
            .expect_err("the old etag no longer matches");
        assert_eq!(e.kind(), ErrorKind::ConditionNotMatch, "{e}");
        // If-Match on a missing object is refused too (not a create).
        let e = op
            .write_with("a/none", "x")
            .if_match(&etag)
            .await
            .expect_err("If-Match on a missing object");
        eprintln!("If-Match on a missing object: {:?}: {e}", e.kind());
        assert!(op.stat("a/none").await.is_err(), "nothing was created");
        // A read conditioned on a stale ETag is refused.
        let e = op
            .read_with("a/one")
            .if_match(&etag)
            .await
            .expect_err("stale read");
        assert_eq!(e.kind(), ErrorKind::ConditionNotMatch, "{e}");
        // Ranged reads.
        op.write("a/range", (0u8..=255).collect::<Vec<u8>>())
            .await
            .expect("write");
        let part = op.read_with("a/range").range(10..20).await.expect("range");
        assert_eq!(part.to_vec(), (10u8..20).collect::<Vec<u8>>());
        // Listing by prefix, sorted, with start-after.
        for n in ["b/03", "b/01", "b/02", "bb/01"] {
            op.write(n, "x").await.expect("write");
        }
        let names = |l: Vec<opendal::Entry>| -> Vec<String> {
            l.iter()
                .map(|e| e.path().to_string())
                .filter(|p| !p.ends_with('/'))
                .collect()
        };
        let all = names(op.list("b/").await.expect("list"));
        assert_eq!(
            all,
            ["b/01", "b/02", "b/03"],
            "a prefix lists only its objects, sorted"
        );
        let after = names(op.list_with("b/").start_after("b/01").await.expect("list"));
        assert_eq!(
            after,
            ["b/02", "b/03"],
            "start-after skips up to and including the cursor"
        );
        // Delete, and deleting a missing object is fine.
        op.delete("b/02").await.expect("delete");
        op.delete("b/02")
            .await
            .expect("deleting a missing object succeeds");
        assert_eq!(names(op.list("b/").await.expect("list")), ["b/01", "b/03"]);
        let e = op.read("b/02").await.expect_err("deleted");
        assert_eq!(e.kind(), ErrorKind::NotFound);
    });
}

#[test]
fn seaweedfs_errors_for_wrong_credentials_a_missing_bucket_and_a_refused_connection() {
    let c = Cluster::start();
    rt().block_on(async {
        let wrong = operator(&c.endpoint(), BUCKET, "not-the-secret");
        let e = wrong.write("x", "y").await.expect_err("wrong secret");
        eprintln!("wrong credentials: {e}");
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        let missing = operator(&c.endpoint(), "no-such-bucket", SECRET_KEY);
        let e = missing.write("x", "y").await.expect_err("missing bucket");
        eprintln!("missing bucket (write): {e}");
        assert!(e.to_string().contains("NoSuchBucket"), "{e}");
        let e = missing.read("x").await.expect_err("missing bucket");
        eprintln!("missing bucket (read): {e}");
        // OpenDAL tells a missing bucket from a missing object: not NotFound.
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{e}");
        assert!(
            e.to_string().contains("NoSuchBucket"),
            "a read names the bucket: {e}"
        );
        let refused = operator("http://127.0.0.1:1", BUCKET, SECRET_KEY);
        let e = refused.read("x").await.expect_err("refused");
        eprintln!("refused connection: {e}");
        assert!(e.is_temporary() || e.kind() == ErrorKind::Unexpected, "{e}");
    });
}

/// What `ore-admin ARCHIVE info` says of conditional writes, with `o`'s cache.
fn probe_info(o: &ore_tests::ore::Ore) -> String {
    let info = std::process::Command::new(ore_tests::bin("ore-admin"))
        .args([&o.archive, "info"])
        .env("XDG_CACHE_HOME", &o.cache)
        .output()
        .expect("ore-admin runs");
    let text = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(info.status.success(), "ore-admin info: {text}");
    text.lines()
        .find(|l| l.contains("If-None-Match"))
        .unwrap_or_else(|| panic!("info reports the probe: {text}"))
        .to_string()
}

/// Every `probe.json` under `dir` (this machine's record of a probe).
fn probe_records(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(probe_records(&p));
        } else if p.file_name().is_some_and(|n| n == "probe.json") {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_store_found_to_honour_conditions_is_probed_again_once_a_day_not_at_every_start() {
    let c = Cluster::start();
    let o = ore_tests::ore::Ore::new(c.archive("recall", ""));
    o.run(&["init"]).expect(0, "init");
    // The next start recalls init's finding: no probe's requests.
    let said = probe_info(&o);
    assert!(
        said.contains("If-None-Match: * honoured, If-Match: ETAG honoured")
            && said.contains("found by this machine"),
        "{said}"
    );
    // A record more than a day old is not trusted: the store is probed again.
    let records = probe_records(&o.cache);
    assert_eq!(records.len(), 1, "{records:?}");
    let two_days_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        - 2 * 86_400;
    std::fs::write(
        &records[0],
        format!("{{\"exact\":true,\"at\":{two_days_ago}}}"),
    )
    .expect("age the record");
    assert!(probe_info(&o).contains("probed at this start"));
    assert!(probe_info(&o).contains("found by this machine"));
    // The switch that acts as if the probe had failed still acts so on a recalled finding.
    let ignored = ore_tests::ore::Ore::new(c.archive("recall", "--assume-unconditional"));
    let said = probe_info(&ignored);
    assert!(
        said.contains("If-None-Match: * IGNORED, If-Match: ETAG IGNORED"),
        "{said}"
    );
}
