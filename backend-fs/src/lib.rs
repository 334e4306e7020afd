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
//! DIR/tag-history/<name>    every value the tag has had, a line per change (`history`):
//!                           `NANOSECONDS set HEX b3:SUM` or `NANOSECONDS removed b3:SUM`,
//!                           SUM the first 16 hex digits of the BLAKE3 hash of the text before
//!                           it; lines written before sums were added lack ` b3:SUM` and read
//!                           as they are; a line that is neither is damage, reported by `verify`
//!                           and refused by `tag-history`, never skipped
//! DIR/unvouched/ab/<key>    blocks restricted connections stored, until vouched for (`vouch`)
//! ```
//!
//! A block is written to `tmp/` and answered at once; it is visible to this process from there
//! (a get reads the temporary file). Blocks get their real names in batches — at a flush, before
//! a list, a removal or the stats, and whenever 4,096 blocks or 64 MiB are waiting: one `syncfs`
//! makes the whole batch's data durable, then each file is renamed with `RENAME_NOREPLACE`
//! (`link` + `unlink` where the file system lacks it). The rename refuses an existing name, so a
//! block is never overwritten, two processes may write the same archive at once, and a crash
//! leaves either a whole block under its key or only a temporary file, which the next opener
//! removes. The directories that got new names are fsynced on flush. One sync per batch instead
//! of one per block is what makes small puts cheap on a real disk.
//!
//! Tags are replaced atomically by rename under an exclusive `flock`, so compare-and-swap holds
//! across processes. A change is recorded in the tag's history once the new tag file is durable
//! (a removal, before the file goes), so the admin command `verify` can tell a tag file deleted
//! behind the backend's back from a removal (`verify`).

mod admin;
mod at;
mod files;
mod history;
mod opening;
mod verify;
mod vouch;

pub use opening::Opened;

use at::{hex64, Dir, Name};
use files::{read_optional, remove_optional, sorted_names, sync_dir, write_new_synced, FileLock};
use ore_util::lock;
use protocol::backend::check_block_size;
use protocol::key::{check_tag_name, check_tag_value};
use protocol::{
    AdminOutput, Backend, BackendInfo, CasOutcome, Error, ErrorCode, Key, Result, Stats,
};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The default largest block: 16 MiB.
pub const DEFAULT_MAX_BLOCK: u32 = 16 << 20;

const CONF: &str = "ore-fs.conf";
const FORMAT_LINE: &str = "format = ore-fs-1";

/// How to open an archive.
#[derive(Clone, Debug, Default)]
pub struct FsOptions {
    /// Set the largest block accepted (kept in the archive's settings).
    pub max_block_size: Option<u32>,
    /// Serve reads only: puts, removals and tag changes are refused.
    pub read_only: bool,
}

/// Blocks waiting for their real names at most (see the module documentation).
const PENDING_BLOCKS: usize = 4096;
/// Bytes waiting for their real names at most.
const PENDING_BYTES: u64 = 64 << 20;

/// Blocks written to `tmp/` and not yet renamed to their real names.
#[derive(Default)]
struct Pending {
    /// Key → (counter of the temporary name, size).
    blocks: HashMap<Key, (u64, u64)>,
    bytes: u64,
}

/// An archive of one file per block.
pub struct FsBackend {
    dir: PathBuf,
    /// The archive directory, held open: block names are resolved relative to it.
    root: Dir,
    /// This process's id, the prefix of its temporary names.
    pid: String,
    max_block_size: u32,
    read_only: bool,
    pending: Mutex<Pending>,
    /// One batch of renames at a time.
    publishing: Mutex<()>,
    /// Fan-out directories (`blocks/ab/cd`, by their first two key bytes) known to exist.
    made: Mutex<HashSet<[u8; 2]>>,
    /// Directories that got or lost names since the last flush.
    dirty: Mutex<HashSet<PathBuf>>,
    /// Serializes tag compare-and-swap inside this process (flock serializes processes).
    tag_mutex: Mutex<()>,
    counter: AtomicU64,
}

