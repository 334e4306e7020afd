//! backend-replicated: every block on several member backends, as much as their trust says.
//!
//! Members are archive identifiers (a directory, `backend-fs /mnt/disk2`, `ssh nas
//! backend-splitlog /data`), each with a *trust* percentage — how much of a copy's safety it
//! provides — and a read and a write weight. A block is stored on members drawn at random by
//! write weight until their trust adds up to 100% ([`members::choose`]); a member that fails is
//! marked broken for the session and another is drawn. Which member holds which block is kept
//! in a sqlite state file ([`state`]), so `exists` and `list` are answered locally, reads go to
//! the holder with the highest read weight first, and the admin commands ([`repair`]) can
//! drain a member, bring every block back to full trust after a loss, and check the members
//! against the state.
//!
//! Copies count only once the member has flushed them; a member that dies before its flush
//! loses its pending copies, and the flush copies those blocks from the other holders to other
//! members before it returns — so a snapshot that completes has every block it wrote at full
//! trust on the members that survived it, or the flush fails and the snapshot's tag does not
//! move.

mod admin;
pub mod members;
mod read;
mod repair;
mod report;
pub mod state;
mod tags;
mod vouch;
mod write;

use members::{Member, Rng};
use ore_util::lock;
use protocol::backend::{not_supported, CasOutcome, Stats};
use protocol::key::{check_tag_name, check_tag_value};
use protocol::{AdminOutput, Backend, BackendInfo, Error, ErrorCode, Key, Result, Ticket};
use state::State;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// Default largest block when no member says otherwise.
const DEFAULT_MAX_BLOCK: u32 = 16 << 20;

/// What tickets finishing later share with the backend.
pub(crate) struct Inner {
    state: Mutex<State>,
    members: RwLock<Vec<Arc<Member>>>,
    rng: Rng,
    /// The flush generation new copies wait for.
    gen: AtomicU64,
    /// Blocks with a put on its way (so `exists` sees them before the members answered).
    inflight: Mutex<HashMap<Key, usize>>,
    /// Blocks stored short of full trust in this session (reported at the flush).
    short: AtomicU64,
    /// Copies acknowledged and not yet written to the state: key → size and (member, flush
    /// generation). Written in batches (a transaction per block would cost more than storing
    /// it), and always before the state is read as a whole or a flush is recorded.
    copies: Mutex<HashMap<Key, PendingCopies>>,
}

/// A block's size and its copies not yet in the state: (member, flush generation).
type PendingCopies = (u64, Vec<(i64, u64)>);

/// Copies held in memory before they are written to the state together.
const COPY_BATCH: usize = 4096;

/// The proxy.
pub struct ReplicatedBackend {
    inner: Arc<Inner>,
    info: BackendInfo,
    path: PathBuf,
}

/// Sum of trust, capped at 100.
pub(crate) fn trust_of<'a>(members: impl IntoIterator<Item = &'a Arc<Member>>) -> u32 {
    members
        .into_iter()
        .map(|m| m.row.trust)
        .fold(0u32, |a, t| a.saturating_add(t))
        .min(100)
}

impl Inner {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(crate) fn members(&self) -> Vec<Arc<Member>> {
        ore_util::sync::read(&self.members).clone()
    }

    pub(crate) fn member(&self, id: i64) -> Option<Arc<Member>> {
        self.members().into_iter().find(|m| m.row.id == id)
    }

    /// Marks a member broken (once), records why and tells the user.
    pub(crate) fn broken(&self, m: &Member, e: &Error) {
        if m.mark_broken(e) {
            let _ = self.state().set_health(m.row.id, Some(&e.to_string()));
            protocol::log::warning(&format!(
                "{} failed: {e}; it gets no more writes in this session",
                m.name()
            ));
        }
    }

    pub(crate) fn holders(&self, key: &Key) -> Result<Vec<i64>> {
        let mut h = self.state().holders(key)?;
        if let Some((_, more)) = lock(&self.copies).get(key) {
            for (m, _) in more {
                if !h.contains(m) {
                    h.push(*m);
                }
            }
        }
        Ok(h)
    }
}

