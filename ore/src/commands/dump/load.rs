//! The reading side of the dump stream: `ore load` (FORMAT.md §11).
//!
//! A stream comes from outside the archive — a file someone sent, a pipe from another host —
//! so nothing in it is trusted before it is checked: a record's length against the limit
//! before anything is allocated (its payload grows as its bytes arrive), a file's data and
//! holes against the size its entry declared before they are hashed or stored, names and
//! hard-link targets against the rules every reader of an archive holds them to
//! ([`crate::core::names`]), nesting against [`crate::core::depth::MAX_DEPTH`], each file's hash as it
//! ends, and the trailer before any tag moves.

use super::*;
use file::load_file;

mod file;

/// Reads records, hashing everything it reads.
pub(super) struct Records<R> {
    pub(super) inner: R,
    hash: blake3::Hasher,
    /// Where the last entry was, for errors.
    pub(super) at: String,
}

impl<R: Read> Records<R> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::Usage(format!(
                    "the dump ends early (last entry read: {})",
                    self.at
                ))
            } else {
                Error::Local(format!("reading the dump: {e}"))
            }
        })?;
        self.hash.update(buf);
        Ok(())
    }

    /// The next record; the hash of everything before it comes along for the trailer.
    pub(super) fn next(&mut self) -> Result<(u8, Vec<u8>, [u8; 32])> {
        let before = *self.hash.finalize().as_bytes();
        let mut head = [0u8; 5];
        self.exact(&mut head)?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if len > MAX_RECORD {
            return Err(self.bad(format!("a record of {len} bytes (at most {MAX_RECORD})")));
        }
        // Grown as bytes arrive, not allocated at the size the record claims.
        let mut payload = Vec::new();
        let got = (&mut self.inner)
            .take(u64::from(len))
            .read_to_end(&mut payload)
            .map_err(|e| Error::Local(format!("reading the dump: {e}")))?;
        if got < len as usize {
            return Err(Error::Usage(format!(
                "the dump ends early (last entry read: {})",
                self.at
            )));
        }
        self.hash.update(&payload);
        Ok((head[0], payload, before))
    }

    pub(super) fn bad(&self, what: String) -> Error {
        Error::Usage(format!("the dump is damaged near {}: {what}", self.at))
    }
}

/// Where `load` stores blocks: tree blocks one at a time, chunks in batches (one `exists` for
/// a window of chunks, then puts in flight, settled every [`IN_FLIGHT`] and at the end).
pub(super) struct RepoStore<'r> {
    pub(super) repo: &'r Repo,
    pub(super) pending: Vec<protocol::Ticket<()>>,
}

/// Chunk puts in flight before `load` waits for them.
const IN_FLIGHT: usize = 256;

impl Store for RepoStore<'_> {
    fn store(&mut self, kind: Kind, plain: &[u8]) -> Result<Key> {
        Ok(self.repo.put_block(kind, plain)?.0)
    }
}

impl RepoStore<'_> {
    /// Stores the chunks `cuts` of `data` that the archive lacks; returns their keys.
    fn chunks(&mut self, data: &[u8], cuts: &[(usize, usize)]) -> Result<Vec<Key>> {
        let repo = self.repo;
        let keys: Vec<Key> = cuts
            .iter()
            .map(|&(o, l)| repo.keys().key_of(Kind::Chunk as u8, &data[o..o + l]))
            .collect();
        if keys.is_empty() {
            return Ok(keys);
        }
        let present = repo.backend().exists(&keys)?;
        let mut sent = std::collections::HashSet::new();
        for (i, &(o, l)) in cuts.iter().enumerate() {
            if present.get(i) == Some(&true) || !sent.insert(keys[i]) {
                continue;
            }
            let sealed = repo.seal(Kind::Chunk, &keys[i], &data[o..o + l], repo.compression())?;
            let len = sealed.len() as u64;
            self.pending.push(repo.backend().start_put(keys[i], sealed));
            repo.stored(len)?;
            if self.pending.len() >= IN_FLIGHT {
                self.settle()?;
            }
        }
        Ok(keys)
    }

    /// Waits for every put in flight.
    pub(super) fn settle(&mut self) -> Result<()> {
        for t in self.pending.drain(..) {
            t.wait()?;
        }
        Ok(())
    }
}

