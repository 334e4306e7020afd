//! backend-s3 keeps every rule of PROTOCOL.md on a real SeaweedFS cluster: the conformance
//! suite in process and through the binary, the start-up probe, and clear errors for a
//! misconfigured store.

use backend_s3::config::{from_file, Location};
use backend_s3::{Endpoint, S3Backend, S3Options};
use connect::Client;
use ore_tests::seaweed::{Cluster, Role, BUCKET};
use protocol::Backend;
use testkit::conformance::test_key;

fn endpoint(c: &Cluster, prefix: &str) -> Endpoint {
    Endpoint {
        location: Location::parse(&format!("s3://{BUCKET}/{prefix}")).expect("location"),
        endpoint: Some(c.endpoint()),
        region: "us-east-1".into(),
        credentials: from_file(&c.credentials_file(), "ore").expect("credentials"),
    }
}

#[test]
fn backend_s3_passes_the_conformance_suite_in_process_on_seaweedfs() {
    let c = Cluster::start();
    let b = S3Backend::open(endpoint(&c, "inproc"), S3Options::default()).expect("open");
    let found = b.conditional().expect("the probe ran");
    assert!(
        found.if_none_match && found.if_match,
        "SeaweedFS 4.48 honours both conditional writes: {found:?}"
    );
    testkit::conformance::run(&b);
}

#[test]
fn backend_s3_passes_the_conformance_suite_through_its_binary_on_seaweedfs() {
    let c = Cluster::start();
    let client = Client::connect(&c.archive("bin", "")).expect("connect to backend-s3");
    testkit::conformance::run(&client);
    let info = client.admin("info", &[]).expect("info");
    assert!(
        info.text
            .contains("If-None-Match: * honoured, If-Match: ETAG honoured"),
        "info reports the probe: {}",
        info.text
    );
}

#[test]
fn an_archive_written_by_one_process_is_read_by_the_next() {
    let c = Cluster::start();
    let key = testkit::conformance::test_key(7);
    {
        let a = Client::connect(&c.archive("reopen", "")).expect("connect");
        a.put(key, b"kept").expect("put");
        assert_eq!(
            a.set_tag("home", None, b"v1").expect("set"),
            protocol::CasOutcome::Done
        );
        a.flush().expect("flush");
    }
    let b = Client::connect(&c.archive("reopen", "--read-only")).expect("reconnect read-only");
    assert_eq!(b.get(key).expect("get").as_deref(), Some(&b"kept"[..]));
    assert_eq!(b.get_tag("home").expect("tag").as_deref(), Some(&b"v1"[..]));
    let refused = b.put(testkit::conformance::test_key(8), b"x");
    assert_eq!(
        refused.expect_err("a read-only put is refused").code(),
        protocol::ErrorCode::ReadOnly
    );
    let info = b.admin("info", &[]).expect("info").text;
    assert!(
        info.contains("not probed"),
        "read-only does not probe: {info}"
    );
}

#[test]
fn tag_changes_are_refused_with_a_reason_where_conditional_writes_are_not_honoured() {
    let c = Cluster::start();
    // An archive whose tags are objects moved by compare-and-swap (created on a store that
    // honours conditions), opened where they are not honoured.
    drop(Client::connect(&c.archive("nocond", "")).expect("create"));
    let a = Client::connect(&c.archive("nocond", "--assume-unconditional")).expect("connect");
    let key = testkit::conformance::test_key(3);
    a.put(key, b"block").expect("blocks are still stored");
    a.put(key, b"other").expect("an existing block is success");
    assert_eq!(a.get(key).expect("get").as_deref(), Some(&b"block"[..]));
    let e = a
        .set_tag("home", None, b"v1")
        .expect_err("tag change refused");
    assert!(
        e.to_string().contains("does not honour conditional writes"),
        "the refusal says why: {e}"
    );
    assert!(a.admin("info", &[]).expect("info").text.contains("IGNORED"));
}

