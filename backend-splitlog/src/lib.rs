//! backend-splitlog: Ore's default store — append-only logs of self-describing records with a
//! sqlite index that can always be rebuilt from them.
//!
//! Every change — a block, a tag set or removed, a block removed, a setting — is first appended
//! to the newest log as a record ([`record`]), then applied to the index ([`index`]). The index
//! is committed every `commit-interval` writes and on flush, always after the logs it describes
//! were synced, together with the log position it reflects. So:
//!
//! - after a crash, the records past that position are replayed (`replay`, [`scan`]); a torn
//!   tail (the remains of an interrupted append) is cut off; a damaged record is reported and
//!   skipped;
//! - `reindex` rebuilds the whole index, tags and settings included, from the logs alone, into
//!   a fresh file, whatever state the old one is in (`reindex`);
//! - a block is served only after its record's checksum and key were checked, and a block that
//!   cannot be served (damaged, cut off, in a missing log) fails that one request as `corrupt`,
//!   naming its log and offset; a missing log or a damaged index file does not keep the archive
//!   shut, and no replay quietly rolls a tag back to an older value ([`damage`]).
//!
//! One process at a time may open an archive ([`logs::ArchiveLock`]); the lock is a `flock`,
//! so it dies with its process and is never left stale. A lock found held is tried again for
//! up to 200 ms before the archive is called in use: a holder's child process may keep it for
//! the moment between its start and its exec.

mod admin;
mod compact;
pub mod damage;
pub mod index;
pub mod logs;
mod opening;
pub mod record;
mod reindex;
mod replay;
pub mod scan;

use index::Index;
use logs::{ArchiveLock, Logs};
pub(crate) use opening::restrict;
pub use opening::Opened;
use opening::{create_dir, open_index, refuse_foreign, settle_replay_at_open, OpenedIndex};
use ore_util::lock;
use protocol::backend::{check_block_size, AdminOutput, CasOutcome, Stats};
use protocol::key::{check_tag_name, check_tag_value};
use protocol::{Backend, BackendInfo, Error, ErrorCode, Key, Result};
use record::{named_payload, Header, RecordType};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Default largest block (16 MiB).
pub const DEFAULT_MAX_BLOCK: u32 = 16 << 20;
/// Default size at which a log rolls over (1 GiB).
pub const DEFAULT_MAX_LOG: u64 = 1 << 30;
/// Default number of writes between index commits.
pub const DEFAULT_COMMIT_INTERVAL: u32 = 10_000;

/// How to open an archive.
#[derive(Clone, Debug, Default)]
pub struct SplitlogOptions {
    /// Where the index lives (default `DIR/metadata.db`).
    pub metadata: Option<PathBuf>,
    /// The archive is used only by the process that opens it (no one else is answered), so
    /// small records may be gathered and written together (see [`logs`]).
    pub private: bool,
}

/// Settings kept as records in the logs (so they survive a reindex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub max_block_size: u32,
    pub max_log_size: u64,
    pub commit_interval: u32,
    pub write_protected: bool,
}

impl Settings {
    fn load(index: &Index) -> Result<Settings> {
        let mut s = Settings {
            max_block_size: DEFAULT_MAX_BLOCK,
            max_log_size: DEFAULT_MAX_LOG,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            write_protected: false,
        };
        for (name, value) in index.settings()? {
            let bad = || {
                Error::backend(
                    ErrorCode::Corrupt,
                    format!("setting {name} has the unreadable value {value:?}"),
                )
            };
            match name.as_str() {
                "max-block-size" => s.max_block_size = value.parse().map_err(|_| bad())?,
                "max-log-size" => s.max_log_size = value.parse().map_err(|_| bad())?,
                "commit-interval" => s.commit_interval = value.parse().map_err(|_| bad())?,
                "write-protected" => s.write_protected = value == "true",
                _ => {}
            }
        }
        Ok(s)
    }
}

