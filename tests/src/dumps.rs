//! Feeding a dump stream to `ore load`: shared by the tests that load real dumps and the
//! ones that load crafted ones.

use crate::ore::{Ore, Run};
use std::io::Write;
use std::process::Stdio;

/// A stream's entry named `name` of kind `kind`, mode 0644, owned by root, dated 1970.
pub fn entry(name: &[u8], kind: ore::commands::dump::DumpKind) -> ore::commands::dump::DumpEntry {
    ore::commands::dump::DumpEntry {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        mtime: 0,
        atime: None,
        ctime: None,
        xattrs: Vec::new(),
    }
}

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
