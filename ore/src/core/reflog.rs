//! The reflog: every move of every tag, kept in the archive (FORMAT.md §9).
//!
//! Tags are the only way the archive says what to keep, so moving one (a rollback, a forget
//! that rewrites a chain) could make snapshots unreachable and let gc take them. The reflog
//! records each move — tag, old and new snapshot, when, by whom, why — and gc treats every
//! snapshot it names as a root. Superseded snapshots therefore stay readable by key and listed
//! by `ore reflog` until `ore reflog expire` drops the entries that name them.
//!
//! Storage: the tag `ore:reflog` names the newest reflog block; each block holds up to
//! [`PER_BLOCK`] entries, oldest first, and the key of the block before it. Appending rewrites
//! the newest block with the entry added (or starts a new one when it is full) and moves the
//! tag by compare-and-swap, retrying when another writer got there first, so concurrent runs
//! never lose each other's entries. A run that dies between moving a tag and recording it loses
//! only that entry; the snapshot it moved away from is still reached through the new one's
//! chain, or was recorded when it was itself set.

use crate::core::block::Kind;
use crate::core::entry::{decode, encode};
use crate::core::error::{Error, Result};
use crate::core::format::parse_tag_value;
use crate::core::repo::Repo;
use protocol::{CasOutcome, Key};
use serde::{Deserialize, Serialize};

mod copy;
mod expiry;
pub use expiry::{expire, expire_dropped, expire_tags, read_history, rewound, Dropped, Holders};
pub(crate) use expiry::{expire_old_heads, expire_replaced};

/// The tag naming the newest reflog block.
pub const REFLOG_TAG: &str = protocol::tagrules::REFLOG_TAG;
/// Most entries in one reflog block.
pub const PER_BLOCK: usize = 256;

/// Tag moves this process made that the reflog could not record.
static UNRECORDED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts a tag move the reflog could not record. The move itself stands (undoing it could
/// lose a snapshot), so the run goes on, but it must not end as if all were well: `ore` exits
/// with status 3 when [`unrecorded_moves`] is not zero.
pub fn note_unrecorded_move() {
    UNRECORDED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// How many tag moves of this process the reflog could not record.
pub fn unrecorded_moves() -> usize {
    UNRECORDED.load(std::sync::atomic::Ordering::Relaxed)
}

/// One move of one tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RefEntry {
    /// When, ns since the epoch.
    pub time: i64,
    pub tag: String,
    /// What the tag named before (`None`: it did not exist).
    pub old: Option<Key>,
    /// What it names now (`None`: it was removed).
    pub new: Option<Key>,
    /// What moved it: `snapshot`, `fork`, `reset`, `forget`, `sync`, `load`.
    pub action: String,
    pub host: String,
    pub user: String,
}

/// A reflog block.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReflogBlock {
    /// The block before this one, if any.
    pub previous: Option<Key>,
    /// Entries, oldest first.
    pub entries: Vec<RefEntry>,
}

impl RefEntry {
    /// An entry for a move made now by this user on this host.
    pub fn now(tag: &str, old: Option<Key>, new: Option<Key>, action: &str) -> RefEntry {
        RefEntry {
            time: crate::core::util::now_ns(),
            tag: tag.to_string(),
            old,
            new,
            action: action.to_string(),
            host: crate::core::util::hostname(),
            user: crate::core::meta::username(),
        }
    }
}

/// The key of the newest reflog block, if there is a reflog.
pub fn head(repo: &Repo) -> Result<Option<Key>> {
    match repo.backend().get_tag(REFLOG_TAG)? {
        None => Ok(None),
        Some(v) => parse_tag_value(&v)
            .map(Some)
            .ok_or_else(|| Error::Archive(format!("tag {REFLOG_TAG} does not hold a block key"))),
    }
}

/// Reads one reflog block.
pub fn read_block(repo: &Repo, key: Key) -> Result<ReflogBlock> {
    repo.get(key, Kind::Reflog)
}