pub(crate) struct State {
    pub(crate) index: Index,
    pub(crate) logs: Logs,
    pub(crate) settings: Settings,
    uncommitted: u32,
    /// Why nothing may be written this session, when the index could not record what the
    /// opening replay found (a full disk), or that replay met tags it cannot settle
    /// ([`damage`]): see [`SplitlogBackend::open`].
    pub(crate) read_only: Option<String>,
    /// Why nothing but a reindex is answered: the index file is damaged.
    pub(crate) broken: Option<String>,
    /// Tags the opening replay could not settle: not answered until a reindex settles them.
    pub(crate) doubts: Vec<damage::Doubt>,
    /// Logs the index names that are gone.
    pub(crate) missing: Vec<damage::MissingLog>,
    /// The newest log the index names, when this opening found it shorter than the index
    /// reflects (new records go to a log after it), said as a problem.
    pub(crate) cut: Option<String>,
}

impl State {
    /// Appends a record and applies it to the index: the one way anything changes.
    pub(crate) fn write(&mut self, kind: RecordType, key: [u8; 32], payload: &[u8]) -> Result<()> {
        self.check_not_read_only()?;
        let header = Header::new(kind, key, payload);
        let loc = self
            .logs
            .append(&header, payload, self.settings.max_log_size)?;
        self.index.apply(loc.log, loc.offset, &header, payload)?;
        self.count_write()
    }

    /// Fails when the index is damaged (see [`State::broken`]).
    pub(crate) fn usable(&self) -> Result<()> {
        match &self.broken {
            Some(why) => Err(Error::backend(ErrorCode::Corrupt, why.clone())),
            None => Ok(()),
        }
    }

    /// Fails when tag `name` (or, for `None`, any tag) is in doubt (see [`State::doubts`]).
    fn check_tag_settled(&self, name: Option<&str>) -> Result<()> {
        let doubted: Vec<damage::Doubt> = self
            .doubts
            .iter()
            .filter(|d| name.is_none_or(|n| n == d.tag))
            .cloned()
            .collect();
        if doubted.is_empty() {
            return Ok(());
        }
        Err(Error::backend(
            ErrorCode::Corrupt,
            damage::explain(self.logs.dir(), &doubted),
        ))
    }

    /// Fails when this session may not write (see [`State::read_only`]).
    pub(crate) fn check_not_read_only(&self) -> Result<()> {
        match &self.read_only {
            Some(why) => Err(Error::backend(ErrorCode::ReadOnly, why.clone())),
            None => Ok(()),
        }
    }

    /// Counts one more write since the last commit, committing every `commit_interval`.
    fn count_write(&mut self) -> Result<()> {
        self.uncommitted += 1;
        if self.uncommitted >= self.settings.commit_interval.max(1) {
            self.commit()?;
        }
        Ok(())
    }

    /// Stores a block unless it is indexed already. The index is asked by inserting the row
    /// for where the record will go (one statement where a lookup and an insert were two); the
    /// row is taken back if the append then fails. Either way nothing is committed before the
    /// logs are synced, so the index never names a record that is not in a log.
    pub(crate) fn put_block(&mut self, key: &Key, data: &[u8]) -> Result<()> {
        self.check_not_read_only()?;
        let header = Header::new(RecordType::Block, key.0, data);
        let max = self.settings.max_log_size;
        let (log, offset) = self.logs.place(header.record_len(), max)?;
        let loc = index::Location {
            log,
            offset,
            len: header.len,
        };
        if !self.index.insert_block(key, loc)? {
            return self.store_again_if_lost(key, &header, data);
        }
        let appended = match self.logs.append(&header, data, max) {
            Ok(at) if at == loc => Ok(()),
            Ok(at) => Err(Error::backend(
                ErrorCode::Internal,
                format!("block {key} was placed at {loc:?} but appended at {at:?}"),
            )),
            Err(e) => Err(e),
        };
        if let Err(e) = appended {
            self.index.unrecord_block(key, loc)?;
            return Err(e);
        }
        self.count_write()
    }

    /// Stores a block the index already names again when the log it names is missing (see
    /// [`damage`]): a later snapshot of the same data then repairs what the loss broke, where it
    /// would otherwise deduplicate against a copy that is gone.
    fn store_again_if_lost(&mut self, key: &Key, header: &Header, data: &[u8]) -> Result<()> {
        if self.missing.is_empty() {
            return Ok(());
        }
        match self.index.locate(key)? {
            Some(old) if self.missing.iter().any(|m| m.log == old.log) => {
                let at = self.logs.append(header, data, self.settings.max_log_size)?;
                self.index.relocate(key, old, at)?;
                self.count_write()
            }
            _ => Ok(()),
        }
    }

