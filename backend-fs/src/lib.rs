//! backend-fs: one file per block.
//!
//! The simplest durable store, and the reference for what a backend on a plain file system must
//! get right. Layout of an archive directory:
//!
//! ```text
//! DIR/ore-fs.conf           format marker and settings ("key = value" lines)
//! DIR/blocks/ab/cd/<key>    one file per block, named by its 64-hex-digit key
//! DIR/tags/<name>           one file per tag, holding its value
//! DIR/tmp/                  blocks and tags being written
//! DIR/tags.lock             flock'ed around tag compare-and-swap
//! ```
//!
//! A block is written to `tmp/`, fsynced, then hard-linked to its real name: linking fails if
//! the name exists, so a block is never overwritten and two processes may write the same
//! archive at once. The directories that got new names are fsynced on flush. Tags are replaced
//! atomically by rename under an exclusive `flock`, so compare-and-swap holds across processes.

mod files;

use files::{
    create_dir_all, process_alive, read_optional, remove_optional, sorted_names, sync_dir,
    write_new_synced, FileLock,
};
use protocol::backend::{admin_help, admin_names, check_block_size, AdminCommand};
use protocol::key::{check_tag_name, check_tag_value};
use protocol::{
    AdminOutput, Backend, BackendInfo, CasOutcome, Error, ErrorCode, Key, Result, Stats,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The default largest block: 16 MiB.
pub const DEFAULT_MAX_BLOCK: u32 = 16 << 20;

const CONF: &str = "ore-fs.conf";
const FORMAT_LINE: &str = "format = ore-fs-1";

const COMMANDS: &[AdminCommand] = &[
    AdminCommand {
        name: "help",
        args: "",
        help: "list the admin commands",
    },
    AdminCommand {
        name: "info",
        args: "",
        help: "where the archive lives, its layout and settings",
    },
    AdminCommand {
        name: "stats",
        args: "",
        help: "count blocks, bytes and tags (walks the whole archive)",
    },
    AdminCommand {
        name: "tag-history",
        args: "NAME",
        help: "every value the tag has had, oldest first",
    },
];

/// How to open an archive.
#[derive(Clone, Debug, Default)]
pub struct FsOptions {
    /// Set the largest block accepted (kept in the archive's settings).
    pub max_block_size: Option<u32>,
    /// Serve reads only: puts, removals and tag changes are refused.
    pub read_only: bool,
}

/// An archive of one file per block.
pub struct FsBackend {
    dir: PathBuf,
    max_block_size: u32,
    read_only: bool,
    /// Directories that got or lost names since the last flush.
    dirty: Mutex<HashSet<PathBuf>>,
    /// Serializes tag compare-and-swap inside this process (flock serializes processes).
    tag_mutex: Mutex<()>,
    counter: AtomicU64,
}

impl FsBackend {
    /// Opens the archive in `dir`, creating it when `dir` is missing or empty.
    pub fn open(dir: impl AsRef<Path>, opts: FsOptions) -> Result<FsBackend> {
        let dir = dir.as_ref().to_path_buf();
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
                if !sorted_names(&dir)?.is_empty() {
                    return Err(invalid(format!(
                        "{} is not empty and is not a backend-fs archive (no {CONF}); refusing to create one there",
                        dir.display()
                    )));
                }
                create_dir_all(&dir)?;
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
        for sub in ["blocks", "tags", "tmp"] {
            if !opts.read_only {
                create_dir_all(&dir.join(sub))?;
            }
        }
        let backend = FsBackend {
            dir,
            max_block_size,
            read_only: opts.read_only,
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

    /// The archive directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

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

    fn tmp_path(&self, what: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join("tmp")
            .join(format!("{}-{n}-{what}", std::process::id()))
    }

    fn block_dir(&self, key: &Key) -> PathBuf {
        let hex = key.to_hex();
        self.dir.join("blocks").join(&hex[..2]).join(&hex[2..4])
    }

    fn block_path(&self, key: &Key) -> PathBuf {
        self.block_dir(key).join(key.to_hex())
    }

    fn check_writable(&self, what: &str) -> Result<()> {
        if self.read_only {
            return Err(Error::backend(
                ErrorCode::ReadOnly,
                format!(
                    "the archive {} is open read-only; {what} refused",
                    self.dir.display()
                ),
            ));
        }
        Ok(())
    }

    fn mark_dirty(&self, dir: PathBuf) {
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dir);
    }

    fn tag_path(&self, name: &str) -> PathBuf {
        self.dir.join("tags").join(name)
    }

    /// Runs a tag compare-and-swap under both locks; `change` gets the current value and
    /// returns the new one (`None`: remove) or a conflict.
    fn tag_cas(
        &self,
        name: &str,
        change: impl FnOnce(Option<Vec<u8>>) -> Result<Option<Vec<u8>>, CasOutcome>,
    ) -> Result<CasOutcome> {
        check_tag_name(name)?;
        self.check_writable("changing a tag")?;
        let _inner = self.tag_mutex.lock().unwrap_or_else(|p| p.into_inner());
        let _outer = FileLock::acquire(&self.dir.join("tags.lock"))?;
        let path = self.tag_path(name);
        let current = read_optional(&path)?;
        let existed = current.is_some();
        let new = match change(current) {
            Ok(v) => v,
            Err(conflict) => return Ok(conflict),
        };
        match &new {
            Some(value) => {
                let tmp = self.tmp_path("tag");
                write_new_synced(&tmp, value)?;
                std::fs::rename(&tmp, &path)
                    .map_err(|e| Error::io(format!("replacing tag file {}", path.display()), e))?;
            }
            None if existed => {
                remove_optional(&path)?;
            }
            None => return Ok(CasOutcome::Done),
        }
        self.record_history(name, new.as_deref())?;
        sync_dir(&self.dir.join("tags"))?;
        Ok(CasOutcome::Done)
    }

    /// Appends a tag change to `tag-history/NAME`, so every earlier value stays recoverable
    /// (an append-only client can move a tag, never erase where it was).
    fn record_history(&self, name: &str, value: Option<&[u8]>) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.dir.join("tag-history");
        files::create_dir_all(&dir)?;
        let path = dir.join(name);
        let line = match value {
            Some(v) => format!("{} set {}\n", now_ns(), hex(v)),
            None => format!("{} removed\n", now_ns()),
        };
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        f.write_all(line.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        sync_dir(&dir)
    }

    fn tag_history(&self, name: &str) -> Result<AdminOutput> {
        check_tag_name(name)?;
        let path = self.dir.join("tag-history").join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let mut out = String::new();
        let mut rows = Vec::new();
        for line in text.lines() {
            let mut w = line.splitn(3, ' ');
            let (Some(ns), Some(what)) = (w.next(), w.next()) else {
                continue;
            };
            let value = match (what, w.next()) {
                ("set", Some(h)) => Some(show_hex_value(h)),
                _ => None,
            };
            out.push_str(&format!(
                "{ns}: {}\n",
                value.as_deref().unwrap_or("(removed)")
            ));
            rows.push(serde_json::json!({"time_ns": ns.parse::<i128>().ok(), "value": value}));
        }
        if rows.is_empty() {
            out = format!("tag {name} has no history\n");
        }
        Ok(AdminOutput::new(out, serde_json::Value::Array(rows)))
    }

    /// Every stored key in ascending order after `after`, up to `limit` (+1 to tell `more`).
    fn walk_keys(&self, after: Option<Key>, limit: usize) -> Result<Vec<Key>> {
        let blocks = self.dir.join("blocks");
        let after_hex = after.map(|k| k.to_hex()).unwrap_or_default();
        let mut out = Vec::new();
        for l1 in sorted_names(&blocks)? {
            if l1.len() != 2 || (!after_hex.is_empty() && l1.as_str() < &after_hex[..2]) {
                continue;
            }
            for l2 in sorted_names(&blocks.join(&l1))? {
                let prefix = format!("{l1}{l2}");
                if l2.len() != 2 || (!after_hex.is_empty() && prefix.as_str() < &after_hex[..4]) {
                    continue;
                }
                for name in sorted_names(&blocks.join(&l1).join(&l2))? {
                    if name.as_str() <= after_hex.as_str() || !name.starts_with(&prefix) {
                        continue;
                    }
                    if let Ok(k) = name.parse::<Key>() {
                        out.push(k);
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
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

impl Backend for FsBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            server: format!("backend-fs {}", env!("CARGO_PKG_VERSION")),
            description: format!("fs archive at {}", self.dir.display()),
            max_block_size: self.max_block_size,
            writable: !self.read_only,
            can_remove: !self.read_only,
            can_list: true,
            admin_commands: admin_names(COMMANDS),
        }
    }

    fn put(&self, key: Key, data: &[u8]) -> Result<()> {
        self.check_writable("storing a block")?;
        check_block_size(&key, data.len(), self.max_block_size)?;
        let path = self.block_path(&key);
        if path.exists() {
            return Ok(());
        }
        let dir = self.block_dir(&key);
        if !dir.is_dir() {
            create_dir_all(&dir)?;
            if let Some(parent) = dir.parent() {
                self.mark_dirty(parent.to_path_buf());
                if let Some(grand) = parent.parent() {
                    self.mark_dirty(grand.to_path_buf());
                }
            }
        }
        let tmp = self.tmp_path(&key.to_hex());
        write_new_synced(&tmp, data)?;
        // link() refuses to replace an existing name: a block is never overwritten, even when
        // another process stores the same key at the same moment.
        let linked = std::fs::hard_link(&tmp, &path);
        let removed = remove_optional(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Error::io(
                    format!("storing block {key} as {}", path.display()),
                    e,
                ))
            }
        }
        removed?;
        self.mark_dirty(dir);
        Ok(())
    }

    fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
        read_optional(&self.block_path(&key))
    }

    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
        keys.iter()
            .map(|k| {
                let p = self.block_path(k);
                match std::fs::symlink_metadata(&p) {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(Error::io(format!("checking {}", p.display()), e)),
                }
            })
            .collect()
    }

    fn remove(&self, keys: &[Key]) -> Result<()> {
        self.check_writable("removing blocks")?;
        for k in keys {
            if remove_optional(&self.block_path(k))? {
                self.mark_dirty(self.block_dir(k));
            }
        }
        Ok(())
    }

    fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        let limit = limit as usize;
        let mut keys = self.walk_keys(after, limit.saturating_add(1))?;
        let more = keys.len() > limit;
        keys.truncate(limit);
        Ok((keys, more))
    }

    fn get_tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
        check_tag_name(name)?;
        read_optional(&self.tag_path(name))
    }

    fn set_tag(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<CasOutcome> {
        check_tag_value(value)?;
        self.tag_cas(name, |current| {
            if current.as_deref() != expected {
                return Err(CasOutcome::Conflict { current });
            }
            Ok(Some(value.to_vec()))
        })
    }

    fn remove_tag(&self, name: &str, expected: Option<&[u8]>) -> Result<CasOutcome> {
        self.tag_cas(name, |current| {
            if expected.is_some() && current.as_deref() != expected {
                return Err(CasOutcome::Conflict { current });
            }
            Ok(None)
        })
    }

    fn list_tags(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let dir = self.dir.join("tags");
        let mut out = Vec::new();
        for name in sorted_names(&dir)? {
            if check_tag_name(&name).is_err() {
                continue;
            }
            if let Some(v) = read_optional(&dir.join(&name))? {
                out.push((name, v));
            }
        }
        Ok(out)
    }

    fn flush(&self) -> Result<()> {
        let dirs: Vec<PathBuf> = self
            .dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (i, d) in dirs.iter().enumerate() {
            if let Err(e) = sync_dir(d) {
                // Keep what was not synced for the next flush.
                let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
                dirty.extend(dirs[i..].iter().cloned());
                return Err(e);
            }
        }
        Ok(())
    }

    fn stats(&self) -> Result<Stats> {
        let (mut blocks, mut bytes) = (0u64, 0u64);
        let root = self.dir.join("blocks");
        for l1 in sorted_names(&root)? {
            for l2 in sorted_names(&root.join(&l1))? {
                let d = root.join(&l1).join(&l2);
                for name in sorted_names(&d)? {
                    if let Ok(m) = std::fs::symlink_metadata(d.join(&name)) {
                        blocks += 1;
                        bytes += m.len();
                    }
                }
            }
        }
        let tags = self.list_tags()?.len() as u64;
        Ok(Stats {
            blocks: Some(blocks),
            bytes: Some(bytes),
            tags: Some(tags),
        })
    }

    fn admin(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        if command == "tag-history" {
            return match args {
                [name] => self.tag_history(name),
                _ => Err(Error::backend(
                    ErrorCode::Admin,
                    "tag-history needs one argument: the tag's name",
                )),
            };
        }
        if !args.is_empty() {
            return Err(Error::backend(
                ErrorCode::Admin,
                format!("`{command}` takes no arguments, got {}", args.join(" ")),
            ));
        }
        match command {
            "help" => Ok(admin_help("backend-fs", COMMANDS)),
            "info" => Ok(AdminOutput::new(
                format!(
                    "backend-fs archive\n  directory:      {}\n  layout:         blocks/ab/cd/<key>, tags/<name>\n  max block size: {} bytes\n  access:         {}\n",
                    self.dir.display(),
                    self.max_block_size,
                    if self.read_only { "read-only" } else { "read-write" }
                ),
                serde_json::json!({
                    "kind": "fs",
                    "directory": self.dir.display().to_string(),
                    "max_block_size": self.max_block_size,
                    "read_only": self.read_only,
                }),
            )),
            "stats" => Ok(self.stats()?.admin_output()),
            other => Err(protocol::backend::unknown_admin(other, COMMANDS)),
        }
    }
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A recorded value (hex) as text when it is printable text, else as the hex itself.
fn show_hex_value(h: &str) -> String {
    let bytes: Option<Vec<u8>> = (0..h.len() / 2)
        .map(|i| {
            h.get(2 * i..2 * i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect();
    match bytes.and_then(|b| String::from_utf8(b).ok()) {
        Some(t) if t.chars().all(|c| !c.is_control()) => t,
        _ => h.to_string(),
    }
}