/// Runs `backend-s3 ARGS` as a program would be started for an archive, and returns its error
/// message: it must exit 1 before its greeting with one line that names the archive, within a
/// minute (no hang, no panic).
fn open_error(args: &[&str]) -> String {
    let started = std::time::Instant::now();
    let out = std::process::Command::new(ore_tests::bin("backend-s3"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running backend-s3");
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    eprintln!("backend-s3 {}\n  -> {err} ({took:.1?})", args.join(" "));
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {err}");
    assert!(out.stdout.is_empty(), "no greeting before the failure");
    assert!(
        took < std::time::Duration::from_secs(60),
        "failing took {took:?}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("s3://"), "the error names the archive: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn wrong_credentials_a_missing_bucket_and_a_refused_connection_each_fail_with_a_clear_message() {
    let mut c = Cluster::start();
    let wrong = c.dir().join("wrong");
    std::fs::write(
        &wrong,
        "[ore]\naws_access_key_id = ore-test-access\naws_secret_access_key = not-the-secret\n",
    )
    .expect("write");
    let (endpoint, creds) = (c.endpoint(), c.credentials_file());
    let creds = creds.to_str().expect("a UTF-8 path");
    let wrong = wrong.to_str().expect("a UTF-8 path");
    let id = |bucket: &str| format!("s3://{bucket}/x");
    let with = |location: &str, endpoint: &str, file: &str| -> Vec<String> {
        [
            location,
            "--endpoint",
            endpoint,
            "--credentials-file",
            file,
            "--profile",
            "ore",
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |v: Vec<String>| open_error(&v.iter().map(String::as_str).collect::<Vec<_>>());
    let e = run(with(&id(BUCKET), &endpoint, wrong));
    assert!(
        e.contains("access denied") && e.contains("SignatureDoesNotMatch"),
        "wrong credentials: {e}"
    );
    let e = run(with(&id("no-such-bucket"), &endpoint, creds));
    assert!(
        e.contains("the bucket does not exist"),
        "missing bucket: {e}"
    );
    let e = run(with(&id(BUCKET), "http://127.0.0.1:1", creds));
    assert!(
        e.contains("still failing after retries"),
        "refused connection: {e}"
    );
    c.kill(Role::Gateway);
    let e = run(with(&id(BUCKET), &endpoint, creds));
    assert!(
        e.contains("still failing after retries"),
        "stopped gateway: {e}"
    );
    let e = run(vec![format!("s3://ore-test-access:the-secret@{BUCKET}/x")]);
    assert!(
        e.contains("never go in an identifier"),
        "secret in identifier: {e}"
    );
    assert!(
        !e.contains("the-secret"),
        "the refusal does not repeat the secret: {e}"
    );
    let e = run(with(&id(BUCKET), &endpoint, "/nonexistent/credentials"));
    assert!(
        e.contains("/nonexistent/credentials"),
        "missing credentials file: {e}"
    );
}

/// A get or exists sent right behind the put of the same key, without waiting for the put's
/// answer, sees the block: backend-s3 runs requests concurrently, and keeps their order.
#[test]
fn a_read_pipelined_right_behind_a_put_of_the_same_key_sees_the_block() {
    let c = Cluster::start();
    let b = Client::connect(&c.archive("order", "")).expect("connect");
    let mut tickets = Vec::new();
    for i in 0..300u64 {
        let k = test_key(20_000 + i);
        let data = testkit::conformance::test_data(i, 20_000 + (i as usize % 7) * 1000);
        tickets.push((
            b.start_put(k, data.clone()),
            b.start_get(k),
            b.start_exists(vec![k]),
            data,
        ));
    }
    for (i, (put, get, exists, data)) in tickets.into_iter().enumerate() {
        put.wait().expect("put");
        assert_eq!(
            get.wait().expect("get"),
            Some(data),
            "the get behind put {i} sees its block"
        );
        assert_eq!(
            exists.wait().expect("exists"),
            vec![true],
            "exists behind put {i}"
        );
    }
}

/// Without `--credentials-file`, backend-s3 signs with `AWS_ACCESS_KEY_ID`/`..._SECRET_...`,
/// else with the `AWS_PROFILE` profile of the shared credentials file.
#[test]
fn credentials_come_from_the_environment_or_a_profile_of_the_shared_credentials_file() {
    let c = Cluster::start();
    let home = ore_tests::ore::scratch();
    let id = format!(
        "backend-s3 s3://{BUCKET}/envcreds --endpoint {}",
        c.endpoint()
    );
    let connect = |env: Vec<(&str, String)>| {
        let mut env: Vec<(String, String)> =
            env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        env.push(("HOME".into(), home.path().display().to_string()));
        let opts = connect::client::ClientOptions {
            env,
            ..Default::default()
        };
        Client::connect_with(&id, opts)
    };
    let from_env = connect(c.env()).expect("credentials from the environment");
    from_env.put(test_key(1), b"env").expect("put");
    from_env
        .flush()
        .expect("flush: the block reaches the store");
    let shared = vec![
        ("AWS_ACCESS_KEY_ID", String::new()),
        ("AWS_SECRET_ACCESS_KEY", String::new()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            c.credentials_file().display().to_string(),
        ),
        ("AWS_PROFILE", "ore".to_string()),
    ];
    let from_file = connect(shared).expect("credentials from the shared file's profile");
    assert_eq!(
        from_file.get(test_key(1)).expect("get").as_deref(),
        Some(&b"env"[..])
    );
    let info = from_file.admin("info", &[]).expect("info").text;
    assert!(
        info.contains("profile [ore]"),
        "info names the source, not the secret: {info}"
    );
    assert!(!info.contains(ore_tests::seaweed::SECRET_KEY), "{info}");
    let none = vec![
        ("AWS_ACCESS_KEY_ID", String::new()),
        ("AWS_SECRET_ACCESS_KEY", String::new()),
        ("AWS_SHARED_CREDENTIALS_FILE", String::new()),
        ("AWS_PROFILE", String::new()),
    ];
    assert!(
        connect(none).is_err(),
        "no credentials anywhere is an error"
    );
}