    /// Whether block `key` is stored where it can be read (a block the index places in a
    /// missing log is not).
    fn holds(&self, key: &Key) -> Result<bool> {
        if self.missing.is_empty() {
            return self.index.contains(key);
        }
        Ok(self
            .index
            .locate(key)?
            .is_some_and(|loc| !self.missing.iter().any(|m| m.log == loc.log)))
    }

    /// Syncs the logs, then commits the index with the position it now reflects.
    pub(crate) fn commit(&mut self) -> Result<()> {
        if self.read_only.is_some() {
            // Nothing was written this session, so there is nothing to make durable.
            return Ok(());
        }
        self.logs.sync()?;
        self.index.commit(self.logs.end())?;
        self.uncommitted = 0;
        Ok(())
    }

    pub(crate) fn set_setting(&mut self, name: &str, value: &str) -> Result<()> {
        self.write(
            RecordType::Setting,
            [0; 32],
            &named_payload(name, value.as_bytes()),
        )?;
        self.settings = Settings::load(&self.index)?;
        self.commit()
    }
}

/// An archive of append-only logs.
pub struct SplitlogBackend {
    dir: PathBuf,
    metadata: PathBuf,
    state: Mutex<State>,
    _lock: ArchiveLock,
}

impl SplitlogBackend {
    /// Opens the archive in `dir`, creating it when `dir` is missing or empty, and replays
    /// what the index has not seen yet. (Programs open with [`SplitlogBackend::open_or_vacant`],
    /// which creates nothing before the first write.)
    pub fn open(dir: impl AsRef<Path>, opts: SplitlogOptions) -> Result<SplitlogBackend> {
        let dir = dir.as_ref().to_path_buf();
        let metadata = opts.metadata.unwrap_or_else(|| dir.join("metadata.db"));
        refuse_foreign(&dir, &metadata)?;
        create_dir(&dir)?;
        let lock = ArchiveLock::acquire(&dir)?;
        let OpenedIndex {
            index,
            floor: (floor, cut),
            settings,
            mut broken,
        } = open_index(&dir, &metadata)?;
        restrict(&metadata);
        let mut logs = Logs::open(&dir, floor)?;
        if opts.private {
            logs.gather();
        }
        let mut state = State {
            index,
            logs,
            settings,
            uncommitted: 0,
            read_only: None,
            broken: None,
            doubts: Vec::new(),
            missing: Vec::new(),
            cut: cut.clone(),
        };
        if let Some(m) = &cut {
            protocol::log::warning(m);
        }
        if broken.is_none() {
            broken = settle_replay_at_open(&mut state, &dir, &metadata)?;
        }
        match broken {
            Some(why) => {
                protocol::log::warning(&why);
                state.broken = Some(why);
            }
            None => {
                state.missing = damage::missing_logs(&mut state)?;
                for m in &state.missing {
                    protocol::log::warning(&m.describe(&dir));
                }
            }
        }
        Ok(SplitlogBackend {
            dir,
            metadata,
            state: Mutex::new(state),
            _lock: lock,
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The archive's settings.
    pub fn settings(&self) -> Settings {
        self.state().settings.clone()
    }

    fn check_writable(&self, st: &State, what: &str) -> Result<()> {
        st.check_not_read_only()?;
        if st.settings.write_protected {
            return Err(Error::backend(
                ErrorCode::ReadOnly,
                format!(
                    "the archive {} is write-protected; {what} refused (`ore-admin ... write-unprotect` lifts it)",
                    self.dir.display()
                ),
            ));
        }
        Ok(())
    }
}

impl Drop for SplitlogBackend {
    fn drop(&mut self) {
        let mut st = self.state();
        // After lost records there is nothing to commit that a later open would want.
        if st.uncommitted > 0 && st.logs.lost().is_none() {
            if let Err(e) = st.commit() {
                protocol::log::error(&format!("committing the index on close: {e}"));
            }
        }
    }
}

impl Backend for SplitlogBackend {
    fn info(&self) -> BackendInfo {
        let st = self.state();
        BackendInfo {
            server: format!("backend-splitlog {}", env!("CARGO_PKG_VERSION")),
            description: format!("splitlog archive at {}", self.dir.display()),
            max_block_size: st.settings.max_block_size,
            writable: !st.settings.write_protected && st.read_only.is_none(),
            can_remove: !st.settings.write_protected && st.read_only.is_none(),
            can_list: true,
            admin_commands: protocol::admin::names(admin::TABLE),
        }
    }

    fn put(&self, key: Key, data: &[u8]) -> Result<()> {
        let mut st = self.state();
        st.usable()?;
        self.check_writable(&st, "storing a block")?;
        check_block_size(&key, data.len(), st.settings.max_block_size)?;
        st.put_block(&key, data)
    }

    fn put_restricted(&self, key: Key, data: &[u8]) -> Result<()> {
        let mut st = self.state();
        st.usable()?;
        self.check_writable(&st, "storing a block")?;
        check_block_size(&key, data.len(), st.settings.max_block_size)?;
        if st.holds(&key)? {
            return Ok(());
        }
        // The record first: a crash between the two leaves at worst a record of a block that
        // is not there, which the owner's check passes over.
        st.write(RecordType::Unvouched, key.0, &[])?;
        st.put_block(&key, data)
    }

    fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
        let found = {
            let mut st = self.state();
            st.usable()?;
            match st.index.locate(&key)? {
                // A missing log is damage of this block alone (see `damage`).
                Some(loc) => Some((
                    st.logs.reader(loc.log).map_err(|e| {
                        Error::backend(
                            e.code(),
                            format!(
                                "block {key} at offset {} {}: {e}",
                                loc.offset,
                                if e.code() == ErrorCode::Corrupt {
                                    "is damaged"
                                } else {
                                    "cannot be read"
                                }
                            ),
                        )
                    })?,
                    loc,
                )),
                None => None,
            }
        };
        // The read and its checks run without the lock, so readers do not queue behind each
        // other or behind writers.
        match found {
            Some(((file, path), loc)) => logs::read_record(&file, &path, &key, loc).map(Some),
            None => Ok(None),
        }
    }

    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
        let st = self.state();
        st.usable()?;
        keys.iter().map(|k| st.holds(k)).collect()
    }

    fn remove(&self, keys: &[Key]) -> Result<()> {
        let mut st = self.state();
        st.usable()?;
        self.check_writable(&st, "removing blocks")?;
        for k in keys {
            if st.index.locate(k)?.is_some() {
                st.write(RecordType::BlockRemoved, k.0, &[])?;
            }
        }
        Ok(())
    }

    fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        let st = self.state();
        st.usable()?;
        let mut keys = st.index.list(after, limit.saturating_add(1))?;
        let more = keys.len() > limit as usize;
        keys.truncate(limit as usize);
        Ok((keys, more))
    }

