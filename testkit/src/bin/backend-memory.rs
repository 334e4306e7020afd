//! `backend-memory`: an in-memory backend program, for tests and experiments.
//!
//! Everything it stores is lost when it exits. It exists so that the protocol's client, server
//! loop and fault injection can be tested through a real child process without any storage.

use protocol::serve_stdio;
use testkit::MemoryBackend;

fn main() {
    let max = std::env::args()
        .nth(1)
        .map(|a| a.parse::<u32>())
        .transpose();
    let backend = match max {
        Ok(max) => MemoryBackend::new(max.unwrap_or(testkit::memory::DEFAULT_MAX_BLOCK)),
        Err(e) => {
            eprintln!("usage: backend-memory [MAX-BLOCK-SIZE]: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = serve_stdio(&backend) {
        eprintln!("backend-memory: {e}");
        std::process::exit(1);
    }
}
