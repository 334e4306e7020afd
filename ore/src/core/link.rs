//! Chain links: how a tag's snapshots hang together while no snapshot names another.
//!
//! A snapshot's key is what users keep — in scripts, notes, monitoring — so it must name that
//! snapshot for as long as the snapshot exists. In archives of format 1 each snapshot block
//! named the one before it (`previous`), so a `forget` that dropped a snapshot had to store
//! every newer kept one again with a new `previous`, under a new key. From format 2 on the
//! order lives in blocks of its own, *links* (kind 9): a link names one snapshot and the
//! link(s) before it, and a tag names its newest link. Forgetting stores new links above what
//! it dropped and leaves every snapshot block, and so every key, as it was.
//!
//! A place on a chain — what a tag's value or a link's `previous` names — is a *node*: a link,
//! or, in chains written before format 2, a snapshot block that still carries its own
//! `previous`. Both are read here and nowhere else, so the rest of `ore` sees [`Node`]s: the
//! node's key (what tags and the reflog hold), the snapshot's key (what users see) and the
//! nodes before it. A link may name a format-1 snapshot as its snapshot (a `forget` in an
//! upgraded archive relinks old snapshots instead of storing them again); that snapshot's own
//! `previous` is then not part of the chain, and walks that follow chains ignore it.
//!
//! Writing goes through [`Repo::chained`] and [`Repo::relinked`], which write links only when
//! the archive's format record says 2: a format-1 archive stays readable by the `ore` that
//! made it until its owner runs `ore upgrade`.

use crate::core::block::{self, Kind};
use crate::core::entry::{decode, encode, Snapshot};
use crate::core::error::{Error, Result};
use crate::core::repo::{fetched, Repo};
use protocol::Key;
use serde::{Deserialize, Serialize};

/// A link block (kind 9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The snapshot at this place of the chain.
    pub snapshot: Key,
    /// The node(s) before it: empty for the first snapshot of a chain.
    pub previous: Vec<Key>,
}

/// One place on a chain.
#[derive(Clone, Debug)]
pub struct Node {
    /// The block a tag, the reflog or a link names for this place: a link, or a format-1
    /// snapshot block (then equal to `key`).
    pub node: Key,
    /// The snapshot's key: the one users see.
    pub key: Key,
    pub snapshot: Snapshot,
    /// The node(s) before it (empty for the first).
    pub previous: Vec<Key>,
}

impl Node {
    /// The node before it on its chain.
    pub fn below(&self) -> Option<Key> {
        self.previous.first().copied()
    }
}

/// A chain node as stored, before a link's snapshot is read.
pub enum Stored {
    /// A snapshot block, its own node (format 1, or the first of a chain).
    Snapshot(Box<Snapshot>),
    Link(Link),
}

/// The blocks that put a snapshot on a chain ([`Repo::chained`], [`Repo::relinked`]): to be
/// stored (and flushed) before a tag or link names `node`.
pub struct Chained {
    pub node: Key,
    /// The snapshot's key (changed by a relink only in a format-1 archive).
    pub key: Key,
    pub blocks: Vec<(Kind, Vec<u8>)>,
}

/// Snapshots a chain walk asks for at once ([`Repo::chain_from`]).
const IN_FLIGHT: usize = 256;

/// The kind a chain node is read as, for messages.
const NODE: &str = "snapshot or chain link";

impl Repo {
    /// Whether this archive's chains are made of links (format 2 and later).
    pub fn links(&self) -> bool {
        self.format().format >= 2
    }

    /// Opens the stored bytes of chain node `key`: a snapshot or a link.
    pub fn open_node(&self, key: Key, stored: Vec<u8>) -> Result<Stored> {
        let plain = block::open(self.try_keys()?, &key, None, stored)?;
        match plain.kind {
            Kind::Snapshot => Ok(Stored::Snapshot(Box::new(decode(
                plain.data(),
                &key,
                Kind::Snapshot,
            )?))),
            Kind::Link => Ok(Stored::Link(decode(plain.data(), &key, Kind::Link)?)),
            Kind::Head => Err(Error::ArchiveHead { key }),
            other => Err(Error::Corrupt {
                key,
                kind: NODE,
                why: format!("it is {} block", crate::core::util::a(other.name())),
            }),
        }
    }

    /// The stored bytes of chain node `key`; errors name it as what it should be.
    fn node_block(&self, key: Key) -> Result<Vec<u8>> {
        fetched(self.backend().get(key), key, Kind::Snapshot).map_err(|e| match e {
            Error::Missing { key, .. } => Error::Missing { key, kind: NODE },
            Error::Corrupt { key, why, .. } => Error::Corrupt {
                key,
                kind: NODE,
                why,
            },
            e => e,
        })
    }

