//! The steps of opening an archive that are not the backend's own state: creating its
//! directory durably, refusing a directory that holds something else, opening the index file
//! (a damaged one opens as a placeholder that answers only a reindex) and settling what the
//! replay of the logs found.

use crate::index::Index;
use crate::{logs, replay, Settings, State};
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

/// Refuses to turn a directory holding other things into an archive.
pub(crate) fn refuse_foreign(dir: &Path, metadata: &Path) -> Result<()> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut foreign = None;
    let mut has_logs = false;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("log-") {
            has_logs = true;
        } else if name != logs::LOCK_FILE
            && name != protocol::share::SOCKET
            && !name.starts_with(protocol::share::SECRET)
            && !entry.path().starts_with(metadata)
            && !name.starts_with("metadata.db")
        {
            foreign = Some(name);
        }
    }
    match foreign {
        Some(name) if !has_logs => Err(Error::backend(
            ErrorCode::InvalidArgument,
            format!(
                "{} holds other files ({name}) and is not a splitlog archive; refusing to create one there",
                dir.display()
            ),
        )),
        _ => Ok(()),
    }
}
