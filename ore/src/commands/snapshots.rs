//! `ore snapshots`: every snapshot of every tag, oldest first, narrowed by tag, host and path.
//!
//! Snapshots are reached only through tags: each tag names its newest, and each snapshot names
//! the one before it. A fork shares the older part of its chain with the tag it came from, so
//! a snapshot can be reached under several names (`home~3` and `home-old~0`); it is listed
//! once, with every name that reaches it, since its key is what scripts keep.

use crate::core::entry::Snapshot;
use crate::core::error::Result;
use crate::core::repo::Repo;
use protocol::Key;
use std::collections::HashMap;

/// What to list: empty fields take everything.
#[derive(Debug, Default)]
pub struct Filter {
    /// Only snapshots reached from these tags.
    pub tags: Vec<String>,
    /// Only snapshots taken on these hosts.
    pub hosts: Vec<String>,
    /// Only snapshots that saved one of these paths (as the snapshot recorded them: absolute).
    pub paths: Vec<Vec<u8>>,
}

/// One snapshot, with every `TAG~N` that reaches it.
#[derive(Debug)]
pub struct Listed {
    pub key: Key,
    pub names: Vec<String>,
    pub snapshot: Snapshot,
}

/// Every snapshot that passes `filter`, oldest first (then by key).
pub fn snapshots(repo: &Repo, filter: &Filter) -> Result<Vec<Listed>> {
    let mut out: Vec<Listed> = Vec::new();
    let mut at: HashMap<Key, usize> = HashMap::new();
    for (tag, _) in repo.tags()? {
        if !filter.tags.is_empty() && !filter.tags.contains(&tag) {
            continue;
        }
        for (n, (key, snapshot)) in crate::core::spec::chain(repo, &tag)?
            .into_iter()
            .enumerate()
        {
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
    out.retain(|l| {
        let s = &l.snapshot;
        (filter.hosts.is_empty() || filter.hosts.contains(&s.host))
            && (filter.paths.is_empty()
                || s.paths
                    .iter()
                    .any(|p| filter.paths.iter().any(|f| **p == **f)))
    });
    out.sort_by_key(|l| (l.snapshot.time, l.key));
    Ok(out)
}
