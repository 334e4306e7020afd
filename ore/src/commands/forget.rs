//! Forgetting snapshots by a retention policy.
//!
//! A tag is a chain of links, each naming a snapshot and the link before it
//! ([`crate::core::link`]). Dropping snapshots from the middle therefore means new links above
//! them: every kept snapshot newer than the oldest dropped one gets a link to the next kept
//! one, and the tag moves to the new head by compare-and-swap. The snapshots themselves are
//! not touched, so every kept snapshot keeps its key. (In an archive of format 1, where each
//! snapshot names the one before it, those snapshots are stored again instead, under new
//! keys, which the report gives; `ore upgrade` ends that.) The old head goes to the reflog
//! (as every tag move does), so until `ore reflog expire` drops that entry the forgotten
//! snapshots are still reachable and gc keeps them; afterwards gc frees what only they used.
//! Snapshots that another tag's chain also holds stay stored whatever this tag does.
//!
//! The policy follows the usual rules: `last N` keeps the N newest; `hourly N` … `yearly N`
//! keep the newest snapshot of each of the N most recent hours … years that have one (UTC;
//! weeks start on Monday); `within D` keeps everything made within D of the newest snapshot.
//! A snapshot is kept if any rule keeps it, and the report says which rules did.

use crate::core::error::{Error, Result};
use crate::core::link::Node;
use crate::core::reflog::Holders;
use crate::core::repo::Repo;
use protocol::Key;
use std::collections::{HashMap, HashSet};

/// Which snapshots to keep.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    /// Nanoseconds before the newest snapshot's time.
    pub within: Option<i64>,
}

impl Policy {
    /// Whether no rule was given (such a policy is refused: it would keep nothing).
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

/// What happens to one snapshot.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Decision {
    #[serde(serialize_with = "crate::core::util::ser_key")]
    pub key: Key,
    pub time: i64,
    pub keep: bool,
    /// The rules that keep it (empty when dropped).
    pub reasons: Vec<String>,
    /// Its key after the chain is rewritten, when that differs (only ever in an archive of
    /// format 1).
    #[serde(serialize_with = "crate::core::util::ser_opt_key")]
    pub new_key: Option<Key>,
    /// Its place on the chain: the node tags and the reflog name (a link, or in an archive of
    /// format 1 the snapshot itself).
    #[serde(serialize_with = "crate::core::util::ser_key")]
    pub node: Key,
    /// Its new place, when the chain below it changed.
    #[serde(serialize_with = "crate::core::util::ser_opt_key")]
    pub new_node: Option<Key>,
    /// Other tags whose chains hold it (so it stays stored).
    pub also_in: Vec<String>,
}

/// What forgetting did to one tag.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ForgetOutcome {
    pub tag: String,
    #[serde(serialize_with = "crate::core::util::ser_key")]
    pub old_head: Key,
    /// The tag's head afterwards (equal to `old_head` when nothing was dropped).
    #[serde(serialize_with = "crate::core::util::ser_key")]
    pub new_head: Key,
    /// Newest first.
    pub decisions: Vec<Decision>,
    pub dry_run: bool,
}

impl ForgetOutcome {
    /// The chain nodes the tag no longer reaches: those of the snapshots dropped, and the
    /// places kept snapshots were moved from.
    pub fn gone(&self) -> HashSet<Key> {
        self.decisions
            .iter()
            .filter(|d| !d.keep || d.new_node.is_some())
            .map(|d| d.node)
            .collect()
    }
}

/// The nodes of `o.tag`'s history (its reflog entries, its kept values, and the places
/// `forget` replaced), sorted for `forget --prune` ([`Holders`]): free when their whole chain
/// is snapshots this forget decided on, holding when it reaches one it dropped. A node that
/// cannot be read is neither (it is kept: nothing says what it holds).
pub fn holders(repo: &Repo, o: &ForgetOutcome) -> Result<Holders> {
    // A kept snapshot stored again (format 1) is decided on under its new key too.
    let keys = |d: &Decision| std::iter::once(d.key).chain(d.new_key);
    let kept: HashSet<Key> = (o.decisions.iter().filter(|d| d.keep))
        .flat_map(keys)
        .collect();
    let decided: HashSet<Key> = o.decisions.iter().flat_map(keys).collect();
    // A snapshot dropped at one place and kept at another (loaded twice) is not dropped.
    let dropped: HashSet<Key> = decided.difference(&kept).copied().collect();
    let mut named: Vec<Key> = o.gone().into_iter().collect();
    named.extend(
        crate::core::reflog::entries(repo)?
            .into_iter()
            .filter(|e| e.tag == o.tag)
            .flat_map(|e| e.old.into_iter().chain(e.new)),
    );
    named.extend(
        crate::core::reflog::read_history(repo)?
            .iter()
            .filter(|e| e.tag == o.tag)
            .filter_map(|e| crate::core::format::parse_tag_value(e.value.as_bytes())),
    );
    // (free, holding) of each node, remembered along the way: chains share their older parts.
    let mut memo: HashMap<Key, (bool, bool)> = HashMap::new();
    for start in named {
        let mut path: Vec<(Key, Key)> = Vec::new();
        let mut on_path = HashSet::new();
        let mut next = Some(start);
        // What lies below the walked part: nothing (the chain's end) is free and holds nothing.
        let mut below = (true, false);
        while let Some(k) = next {
            if let Some(&r) = memo.get(&k) {
                below = r;
                break;
            }
            if !on_path.insert(k) {
                below = (false, false);
                break;
            }
            let Ok(node) = repo.node(k) else {
                below = (false, false);
                break;
            };
            path.push((k, node.key));
            next = node.below();
        }
        for (k, snapshot) in path.into_iter().rev() {
            below = (
                below.0 && decided.contains(&snapshot),
                below.1 || dropped.contains(&snapshot),
            );
            memo.insert(k, below);
        }
    }
    let mut out = Holders::default();
    for (k, (free, holding)) in memo {
        if free {
            out.free.insert(k);
            if holding {
                out.holding.insert(k);
            }
        }
    }
    Ok(out)
}