    /// The node stored as `stored`, reading a link's snapshot.
    pub fn node_of(&self, key: Key, stored: Stored) -> Result<Node> {
        Ok(match stored {
            Stored::Snapshot(snapshot) => Node {
                node: key,
                key,
                previous: snapshot.previous.clone(),
                snapshot: *snapshot,
            },
            Stored::Link(link) => Node {
                node: key,
                key: link.snapshot,
                snapshot: self.get(link.snapshot, Kind::Snapshot)?,
                previous: link.previous,
            },
        })
    }

    /// Reads chain node `key` with its snapshot.
    pub fn node(&self, key: Key) -> Result<Node> {
        let stored = self.node_block(key)?;
        let stored = self.open_node(key, stored)?;
        self.node_of(key, stored)
    }

    /// The key of the snapshot at chain node `key` (a link's snapshot is not read).
    pub fn snapshot_key(&self, key: Key) -> Result<Key> {
        let stored = self.node_block(key)?;
        Ok(match self.open_node(key, stored)? {
            Stored::Snapshot(_) => key,
            Stored::Link(l) => l.snapshot,
        })
    }

    /// The chain from node `head` down, newest first (`tag` names it in errors). Each link
    /// names the next, so links are read one after another; the snapshots they name are asked
    /// for meanwhile, up to [`IN_FLIGHT`] at once, so that a distant archive costs one round
    /// trip a snapshot, as it did when snapshots named each other.
    pub fn chain_from(&self, head: Option<Key>, tag: &str) -> Result<Vec<Node>> {
        self.walk_nodes(head, &mut std::collections::HashSet::new(), Some(tag))
    }

    /// [`Repo::chain_from`] for searches over many chains that share their older parts: it
    /// stops before a node in `seen` (adding each it reads) and at the first node, or the
    /// first snapshot, that does not read, giving what it read before.
    pub fn chain_part(&self, head: Key, seen: &mut std::collections::HashSet<Key>) -> Vec<Node> {
        self.walk_nodes(Some(head), seen, None).unwrap_or_default()
    }

