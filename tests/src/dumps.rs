//! Feeding a dump stream to `ore load`: shared by the tests that load real dumps and the
//! ones that load crafted ones.

use crate::ore::{Ore, Run};
use std::io::Write;
use std::process::Stdio;

/// Runs `ore load TAG` with `stream` on its standard input.
pub fn load(ore: &Ore, tag: &str, stream: &[u8]) -> Run {
    let mut c = ore
        .cmd(&["load", tag])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ore load runs");
    // A load that refuses early closes its input; that is not the test's failure.
    let _ = c.stdin.take().expect("stdin is piped").write_all(stream);
    Run::of(c.wait_with_output().expect("ore load ends"))
}
