//! Every snapshot an archive's tags reach, each once, with every name that reaches it.
//!
//! Snapshots are reached only through tags: each tag names its newest, and its chain
//! ([`crate::core::link`]) the ones before it. A fork shares the older part of its chain with the tag it came from, so
//! a snapshot can be reached under several names (`home~3` and `home-old~0`); it is listed
//! once, with every name, since its key is what scripts keep. `ore snapshots` lists these and
//! `ore find` searches them.

use crate::core::entry::Snapshot;
use crate::core::error::Result;
use crate::core::repo::Repo;
use protocol::Key;
use std::collections::HashMap;

/// One snapshot, with every `TAG~N` that reaches it.
#[derive(Debug)]
pub struct Listed {
    pub key: Key,
    pub names: Vec<String>,
    pub snapshot: Snapshot,
}

/// Every snapshot reached from `tags` (every tag when empty), oldest first (then by key).
pub fn every(repo: &Repo, tags: &[String]) -> Result<Vec<Listed>> {
    let mut out: Vec<Listed> = Vec::new();
    let mut at: HashMap<Key, usize> = HashMap::new();
    for (tag, _) in repo.tags()? {
        if !tags.is_empty() && !tags.contains(&tag) {
            continue;
        }
        let chain = match crate::core::spec::chain(repo, &tag) {
            // An archive tag has objects, not snapshots (`ore search`).
            Err(crate::core::error::Error::ArchiveHead { .. }) => continue,
            chain => chain?,
        };
        for (n, node) in chain.into_iter().enumerate() {
            let (key, snapshot) = (node.key, node.snapshot);
            let name = format!("{tag}~{n}");
            match at.get(&key) {
                Some(&i) => out[i].names.push(name),
                None => {
                    at.insert(key, out.len());
                    out.push(Listed {
                        key,
                        names: vec![name],
                        snapshot,
                    });
                }
            }
        }
    }
    out.sort_by_key(|l| (l.snapshot.time, l.key));
    Ok(out)
}
