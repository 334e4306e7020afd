//! Log messages travel from a backend to the client's log sink, between answers, in order.

use connect::Client;
use protocol::log::{set_sink, LogSink};
use protocol::{Backend, Level};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Capture(Mutex<Vec<(Level, String)>>);

impl LogSink for Capture {
    fn log(&self, level: Level, message: &str) {
        self.0.lock().unwrap().push((level, message.to_string()));
    }
}

#[test]
fn backend_log_messages_reach_the_client_sink_in_order() {
    let capture = Arc::new(Capture::default());
    set_sink(Some(capture.clone()));
    let c = Client::connect(env!("CARGO_BIN_EXE_backend-memory")).unwrap();
    let args = |l: &str, t: &str| vec![l.to_string(), t.to_string()];
    // Pipelined: the log frames arrive between answers and do not disturb their order.
    c.admin("log", &args("warning", "disk nearly full"))
        .unwrap();
    c.put(protocol::Key([1; 32]), b"x").unwrap();
    c.admin("log", &args("error", "replica 2 is unreachable"))
        .unwrap();
    assert_eq!(
        c.get(protocol::Key([1; 32])).unwrap().as_deref(),
        Some(&b"x"[..])
    );
    c.close().unwrap();
    set_sink(None);
    let got = capture.0.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![
            (Level::Warning, "disk nearly full".to_string()),
            (Level::Error, "replica 2 is unreachable".to_string()),
        ]
    );
    let e = Client::connect(env!("CARGO_BIN_EXE_backend-memory"))
        .unwrap()
        .admin("log", &args("loud", "x"))
        .unwrap_err();
    assert!(e.to_string().contains("the level must be"), "{e}");
}
