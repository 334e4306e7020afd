//! The backend programs other than the default store, each as an archive identifier with full
//! access and the same archive served `--append-only`: for tests that must hold for every
//! backend program (rules enforced by the backend, records it keeps), not only splitlog.

use crate::{bin, quote, shell_quote};
use std::path::Path;
use std::process::Command;

/// `(full, append_only)` identifiers for backend-fs, backend-cache (over a splitlog program)
/// and backend-replicated (with one splitlog member, added here), all under `dir`.
pub fn every_backend_program(dir: &Path) -> Vec<(String, String)> {
    let state = dir.join("state.db");
    let replicated = format!("backend-replicated {}", quote(&state));
    let member = format!("backend-splitlog {}", quote(&dir.join("member")));
    let added = Command::new(bin("ore-admin"))
        .args([&replicated, "add", &member, "--trust", "100"])
        .output()
        .expect("ore-admin runs");
    assert!(added.status.success(), "{added:?}");
    let fs = quote(&dir.join("fs"));
    let cache = format!(
        "{} {}",
        quote(&dir.join("cache.db")),
        shell_quote(&format!("backend-splitlog {}", quote(&dir.join("inner"))))
    );
    vec![
        (
            format!("backend-fs {fs}"),
            format!("backend-fs --append-only {fs}"),
        ),
        (
            format!("backend-cache {cache}"),
            format!("backend-cache --append-only {cache}"),
        ),
        (
            replicated,
            format!("backend-replicated --append-only {}", quote(&state)),
        ),
    ]
}
