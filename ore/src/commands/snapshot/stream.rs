//! Snapshots of a stream: standard input, or what a command prints, kept as one file.
//!
//! `pg_dump db | ore snapshot db --stdin-name dump.sql` and `ore snapshot db
//! --stdin-from-command 'pg_dump db'` both make a snapshot whose root directory holds one
//! file, `dump.sql`, cut and stored like any file (so yesterday's dump deduplicates against
//! today's). The stream is read to its end through the same windows and chunker as a file
//! ([`super::file::store_stream`]); nothing of it is kept in memory beyond a window.
//!
//! Several streams make one snapshot (`--stdin-from-command` with `--stdin-name`, repeated
//! in pairs: the dumps of three databases taken together): they are read one after another,
//! in the order given, each into a file of its own name at the root, and the first failure
//! fails the run. At most one of them is standard input.
//!
//! A command's failure must never pass for a backup: its output is read to the end, then its
//! exit status is checked *before* the snapshot block is stored and the tag moved. A command
//! that exits non-zero, or is killed, fails the run with its status, and the tag stays where
//! it was; so does a read error on standard input. The command is started without a shell
//! (its words split as a shell would), with standard input closed and the passphrase
//! variables removed from its environment ([`connect::spawn::SECRET_ENV`]).

use super::file::{store_stream, StreamError};
use super::Ctx;
use crate::core::entry::{Entry, EntryKind};
use crate::core::error::{Error, Result};
use crate::core::tree::{Builder, DirTree, Store};
use std::io::Read;
use std::process::{Command, Stdio};

/// Where a stream comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// This process's standard input.
    Stdin,
    /// What this command line prints on its standard output.
    Command(String),
}

/// A stream to keep as one file named `name` at the snapshot's root.
#[derive(Debug, Clone)]
pub struct Stream {
    pub name: Vec<u8>,
    pub source: Source,
}

impl Stream {
    /// How the stream is named in messages.
    fn shown(&self) -> String {
        match &self.source {
            Source::Stdin => "standard input".to_string(),
            Source::Command(c) => format!("the output of `{c}`"),
        }
    }

    /// Checks what can be checked before anything is read: the name, the command line.
    pub fn check(&self) -> Result<()> {
        crate::core::names::check_name(&self.name).map_err(|why| {
            Error::Usage(format!(
                "--stdin-name `{}`: {why}",
                crate::core::util::show(&self.name)
            ))
        })?;
        // A name no file system takes could never be restored.
        if self.name.len() > 255 {
            return Err(Error::Usage(format!(
                "--stdin-name: {} bytes, and a file name has at most 255",
                self.name.len()
            )));
        }
        if let Source::Command(c) = &self.source {
            match shell_words::split(c) {
                Ok(w) if !w.is_empty() => {}
                Ok(_) => return Err(Error::Usage("--stdin-from-command: empty command".into())),
                Err(e) => {
                    return Err(Error::Usage(format!(
                        "--stdin-from-command `{c}`: cannot split it into words: {e}"
                    )))
                }
            }
        }
        Ok(())
    }
}

/// Checks a snapshot's streams: each as [`Stream::check`] does, their names all different (they
/// are one directory's entries), and standard input at most once.
pub fn check(streams: &[Stream]) -> Result<()> {
    let mut names = std::collections::HashSet::new();
    for s in streams {
        s.check()?;
        if !names.insert(&s.name) {
            return Err(Error::Usage(format!(
                "--stdin-name `{}` is given to two streams: each needs a name of its own",
                crate::core::util::show(&s.name)
            )));
        }
    }
    if streams
        .iter()
        .filter(|s| matches!(s.source, Source::Stdin))
        .count()
        > 1
    {
        return Err(Error::Usage("standard input can be read once".into()));
    }
    Ok(())
}

struct RootStore<'a, 'r> {
    ctx: &'a Ctx<'r>,
}

impl Store for RootStore<'_, '_> {
    fn store(&mut self, kind: crate::core::block::Kind, plain: &[u8]) -> Result<protocol::Key> {
        self.ctx.writer.store(kind, plain, None)
    }
}

