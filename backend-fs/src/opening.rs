//! Opening a backend-fs archive: reading its settings file (`ore-fs.conf`, whose first line
//! names the format), creating an archive only in a missing or empty directory — and, for a
//! program, only at the first write ([`protocol::Vacant`]: a mistaken identifier given to
//! `ore tags` or `ore-admin ... help` leaves nothing behind) — and clearing
//! the temporary files of processes that have ended.

use crate::files::{
    create_dir_all, process_alive, read_optional, remove_optional, sorted_names, sync_dir,
    write_new_synced,
};
use crate::{at::Dir, FsBackend, FsOptions, Pending, CONF, DEFAULT_MAX_BLOCK, FORMAT_LINE};
use protocol::{Error, ErrorCode, Result};

/// What [`FsBackend::open_or_vacant`] found.
pub enum Opened {
    /// The archive there, open.
    Archive(FsBackend),
    /// No archive yet: one is created at the first write (see [`protocol::vacant`]).
    Vacant(protocol::Vacant<FsBackend>),
}
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

impl FsBackend {
    /// Opens the archive in `dir` if there is one. Where there is none yet (a missing or empty
    /// directory) nothing is created now: the answer is a [`protocol::Vacant`] store that
    /// creates the archive at its first write, which only `ore init` makes. A directory holding
    /// other files is refused, and left as it was.
    pub fn open_or_vacant(dir: impl AsRef<Path>, opts: FsOptions) -> Result<Opened> {
        let dir = dir.as_ref().to_path_buf();
        if read_optional(&dir.join(CONF))?.is_some() || opts.read_only {
            return Ok(Opened::Archive(FsBackend::open(&dir, opts)?));
        }
        let vacant = match std::fs::metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            _ => foreign_name(&dir)?.is_none(),
        };
        if !vacant {
            // Refused, naming what is there.
            return Ok(Opened::Archive(FsBackend::open(&dir, opts)?));
        }
        let server = format!("backend-fs {}", env!("CARGO_PKG_VERSION"));
        let limits = (
            opts.max_block_size.unwrap_or(DEFAULT_MAX_BLOCK),
            protocol::admin::names(crate::admin::TABLE),
        );
        let place = dir.clone();
        Ok(Opened::Vacant(protocol::Vacant::in_dir(
            server,
            "backend-fs",
            &place,
            limits,
            move || FsBackend::open(&dir, opts),
        )))
    }

    /// Opens the archive in `dir`, creating it when `dir` is missing or empty.
    pub fn open(dir: impl AsRef<Path>, opts: FsOptions) -> Result<FsBackend> {
        let dir = dir.as_ref().to_path_buf();
        let max_block_size = check_settings(&dir, &opts)?;
        for sub in ["blocks", "tags", "tmp"] {
            if !opts.read_only {
                create_dir_all(&dir.join(sub))?;
            }
        }
        let root = Dir::open(&dir)
            .map_err(|e| Error::io(format!("opening directory {}", dir.display()), e))?;
        let backend = FsBackend {
            dir,
            root,
            pid: std::process::id().to_string(),
            max_block_size,
            read_only: opts.read_only,
            pending: Mutex::new(Pending::default()),
            publishing: Mutex::new(()),
            made: Mutex::new(HashSet::new()),
            dirty: Mutex::new(HashSet::new()),
            tag_mutex: Mutex::new(()),
            counter: AtomicU64::new(0),
        };
        if !opts.read_only {
            backend.write_conf()?;
            backend.clean_tmp()?;
        }
        Ok(backend)
    }

    /// Writes the settings file, unless it already says what it should.
    fn write_conf(&self) -> Result<()> {
        let text = format!("{FORMAT_LINE}\nmax-block-size = {}\n", self.max_block_size);
        let conf = self.dir.join(CONF);
        if read_optional(&conf)?.as_deref() == Some(text.as_bytes()) {
            return Ok(());
        }
        let tmp = self.tmp_path("conf");
        write_new_synced(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, &conf)
            .map_err(|e| Error::io(format!("replacing {}", conf.display()), e))?;
        sync_dir(&self.dir)
    }

    /// Removes temporary files left by processes that no longer exist.
    fn clean_tmp(&self) -> Result<()> {
        let tmp = self.dir.join("tmp");
        for name in sorted_names(&tmp)? {
            let pid = name.split('-').next().and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(|p| !process_alive(p)) {
                remove_optional(&tmp.join(&name))?;
            }
        }
        Ok(())
    }
}

/// Reads the archive's settings file (or, where there is none, checks that `dir` may become
/// an archive and creates it) and returns the largest block accepted: `opts`' where it names
/// one, else the archive's.
fn check_settings(dir: &Path, opts: &FsOptions) -> Result<u32> {
    let conf = dir.join(CONF);
    let existing = read_optional(&conf)?;
    let mut max_block_size = DEFAULT_MAX_BLOCK;
    match existing {
        Some(text) => {
            let text = String::from_utf8_lossy(&text);
            if text.lines().next() != Some(FORMAT_LINE) {
                return Err(invalid(format!(
                    "{} is not a backend-fs archive of a known format (first line {:?})",
                    conf.display(),
                    text.lines().next().unwrap_or("")
                )));
            }
            max_block_size = parse_conf(&conf, &text)?;
        }
        None => {
            if opts.read_only {
                return Err(invalid(format!(
                    "{} is not a backend-fs archive (no {CONF}), and --read-only cannot create one",
                    dir.display()
                )));
            }
            if let Some(name) = foreign_name(dir)? {
                return Err(invalid(format!(
                        "{} is not empty and is not a backend-fs archive (it holds {name}, and no {CONF}); refusing to create one there",
                        dir.display()
                    )));
            }
            create_dir_all(dir)?;
        }
    }
    if let Some(m) = opts.max_block_size {
        if m == 0 || m > protocol::frame::MAX_BLOCK_LIMIT {
            return Err(invalid(format!(
                "maximum block size {m} is outside 1..={}",
                protocol::frame::MAX_BLOCK_LIMIT
            )));
        }
        max_block_size = m;
    }
    Ok(max_block_size)
}

/// What an archive being created holds before its settings file is written: another process
/// creating the same archive at the same moment may have made these already.
const OWN_NAMES: &[&str] = &[
    "blocks",
    "tags",
    "tmp",
    "tags.lock",
    "tag-history",
    "unvouched",
];

/// A name in `dir` that no archive being created would hold, if there is one (none when `dir`
/// is missing).
fn foreign_name(dir: &Path) -> Result<Option<String>> {
    Ok(sorted_names(dir)?
        .into_iter()
        .find(|n| !OWN_NAMES.contains(&n.as_str()) && n != CONF))
}

fn invalid(message: String) -> Error {
    Error::backend(ErrorCode::InvalidArgument, message)
}

fn parse_conf(path: &Path, text: &str) -> Result<u32> {
    let mut max = DEFAULT_MAX_BLOCK;
    for line in text.lines().skip(1) {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() == "max-block-size" {
            max = v.trim().parse().map_err(|_| {
                invalid(format!(
                    "{}: max-block-size {:?} is not a number",
                    path.display(),
                    v.trim()
                ))
            })?;
        }
    }
    Ok(max)
}
