//! Turning an archive identifier into a running backend process.
//!
//! An archive identifier is a command line, split into words the way a POSIX shell would (quotes
//! and backslashes, no expansion). A first word that names a `backend-*` program without a path
//! is looked for next to the running executable first, so an installed or freshly built `ore`
//! uses its own backends rather than whatever else is on `PATH`; otherwise `PATH` decides.

use crate::error::{Error, Result};
use crate::log;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Splits an archive identifier into words.
pub fn split_identifier(archive: &str) -> Result<Vec<String>> {
    let words = shell_words::split(archive).map_err(|e| Error::Connection {
        archive: archive.to_string(),
        message: format!("not a valid command line: {e}"),
    })?;
    if words.is_empty() {
        return Err(Error::Connection {
            archive: archive.to_string(),
            message: "the archive identifier is empty".into(),
        });
    }
    Ok(words)
}

/// Directories searched before `PATH` for `backend-*` programs: the running executable's own
/// directory, and its parent when that is a cargo `deps` directory (so tests find the binaries).
pub fn sibling_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        if dir.file_name().is_some_and(|n| n == "deps") {
            if let Some(parent) = dir.parent() {
                dirs.push(parent.to_path_buf());
            }
        }
        dirs.insert(0, dir);
    }
    dirs
}

/// Where the program named by `word` will be run from.
pub fn resolve_program(word: &str) -> PathBuf {
    if word.starts_with("backend-") && !word.contains('/') {
        for dir in sibling_dirs() {
            let candidate = dir.join(word);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from(word)
}

/// A command for an archive identifier, with its program resolved.
pub fn command_for(archive: &str) -> Result<(Command, String)> {
    let words = split_identifier(archive)?;
    let program = resolve_program(&words[0]);
    let name = Path::new(&words[0])
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| words[0].clone());
    let mut cmd = Command::new(&program);
    cmd.args(&words[1..]);
    Ok((cmd, name))
}

/// Describes how a child ended, in words.
pub fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(sig) = status.signal() {
        format!("was killed by signal {sig}")
    } else {
        "ended".to_string()
    }
}

/// Asks the kernel for a 1 MiB pipe buffer (best effort: the limit may be lower).
pub(crate) fn grow_pipe(fd: &impl std::os::fd::AsRawFd) {
    // SAFETY: F_SETPIPE_SZ on a pipe descriptor we own; failure is harmless.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
}

/// Copies a backend program's stderr to ours, each line prefixed with the program's `name`;
/// lines `expected` recognises (handled by the caller) go to the debug log instead.
pub(crate) fn forward_stderr(
    name: &str,
    stderr: std::process::ChildStderr,
    expected: Option<fn(&str) -> bool>,
) {
    let mut r = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                if expected.is_some_and(|f| f(text)) {
                    log::debug(&format!("{name}: {text}"));
                } else {
                    eprintln!("{name}: {text}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split_identifier("backend-cache '/tmp/a b.db' \"ssh nas backend-fs /d\"").unwrap(),
            vec!["backend-cache", "/tmp/a b.db", "ssh nas backend-fs /d"]
        );
        assert!(split_identifier("backend-fs 'unclosed").is_err());
        assert!(split_identifier("   ").is_err());
    }
}