/// Every block of the reflog, newest first, with its key.
pub fn blocks(repo: &Repo) -> Result<Vec<(Key, ReflogBlock)>> {
    let mut out = Vec::new();
    let mut next = head(repo)?;
    let mut seen = std::collections::HashSet::new();
    while let Some(k) = next {
        if !seen.insert(k) {
            return Err(Error::Archive(format!(
                "the reflog loops back to block {k}"
            )));
        }
        let b = read_block(repo, k)?;
        next = b.previous;
        out.push((k, b));
    }
    Ok(out)
}

/// Every entry, oldest first.
pub fn entries(repo: &Repo) -> Result<Vec<RefEntry>> {
    let mut out: Vec<RefEntry> = Vec::new();
    for (_, b) in blocks(repo)?.into_iter().rev() {
        out.extend(b.entries);
    }
    Ok(out)
}

/// The reflog's newest block as it was a moment ago, read in the background: a run that will
/// move a tag starts this early, so that recording the move at its end does not wait two round
/// trips (the head tag, then its block) over a slow link. If the head moves meanwhile, the
/// compare-and-swap in [`append_with`] notices and the reflog is read again.
pub struct HeadAhead(std::thread::JoinHandle<Option<Head>>);

/// The reflog's head key and its block (`None, None` when there is no reflog).
type Head = (Option<Key>, Option<Fetched>);

/// A head block as read ahead: from the store, or this machine's copy (plain, not yet checked
/// against the key).
enum Fetched {
    Stored(Vec<u8>),
    Copy(Vec<u8>),
}

/// Starts reading the reflog's head and its block (see [`HeadAhead`]): this machine's copy
/// when it is the head's, else the store's.
pub fn read_head_ahead(repo: &Repo) -> HeadAhead {
    let backend = repo.backend().clone();
    let copy = copy::path(repo);
    HeadAhead(std::thread::spawn(move || {
        let head = match backend.get_tag(REFLOG_TAG).ok()? {
            None => return Some((None, None)),
            Some(v) => parse_tag_value(&v)?,
        };
        if let Some(plain) = copy.and_then(|p| copy::load(&p, head)) {
            return Some((Some(head), Some(Fetched::Copy(plain))));
        }
        let stored = backend.get(head).ok()??;
        Some((Some(head), Some(Fetched::Stored(stored))))
    }))
}

/// Adds entries to the reflog (durably: the block is flushed before the tag names it).
pub fn append(repo: &Repo, new: &[RefEntry]) -> Result<()> {
    append_with(repo, new, None)
}

/// [`append`], starting from the head read ahead by `ahead` when there is one.
pub fn append_with(repo: &Repo, new: &[RefEntry], ahead: Option<HeadAhead>) -> Result<()> {
    if new.is_empty() {
        return Ok(());
    }
    let mut ahead = ahead.and_then(|a| a.0.join().ok().flatten());
    loop {
        let head = match ahead.take() {
            Some(h) => decode_head(repo, h)?,
            None => {
                let k = head(repo)?;
                (
                    k,
                    k.map(|k| read_block(repo, k))
                        .transpose()?
                        .unwrap_or_default(),
                )
            }
        };
        let staged = stage(repo, &head, new);
        repo.put_block_durably(Kind::Reflog, &staged.plain)?;
        if swap_head(repo, staged.old_head, staged.key, Some(&staged.plain))? {
            return Ok(());
        }
    }
}

/// The reflog's head key and its block, decoded (an empty block when there is no reflog).
pub type HeadBlock = (Option<Key>, ReflogBlock);

fn decode_head(repo: &Repo, (key, stored): Head) -> Result<HeadBlock> {
    match (key, stored) {
        (None, _) => Ok((None, ReflogBlock::default())),
        (Some(k), Some(Fetched::Stored(stored))) => {
            Ok((Some(k), repo.decode_stored(k, Kind::Reflog, stored)?))
        }
        (Some(k), Some(Fetched::Copy(plain))) => match copy::checked(repo, k, plain) {
            Some(plain) => Ok((Some(k), decode(&plain, &k, Kind::Reflog)?)),
            None => Ok((Some(k), read_block(repo, k)?)),
        },
        (Some(k), None) => Ok((Some(k), read_block(repo, k)?)),
    }
}

