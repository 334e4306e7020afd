//! An object's properties from what was stored: the entry's name, size and mtime, and what a
//! regular file's contents say ([`crate::core::extract`]), read only from the version stored.
//!
//! Contents are read again after the file is stored, so they are read only from a file whose
//! size and mtime are still those stored: a file changed meanwhile gives no properties from
//! its contents, and a warning says so, rather than properties of a version the archive does
//! not hold.

use crate::core::archival::{Prop, Value};
use crate::core::entry::{Entry, EntryKind, Warning};
use std::path::Path;

/// Properties being gathered; of two for one key the later wins.
#[derive(Debug, Default)]
pub(super) struct Props(Vec<Prop>);

impl Props {
    pub(super) fn put(&mut self, key: &str, value: Value) {
        self.0.retain(|p| p.key != key);
        self.0.push(Prop {
            key: key.to_string(),
            value,
        });
    }

    /// The properties with `set` (the user's `--set`, which wins) applied, sorted by key.
    pub(super) fn finish(mut self, set: &[(String, Value)]) -> Vec<Prop> {
        for (key, value) in set {
            self.put(key, value.clone());
        }
        self.0.sort_by(|a, b| a.key.cmp(&b.key));
        self.0
    }
}

/// What is known of a regular file's contents when its properties are made.
#[derive(Clone, Copy)]
pub(super) enum Contents<'a> {
    /// Nothing: not a regular file.
    None,
    /// The file opened again (or why it was not), its type to be judged from it.
    Opened(&'a Opened),
    /// Its type as the store's own read judged it (`snapshot::seen`), and the file opened
    /// again only when that type's properties are read from it.
    Seen(Option<&'a str>, Option<&'a Opened>),
}

/// What stored entry `entry`, read from `path`, says of itself: `name`, `size` (bytes of
/// regular files, the whole tree's for a directory), `mtime`, and for a directory its type;
/// for a regular file its type and what its contents give ([`Contents`], read from a file
/// opened by [`open`]). A warning when the contents could not be read as stored.
pub(super) fn of_entry(
    name: &str,
    size: u64,
    entry: &Entry,
    path: &Path,
    contents: Contents<'_>,
) -> (Props, Option<Warning>) {
    let mut props = Props::default();
    props.put("name", Value::Text(name.to_string()));
    props.put("size", Value::Int(size as i64));
    props.put("mtime", Value::Date(entry.mtime.div_euclid(1_000_000_000)));
    let mut warning = None;
    let mut note = |message: String| {
        warning = Some(Warning {
            path: crate::core::util::path_bytes(path).to_vec(),
            message,
        })
    };
    match entry.kind {
        EntryKind::Dir { .. } => {
            props.put("type", Value::Text("inode/directory".into()));
            return (props, warning);
        }
        EntryKind::File { .. } => {}
        _ => return (props, warning),
    }
    let (kind, file) = match contents {
        Contents::None => return (props, warning),
        Contents::Opened(f) => (
            f.as_ref().ok().and_then(crate::core::extract::mime),
            Some(f),
        ),
        Contents::Seen(kind, f) => (kind.map(str::to_string), f),
    };
    let file = match file {
        Some(Ok(f)) => Some(f),
        Some(Err(why)) => {
            note(format!(
                "its properties were not read from its contents: {why}"
            ));
            None
        }
        None => None,
    };
    if let Some(file) = file {
        let found = crate::core::extract::properties(file, kind.as_deref());
        for (key, value) in found.props {
            props.put(&key, value);
        }
        if let Some(n) = found.note {
            note(n);
        }
    }
    if let Some(kind) = kind {
        props.put("type", Value::Text(kind));
    }
    (props, warning)
}

/// A stored regular file opened again to be read as stored, or why it was not.
pub(super) type Opened = std::result::Result<std::fs::File, String>;

/// The regular file `entry` stored from `path`, opened again when it is still the version
/// stored; `None` for anything else.
pub(super) fn open(entry: &Entry, path: &Path) -> Option<Opened> {
    match &entry.kind {
        EntryKind::File { size, .. } => Some(same_file(path, *size, entry.mtime)),
        _ => None,
    }
}

/// The file at `path`, open, when it is still the version stored (`size` bytes, modified at
/// `mtime_ns`); otherwise why its contents are not read.
fn same_file(
    path: &std::path::Path,
    size: u64,
    mtime_ns: i64,
) -> std::result::Result<std::fs::File, String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let m = file.metadata().map_err(|e| e.to_string())?;
    let now = m.mtime() as i128 * 1_000_000_000 + i128::from(m.mtime_nsec());
    match m.is_file() && m.len() == size && now == i128::from(mtime_ns) {
        true => Ok(file),
        false => Err(
            "it changed while it was imported, so its contents are not those stored \
             (import it again)"
                .into(),
        ),
    }
}
