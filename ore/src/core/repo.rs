//! An opened archive: the backend, the keys, the format — and reading and writing blocks.
//!
//! Every command goes through [`Repo`]: it checks the format record, unlocks the master key,
//! and turns plaintext into stored blocks and back ([`crate::core::block`]), naming the block and its
//! kind in every error.

use crate::core::block::{self, Compression, Kind, Plain};
use crate::core::crypto::{random, KdfParams, KeySlot, Keys};
use crate::core::entry::decode;
use crate::core::error::{Error, Result};
use crate::core::format::{
    parse_tag_value, ChunkerParams, FormatRecord, FORMAT_TAG, FORMAT_VERSION,
};
use crate::core::formatcopy::{read_format, read_format_begun};
use crate::core::unlock::Unlock;
use protocol::{Backend, CasOutcome, Key};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Where passphrases come from: called with a prompt, returns the passphrase.
pub type Passphrase<'a> = &'a dyn Fn(&str) -> Result<Vec<u8>>;

/// How to create an archive.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub encrypt: bool,
    pub chunker: ChunkerParams,
    pub compression: String,
    /// Key derivation parameters for the first slot (tests use cheap ones).
    pub kdf: KdfParams,
    /// The format version ([`FORMAT_VERSION`]; an older one for archives that older `ore`s on
    /// other machines must still read).
    pub format: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            encrypt: true,
            chunker: ChunkerParams::default(),
            compression: "zstd:3".into(),
            kdf: KdfParams::new_default(),
            format: FORMAT_VERSION,
        }
    }
}

/// An opened archive. Its parts are read through methods ([`Repo::backend`], [`Repo::keys`],
/// …): only opening, creating and [`Repo::update_format`] change them.
pub struct Repo {
    backend: Arc<dyn Backend>,
    /// The identifier it was opened with (for messages).
    id: String,
    /// The keys, known or being derived (see [`crate::core::unlock`]).
    unlock: Unlock,
    format: FormatRecord,
    format_key: Key,
    compression: Compression,
    /// Bytes stored since the last checkpoint (see [`Repo::stored`]).
    since_checkpoint: std::sync::atomic::AtomicU64,
    checkpoint_every: u64,
    /// Inner nodes of archive tags' indexes read so far (see [`Repo::inner_node`]).
    inner_nodes: crate::core::plaincache::PlainCache,
    /// Blocks implied, not stored (`core::implied`).
    implied: crate::core::implied::Implied,
}

/// Bytes of inner index nodes a [`Repo`] keeps once read.
const INNER_NODES_KEPT: u64 = 16 << 20;

impl Repo {
    /// The plaintext of inner index node `key`, read once and then kept: every look-up of an
    /// object in an archive tag's index walks from the root through the same few inner nodes
    /// (a search that shows 991 objects of a million read each of them 991 times). Blocks are
    /// immutable and checked when read, so a kept one is as good as a fresh read. At most
    /// [`INNER_NODES_KEPT`] bytes are kept, the least recently used given up first.
    pub fn inner_node(&self, key: Key) -> Result<Arc<Vec<u8>>> {
        self.inner_nodes.get(key, || {
            Ok(self.get_block(key, Kind::IndexInner)?.data().to_vec())
        })
    }
}

/// A tag being read in the background (see [`Repo::tag_ahead`]).
pub struct TagAhead(
    String,
    std::thread::JoinHandle<protocol::Result<Option<Vec<u8>>>>,
);

impl TagAhead {
    /// The snapshot the tag names, if it exists.
    pub fn wait(self) -> Result<Option<Key>> {
        let value = self
            .1
            .join()
            .map_err(|_| Error::Archive(format!("reading tag {} failed", self.0)))??;
        Repo::tag_value(&self.0, value)
    }
}

/// Bytes stored between checkpoints by default.
pub const CHECKPOINT_DEFAULT: u64 = 256 << 20;

