//! The conformance suite against the in-memory backend, in process and through a child.

use protocol::{conformance, Backend, Client, MemoryBackend};

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
    let opts = protocol::ClientOptions {
        window: 1,
        ..Default::default()
    };
    let c = Client::connect_with(&memory_id(), opts).expect("connect");
    conformance::run(&c);
    assert!(c.info().server.starts_with("memory"));
}