impl HeadAhead {
    /// The head read ahead, decoded; `None` when it could not be read (the move is then
    /// recorded after it is made, from a fresh read).
    pub fn decoded(self, repo: &Repo) -> Option<HeadBlock> {
        let head = self.0.join().ok().flatten()?;
        decode_head(repo, head).ok()
    }
}

/// A reflog block recording moves, ready to be stored, and the head it replaces.
pub struct Staged {
    old_head: Option<Key>,
    /// The block's key and its plain bytes, to be stored (and flushed) before `ore:reflog`
    /// names it.
    pub key: Key,
    pub plain: Vec<u8>,
    entries: Vec<RefEntry>,
}

/// The block that adds `new` to the reflog whose head is `head`: the head's block with the
/// entries added, or a new block after it when that one is full. Nothing is stored.
pub fn stage(repo: &Repo, (old_head, block): &HeadBlock, new: &[RefEntry]) -> Staged {
    let mut block = if block.entries.len() + new.len() > PER_BLOCK && !block.entries.is_empty() {
        ReflogBlock {
            previous: *old_head,
            entries: Vec::new(),
        }
    } else {
        block.clone()
    };
    block.entries.extend_from_slice(new);
    let plain = encode(&block);
    Staged {
        old_head: *old_head,
        key: repo.keys().key_of(Kind::Reflog as u8, &plain),
        plain,
        entries: new.to_vec(),
    }
}

/// Points `ore:reflog` at `key`, which must be a reflog block (one of its earlier heads, as
/// `ore tag-history ore:reflog` lists them): the owner's way back when the tag was pointed at
/// something else (an append-only key may move it to any block key, and a reflog that cannot
/// be read stops gc). Moves it from whatever it holds; `false` when another run moved it
/// meanwhile.
pub fn reset_head(repo: &Repo, key: Key) -> Result<bool> {
    read_block(repo, key).map_err(|e| {
        Error::Archive(format!(
            "block {key} is not a reflog block this archive can read ({e}); \
             `ore tag-history {REFLOG_TAG}` lists the earlier heads"
        ))
    })?;
    let current = repo.backend().get_tag(REFLOG_TAG)?;
    let out = repo
        .backend()
        .set_tag(REFLOG_TAG, current.as_deref(), key.to_hex().as_bytes())?;
    Ok(matches!(out, CasOutcome::Done))
}

/// Moves `ore:reflog` from `old` to `new`; `false` when another run moved it first. With the
/// new block's plain bytes, this machine keeps them as its copy of the head (`copy`).
fn swap_head(repo: &Repo, old: Option<Key>, new: Key, plain: Option<&[u8]>) -> Result<bool> {
    let exp = old.map(|k| k.to_hex());
    let out = repo.backend().set_tag(
        REFLOG_TAG,
        exp.as_deref().map(str::as_bytes),
        new.to_hex().as_bytes(),
    )?;
    let done = matches!(out, CasOutcome::Done);
    if let (true, Some(plain)) = (done, plain) {
        copy::keep(repo, new, plain);
    }
    Ok(done)
}

/// Drops the entries older than `cutoff` from the reflog, writing the rest as a new chain,
/// and nothing else: the backend's tag history is the caller's to expire (gc's retention
/// expires it value by value, [`expiry`]). `(dropped, kept)`.
pub fn expire_entries_only(repo: &Repo, cutoff: i64, dry_run: bool) -> Result<(usize, usize)> {
    rewrite_without(repo, &|e| e.time < cutoff, dry_run)
}

