//! A backend that stops answering (here: stopped with SIGSTOP) is detected by the client's
//! timeout, killed, and reported — not waited on for ever.

use connect::{Client, ClientOptions};
use protocol::{Backend, Key};
use std::time::{Duration, Instant};

#[test]
fn a_stopped_backend_is_given_up_after_the_timeout() {
    let opts = ClientOptions {
        timeout: Some(Duration::from_millis(800)),
        ..Default::default()
    };
    let c = Client::connect_with(env!("CARGO_BIN_EXE_backend-memory"), opts).unwrap();
    c.put(Key([1; 32]), b"x").unwrap();
    // Idle for longer than the limit: an idle connection is not a hung one.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(c.get(Key([1; 32])).unwrap().as_deref(), Some(&b"x"[..]));
    let pid = c.pid().expect("the backend runs") as i32;
    // SAFETY: stopping our own child process.
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
    }
    let started = Instant::now();
    let e = c.get(Key([1; 32])).unwrap_err().to_string();
    let took = started.elapsed();
    assert!(e.contains("sent nothing for 0.8 s"), "{e}");
    assert!(e.contains("--timeout"), "{e}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // Everything after fails at once, naming the same cause.
    let e = c.put(Key([2; 32]), b"y").unwrap_err().to_string();
    assert!(e.contains("sent nothing"), "{e}");
}

#[test]
fn a_backend_that_never_greets_is_given_up_after_the_timeout() {
    let opts = ClientOptions {
        timeout: Some(Duration::from_millis(500)),
        ..Default::default()
    };
    let started = Instant::now();
    let e = Client::connect_with("sleep 60", opts)
        .err()
        .expect("no greeting")
        .to_string();
    assert!(
        e.contains("did not answer the greeting within 0.5 s"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
