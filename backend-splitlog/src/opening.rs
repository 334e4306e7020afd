//! The steps of opening an archive that are not the backend's own state: telling an archive
//! from a directory with nothing yet (opened as [`protocol::Vacant`], so that only a write —
//! `ore init`'s — creates files) and from one holding something else (refused before anything
//! is written there), creating its directory durably, opening the index file
//! (a damaged one opens as a placeholder that answers only a reindex) and settling what the
//! replay of the logs found.

use crate::index::Index;
use crate::{logs, replay, Settings, SplitlogBackend, SplitlogOptions, State};
use protocol::{Error, ErrorCode, Result};
use std::path::Path;

/// What a damaged index file says, for the archive in `dir` (`ARCHIVE` in the advice replaced
/// by it).
fn broken_why(metadata: &Path, dir: &Path, e: &Error) -> String {
    format!(
        "{}: {}",
        metadata.display(),
        e.to_string().replace("ARCHIVE", &dir.display().to_string())
    )
}

/// The index file as an opening finds it.
pub(crate) struct OpenedIndex {
    pub(crate) index: Index,
    /// The lowest number a new log may take, and what cut the logs short, if anything
    /// (`replay::next_log_floor`).
    pub(crate) floor: (u32, Option<String>),
    pub(crate) settings: Settings,
    /// Why the index file is damaged, if it is.
    pub(crate) broken: Option<String>,
}

/// Opens the index file. A damaged one does not keep the archive shut: it opens with an empty
/// placeholder index answering nothing but a reindex, which rebuilds the index from the logs
/// (see `reindex`).
pub(crate) fn open_index(dir: &Path, metadata: &Path) -> Result<OpenedIndex> {
    let opened = Index::open(metadata).and_then(|index| {
        let floor = replay::next_log_floor(dir, &index, index.highest_log()?)?;
        let settings = Settings::load(&index)?;
        Ok(OpenedIndex {
            index,
            floor,
            settings,
            broken: None,
        })
    });
    match opened {
        Err(e) if e.code() == ErrorCode::Corrupt => {
            let index = Index::placeholder()?;
            let settings = Settings::load(&index)?;
            Ok(OpenedIndex {
                index,
                floor: (0, None),
                settings,
                broken: Some(broken_why(metadata, dir, &e)),
            })
        }
        other => other,
    }
}

/// Settles what the replay at opening found. Returns why the index is damaged, if the replay
/// found it so; a replay that cannot be recorded leaves the archive open for reading only.
pub(crate) fn settle_replay_at_open(
    state: &mut State,
    dir: &Path,
    metadata: &Path,
) -> Result<Option<String>> {
    match state.settle_replay() {
        Ok(()) => Ok(None),
        Err(e) if e.code() == ErrorCode::Corrupt => Ok(Some(broken_why(metadata, dir, &e))),
        Err(e) => {
            // What the replay found was never flushed, so nothing acknowledged as
            // durable needs it: the index stays as last committed and the archive opens
            // for reading, because a full disk must not keep anyone from listing or
            // restoring. Nothing is written this session, so the next open replays the
            // same records again.
            state.index.roll_back()?;
            state.settings = Settings::load(&state.index)?;
            let why = format!(
                "open for reading only: what was written after the last flush could not be \
                 recorded in the index ({e}); free space and open it again"
            );
            protocol::log::warning(&format!("{}: {why}", dir.display()));
            state.read_only = Some(why);
            Ok(None)
        }
    }
}

/// Creates the archive's directory (and any missing parents) and makes each new name durable:
/// a directory entry is on disk only once the directory holding it is synced, so without it a
/// power cut soon after `init` could lose the whole archive, snapshots and all
/// (`tests/tests/power_cut.rs`).
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(p) = at.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        missing.push(p);
        at = p.parent();
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    for created in missing {
        let parent = match created.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(format!("syncing {}", parent.display()), e))?;
    }
    Ok(())
}

/// Makes a file 0600 (sqlite creates its files with the umask's mode).
pub(crate) fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for suffix in ["", "-wal", "-shm"] {
        let p = path.with_file_name(format!("{name}{suffix}"));
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
    }
}

/// What a directory holds, for an opening.
pub(crate) enum Presence {
    /// An archive: its index file or a log is there.
    Archive,
    /// Nothing yet: the directory is missing or empty (but for what a process that opened it
    /// may leave: a lock, an attach point).
    Vacant,
    /// Other files (one of them named), and no archive.
    Foreign(String),
}