    fn get_tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
        check_tag_name(name)?;
        let st = self.state();
        st.usable()?;
        st.check_tag_settled(Some(name))?;
        st.index.tag(name)
    }

    fn set_tag(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<CasOutcome> {
        check_tag_name(name)?;
        check_tag_value(value)?;
        let mut st = self.state();
        st.usable()?;
        self.check_writable(&st, "changing a tag")?;
        let current = st.index.tag(name)?;
        if current.as_deref() != expected {
            return Ok(CasOutcome::Conflict { current });
        }
        st.write(RecordType::TagSet, [0; 32], &named_payload(name, value))?;
        Ok(CasOutcome::Done)
    }

    fn remove_tag(&self, name: &str, expected: Option<&[u8]>) -> Result<CasOutcome> {
        check_tag_name(name)?;
        let mut st = self.state();
        st.usable()?;
        self.check_writable(&st, "removing a tag")?;
        let current = st.index.tag(name)?;
        if expected.is_some() && current.as_deref() != expected {
            return Ok(CasOutcome::Conflict { current });
        }
        if current.is_some() {
            st.write(RecordType::TagRemoved, [0; 32], &named_payload(name, &[]))?;
        }
        Ok(CasOutcome::Done)
    }

    fn list_tags(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let st = self.state();
        st.usable()?;
        st.check_tag_settled(None)?;
        st.index.tags()
    }

    fn flush(&self) -> Result<()> {
        self.state().commit()
    }

    fn stats(&self) -> Result<Stats> {
        let st = self.state();
        st.usable()?;
        let (blocks, bytes) = st.index.block_count()?;
        Ok(Stats {
            blocks: Some(blocks),
            bytes: Some(bytes),
            tags: Some(st.index.tags()?.len() as u64),
        })
    }

    fn admin(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        admin::run(self, command, args)
    }
}
