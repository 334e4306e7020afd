//! Crafted snapshots, written block by block with the `ore` library as a compromised writer
//! could: entries exactly as given (no sorting, no checks), for the tests that attack every
//! reader with them (tests/crafted.rs, tests/deep.rs).

use crate::ore::Ore;
use ore::core::block::Kind;
use ore::core::entry::{encode, Content, Entry, EntryKind, Snapshot, SnapshotStats};
use ore::Repo;
use protocol::Key;

/// The test archive of `ore`, opened with its passphrase.
pub fn open(ore: &Ore) -> Repo {
    let backend = ore::core::archive::open_existing(&ore.archive).expect("open the archive");
    let pass = ore.passphrase.clone();
    Repo::open(backend, &ore.archive, &move |_| {
        Ok(pass.as_bytes().to_vec())
    })
    .expect("open")
}

/// An entry of kind `kind` named `name`, mode 0755, owned by root, dated 1970.
pub fn entry(name: &[u8], kind: EntryKind) -> Entry {
    Entry {
        name: name.to_vec(),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        mtime: 0,
        atime: None,
        ctime: None,
        xattrs: Vec::new(),
    }
}

/// A regular file holding `bytes` (one chunk).
pub fn file(repo: &Repo, name: &[u8], bytes: &[u8]) -> Entry {
    let content = if bytes.is_empty() {
        Content::Empty
    } else {
        Content::Chunk(repo.put_block(Kind::Chunk, bytes).expect("put").0)
    };
    entry(
        name,
        EntryKind::File {
            size: bytes.len() as u64,
            content,
        },
    )
}

/// A directory holding `entries` exactly as given (no sorting, no checks).
pub fn dir(repo: &Repo, name: &[u8], entries: Vec<Entry>) -> Entry {
    let tree = repo.put_block(Kind::Dir, &encode(&entries)).expect("put").0;
    entry(name, EntryKind::Dir { tree })
}

/// A directory `home` holding `d/d/…/d/leaf`: `depth` directories named `d` nested one in
/// the next, and a file `leaf` (holding `leaf`) in the innermost.
pub fn nested(repo: &Repo, depth: usize, leaf: &[u8]) -> Entry {
    let mut e = file(repo, b"leaf", leaf);
    for _ in 0..depth {
        e = dir(repo, b"d", vec![e]);
    }
    dir(repo, b"home", vec![e])
}

/// Stores a snapshot of `root` as the first on `tag`; the snapshot's key.
pub fn snapshot(repo: &Repo, tag: &str, root: Entry) -> Key {
    let snap = Snapshot {
        previous: Vec::new(),
        root,
        time: 1_700_000_000_000_000_000,
        host: "crafted".into(),
        user: "crafted".into(),
        tag: tag.into(),
        paths: Vec::new(),
        comment: String::new(),
        stats: SnapshotStats::default(),
        warnings: Vec::new(),
        warnings_total: 0,
        labels: Vec::new(),
    };
    let chained = repo.chained(&snap, Vec::new());
    repo.put_chained_durably(&chained, &[])
        .expect("put snapshot");
    assert!(repo
        .move_tag(tag, None, chained.node, "crafted")
        .expect("tag"));
    chained.key
}