/// A directory being rebuilt.
struct Frame {
    meta: DumpEntry,
    path: String,
    /// The path's bytes as they are (`path` is for messages).
    raw: Vec<u8>,
    entries: Builder<DirTree>,
    last: Option<Vec<u8>>,
}

/// What `load` made of a stream.
#[derive(Debug)]
pub enum Loaded {
    /// A snapshot stream: the new snapshot, chained onto the tag's current one.
    Snapshot {
        key: Key,
        snapshot: Box<Snapshot>,
        stats: DumpStats,
    },
    /// An archive tag's stream: its objects, filed on the tag.
    Archive {
        head: Key,
        objects: u64,
        stats: DumpStats,
    },
}

/// Reads a dump stream from `input` and stores it on `tag`: a snapshot's as a new snapshot
/// (chained onto the tag's current snapshot), an archive tag's as objects filed on the tag
/// ([`super::archive`]).
pub fn load(repo: &Repo, tag: &str, input: &mut dyn Read) -> Result<Loaded> {
    crate::core::format::check_user_tag(tag)?;
    let _lease = crate::core::lease::Lease::acquire(repo)?;
    let mut r = Records {
        inner: std::io::BufReader::with_capacity(1 << 20, input),
        hash: blake3::Hasher::new(),
        at: "the start".into(),
    };
    let version = read_magic(&mut r)?;
    if version == super::archive::ARCHIVE {
        let (head, objects, stats) = super::archive::load_archive(repo, tag, &mut r)?;
        return Ok(Loaded::Archive {
            head,
            objects,
            stats,
        });
    }
    // A snapshot on an archive tag would make it a snapshot tag that names no chain of its
    // own: refused before anything is stored.
    if let Ok(Some(_)) = crate::core::objects::head_of(repo, tag) {
        return Err(Error::Usage(format!(
            "{tag} is an archive tag, and this stream holds a snapshot: load it onto a snapshot tag"
        )));
    }
    let (kind, payload, _) = r.next()?;
    if kind != HEADER {
        return Err(r.bad(format!("record kind {kind} where the header belongs")));
    }
    let (header, rest): (Header, &[u8]) =
        postcard::take_from_bytes(&payload).map_err(|e| r.bad(format!("header: {e}")))?;
    // Version 3: the labels follow, checked as `--label` checks them.
    let labels = match version {
        3.. => labels(rest).map_err(|why| r.bad(format!("header's labels: {why}")))?,
        _ => Vec::new(),
    };
    let mut tree = Rebuild::new(repo, version, None);
    let root = tree.read_tree(&mut r)?;
    trailer(&mut r)?;
    tree.store.settle()?;
    repo.backend().flush()?;
    let snap = Snapshot {
        previous: Vec::new(),
        root,
        time: header.time,
        host: header.host,
        user: header.user,
        tag: tag.to_string(),
        paths: header.paths,
        comment: header.comment,
        stats: header.stats,
        warnings: header.warnings,
        warnings_total: header.warnings_total,
        labels,
    };
    loop {
        let parent = repo.tag(tag)?;
        let chained = repo.chained(&snap, parent.into_iter().collect());
        repo.put_chained_durably(&chained, &[])?;
        if repo.move_tag(tag, parent, chained.node, "load")? {
            return Ok(Loaded::Snapshot {
                key: chained.key,
                snapshot: Box::new(snap),
                stats: tree.stats,
            });
        }
    }
}

/// The labels at the end of a version-3 header, each valid as `--label` takes it, at most
/// [`crate::core::labels::MAX_LABELS`] and each key once; nothing may follow them.
fn labels(bytes: &[u8]) -> std::result::Result<Vec<crate::core::labels::Label>, String> {
    use crate::core::labels::{check, parse, Label};
    let (labels, rest): (Vec<Label>, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after them", rest.len()));
    }
    for l in &labels {
        let again = parse(&format!("{}={}", l.key, l.value)).map_err(|e| e.to_string())?;
        if again != *l {
            return Err(format!("the key {:?} is not a label key", l.key));
        }
    }
    check(&labels).map_err(|e| e.to_string())?;
    Ok(labels)
}