/// The checkpoint interval: `ORE_CHECKPOINT` (a size such as `64M`) or the default.
fn checkpoint_every() -> u64 {
    std::env::var("ORE_CHECKPOINT")
        .ok()
        .and_then(|v| crate::core::util::parse_size(&v))
        .filter(|&n| n > 0)
        .unwrap_or(CHECKPOINT_DEFAULT)
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn creator() -> String {
    format!(
        "{}@{}",
        crate::core::meta::username(),
        crate::core::util::hostname()
    )
}

impl Repo {
    /// Creates a new archive in an empty backend.
    pub fn init(
        backend: Arc<dyn Backend>,
        id: &str,
        opts: &InitOptions,
        passphrase: Passphrase,
    ) -> Result<Repo> {
        Repo::create(backend, id, opts, random::<32>(), passphrase)
    }

    /// Creates a new archive that shares `source`'s master key, chunker and compression, so
    /// that blocks copied between the two (`ore sync`) keep their keys and bytes. Only the key
    /// slots (passphrases) and the archive id are its own.
    pub fn init_from(
        backend: Arc<dyn Backend>,
        id: &str,
        source: &Repo,
        kdf: KdfParams,
        format: u32,
        passphrase: Passphrase,
    ) -> Result<Repo> {
        let opts = InitOptions {
            encrypt: source.format.encrypted(),
            chunker: source.format.chunker,
            compression: source.format.compression.clone(),
            kdf,
            format,
        };
        Repo::create(backend, id, &opts, source.unlock.get()?.master, passphrase)
    }

    /// Whether blocks of `other` can be copied into this archive as they are stored: both
    /// derive their keys from the same master key, the same way.
    pub fn shares_keys(&self, other: &Repo) -> bool {
        match (self.unlock.get(), other.unlock.get()) {
            (Ok(a), Ok(b)) => {
                a.master == b.master && self.format.encrypted() == other.format.encrypted()
            }
            _ => false,
        }
    }

    fn create(
        backend: Arc<dyn Backend>,
        id: &str,
        opts: &InitOptions,
        master: [u8; 32],
        passphrase: Passphrase,
    ) -> Result<Repo> {
        if let Some((_, f)) = read_format(&*backend, id)? {
            return Err(Error::Archive(format!(
                "archive {id} is already initialised (archive id {})",
                f.archive_id
            )));
        }
        // Never a new record over an archive that lost its own (`format::missing`).
        crate::core::format::check_empty(&*backend, id)?;
        opts.chunker.check()?;
        crate::core::format::parse_compression(&opts.compression)?;
        if !(crate::core::format::OLDEST_FORMAT..=FORMAT_VERSION).contains(&opts.format) {
            return Err(Error::Usage(format!(
                "format version {}: this ore writes versions {} to {FORMAT_VERSION}",
                opts.format,
                crate::core::format::OLDEST_FORMAT
            )));
        }
        let mut record = FormatRecord {
            format: opts.format,
            archive_id: hex::encode(random::<16>()),
            created: crate::core::util::now_ns() / 1_000_000_000,
            chunker_algorithm: "fastcdc-2020".into(),
            chunker: opts.chunker,
            compression: opts.compression.clone(),
            encryption: if opts.encrypt { "aes-256-gcm" } else { "none" }.into(),
            key_slots: Vec::new(),
            master_key: None,
            reflog_keep: None,
        };
        let mut slot = None;
        if opts.encrypt {
            let pass = passphrase("New passphrase: ")?;
            let s = KeySlot::wrap(&master, &pass, opts.kdf.clone(), creator())?;
            slot = Some(s.id.clone());
            record.key_slots.push(s);
        } else {
            record.master_key = Some(hex::encode(master));
        }
        let key = write_format(&*backend, None, &record)?;
        let unlock = Unlock::known(master, slot, opts.encrypt);
        Repo::assemble(backend, id, key, record, unlock)
    }

    /// Opens an existing archive, asking for a passphrase when it is encrypted.
    pub fn open(backend: Arc<dyn Backend>, id: &str, passphrase: Passphrase) -> Result<Repo> {
        Repo::open_by(backend, id, passphrase, Unlock::now)
    }

    /// Opens an existing archive like [`Repo::open`], asking for the passphrase now but
    /// deriving its keys in the background: the first use of the keys waits for them, and
    /// fails with [`Error::WrongPassphrase`] for a wrong passphrase. For a snapshot, which has
    /// a lease to take and a tree to walk before it needs a key. A caller checks
    /// [`Repo::unlocked`] before it relies on [`Repo::keys`].
    pub fn open_unlocking(
        backend: Arc<dyn Backend>,
        id: &str,
        passphrase: Passphrase,
    ) -> Result<Repo> {
        Repo::open_by(backend, id, passphrase, Unlock::start)
    }

    fn open_by(
        backend: Arc<dyn Backend>,
        id: &str,
        passphrase: Passphrase,
        unlock: fn(&FormatRecord, &str, Passphrase) -> Result<Unlock>,
    ) -> Result<Repo> {
        let (key, record, check) = read_format_begun(&*backend, id)?
            .ok_or_else(|| crate::core::format::missing_error(&*backend, id))?;
        let unlocked = unlock(&record, id, passphrase);
        // Finished whatever the passphrase did: a record missing from the archive is stored
        // again even by a run that then stops at a wrong passphrase, as it was before the
        // check moved after the key derivation.
        if let Some(c) = check {
            c.finish(&*backend, id);
        }
        Repo::assemble(backend, id, key, record, unlocked?)
    }

    fn assemble(
        backend: Arc<dyn Backend>,
        id: &str,
        format_key: Key,
        format: FormatRecord,
        unlock: Unlock,
    ) -> Result<Repo> {
        Ok(Repo {
            unlock,
            compression: format.compression()?,
            backend,
            id: id.to_string(),
            format,
            format_key,
            since_checkpoint: std::sync::atomic::AtomicU64::new(0),
            checkpoint_every: checkpoint_every(),
            inner_nodes: crate::core::plaincache::PlainCache::new(INNER_NODES_KEPT),
            implied: Default::default(),
        })
    }

    /// The blocks it implies but does not store (`core::implied`).
    pub fn implied(&self) -> &crate::core::implied::Implied {
        &self.implied
    }

    /// The backend the archive lives in.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The identifier it was opened with (for messages).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The keys derived from the master key, waiting for them if they are being derived.
    ///
    /// # Panics
    ///
    /// On an archive opened with [`Repo::open_unlocking`] whose passphrase turned out wrong:
    /// such a caller asks [`Repo::unlocked`] (or a method that returns an error) first.
    pub fn keys(&self) -> &Keys {
        match self.unlock.get() {
            Ok(u) => &u.keys,
            Err(e) => panic!(
                "the keys of archive {} were used after unlocking failed: {e}",
                self.id
            ),
        }
    }

    /// The keys, or the error that unlocking ended in (a wrong passphrase), waiting for them
    /// if they are being derived.
    pub fn try_keys(&self) -> Result<&Keys> {
        Ok(&self.unlock.get()?.keys)
    }

    /// Waits until the keys are known: an error for a wrong passphrase.
    pub fn unlocked(&self) -> Result<()> {
        self.unlock.get().map(|_| ())
    }

    /// The format record as read (or last written by [`Repo::update_format`]).
    pub fn format(&self) -> &FormatRecord {
        &self.format
    }

    /// The key of the format record's block, which tag `ore-format` names.
    pub fn format_key(&self) -> Key {
        self.format_key
    }

    /// How new blocks are compressed.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The id of the key slot whose passphrase opened it (`None` when unencrypted).
    pub fn slot(&self) -> Option<&str> {
        self.unlock.get().ok().and_then(|u| u.slot.as_deref())
    }

    /// Counts `bytes` just sent to the archive, and flushes it each time another checkpoint's
    /// worth (`ORE_CHECKPOINT`, 256 MiB by default) has been sent. Long runs (snapshot, sync,
    /// load) call this for every block they put: a backend may keep blocks it has accepted but
    /// not flushed only until it crashes, and a checkpoint bounds what an interrupted run must
    /// send again — the re-run finds everything before the last checkpoint already stored.
    pub fn stored(&self, bytes: u64) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let every = self.checkpoint_every;
        let due = self
            .since_checkpoint
            .fetch_update(Relaxed, Relaxed, |n| {
                Some(if n + bytes >= every { 0 } else { n + bytes })
            })
            .is_ok_and(|n| n + bytes >= every);
        if due {
            self.backend.flush()?;
        }
        Ok(())
    }

    /// Replaces the format record with `record`, compare-and-swap on the tag. Only under a
    /// lease: [`Repo::update_format`] (in [`crate::core::lease`]) takes one and calls this.
    /// Sets the archive's reflog retention (`keep`: an age or `never`; `None` for the
    /// default), storing a new format record.
    pub fn set_reflog_keep(&mut self, keep: Option<&str>) -> Result<()> {
        if let Some(k) = keep {
            crate::core::format::parse_reflog_keep(k)?;
        }
        let mut record = self.format.clone();
        record.reflog_keep = keep.map(String::from);
        self.replace_format(record)
    }

    /// Moves the archive to format version [`FORMAT_VERSION`], storing a new format record;
    /// `false` when it is there already. Nothing else is written: chains made before stay as
    /// they are, readable as ever, and new snapshots and `forget` add links to them. An `ore`
    /// that reads only older versions refuses the archive from then on.
    pub fn upgrade(&mut self) -> Result<bool> {
        if self.format.format >= FORMAT_VERSION {
            return Ok(false);
        }
        let mut record = self.format.clone();
        record.format = FORMAT_VERSION;
        self.update_format(record)?;
        Ok(true)
    }

    pub(crate) fn replace_format(&mut self, record: FormatRecord) -> Result<()> {
        let key = write_format(&*self.backend, Some(self.format_key), &record)?;
        self.format = record;
        self.format_key = key;
        Ok(())
    }

    /// Moves a tag from `expected` to `new` by compare-and-swap, and nothing else: `false` when
    /// the tag had moved meanwhile. Every move is also recorded in the reflog, so only
    /// [`Repo::move_tag`] (in [`crate::core::reflog`]) calls this.
    pub(crate) fn swap_tag(&self, name: &str, expected: Option<Key>, new: Key) -> Result<bool> {
        let exp = expected.map(|k| k.to_hex());
        let out = self.backend.set_tag(
            name,
            exp.as_deref().map(str::as_bytes),
            new.to_hex().as_bytes(),
        )?;
        Ok(matches!(out, CasOutcome::Done))
    }

    pub fn new_slot(&self, passphrase: &[u8], kdf: KdfParams) -> Result<KeySlot> {
        KeySlot::wrap(&self.unlock.get()?.master, passphrase, kdf, creator())
    }

    /// Slot `id` again, under a new passphrase (`key passwd`: the id a user noted stays).
    pub fn renewed_slot(&self, id: &str, passphrase: &[u8], kdf: KdfParams) -> Result<KeySlot> {
        KeySlot::wrap_as(
            &self.unlock.get()?.master,
            passphrase,
            kdf,
            creator(),
            id.to_string(),
        )
    }

    /// Stores a block unless the archive has it; returns its key and the stored size when it
    /// was new.
    pub fn put_block(&self, kind: Kind, plain: &[u8]) -> Result<(Key, Option<u64>)> {
        let key = self.try_keys()?.key_of(kind as u8, plain);
        if self.backend.exists(&[key])?.first() == Some(&true) {
            return Ok((key, None));
        }
        let out = self.sealed(kind, &key, plain)?;
        let n = out.len() as u64;
        self.backend.put(key, &out)?;
        self.stored(n)?;
        Ok((key, Some(n)))
    }

    /// Stores a small block and flushes the archive: what a commit does just before it moves
    /// a tag. The put and the flush go out together and are waited for together — one round
    /// trip over a slow link instead of three (exists, put, flush). A block already stored is
    /// simply stored again, which the protocol allows, and costs a small block's bytes.
    pub fn put_block_durably(&self, kind: Kind, plain: &[u8]) -> Result<Key> {
        Ok(self.put_blocks_durably(&[(kind, plain)])?[0])
    }

    /// [`Repo::put_block_durably`] for several blocks: all put, then one flush, all waited
    /// for together. Their keys, in order.
    pub fn put_blocks_durably(&self, blocks: &[(Kind, &[u8])]) -> Result<Vec<Key>> {
        let mut keys = Vec::with_capacity(blocks.len());
        let mut puts = Vec::with_capacity(blocks.len());
        for &(kind, plain) in blocks {
            let key = self.try_keys()?.key_of(kind as u8, plain);
            puts.push(self.backend.start_put(key, self.sealed(kind, &key, plain)?));
            keys.push(key);
        }
        let flushed = self.backend.flush();
        for put in puts {
            put.wait()?;
        }
        flushed?;
        Ok(keys)
    }

    /// Stores blocks sealed already ([`Repo::sealed`]), named by their keys: one `exists` for
    /// them all, then the missing ones put, in flight together. What makes many small
    /// blocks sealed on every core (`ore import --each`) cheap to store: one block at a time,
    /// each with its own `exists`, cost more than sealing them.
    pub fn put_sealed(&self, blocks: Vec<(Key, Vec<u8>)>) -> Result<()> {
        let keys: Vec<Key> = blocks.iter().map(|(k, _)| *k).collect();
        let present = self.backend.exists(&keys)?;
        self.put_present(blocks, present)
    }

    /// Stores sealed blocks that are new but for a rare few, without asking which are stored
    /// first: a put of a block the backend holds already is a success that changes nothing
    /// (PROTOCOL.md). `ore import --each` puts its objects so, each named by its own import:
    /// asking about the 46,000 of /usr/share cost 0.1 s and 0.2 CPU-s (medians of eight).
    pub fn put_sealed_new(&self, blocks: Vec<(Key, Vec<u8>)>) -> Result<()> {
        let present = vec![false; blocks.len()];
        self.put_present(blocks, present)
    }

    /// Puts `blocks` but those `present` says are stored, and each key once.
    fn put_present(&self, blocks: Vec<(Key, Vec<u8>)>, present: Vec<bool>) -> Result<()> {
        let mut puts = Vec::new();
        let mut bytes = 0;
        let mut sent = std::collections::HashSet::new();
        for (i, (key, sealed)) in blocks.into_iter().enumerate() {
            if present.get(i) == Some(&true) || !sent.insert(key) {
                continue;
            }
            bytes += sealed.len() as u64;
            puts.push(self.backend.start_put(key, sealed));
        }
        for put in puts {
            put.wait()?;
        }
        self.stored(bytes)
    }

    /// `plain` sealed as a stored block of `kind` named `key`, with this archive's keys and
    /// compression.
    pub fn sealed(&self, kind: Kind, key: &Key, plain: &[u8]) -> Result<Vec<u8>> {
        self.seal(kind, key, plain, self.compression)
    }

    /// Seals `plain` as a block of `kind` whose key is `key`, compressed with `comp` (a
    /// snapshot chooses a chunk's compression per file; [`Repo::sealed`] uses the archive's):
    /// the one place the frontend seals a block.
    pub fn seal(&self, kind: Kind, key: &Key, plain: &[u8], comp: Compression) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plain.len() + plain.len() / 16 + 64);
        block::seal(self.try_keys()?, kind, key, plain, comp, &mut out)?;
        Ok(out)
    }

    /// The backend's answer to `exists` about `asked` keys, once it is known to hold one answer
    /// for each: a backend that answers for fewer or more is wrong, and nothing may be read
    /// into a short answer (a key it skipped would be taken as stored, or as missing).
    pub fn answered(&self, asked: usize, present: Vec<bool>) -> Result<Vec<bool>> {
        if present.len() == asked {
            return Ok(present);
        }
        Err(Error::Archive(format!(
            "archive {}: asked about {asked} keys, the backend answered {}",
            self.id,
            present.len()
        )))
    }

    /// Reads and opens a block, which must be of `kind`.
    pub fn get_block(&self, key: Key, kind: Kind) -> Result<Plain> {
        let stored = fetched(self.backend.get(key), key, kind)?;
        block::open(self.try_keys()?, &key, Some(kind), stored)
    }

    /// Reads and opens a block of whatever kind it is (its kind is in [`Plain::kind`]), for a
    /// tag that may name one of several kinds.
    pub fn get_block_any(&self, key: Key) -> Result<Plain> {
        let stored = fetched(self.backend.get(key), key, Kind::Head)?;
        block::open(self.try_keys()?, &key, None, stored)
    }

    /// Reads a block and decodes it.
    pub fn get<T: DeserializeOwned>(&self, key: Key, kind: Kind) -> Result<T> {
        let stored = fetched(self.backend.get(key), key, kind)?;
        self.decode_stored(key, kind, stored)
    }

    /// Opens the stored bytes of block `key`, which must be of `kind`, and decodes them.
    pub fn decode_stored<T: DeserializeOwned>(
        &self,
        key: Key,
        kind: Kind,
        stored: Vec<u8>,
    ) -> Result<T> {
        let plain = block::open(self.try_keys()?, &key, Some(kind), stored)?;
        decode(plain.data(), &key, kind)
    }

    /// The snapshot a tag names, if the tag exists.
    pub fn tag(&self, name: &str) -> Result<Option<Key>> {
        Self::tag_value(name, self.backend.get_tag(name)?)
    }

    /// Starts reading what a tag names, in the background (so that it costs no round trip of
    /// its own over a slow link); [`TagAhead::wait`] gives [`Repo::tag`]'s answer.
    pub fn tag_ahead(&self, name: &str) -> TagAhead {
        let (backend, n) = (self.backend.clone(), name.to_string());
        TagAhead(
            name.to_string(),
            std::thread::spawn(move || backend.get_tag(&n)),
        )
    }

    fn tag_value(name: &str, value: Option<Vec<u8>>) -> Result<Option<Key>> {
        match value {
            None => Ok(None),
            Some(v) => parse_tag_value(&v).map(Some).ok_or_else(|| {
                Error::Archive(format!(
                    "tag {name} does not hold a snapshot key ({} bytes)",
                    v.len()
                ))
            }),
        }
    }

    /// Every user tag and the snapshot it names.
    pub fn tags(&self) -> Result<Vec<(String, Key)>> {
        let mut out = Vec::new();
        for (name, v) in self.backend.list_tags()? {
            if crate::core::format::is_system_tag(&name) {
                continue;
            }
            if let Some(k) = parse_tag_value(&v) {
                out.push((name, k));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A fetched block's bytes, with "missing" and a backend's own corruption report turned into
/// errors that name the block. So is any other failure the backend answered about this one
/// block (its storage could not read it: a log cut short, a file it may not open): that is
/// damage to this block, reported with the others while the rest of a check or restore goes
/// on, not a failure of the whole connection (which keeps its own error). A backend that says
/// its own store is `unavailable` (an object store that cannot be reached) has said nothing
/// about the block: that error stops the run like a broken connection.
pub fn fetched(r: protocol::Result<Option<Vec<u8>>>, key: Key, kind: Kind) -> Result<Vec<u8>> {
    use protocol::ErrorCode as C;
    match r {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(Error::Missing {
            key,
            kind: kind.name(),
        }),
        Err(e) if e.code() == C::Corrupt => Err(Error::Corrupt {
            key,
            kind: kind.name(),
            why: format!("the backend reports: {e}"),
        }),
        Err(
            e @ (protocol::Error::Io { .. }
            | protocol::Error::Backend {
                code: C::Io | C::Internal | C::Injected | C::Other(_),
                ..
            }),
        ) => Err(Error::Corrupt {
            key,
            kind: kind.name(),
            why: format!("the backend could not read it: {e}"),
        }),
        Err(e) => Err(Error::Backend(e)),
    }
}

/// Whether an error is damage to the archive (a block missing or corrupt), as opposed to a
/// failure to reach it.
pub fn is_damage(e: &Error) -> bool {
    matches!(
        e,
        Error::Missing { .. } | Error::Corrupt { .. } | Error::NotStored { .. }
    )
}

fn write_format(
    backend: &dyn Backend,
    expected: Option<Key>,
    record: &FormatRecord,
) -> Result<Key> {
    let json = serde_json::to_vec_pretty(record).map_err(|e| Error::Archive(e.to_string()))?;
    let (key, stored) = block::seal_format(&json);
    backend.put(key, &stored)?;
    backend.flush()?;
    let exp = expected.map(|k| k.to_hex());
    match backend.set_tag(FORMAT_TAG, exp.as_deref().map(str::as_bytes), key.to_hex().as_bytes())? {
        CasOutcome::Done => {
            crate::core::formatcopy::keep(&key, &stored);
            Ok(key)
        }
        CasOutcome::Conflict { .. } => Err(Error::Archive(
            "the format record was changed by someone else meanwhile; nothing was changed, try again".into(),
        )),
    }
}
