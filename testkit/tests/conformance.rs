//! The conformance suite against the in-memory backend, in process and through a child.

use connect::Client;
use protocol::Backend;
use testkit::{conformance, MemoryBackend};

fn memory_id() -> String {
    env!("CARGO_BIN_EXE_backend-memory").to_string()
}

#[test]
fn memory_in_process() {
    conformance::run(&MemoryBackend::default());
}

#[test]
fn memory_through_client() {
    let c = Client::connect(&memory_id()).expect("connect");
    assert_eq!(c.version(), 1);
    conformance::run(&c);
    c.close().expect("clean close");
}

#[test]
fn memory_through_client_with_a_window_of_one() {
    let opts = connect::ClientOptions {
        window: 1,
        ..Default::default()
    };
    let c = Client::connect_with(&memory_id(), opts).expect("connect");
    conformance::run(&c);
    assert!(c.info().server.starts_with("memory"));
}

/// Regression test for parallel execution of put runs in `serve`: a get, an exists and a
/// flush pipelined right behind a long run of puts must see every one of them, and answers
/// must come back in order.
#[test]
fn requests_behind_a_run_of_puts_see_all_of_it() {
    let c = Client::connect(&memory_id()).expect("connect");
    let keys: Vec<_> = (0..500).map(conformance::test_key).collect();
    let puts: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| c.start_put(*k, conformance::test_data(i as u64, 4096 + i)))
        .collect();
    let last = c.start_get(keys[499]);
    let all = c.start_exists(keys.clone());
    for p in puts {
        p.wait().expect("put");
    }
    assert_eq!(
        last.wait().expect("get"),
        Some(conformance::test_data(499, 4096 + 499))
    );
    assert!(all.wait().expect("exists").iter().all(|&b| b));
    for (i, k) in keys.iter().enumerate().step_by(37) {
        assert_eq!(
            c.get(*k).expect("get").as_deref(),
            Some(&conformance::test_data(i as u64, 4096 + i)[..])
        );
    }
    c.close().expect("close");
}