/// Reads the streams to their ends, one after another, stores them, and returns the
/// snapshot's root: a directory holding one file a stream.
pub(super) fn store(ctx: &Ctx, streams: &[Stream]) -> Result<Entry> {
    let mut files = Vec::with_capacity(streams.len());
    for s in streams {
        if ctx.stopped() {
            return Err(Error::Stopped);
        }
        files.push(store_one(ctx, s)?);
    }
    // A directory's entries are sorted by name.
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let mut tree = Builder::<DirTree>::default();
    let mut st = RootStore { ctx };
    for f in files {
        tree.push(f, &mut st)?;
    }
    let root = tree.finish(&mut st)?;
    ctx.count(|s| s.dirs += 1);
    Ok(Entry::made_now(
        Vec::new(),
        EntryKind::Dir { tree: root },
        0o700,
    ))
}

/// Reads one stream to its end and stores it: its file's entry. A command is waited for, and
/// its failure is the run's error.
fn store_one(ctx: &Ctx, stream: &Stream) -> Result<Entry> {
    let (size, content) = match &stream.source {
        Source::Stdin => read_all(
            ctx,
            stream,
            &mut std::io::stdin().lock(),
            libc::STDIN_FILENO,
        )?,
        Source::Command(line) => {
            let words = shell_words::split(line)
                .map_err(|e| Error::Usage(format!("--stdin-from-command `{line}`: {e}")))?;
            let Some((program, args)) = words.split_first() else {
                return Err(Error::Usage("--stdin-from-command: empty command".into()));
            };
            let mut cmd = Command::new(program);
            cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped());
            for var in connect::spawn::SECRET_ENV {
                cmd.env_remove(var);
            }
            let mut child = cmd.spawn().map_err(|e| {
                Error::Usage(format!(
                    "--stdin-from-command: cannot start `{program}`: {e}"
                ))
            })?;
            let read = match child.stdout.take() {
                Some(mut out) => {
                    let fd = std::os::fd::AsRawFd::as_raw_fd(&out);
                    read_all(ctx, stream, &mut out, fd)
                }
                None => Err(Error::Local(format!("{}: no pipe", stream.shown()))),
            };
            if read.is_err() {
                let _ = child.kill();
            }
            let status = child
                .wait()
                .map_err(|e| Error::Local(format!("waiting for `{line}`: {e}")))?;
            let read = read?;
            if !status.success() {
                return Err(Error::Usage(format!(
                    "`{line}` {} after printing {} bytes: the snapshot was not made and the \
                     tag was not moved",
                    connect::spawn::describe_exit(status),
                    read.0
                )));
            }
            read
        }
    };
    ctx.count(|s| {
        s.files += 1;
        s.files_read += 1;
        s.bytes += size;
    });
    Ok(Entry::made_now(
        stream.name.clone(),
        EntryKind::File { size, content },
        0o600,
    ))
}

/// Reads `from` (whose descriptor is `fd`) to its end into the archive; the run's stop
/// (Ctrl-C, a failure elsewhere) ends the read, even while the producer is silent: each read
/// waits for data at most a fifth of a second before looking again.
fn read_all(
    ctx: &Ctx,
    stream: &Stream,
    from: &mut dyn Read,
    fd: std::os::fd::RawFd,
) -> Result<(u64, crate::core::entry::Content)> {
    let mut read = |b: &mut [u8]| loop {
        if ctx.stopped() {
            return Err(std::io::Error::other("stopped"));
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for a descriptor that stays open while `from` lives.
        let n = unsafe { libc::poll(&mut p, 1, 200) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n > 0 {
            return from.read(b);
        }
    };
    match store_stream(ctx, &mut read) {
        Ok(done) => Ok(done),
        Err(_) if ctx.stopped() => Err(Error::Stopped),
        Err(StreamError::Read(e)) => Err(Error::Local(format!(
            "reading {}: {e}; the snapshot was not made",
            stream.shown()
        ))),
        Err(StreamError::Store(e)) => Err(e),
    }
}