    /// The walk under both: strict (`tag` given) fails on a loop or anything unread; otherwise
    /// it ends there.
    fn walk_nodes(
        &self,
        head: Option<Key>,
        seen: &mut std::collections::HashSet<Key>,
        tag: Option<&str>,
    ) -> Result<Vec<Node>> {
        type Ticket = protocol::Ticket<Option<Vec<u8>>>;
        let mut out: Vec<(Key, Key, Vec<Key>, Option<Snapshot>)> = Vec::new();
        let mut waiting: std::collections::VecDeque<(usize, Key, Ticket)> = Default::default();
        let settle = |out: &mut Vec<(Key, Key, Vec<Key>, Option<Snapshot>)>,
                      (i, key, ticket): (usize, Key, Ticket)|
         -> Result<()> {
            let stored = fetched(ticket.wait(), key, Kind::Snapshot)?;
            out[i].3 = Some(self.decode_stored(key, Kind::Snapshot, stored)?);
            Ok(())
        };
        let mut next = head;
        let mut failed = None;
        while let Some(k) = next {
            if !seen.insert(k) {
                match tag {
                    Some(tag) => {
                        return Err(Error::Archive(format!(
                            "tag {tag}: its chain loops back to {k}"
                        )))
                    }
                    None => break,
                }
            }
            let read = self
                .node_block(k)
                .and_then(|stored| self.open_node(k, stored));
            match read {
                Ok(Stored::Snapshot(s)) => {
                    next = s.previous.first().copied();
                    out.push((k, k, s.previous.clone(), Some(*s)));
                }
                Ok(Stored::Link(l)) => {
                    next = l.previous.first().copied();
                    let ticket = self.backend().start_get(l.snapshot);
                    waiting.push_back((out.len(), l.snapshot, ticket));
                    out.push((k, l.snapshot, l.previous, None));
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            if waiting.len() > IN_FLIGHT {
                if let Some(w) = waiting.pop_front() {
                    let i = w.0;
                    if let Err(e) = settle(&mut out, w) {
                        out.truncate(i);
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        while let Some(w) = waiting.pop_front() {
            let i = w.0;
            if i >= out.len() {
                continue;
            }
            if let Err(e) = settle(&mut out, w) {
                out.truncate(i);
                failed.get_or_insert(e);
            }
        }
        if let (Some(e), Some(_)) = (failed, tag) {
            return Err(e);
        }
        Ok(out
            .into_iter()
            .filter_map(|(node, key, previous, snapshot)| {
                Some(Node {
                    node,
                    key,
                    snapshot: snapshot?,
                    previous,
                })
            })
            .collect())
    }

    /// Reads the chain below node `key` to its end, so that a tag is never pointed at one that
    /// stops half way (a format-1 snapshot's own chain after a forget relinked it and gc
    /// collected what it named). The error names the node that does not read.
    pub fn whole_chain(&self, key: Key) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        self.walk_nodes(Some(key), &mut seen, Some(&key.to_hex()))
            .map(drop)
            .map_err(|e| {
                Error::Archive(format!(
                    "the chain below {key} does not read to its end (nothing was changed): {e}"
                ))
            })
    }

    /// The snapshot that `key` names: a snapshot block, or a link (a tag's value).
    pub fn snapshot(&self, key: Key) -> Result<Snapshot> {
        Ok(self.node(key)?.snapshot)
    }

    /// The blocks that put `snapshot` on a chain after the nodes `previous` (its own
    /// `previous` is not used): a snapshot block and a link, or in a format-1 archive a
    /// snapshot block naming `previous`.
    pub fn chained(&self, snapshot: &Snapshot, previous: Vec<Key>) -> Chained {
        let mut s = snapshot.clone();
        if !self.links() {
            s.previous = previous;
            let plain = encode(&s);
            let key = self.keys().key_of(Kind::Snapshot as u8, &plain);
            return Chained {
                node: key,
                key,
                blocks: vec![(Kind::Snapshot, plain)],
            };
        }
        s.previous = Vec::new();
        let plain = encode(&s);
        let key = self.keys().key_of(Kind::Snapshot as u8, &plain);
        let mut out = self.link(key, previous);
        out.blocks.insert(0, (Kind::Snapshot, plain));
        out
    }

    /// The blocks that put `node`'s snapshot after the nodes `previous` instead of its own:
    /// a new link (the snapshot's key stays), or in a format-1 archive the snapshot stored
    /// again with `previous` (a new key).
    pub fn relinked(&self, node: &Node, previous: Vec<Key>) -> Result<Chained> {
        if self.links() {
            return Ok(self.link(node.key, previous));
        }
        if node.node != node.key {
            return Err(Error::Archive(format!(
                "archive {}: chain link {} in an archive of format 1 (run `ore upgrade`)",
                self.id(),
                node.node
            )));
        }
        Ok(self.chained(&node.snapshot, previous))
    }

    fn link(&self, snapshot: Key, previous: Vec<Key>) -> Chained {
        let plain = encode(&Link { snapshot, previous });
        Chained {
            node: self.keys().key_of(Kind::Link as u8, &plain),
            key: snapshot,
            blocks: vec![(Kind::Link, plain)],
        }
    }

    /// Stores what [`Repo::chained`] or [`Repo::relinked`] gave (not flushed).
    pub fn put_chained(&self, c: &Chained) -> Result<()> {
        for (kind, plain) in &c.blocks {
            self.put_block(*kind, plain)?;
        }
        Ok(())
    }

    /// [`Repo::put_chained`], with `more` blocks, then one flush ([`Repo::put_blocks_durably`]):
    /// ready for a tag to name `c.node`.
    pub fn put_chained_durably(&self, c: &Chained, more: &[(Kind, &[u8])]) -> Result<()> {
        let mut blocks: Vec<(Kind, &[u8])> =
            c.blocks.iter().map(|(k, p)| (*k, p.as_slice())).collect();
        blocks.extend_from_slice(more);
        self.put_blocks_durably(&blocks).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire form of a link is part of the format: postcard of the snapshot's 32 key bytes,
    /// then the count of previous nodes and their keys.
    #[test]
    fn a_link_encodes_as_format_md_says() {
        let link = Link {
            snapshot: Key([0xaa; 32]),
            previous: vec![Key([0x01; 32])],
        };
        let bytes = encode(&link);
        let mut want = vec![0xaa; 32];
        want.push(1);
        want.extend([0x01; 32]);
        assert_eq!(bytes, want);
        let first = encode(&Link {
            snapshot: Key([0xaa; 32]),
            previous: Vec::new(),
        });
        assert_eq!(first.len(), 33);
        assert_eq!(first[32], 0);
        let back: Link = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, link);
    }
}