/// Writes the reflog again without the entries `drop` picks, as a new chain moved in by
/// compare-and-swap (read afresh when another run appended meanwhile); the old blocks become
/// garbage. `(dropped, kept)`; a dry run only counts.
pub(crate) fn rewrite_without(
    repo: &Repo,
    drop: &dyn Fn(&RefEntry) -> bool,
    dry_run: bool,
) -> Result<(usize, usize)> {
    loop {
        let old_head = head(repo)?;
        let all = entries(repo)?;
        let keep: Vec<RefEntry> = all.iter().filter(|e| !drop(e)).cloned().collect();
        let dropped = all.len() - keep.len();
        if dry_run || dropped == 0 {
            return Ok((dropped, keep.len()));
        }
        let mut previous = None;
        for part in keep.chunks(PER_BLOCK) {
            let block = ReflogBlock {
                previous,
                entries: part.to_vec(),
            };
            previous = Some(repo.put_block(Kind::Reflog, &encode(&block))?.0);
        }
        let new_head = match previous {
            Some(k) => k,
            // Nothing left: an empty block, so that the tag still names a reflog.
            None => {
                repo.put_block(Kind::Reflog, &encode(&ReflogBlock::default()))?
                    .0
            }
        };
        repo.backend().flush()?;
        if swap_head(repo, old_head, new_head, None)? {
            return Ok((dropped, keep.len()));
        }
    }
}

/// Moving tags: every move is recorded here, so the methods that move a tag live beside the
/// reflog rather than in [`crate::core::repo`] (which knows nothing of the reflog).
impl Repo {
    /// Moves a tag from `expected` to `new` (compare-and-swap) and records the move in the
    /// reflog as done by `action`; `false` when the tag had moved meanwhile (nothing changed).
    pub fn move_tag(
        &self,
        name: &str,
        expected: Option<Key>,
        new: Key,
        action: &str,
    ) -> Result<bool> {
        self.move_tag_with(name, expected, new, action, None)
    }

    /// [`Repo::move_tag`], recording the move from the reflog head read ahead by `ahead`.
    pub fn move_tag_with(
        &self,
        name: &str,
        expected: Option<Key>,
        new: Key,
        action: &str,
        ahead: Option<HeadAhead>,
    ) -> Result<bool> {
        if !self.swap_tag(name, expected, new)? {
            return Ok(false);
        }
        let entry = RefEntry::now(name, expected, Some(new), action);
        self.record_move(name, expected, new, append_with(self, &[entry], ahead));
        Ok(true)
    }

    /// [`Repo::move_tag`] when the block recording the move was staged ([`stage`]) and is
    /// already stored and flushed with the blocks the move names: the reflog then costs one
    /// tag move more, no block and no flush of its own. When its head moved meanwhile (another
    /// run recorded a move), the move is recorded afresh. `staged` must record exactly this
    /// move, or it is not used.
    pub fn move_tag_staged(
        &self,
        name: &str,
        expected: Option<Key>,
        new: Key,
        action: &str,
        staged: Option<Staged>,
    ) -> Result<bool> {
        if !self.swap_tag(name, expected, new)? {
            return Ok(false);
        }
        let this_move = |e: &RefEntry| {
            e.tag == name && e.old == expected && e.new == Some(new) && e.action == action
        };
        let recorded = match staged {
            Some(s) if s.entries.len() == 1 && this_move(&s.entries[0]) => {
                swap_head(self, s.old_head, s.key, Some(&s.plain))
            }
            _ => Ok(false),
        };
        let result = match recorded {
            Ok(true) => Ok(()),
            _ => append(self, &[RefEntry::now(name, expected, Some(new), action)]),
        };
        self.record_move(name, expected, new, result);
        Ok(true)
    }

    /// Warns (and counts, for the exit status) when a move made could not be recorded.
    fn record_move(&self, name: &str, expected: Option<Key>, new: Key, recorded: Result<()>) {
        if let Err(e) = recorded {
            note_unrecorded_move();
            protocol::log::warning(&format!(
                "tag {name} now names {new} (it named {}), but the move could not be added \
                 to the reflog: {e}; the snapshot is stored, but `ore reflog` will not list \
                 this move",
                expected.map_or_else(|| "nothing".to_string(), |k| k.to_hex())
            ));
        }
    }
}