/// Reads the trailer, whose checksum must match everything before it, and checks that
/// nothing follows it.
pub(super) fn trailer<R: Read>(r: &mut Records<R>) -> Result<()> {
    let (kind, payload, before) = r.next()?;
    if kind != TRAILER {
        return Err(r.bad(format!(
            "record kind {kind} where the trailer belongs (after the root directory ended)"
        )));
    }
    ended(r, &payload, &before)
}

/// The end of a stream, at a trailer record holding `payload`: it must be the checksum
/// `before` of everything before it, and nothing may follow it.
pub(super) fn ended<R: Read>(r: &mut Records<R>, payload: &[u8], before: &[u8; 32]) -> Result<()> {
    if payload != before.as_slice() {
        return Err(Error::Usage(
            "the dump's checksum does not match its contents: it was damaged; nothing was added to the tag"
                .into(),
        ));
    }
    let mut extra = [0u8; 1];
    if r.inner
        .read(&mut extra)
        .map_err(|e| Error::Local(format!("reading the dump: {e}")))?
        != 0
    {
        return Err(Error::Usage("the dump has bytes after its trailer".into()));
    }
    Ok(())
}

/// Reads the stream's magic; returns its version, refusing one this ore does not read.
fn read_magic<R: Read>(r: &mut Records<R>) -> Result<u8> {
    let mut magic = [0u8; 9];
    r.exact(&mut magic)?;
    if &magic[..8] != MAGIC {
        return Err(Error::Usage(
            "this is not an Ore dump stream (bad magic)".into(),
        ));
    }
    let version = magic[8];
    if !(OLDEST..=super::archive::ARCHIVE).contains(&version) {
        return Err(Error::Usage(format!(
            "this dump is version {version}; this ore reads versions {OLDEST} to {}",
            super::archive::ARCHIVE
        )));
    }
    Ok(version)
}

/// Whether a file may be catalogued here; when not, the error to make (given the file's
/// place and the message) and the message.
pub(super) type MayCatalogue = std::result::Result<(), (fn(String) -> Error, String)>;

/// The snapshot's tree, rebuilt from the stream's records into the archive: the directories
/// open above the current entry, and the root once its directory has ended.
pub(super) struct Rebuild<'r> {
    repo: &'r Repo,
    /// The stream's version (how a file's hash covers holes).
    version: u8,
    pub(super) store: RepoStore<'r>,
    stack: Vec<Frame>,
    root: Option<Entry>,
    pub(super) stats: DumpStats,
    /// For an archive tag's stream: each regular file of the tree being read, by path, with
    /// its content id under this archive's keys (`core::filelist`).
    pub(super) files: Option<Vec<crate::core::filelist::FileRef>>,
    /// Whether the stream's content ids are this archive's (they were made under the same
    /// keys), so that a catalogued file's id may be kept.
    pub(super) same_ids: bool,
    /// Where each file of `files` is in it, by path, for the hard links that name it.
    pub(super) listed: std::collections::HashMap<Vec<u8>, usize>,
    /// The object being read is a catalogue: its files may be catalogued.
    pub(super) catalogue: bool,
    /// The tree being read is an archive object's, whose root may be one regular file
    /// (`--each`: FORMAT.md, "Archive objects").
    pub(super) file_root: bool,
    /// Hard links met in the tree being read, and the paths they name.
    links: Vec<(Vec<u8>, Vec<u8>)>,
    /// Bytes of holes whose zeros may still be hashed for content ids in this stream: a
    /// stream may declare exabytes of them.
    pub(super) hole_budget: u64,
}