const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;

type Bucket = fn(i64) -> (i64, String);

fn hour(t: i64) -> (i64, String) {
    let h = t.div_euclid(HOUR);
    (
        h,
        crate::core::util::format_time(h * HOUR)[..13].to_string() + "h",
    )
}

fn day(t: i64) -> (i64, String) {
    let d = t.div_euclid(DAY);
    (d, crate::core::util::format_time(d * DAY)[..10].to_string())
}

fn week(t: i64) -> (i64, String) {
    // 1970-01-01 was a Thursday: shifting by 3 days makes weeks start on Monday.
    let w = (t.div_euclid(DAY) + 3).div_euclid(7);
    let monday = w * 7 - 3;
    (
        w,
        format!(
            "week of {}",
            &crate::core::util::format_time(monday * DAY)[..10]
        ),
    )
}

fn month(t: i64) -> (i64, String) {
    let (y, m, _) = crate::core::util::utc_date(t);
    (y * 12 + m as i64, format!("{y:04}-{m:02}"))
}

fn year(t: i64) -> (i64, String) {
    let (y, _, _) = crate::core::util::utc_date(t);
    (y, format!("{y:04}"))
}

/// Decides, for a chain given newest first, what to keep and why.
pub fn decide(chain: &[(Key, i64)], policy: &Policy) -> Vec<Decision> {
    let mut out: Vec<Decision> = chain
        .iter()
        .map(|&(key, time)| Decision {
            key,
            time,
            keep: false,
            reasons: Vec::new(),
            new_key: None,
            node: key,
            new_node: None,
            also_in: Vec::new(),
        })
        .collect();
    if let Some(n) = policy.last {
        for d in out.iter_mut().take(n as usize) {
            d.reasons.push(format!("last {n}"));
        }
    }
    let rules: [(&str, Option<u32>, Bucket); 5] = [
        ("hourly", policy.hourly, hour),
        ("daily", policy.daily, day),
        ("weekly", policy.weekly, week),
        ("monthly", policy.monthly, month),
        ("yearly", policy.yearly, year),
    ];
    for (name, n, bucket) in rules {
        let Some(n) = n else { continue };
        let mut last = None;
        let mut kept = 0;
        for d in out.iter_mut() {
            if kept >= n {
                break;
            }
            let (b, label) = bucket(d.time);
            if last != Some(b) {
                last = Some(b);
                kept += 1;
                d.reasons.push(format!("{name} ({label})"));
            }
        }
    }
    if let (Some(within), Some(newest)) = (policy.within, chain.first()) {
        for d in out.iter_mut() {
            if d.time >= newest.1 - within {
                d.reasons.push("within".into());
            }
        }
    }
    for d in &mut out {
        d.keep = !d.reasons.is_empty();
    }
    out
}