impl FsBackend {
    /// The archive directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn tmp_path(&self, what: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join("tmp")
            .join(format!("{}-{n}-{what}", std::process::id()))
    }

    /// `blocks/ab/cd/<key>`, relative to the archive directory.
    fn block_name(key: &Key) -> Name {
        let hex = hex64(key);
        Name::new(&[b"blocks/", &hex[..2], b"/", &hex[2..4], b"/", &hex])
    }

    /// The key's two fan-out directories, `blocks/ab` and `blocks/ab/cd`.
    fn fanout_names(key: &Key) -> [Name; 2] {
        let hex = hex64(key);
        [
            Name::new(&[b"blocks/", &hex[..2]]),
            Name::new(&[b"blocks/", &hex[..2], b"/", &hex[2..4]]),
        ]
    }

    /// The temporary name of a block being written.
    fn tmp_name(&self, n: u64) -> Name {
        Name::new(&[
            b"tmp/",
            self.pid.as_bytes(),
            b"-",
            n.to_string().as_bytes(),
            b"-b",
        ])
    }

    /// Creates `blocks/ab/cd` for the key unless this process knows it exists, and marks the
    /// directories whose entries may have changed for the next flush.
    fn make_fanout(&self, key: &Key) -> Result<()> {
        let first = [key.0[0], key.0[1]];
        if lock(&self.made).contains(&first) {
            return Ok(());
        }
        for name in Self::fanout_names(key) {
            self.root.mkdir(&name).map_err(|e| {
                Error::io(
                    format!("creating directory {}", self.root.full(&name).display()),
                    e,
                )
            })?;
            // Its parent got a name, maybe.
            if let Some(parent) = self.root.full(&name).parent() {
                self.mark_dirty(parent.to_path_buf());
            }
        }
        lock(&self.made).insert(first);
        Ok(())
    }

    /// Gives every waiting block its real name: one `syncfs` for the batch's data, then a
    /// no-replace rename per block. A block renamed before an error is no longer waiting; the
    /// rest stay waiting for the next attempt.
    fn publish(&self) -> Result<()> {
        let _one = lock(&self.publishing);
        let batch: Vec<(Key, u64)> = {
            let pending = lock(&self.pending);
            pending.blocks.iter().map(|(k, (n, _))| (*k, *n)).collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        self.root.sync_fs().map_err(|e| {
            Error::io(
                format!("syncing the file system of {}", self.dir.display()),
                e,
            )
        })?;
        let mut done = Vec::with_capacity(batch.len());
        let mut result = Ok(());
        for (key, n) in batch {
            if let Err(e) = self.rename_block(&key, n) {
                result = Err(e);
                break;
            }
            done.push(key);
        }
        let mut pending = lock(&self.pending);
        for key in done {
            if let Some((_, size)) = pending.blocks.remove(&key) {
                pending.bytes -= size;
            }
        }
        result
    }

    fn rename_block(&self, key: &Key, n: u64) -> Result<()> {
        self.make_fanout(key)?;
        let (tmp, name) = (self.tmp_name(n), Self::block_name(key));
        let ctx = || format!("storing block {key} as {}", self.root.full(&name).display());
        // Renamed, or the key was stored meanwhile (by another process): then the temporary
        // copy goes.
        if !self
            .root
            .rename_new(&tmp, &name)
            .map_err(|e| Error::io(ctx(), e))?
        {
            self.root.unlink(&tmp).map_err(|e| Error::io(ctx(), e))?;
        }
        let [_, dir] = Self::fanout_names(key);
        self.mark_dirty(self.root.full(&dir));
        Ok(())
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
        lock(&self.dirty).insert(dir);
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
        let _inner = lock(&self.tag_mutex);
        let _outer = FileLock::acquire(&self.dir.join("tags.lock"))?;
        let path = self.tag_path(name);
        let current = read_optional(&path)?;
        let existed = current.is_some();
        let new = match change(current) {
            Ok(v) => v,
            Err(conflict) => return Ok(conflict),
        };
        // The history's last line sets a value only once the file holding it is durable, and
        // says removed before the file goes (`history`: what `verify` relies on).
        match &new {
            Some(value) => {
                let tmp = self.tmp_path("tag");
                write_new_synced(&tmp, value)?;
                std::fs::rename(&tmp, &path)
                    .map_err(|e| Error::io(format!("replacing tag file {}", path.display()), e))?;
                sync_dir(&self.dir.join("tags"))?;
                history::record(&self.dir, name, Some(value))?;
            }
            None if existed => {
                history::record(&self.dir, name, None)?;
                remove_optional(&path)?;
                sync_dir(&self.dir.join("tags"))?;
            }
            None => return Ok(CasOutcome::Done),
        }
        Ok(CasOutcome::Done)
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

impl Backend for FsBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            server: format!("backend-fs {}", env!("CARGO_PKG_VERSION")),
            description: format!("fs archive at {}", self.dir.display()),
            max_block_size: self.max_block_size,
            writable: !self.read_only,
            can_remove: !self.read_only,
            can_list: true,
            admin_commands: protocol::admin::names(admin::TABLE),
        }
    }

    fn put(&self, key: Key, data: &[u8]) -> Result<()> {
        self.check_writable("storing a block")?;
        check_block_size(&key, data.len(), self.max_block_size)?;
        let name = Self::block_name(&key);
        let waiting = |this: &Self| lock(&this.pending).blocks.contains_key(&key);
        let stored = |e| Error::io(format!("checking {}", self.root.full(&name).display()), e);
        if waiting(self) || self.root.exists(&name).map_err(stored)? {
            return Ok(());
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp_name(n);
        if let Err(e) = self.root.write_new(&tmp, data) {
            let _ = self.root.unlink(&tmp);
            return Err(Error::io(
                format!("writing block {key} to {}", self.root.full(&tmp).display()),
                e,
            ));
        }
        let full = {
            let mut pending = lock(&self.pending);
            match pending.blocks.entry(key) {
                // Another thread stored the same key meanwhile.
                std::collections::hash_map::Entry::Occupied(_) => None,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert((n, data.len() as u64));
                    pending.bytes += data.len() as u64;
                    Some(pending.blocks.len() >= PENDING_BLOCKS || pending.bytes >= PENDING_BYTES)
                }
            }
        };
        match full {
            None => {
                let _ = self.root.unlink(&tmp);
                Ok(())
            }
            Some(true) => self.publish(),
            Some(false) => Ok(()),
        }
    }

    fn put_restricted(&self, key: Key, data: &[u8]) -> Result<()> {
        self.check_writable("storing a block")?;
        check_block_size(&key, data.len(), self.max_block_size)?;
        if self.exists(&[key])?.first() != Some(&true) {
            vouch::mark(&self.root, &key)?;
        }
        self.put(key, data)
    }

    fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
        let waiting = lock(&self.pending).blocks.get(&key).map(|(n, _)| *n);
        if let Some(n) = waiting {
            // Renamed meanwhile when the temporary file is gone: then it is under its key.
            let tmp = self.tmp_name(n);
            let read = self.root.read(&tmp);
            if let Some(data) = read
                .map_err(|e| Error::io(format!("reading {}", self.root.full(&tmp).display()), e))?
            {
                return Ok(Some(data));
            }
        }
        let name = Self::block_name(&key);
        self.root
            .read(&name)
            .map_err(|e| Error::io(format!("reading {}", self.root.full(&name).display()), e))
    }

    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
        let waiting: Vec<bool> = {
            let pending = lock(&self.pending);
            keys.iter()
                .map(|k| pending.blocks.contains_key(k))
                .collect()
        };
        keys.iter()
            .zip(waiting)
            .map(|(k, w)| {
                if w {
                    return Ok(true);
                }
                let name = Self::block_name(k);
                self.root.exists(&name).map_err(|e| {
                    Error::io(format!("checking {}", self.root.full(&name).display()), e)
                })
            })
            .collect()
    }

    fn remove(&self, keys: &[Key]) -> Result<()> {
        self.check_writable("removing blocks")?;
        self.publish()?;
        for k in keys {
            let name = Self::block_name(k);
            let gone = self.root.unlink(&name).map_err(|e| {
                Error::io(format!("removing {}", self.root.full(&name).display()), e)
            })?;
            vouch::forget(&self.root, k)?;
            if gone {
                let [_, dir] = Self::fanout_names(k);
                self.mark_dirty(self.root.full(&dir));
            }
        }
        Ok(())
    }

    fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        self.publish()?;
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
        self.publish()?;
        let dirs: Vec<PathBuf> = lock(&self.dirty).drain().collect();
        for (i, d) in dirs.iter().enumerate() {
            if let Err(e) = sync_dir(d) {
                // Keep what was not synced for the next flush.
                let mut dirty = lock(&self.dirty);
                dirty.extend(dirs[i..].iter().cloned());
                return Err(e);
            }
        }
        Ok(())
    }

    fn stats(&self) -> Result<Stats> {
        self.publish()?;
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
        protocol::admin::dispatch(admin::TABLE, self, command, args)
    }
}

impl Drop for FsBackend {
    /// Blocks still waiting get their real names, as a flush would give them (without the
    /// directory syncs): a connection that ends without a flush still leaves what it stored
    /// findable. Errors cannot be reported here; the blocks then stay temporary files, which
    /// the next opener removes, as after a crash before a flush.
    fn drop(&mut self) {
        let _ = self.publish();
    }
}