/// Whether `dir` holds an archive (with its index at `metadata`), nothing, or other files.
pub(crate) fn presence(dir: &Path, metadata: &Path) -> Result<Presence> {
    let rd = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(match metadata.exists() {
                true => Presence::Archive,
                false => Presence::Vacant,
            })
        }
        r => r.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?,
    };
    let mut foreign = None;
    let mut has_logs = metadata.exists();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("log-") || name.starts_with("metadata.db") {
            has_logs = true;
        } else if name != logs::LOCK_FILE
            && name != protocol::share::SOCKET
            && !name.starts_with(protocol::share::SECRET)
            && !entry.path().starts_with(metadata)
        {
            foreign = Some(name);
        }
    }
    Ok(match (has_logs, foreign) {
        (true, _) => Presence::Archive,
        (false, Some(name)) => Presence::Foreign(name),
        (false, None) => Presence::Vacant,
    })
}

/// Refuses to turn a directory holding other things into an archive — before anything is
/// written there (not even the lock), so a refused command leaves the directory as it was.
pub(crate) fn refuse_foreign(dir: &Path, metadata: &Path) -> Result<()> {
    match presence(dir, metadata)? {
        Presence::Foreign(name) => Err(foreign(dir, &name)),
        Presence::Archive | Presence::Vacant => Ok(()),
    }
}

/// The refusal of a directory that holds `name` and no archive.
fn foreign(dir: &Path, name: &str) -> Error {
    Error::backend(
        ErrorCode::InvalidArgument,
        format!(
            "{} holds other files ({name}) and is not a splitlog archive; refusing to create one there",
            dir.display()
        ),
    )
}

/// What [`SplitlogBackend::open_or_vacant`] found.
pub enum Opened {
    /// The archive there, open.
    Archive(SplitlogBackend),
    /// No archive yet: one is created at the first write (see [`protocol::vacant`]).
    Vacant(protocol::Vacant<SplitlogBackend>),
}

impl SplitlogBackend {
    /// Opens the archive in `dir` if there is one. Where there is none yet (a missing or empty
    /// directory) nothing is created now: the answer is a [`protocol::Vacant`] store that
    /// creates the archive at its first write, which only `ore init` makes. A directory holding
    /// other files is refused, and left as it was.
    pub fn open_or_vacant(dir: impl AsRef<Path>, opts: SplitlogOptions) -> Result<Opened> {
        let dir = dir.as_ref().to_path_buf();
        let metadata = opts
            .metadata
            .clone()
            .unwrap_or_else(|| dir.join("metadata.db"));
        match presence(&dir, &metadata)? {
            Presence::Archive => Ok(Opened::Archive(SplitlogBackend::open(&dir, opts)?)),
            Presence::Foreign(name) => Err(foreign(&dir, &name)),
            Presence::Vacant => {
                let hold = hold_vacant(&dir)?;
                let server = format!("backend-splitlog {}", env!("CARGO_PKG_VERSION"));
                let limits = (
                    crate::DEFAULT_MAX_BLOCK,
                    protocol::admin::names(crate::admin::TABLE),
                );
                let place = dir.clone();
                Ok(Opened::Vacant(protocol::Vacant::in_dir(
                    server,
                    "splitlog",
                    &place,
                    limits,
                    move || {
                        let made = SplitlogBackend::open(&dir, opts);
                        // Held by its lock from now on (or by whoever beat this process to it).
                        drop(hold);
                        made
                    },
                )))
            }
        }
    }
}

/// Holds the place of an archive not created yet, the way the lock holds an archive: one
/// process at a time, so that two processes that found it vacant cannot both create it (the
/// second would be refused at its first write, mid-run — say a lane of an `ore init` reached
/// through a proxy). The hold is a name in Linux's abstract socket namespace, made from the
/// directory's absolute path, which leaves no file anywhere and goes with its process. A
/// second process finds it taken and is told the archive is in use (`Locked`), as it would be
/// told of a held archive, and waits or attaches just the same.
fn hold_vacant(dir: &Path) -> Result<std::os::unix::net::UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let absolute = std::path::absolute(dir)
        .map_err(|e| Error::io(format!("resolving {}", dir.display()), e))?;
    // FNV-1a: the same in every build of every program that opens the archive.
    let hash = absolute
        .as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    let name = format!("ore-splitlog-vacant-{hash:016x}");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| Error::io(format!("naming the hold of {}", dir.display()), e))?;
    std::os::unix::net::UnixListener::bind_addr(&addr).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            Error::backend(
                ErrorCode::Locked,
                format!(
                    "the archive {} (not created yet) is in use by another process; wait for \
                     it to finish",
                    dir.display()
                ),
            )
        } else {
            Error::io(format!("holding {}", dir.display()), e)
        }
    })
}
