//! Turning an archive identifier into a running backend process.
//!
//! An archive identifier is a command line, split into words the way a POSIX shell would (quotes
//! and backslashes, no expansion). A first word that names a `backend-*` program without a path
//! is looked for next to the running executable first, so an installed or freshly built `ore`
//! uses its own backends rather than whatever else is on `PATH`; otherwise `PATH` decides.

use protocol::error::{Error, Result};
use protocol::log;
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

/// Environment variables no backend program is given: the passphrases, and where they come
/// from (a command line such as `pass show backup` or even `echo SECRET`, a file's path). A
/// backend never needs them (it stores only what the frontend encrypted), and a program's
/// environment is readable by its other processes, its crash reports and whatever it starts in
/// turn.
pub const SECRET_ENV: [&str; 4] = [
    "ORE_PASSPHRASE",
    "ORE_NEW_PASSPHRASE",
    "ORE_PASSPHRASE_FILE",
    "ORE_PASSPHRASE_COMMAND",
];

/// A command for an archive identifier, with its program resolved and the passphrases
/// ([`SECRET_ENV`]) removed from its environment.
pub fn command_for(archive: &str) -> Result<(Command, String)> {
    let words = split_identifier(archive)?;
    let program = resolve_program(&words[0]);
    let name = Path::new(&words[0])
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| words[0].clone());
    let mut cmd = Command::new(&program);
    cmd.args(&words[1..]);
    for var in SECRET_ENV {
        cmd.env_remove(var);
    }
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

/// The longest line of a backend program's stderr that is passed on whole. A program (or a
/// remote host behind ssh) may write without ever ending a line; what is beyond this is left
/// out, and the output says how much was.
pub const MAX_STDERR_LINE: usize = 4096;

/// Copies a backend program's stderr to ours, each line prefixed with the program's `name`;
/// lines `expected` recognises (handled by the caller) go to the debug log instead. Memory is
/// bounded: a line longer than [`MAX_STDERR_LINE`] is shown cut as soon as it is that long,
/// the rest of it is read and dropped, and a note says how many bytes were left out.
pub(crate) fn forward_stderr(
    name: &str,
    stderr: std::process::ChildStderr,
    expected: Option<fn(&str) -> bool>,
) {
    let mut lines = StderrLines::default();
    let mut r = BufReader::new(stderr);
    loop {
        let consumed = match r.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(buf) => lines.take(buf, |line| show_line(name, line, expected)),
        };
        r.consume(consumed);
    }
    lines.finish(|line| show_line(name, line, expected));
}

fn show_line(name: &str, line: &str, expected: Option<fn(&str) -> bool>) {
    if expected.is_some_and(|f| f(line)) {
        log::debug(&format!("{name}: {line}"));
    } else {
        eprintln!("{name}: {line}");
    }
}

/// Splits a byte stream into lines of at most [`MAX_STDERR_LINE`] bytes, holding no more.
#[derive(Default)]
struct StderrLines {
    line: Vec<u8>,
    /// The current line was too long: it was shown cut, and the rest is being dropped.
    cut: bool,
    /// Bytes of the current line dropped since.
    dropped: u64,
}

impl StderrLines {
    /// Takes bytes from `buf` up to and including one newline; calls `emit` for each line (or
    /// piece) ready to show; returns how many bytes it used.
    fn take(&mut self, buf: &[u8], mut emit: impl FnMut(&str)) -> usize {
        let (part, used, ended) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        if self.cut {
            self.dropped += part.len() as u64;
        } else {
            let kept = part.len().min(MAX_STDERR_LINE - self.line.len());
            self.line.extend_from_slice(&part[..kept]);
            if kept < part.len() {
                self.cut = true;
                self.dropped = (part.len() - kept) as u64;
                emit(&format!(
                    "{} [cut: the line goes on past {MAX_STDERR_LINE} bytes]",
                    text(&self.line)
                ));
                self.line = Vec::new();
            }
        }
        if ended {
            self.end_line(&mut emit);
        }
        used
    }

    /// Shows what is left at the end of the stream.
    fn finish(&mut self, mut emit: impl FnMut(&str)) {
        if !self.line.is_empty() || self.cut {
            self.end_line(&mut emit);
        }
    }

    fn end_line(&mut self, emit: &mut impl FnMut(&str)) {
        if self.cut {
            emit(&format!(
                "[cut: {} more bytes of that line were left out]",
                self.dropped
            ));
        } else {
            emit(&text(&self.line));
        }
        self.line.clear();
        self.cut = false;
        self.dropped = 0;
    }
}

/// A line's bytes as text, invalid UTF-8 replaced and a trailing carriage return dropped.
fn text(b: &[u8]) -> String {
    let b = b.strip_suffix(b"\r").unwrap_or(b);
    String::from_utf8_lossy(b).into_owned()
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

    fn lines_of(chunks: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        let mut lines = StderrLines::default();
        for chunk in chunks {
            let mut rest = *chunk;
            while !rest.is_empty() {
                let used = lines.take(rest, |l| out.push(l.to_string()));
                rest = &rest[used..];
            }
        }
        lines.finish(|l| out.push(l.to_string()));
        out
    }

    #[test]
    fn stderr_lines_are_passed_whole_up_to_the_limit_and_cut_beyond_it() {
        let full = vec![b'a'; MAX_STDERR_LINE];
        let long = vec![b'b'; MAX_STDERR_LINE + 10];
        let got = lines_of(&[
            b"one\r\ntw",
            b"o\n",
            &full,
            b"\n",
            &long[..100],
            &long[100..],
            b"\nend",
        ]);
        assert_eq!(got.len(), 6, "{got:?}");
        assert_eq!(got[0], "one");
        assert_eq!(got[1], "two");
        assert_eq!(got[2].len(), MAX_STDERR_LINE);
        assert!(got[3].starts_with(&"b".repeat(MAX_STDERR_LINE)) && got[3].ends_with("bytes]"));
        assert_eq!(got[4], "[cut: 10 more bytes of that line were left out]");
        assert_eq!(got[5], "end");
    }
}