impl<'r> Rebuild<'r> {
    pub(super) fn new(repo: &'r Repo, version: u8, files: Option<bool>) -> Rebuild<'r> {
        Rebuild {
            repo,
            version,
            store: RepoStore {
                repo,
                pending: Vec::new(),
            },
            stack: Vec::new(),
            root: None,
            stats: DumpStats::default(),
            files: files.map(|_| Vec::new()),
            same_ids: files.unwrap_or(false),
            listed: Default::default(),
            links: Vec::new(),
            catalogue: false,
            file_root: false,
            hole_budget: crate::core::filelist::ID_HOLES,
        }
    }

    /// Whether a catalogued file may be in the tree being read: only in a catalogue object
    /// (`catalogue`), and only when its id was made with this archive's keys.
    /// When not, the error to make (given the file's place and the message) and the message.
    fn ids(&self) -> MayCatalogue {
        match (self.catalogue, self.same_ids) {
            (false, _) => Err((
                Error::Usage,
                "a file holds no data, but its object is no catalogue".into(),
            )),
            (true, false) => Err((
                Error::ForeignIds,
                format!(
                    "is a file of a catalogue object, {}, which this archive cannot check or \
                     use: load the stream into an archive that shares the source's keys \
                     (`ore init --from`)",
                    super::archive::FOREIGN_IDS
                ),
            )),
            (true, true) => Ok(()),
        }
    }

    /// Reads the records of one tree, up to the end of its root directory; returns the root.
    pub(super) fn read_tree<R: Read>(&mut self, r: &mut Records<R>) -> Result<Entry> {
        loop {
            let (kind, payload, _) = r.next()?;
            match kind {
                ENTRY => self.entry(r, &payload)?,
                DIR_END => self.dir_end(r)?,
                TRAILER => return Err(r.bad("the stream ended inside a directory".into())),
                k => return Err(r.bad(format!("record kind {k} where an entry belongs"))),
            }
            if let Some(root) = self.root.take() {
                if let Some(files) = &mut self.files {
                    for (path, target) in self.links.drain(..) {
                        if let Some(&i) = self.listed.get(&target) {
                            let again = crate::core::filelist::FileRef {
                                path,
                                ..files[i].clone()
                            };
                            files.push(again);
                        }
                    }
                }
                return Ok(root);
            }
        }
    }

    /// One entry record: checked, then a directory opened, or a file's data stored, or any
    /// other entry added to the directory it is in.
    fn entry<R: Read>(&mut self, r: &mut Records<R>, payload: &[u8]) -> Result<()> {
        if self.root.is_some() {
            return Err(r.bad("an entry after the root directory ended".into()));
        }
        let de: DumpEntry =
            postcard::from_bytes(payload).map_err(|e| r.bad(format!("entry: {e}")))?;
        self.stats.entries += 1;
        // An object's root that is a file is listed by its name, as `--each` lists it.
        let file_root = self.file_root && matches!(de.kind, DumpKind::File { .. });
        let path = match self.stack.last() {
            Some(f) if f.path.is_empty() => show(&de.name),
            Some(f) => format!("{}/{}", f.path, show(&de.name)),
            None if file_root => show(&de.name),
            None => String::new(),
        };
        let raw = match self.stack.last() {
            Some(f) if f.raw.is_empty() => de.name.clone(),
            Some(f) => [&f.raw[..], b"/", &de.name].concat(),
            None if file_root => de.name.clone(),
            None => Vec::new(),
        };
        r.at = if path.is_empty() {
            "/".into()
        } else {
            path.clone()
        };
        let parent = self.stack.last().map(|f| f.last.as_deref());
        check_entry(&de, parent, self.file_root).map_err(|why| r.bad(why))?;
        if let Some(f) = self.stack.last_mut() {
            f.last = Some(de.name.clone());
        }
        let entry_kind = match &de.kind {
            DumpKind::Dir => {
                // Each level keeps its path: bounded depth keeps that memory linear.
                if self.stack.len() >= MAX_DEPTH {
                    return Err(r.bad(format!("directories nested more than {MAX_DEPTH} deep")));
                }
                self.stack.push(Frame {
                    meta: de,
                    path,
                    raw,
                    entries: Builder::default(),
                    last: None,
                });
                return Ok(());
            }
            DumpKind::File { size } => {
                let ids = self.ids();
                let (content, id) = load_file(
                    self.repo,
                    r,
                    &mut self.store,
                    (*size, self.version, self.files.is_some(), ids),
                    (&mut self.stats, &mut self.hole_budget),
                )?;
                if let Some(files) = &mut self.files {
                    self.listed.insert(raw.clone(), files.len());
                    files.push(crate::core::filelist::FileRef {
                        path: raw,
                        size: *size,
                        id,
                    });
                }
                EntryKind::File {
                    size: *size,
                    content,
                }
            }
            DumpKind::Symlink(t) => EntryKind::Symlink { target: t.clone() },
            DumpKind::Hardlink(t) => {
                // The file it names is listed again under this name (as an import lists it)
                // once the tree is read: it may come later in the stream.
                if self.files.is_some() {
                    self.links.push((raw, t.clone()));
                }
                EntryKind::Hardlink { target: t.clone() }
            }
            DumpKind::Fifo => EntryKind::Fifo,
            DumpKind::Socket => EntryKind::Socket,
            DumpKind::CharDevice(rdev) => EntryKind::CharDevice { rdev: *rdev },
            DumpKind::BlockDevice(rdev) => EntryKind::BlockDevice { rdev: *rdev },
        };
        let e = entry(de, entry_kind);
        match self.stack.last_mut() {
            Some(f) => f.entries.push(e, &mut self.store)?,
            // A root that is a file (`check_entry` let no other kind through).
            None => self.root = Some(e),
        }
        Ok(())
    }

    /// The end of a directory: its tree stored, and its entry added to its parent (or made
    /// the root).
    fn dir_end<R: Read>(&mut self, r: &mut Records<R>) -> Result<()> {
        let f = self
            .stack
            .pop()
            .ok_or_else(|| r.bad("a directory ends that never began".into()))?;
        let tree = f.entries.finish(&mut self.store)?;
        let e = entry(f.meta, EntryKind::Dir { tree });
        match self.stack.last_mut() {
            Some(parent) => parent.entries.push(e, &mut self.store)?,
            None => self.root = Some(e),
        }
        Ok(())
    }
}

/// Checks an entry of the stream as [`crate::core::entry`] checks one read from an archive: the
/// root (no parent) is a directory named like a snapshot's root, or where `file_root` allows
/// it (an archive object's tree), a regular file with a name; any other entry's name and
/// hard-link target pass [`check_name`](crate::core::entry::check_name), and its name sorts after
/// the name before it in its directory (`prev`).
fn check_entry(
    de: &DumpEntry,
    parent: Option<Option<&[u8]>>,
    file_root: bool,
) -> std::result::Result<(), String> {
    use crate::core::entry::{check_name, quoted};
    let Some(prev) = parent else {
        if file_root && matches!(de.kind, DumpKind::File { .. }) {
            check_name(&de.name)
                .map_err(|why| format!("the root file's name {} {why}", quoted(&de.name)))?;
            return crate::core::entry::check_details(&de.name, &EntryKind::Fifo, &de.xattrs);
        }
        if !matches!(de.kind, DumpKind::Dir) {
            return Err("the root is not a directory".into());
        }
        if !de.name.is_empty() {
            check_name(&de.name)
                .map_err(|why| format!("the root's name {} {why}", quoted(&de.name)))?;
        }
        return crate::core::entry::check_details(&de.name, &EntryKind::Fifo, &de.xattrs);
    };
    check_name(&de.name).map_err(|why| format!("an entry's name {} {why}", quoted(&de.name)))?;
    if let Some(prev) = prev {
        if prev >= de.name.as_slice() {
            return Err(format!(
                "the name {} follows {} in its directory (names must be sorted, each once)",
                quoted(&de.name),
                quoted(prev)
            ));
        }
    }
    let kind = match &de.kind {
        DumpKind::Hardlink(t) => EntryKind::Hardlink { target: t.clone() },
        DumpKind::Symlink(t) => EntryKind::Symlink { target: t.clone() },
        _ => EntryKind::Fifo,
    };
    crate::core::entry::check_details(&de.name, &kind, &de.xattrs)
}

fn entry(de: DumpEntry, kind: EntryKind) -> Entry {
    Entry {
        name: de.name,
        kind,
        mode: de.mode,
        uid: de.uid,
        gid: de.gid,
        user: de.user,
        group: de.group,
        mtime: de.mtime,
        atime: de.atime,
        ctime: de.ctime,
        xattrs: de.xattrs,
    }
}