impl ReplicatedBackend {
    /// Opens (or creates) the state at `path` and connects to every member.
    pub fn open(path: &Path) -> Result<ReplicatedBackend> {
        let state = State::open(path)?;
        let rows = state.members()?;
        let members = Member::connect_all(rows);
        for m in &members {
            state.set_health(m.row.id, m.broken().as_deref())?;
        }
        // The rows as they are now (health just recorded).
        let rows = state.members()?;
        let members: Vec<Arc<Member>> = members
            .iter()
            .filter_map(|m| {
                let row = rows.iter().find(|r| r.id == m.row.id)?.clone();
                Some(Arc::new(m.with_row(row)))
            })
            .collect();
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            members: RwLock::new(members),
            rng: Rng::new(),
            gen: AtomicU64::new(1),
            inflight: Mutex::new(HashMap::new()),
            short: AtomicU64::new(0),
            copies: Mutex::new(HashMap::new()),
        });
        let members = inner.members();
        if members.is_empty() {
            protocol::log::warning(&format!(
                "replication state {} has no members: serving read-only and empty (add one with \
                 `ore-admin \"backend-replicated {}\" add ARCHIVE-ID --trust 100`)",
                path.display(),
                path.display()
            ));
        }
        for m in &members {
            if let Some(e) = m.broken() {
                protocol::log::warning(&format!("{} cannot be used: {e}", m.name()));
            }
        }
        // Members that missed tag changes are brought up to date.
        std::thread::scope(|s| {
            for m in members.iter().filter(|m| m.writable()) {
                let inner = &inner;
                s.spawn(move || {
                    if let Err(e) = inner.sync_tags(m) {
                        inner.broken(m, &e);
                    }
                });
            }
        });
        let info = describe(path, &inner.members());
        Ok(ReplicatedBackend {
            inner,
            info,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Re-reads the members from the state and reconnects (after an admin change).
    pub(crate) fn reload_members(&self) -> Result<()> {
        let rows = self.inner.state().members()?;
        let old = self.inner.members();
        let members: Vec<Arc<Member>> = rows
            .into_iter()
            .map(|row| {
                match old
                    .iter()
                    .find(|m| m.row.id == row.id && m.row.archive == row.archive)
                {
                    Some(m) if m.any_backend().is_some() => Arc::new(m.with_row(row)),
                    _ => Arc::new(Member::connect(row)),
                }
            })
            .collect();
        *ore_util::sync::write(&self.inner.members) = members;
        Ok(())
    }
}

/// The welcome for these members.
fn describe(path: &Path, members: &[Arc<Member>]) -> BackendInfo {
    let infos: Vec<&BackendInfo> = members.iter().filter_map(|m| m.info()).collect();
    let writers: Vec<&Arc<Member>> = members.iter().filter(|m| m.writable()).collect();
    let description = if members.is_empty() {
        format!(
            "replicated archive with no members (state {}): read-only and empty",
            path.display()
        )
    } else {
        format!(
            "replicated archive over {} member(s), {} taking writes (state {})",
            members.len(),
            writers.len(),
            path.display()
        )
    };
    BackendInfo {
        server: format!("backend-replicated {}", env!("CARGO_PKG_VERSION")),
        description,
        max_block_size: infos
            .iter()
            .map(|i| i.max_block_size)
            .min()
            .unwrap_or(DEFAULT_MAX_BLOCK),
        writable: !writers.is_empty(),
        can_remove: !writers.is_empty()
            && writers
                .iter()
                .all(|m| m.info().is_some_and(|i| i.can_remove)),
        can_list: true,
        admin_commands: protocol::admin::names(admin::TABLE),
    }
}

impl Backend for ReplicatedBackend {
    fn info(&self) -> BackendInfo {
        self.info.clone()
    }

    fn pipelines(&self) -> bool {
        true
    }

    /// `exists` is answered from the state database, without asking the members.
    fn exists_waits(&self) -> bool {
        false
    }

    fn put(&self, key: Key, data: &[u8]) -> Result<()> {
        self.start_put(key, data.to_vec()).wait()
    }

    fn start_put(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        if !self.info.writable {
            return Ticket::ready(Err(Error::backend(
                ErrorCode::ReadOnly,
                format!("{}: no member takes writes", self.info.description),
            )));
        }
        if let Err(e) =
            protocol::backend::check_block_size(&key, data.len(), self.info.max_block_size)
        {
            return Ticket::ready(Err(e));
        }
        let holders = match self.inner.holders(&key) {
            Ok(h) => h,
            Err(e) => return Ticket::ready(Err(e)),
        };
        let gen = self.inner.gen.load(SeqCst);
        self.inner
            .start_replicate(key, data, &holders, None, gen)
            .map(drop)
    }

    fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
        self.start_get(key).wait()
    }

    fn start_get(&self, key: Key) -> Ticket<Option<Vec<u8>>> {
        self.inner.start_get(key)
    }

    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
        let mut known = self.inner.state().known(keys)?;
        let inflight = lock(&self.inner.inflight);
        let copies = lock(&self.inner.copies);
        for (k, slot) in keys.iter().zip(known.iter_mut()) {
            *slot |= inflight.contains_key(k) || copies.contains_key(k);
        }
        Ok(known)
    }

    fn remove(&self, keys: &[Key]) -> Result<()> {
        if !self.info.can_remove {
            return Err(not_supported("remove", &self.info.server));
        }
        self.inner.write_copies()?;
        // Forget first: a state that forgot a copy only asks again; one that remembers a
        // removed copy would answer `exists` wrongly.
        self.inner.state().forget(keys)?;
        let mut errors = Vec::new();
        for m in self.inner.members() {
            if let Some(b) = m.backend().filter(|_| m.row.write_weight > 0) {
                if let Err(e) = b.remove(keys) {
                    errors.push(format!("{}: {e}", m.name()));
                }
            }
        }
        if errors.is_empty() {
            vouch::forget_removed(self, keys)
        } else {
            Err(Error::backend(
                ErrorCode::Io,
                format!("removing blocks failed on {}", errors.join("; ")),
            ))
        }
    }

    fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        self.inner.write_copies()?;
        self.inner.state().list(after, limit)
    }

    fn get_tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
        check_tag_name(name)?;
        self.inner.state().tag(name)
    }

    fn set_tag(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<CasOutcome> {
        check_tag_name(name)?;
        check_tag_value(value)?;
        if !self.info.writable {
            return Err(Error::backend(
                ErrorCode::ReadOnly,
                format!("{}: no member takes writes", self.info.description),
            ));
        }
        let r = self
            .inner
            .state()
            .cas_tag(name, expected, Some(value), false)?;
        match r {
            Err(current) => Ok(CasOutcome::Conflict { current }),
            Ok(()) => {
                self.inner.spread_tag(name, expected, Some(value));
                Ok(CasOutcome::Done)
            }
        }
    }

    fn remove_tag(&self, name: &str, expected: Option<&[u8]>) -> Result<CasOutcome> {
        check_tag_name(name)?;
        if !self.info.writable {
            return Err(Error::backend(
                ErrorCode::ReadOnly,
                format!("{}: no member takes writes", self.info.description),
            ));
        }
        let old = self.inner.state().tag(name)?;
        let r = self
            .inner
            .state()
            .cas_tag(name, expected, None, expected.is_none())?;
        match r {
            Err(current) => Ok(CasOutcome::Conflict { current }),
            Ok(()) => {
                self.inner.spread_tag(name, old.as_deref(), None);
                Ok(CasOutcome::Done)
            }
        }
    }

    fn list_tags(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self
            .inner
            .state()
            .all_tags()?
            .into_iter()
            .filter_map(|(n, v)| v.map(|v| (n, v)))
            .collect())
    }

    fn flush(&self) -> Result<()> {
        self.inner.flush_all()
    }

    fn stats(&self) -> Result<Stats> {
        self.inner.write_copies()?;
        let (blocks, bytes) = self.inner.state().totals()?;
        let tags = self.list_tags()?.len() as u64;
        Ok(Stats {
            blocks: Some(blocks),
            bytes: Some(bytes),
            tags: Some(tags),
        })
    }

    fn admin(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        self.inner.write_copies()?;
        protocol::admin::dispatch(admin::TABLE, self, command, args)
    }
}
