//! `ore snapshots`: every snapshot of every tag, oldest first, narrowed by tag, host and path
//! (the listing itself is [`crate::core::chains`]).

pub use crate::core::chains::Listed;
use crate::core::error::Result;
use crate::core::repo::Repo;

/// What to list: empty fields take everything.
#[derive(Debug, Default)]
pub struct Filter {
    /// Only snapshots reached from these tags.
    pub tags: Vec<String>,
    /// Only snapshots taken on these hosts.
    pub hosts: Vec<String>,
    /// Only snapshots that saved one of these paths (as the snapshot recorded them: absolute).
    pub paths: Vec<Vec<u8>>,
    /// Only snapshots carrying every one of these labels.
    pub labels: Vec<crate::core::labels::Label>,
}

/// Every snapshot that passes `filter`, oldest first (then by key).
pub fn snapshots(repo: &Repo, filter: &Filter) -> Result<Vec<Listed>> {
    let mut out = crate::core::chains::every(repo, &filter.tags)?;
    out.retain(|l| {
        let s = &l.snapshot;
        filter.labels.iter().all(|l| s.labels.contains(l))
            && (filter.hosts.is_empty() || filter.hosts.contains(&s.host))
            && (filter.paths.is_empty()
                || s.paths
                    .iter()
                    .any(|p| filter.paths.iter().any(|f| **p == **f)))
    });
    Ok(out)
}
