//! `ore cat SNAPSHOT:PATH` (and `cat` in `ore explore`): a file's contents, in order, a block at
//! a time.
//!
//! A module because the contents of a large file are a tree of index blocks with holes in it
//! (FORMAT.md): the walk reads each chunk as it is reached and writes holes as zeros, so a
//! file of any size goes out in bounded memory. Where the bytes go is the caller's: `write`
//! gets each piece in order.

use crate::core::block::Kind;
use crate::core::entry::{Content, EntryKind, Piece, Snapshot};
use crate::core::error::{Error, Result};
use crate::core::repo::Repo;
use crate::core::tree::{FileTree, Reader};

/// The contents of the regular file at `path` in `snap`.
pub fn find_file(repo: &Repo, snap: &Snapshot, path: &str) -> Result<Content> {
    let e = crate::core::tree::find(repo, &snap.root, path.as_bytes())?;
    let EntryKind::File { content, .. } = e.kind else {
        return Err(Error::Usage(format!(
            "`{path}` is not a regular file in the snapshot"
        )));
    };
    Ok(content)
}

/// Hands a file's contents to `write` in order, a block at a time (holes as zeros, in pieces
/// of at most 1 MiB).
pub fn contents<E: From<Error>>(
    repo: &Repo,
    content: &Content,
    mut write: impl FnMut(&[u8]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    match content {
        Content::Empty => {}
        &Content::Catalogued { id } => return Err(Error::NotStored { id }.into()),
        Content::Chunk(k) => write(repo.get_block(*k, Kind::Chunk)?.data())?,
        &Content::Slice { key, start, len } => {
            let chunk = repo.get_block(key, Kind::Chunk)?;
            write(Piece::Slice { key, start, len }.bytes_of(chunk.data())?)?
        }
        Content::Index(root) => {
            let mut r = Reader::<FileTree>::new(repo, *root);
            let zeros = vec![0u8; 1 << 20];
            while let Some(p) = r.next_item()? {
                match p.chunk() {
                    Some(key) => {
                        let chunk = repo.get_block(key, Kind::Chunk)?;
                        write(p.bytes_of(chunk.data())?)?
                    }
                    None => {
                        let mut len = p.len();
                        while len > 0 {
                            let n = len.min(zeros.len() as u64) as usize;
                            write(&zeros[..n])?;
                            len -= n as u64;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