/// Applies `policy` to `tag`: decides, rewrites the chain, moves the tag (unless `dry_run`).
pub fn forget(repo: &Repo, tag: &str, policy: &Policy, dry_run: bool) -> Result<ForgetOutcome> {
    if policy.is_empty() {
        return Err(Error::Usage(
            "no --keep-* rule given: forgetting everything is not something to do by accident"
                .into(),
        ));
    }
    let _lease = match dry_run {
        true => None,
        false => Some(crate::core::lease::Lease::acquire(repo)?),
    };
    loop {
        let chain = crate::core::spec::chain(repo, tag)?;
        let Some(old_head) = chain.first().map(|n| n.node) else {
            return Err(Error::Usage(format!(
                "no tag called `{tag}` (see `ore tags`)"
            )));
        };
        let times: Vec<(Key, i64)> = chain.iter().map(|n| (n.key, n.snapshot.time)).collect();
        let mut decisions = decide(&times, policy);
        for (d, n) in decisions.iter_mut().zip(&chain) {
            d.node = n.node;
        }
        if decisions.iter().all(|d| !d.keep) {
            return Err(Error::Usage(format!(
                "the policy keeps none of tag {tag}'s {} snapshot(s); nothing was changed",
                chain.len()
            )));
        }
        let others = other_tags(
            repo,
            tag,
            decisions.iter().filter(|d| !d.keep).map(|d| d.key),
        )?;
        // A snapshot at two places of this chain (a dump loaded twice) stays where it is kept.
        let kept: HashSet<Key> = decisions.iter().filter(|d| d.keep).map(|d| d.key).collect();
        for d in &mut decisions {
            if let Some(tags) = others.get(&d.key) {
                d.also_in = tags.clone();
            }
            if !d.keep && kept.contains(&d.key) {
                d.also_in.push(format!("{tag} (at another place)"));
            }
        }
        let new_head = rewrite(repo, &chain, &mut decisions, dry_run)?;
        let outcome = ForgetOutcome {
            tag: tag.to_string(),
            old_head,
            new_head,
            decisions,
            dry_run,
        };
        if dry_run || new_head == old_head {
            return Ok(outcome);
        }
        repo.backend().flush()?;
        if repo.move_tag(tag, Some(old_head), new_head, "forget")? {
            return Ok(outcome);
        }
        protocol::log::info(&format!(
            "tag {tag} moved while forgetting (a snapshot landed): deciding again"
        ));
    }
}

/// Links the kept snapshots where the node below them must change ([`Repo::relinked`]);
/// returns the new head.
fn rewrite(repo: &Repo, chain: &[Node], decisions: &mut [Decision], dry_run: bool) -> Result<Key> {
    let mut below: Option<Key> = None;
    let mut head = None;
    for (node, d) in chain.iter().zip(decisions.iter_mut()).rev() {
        if !d.keep {
            continue;
        }
        let mut at = node.node;
        if node.below() != below {
            let mut previous = node.previous.clone();
            match below {
                Some(b) if previous.is_empty() => previous.push(b),
                Some(b) => previous[0] = b,
                None => {
                    previous.remove(0);
                }
            }
            let c = repo.relinked(node, previous)?;
            if !dry_run {
                repo.put_chained(&c)?;
            }
            at = c.node;
            d.new_node = Some(c.node);
            d.new_key = (c.key != node.key).then_some(c.key);
        }
        below = Some(at);
        head = Some(at);
    }
    head.ok_or_else(|| Error::Usage("the policy keeps nothing".into()))
}

/// For each of `keys`, the other tags whose chains hold it.
fn other_tags(
    repo: &Repo,
    tag: &str,
    keys: impl Iterator<Item = Key>,
) -> Result<HashMap<Key, Vec<String>>> {
    let wanted: HashSet<Key> = keys.collect();
    let mut out: HashMap<Key, Vec<String>> = HashMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    for (name, _) in repo.tags()? {
        if name == tag {
            continue;
        }
        for n in crate::core::spec::chain(repo, &name)? {
            if wanted.contains(&n.key) {
                out.entry(n.key).or_default().push(name.clone());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(i: u32) -> Key {
        Key(*blake3::hash(&i.to_le_bytes()).as_bytes())
    }

    /// Newest first, one snapshot every `step` ns ending at `end`.
    fn history(n: u32, end: i64, step: i64) -> Vec<(Key, i64)> {
        (0..n).map(|i| (k(i), end - i as i64 * step)).collect()
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        let end = crate::core::util::parse_time("2026-11-20T23:30").unwrap();
        let h = history(72, end, HOUR);
        let d = decide(
            &h,
            &Policy {
                daily: Some(2),
                ..Policy::default()
            },
        );
        let kept: Vec<usize> = (0..d.len()).filter(|&i| d[i].keep).collect();
        // 23:30 on the 20th, then 23:30 on the 19th.
        assert_eq!(kept, vec![0, 24]);
        assert_eq!(d[24].reasons, vec!["daily (2026-11-19)".to_string()]);
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-16 is a Monday.
        let mon = crate::core::util::parse_time("2026-11-16T00:00").unwrap();
        let sun = crate::core::util::parse_time("2026-11-15T23:59").unwrap();
        assert_ne!(week(mon).0, week(sun).0);
        assert_eq!(week(mon).0, week(mon + 6 * DAY).0);
        assert_eq!(week(mon).1, "week of 2026-11-16");
    }

    #[test]
    fn rules_combine_and_within_counts_from_the_newest() {
        let end = crate::core::util::parse_time("2026-11-20T12:00").unwrap();
        let h = history(10, end, HOUR);
        let d = decide(
            &h,
            &Policy {
                last: Some(1),
                within: Some(3 * HOUR),
                ..Policy::default()
            },
        );
        let kept: Vec<usize> = (0..d.len()).filter(|&i| d[i].keep).collect();
        assert_eq!(kept, vec![0, 1, 2, 3]);
        assert_eq!(
            d[0].reasons,
            vec!["last 1".to_string(), "within".to_string()]
        );
    }
}
