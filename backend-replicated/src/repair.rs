//! Keeping every block at full trust: topping up, re-replicating, draining and scrubbing.
//!
//! All of them walk the state's blocks in key order, a page at a time (memory stays bounded
//! whatever the archive's size), keep a page of reads and writes in flight at once, and finish
//! with a flush, so the copies they made count only once the members made them durable.

use crate::members::Member;
use crate::{trust_of, Inner};
use protocol::{Error, ErrorCode, Key, Result, Ticket};
use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

/// Blocks handled at once.
const PAGE: u32 = 256;

/// What a repair did, for the admin answer.
#[derive(Debug, Default)]
pub struct Report {
    /// Blocks looked at.
    pub checked: u64,
    /// Copies made on other members.
    pub copied: u64,
    /// Copies the state listed that the member did not have.
    pub missing: u64,
    /// Copies a member had that the state did not list.
    pub found: u64,
    /// Damaged copies found (and repaired, where the member can remove them).
    pub damaged: u64,
    pub repaired: u64,
    /// Blocks still short of 100% trust, and blocks no member could provide.
    pub short: Vec<String>,
    pub unreadable: Vec<String>,
}

impl Report {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "checked": self.checked,
            "copied": self.copied,
            "missing": self.missing,
            "found": self.found,
            "damaged": self.damaged,
            "repaired": self.repaired,
            "short": self.short,
            "unreadable": self.unreadable,
        })
    }

    pub fn text(&self) -> String {
        let mut t = format!(
            "blocks checked:       {}\ncopies made:          {}\n",
            self.checked, self.copied
        );
        if self.missing + self.found > 0 {
            t.push_str(&format!(
                "copies not found:     {}\ncopies found unlisted: {}\n",
                self.missing, self.found
            ));
        }
        if self.damaged > 0 {
            t.push_str(&format!(
                "damaged copies:       {} ({} repaired)\n",
                self.damaged, self.repaired
            ));
        }
        t.push_str(&format!("still short of 100%:  {}\n", self.short.len()));
        for k in self.short.iter().take(10) {
            t.push_str(&format!("  {k}\n"));
        }
        if !self.unreadable.is_empty() {
            t.push_str(&format!(
                "no readable copy:     {} (these blocks are lost)\n",
                self.unreadable.len()
            ));
            for k in self.unreadable.iter().take(10) {
                t.push_str(&format!("  {k}\n"));
            }
        }
        t
    }
}

/// Brings each of `keys` to full trust (not counting, nor writing to, member `exclude`) by
/// copying it from a holder to other members. Returns the keys no member could provide.
pub(crate) fn top_up(inner: &Arc<Inner>, keys: &[Key], exclude: Option<i64>) -> Result<Vec<Key>> {
    top_up_report(inner, keys, exclude, &mut Report::default())
}

fn top_up_report(
    inner: &Arc<Inner>,
    keys: &[Key],
    exclude: Option<i64>,
    report: &mut Report,
) -> Result<Vec<Key>> {
    let gen = inner.gen.load(SeqCst);
    let mut unreadable = Vec::new();
    for page in keys.chunks(PAGE as usize) {
        let members = inner.members();
        let by_id: HashMap<i64, &Arc<Member>> = members.iter().map(|m| (m.row.id, m)).collect();
        // Reads of the blocks that need copies, all in flight at once.
        let mut reads = Vec::new();
        for key in page {
            report.checked += 1;
            let holders: Vec<i64> = inner
                .state()
                .holders(key)?
                .into_iter()
                .filter(|h| Some(*h) != exclude)
                .collect();
            let trust = trust_of(holders.iter().filter_map(|h| by_id.get(h).copied()));
            if trust >= 100 {
                inner.state().clear_short(key)?;
                continue;
            }
            reads.push((*key, holders, inner.start_get(*key)));
        }
        let mut writes: Vec<(Key, Ticket<u32>)> = Vec::new();
        for (key, holders, t) in reads {
            match t.wait() {
                Ok(Some(data)) => {
                    writes.push((
                        key,
                        inner.start_replicate(key, data, &holders, exclude, gen),
                    ));
                }
                Ok(None) | Err(_) => {
                    report.unreadable.push(key.to_string());
                    unreadable.push(key);
                }
            }
        }
        for (key, t) in writes {
            let before = inner.holders(&key)?.len();
            match t.wait() {
                Ok(trust) => {
                    let after = inner.holders(&key)?.len();
                    report.copied += after.saturating_sub(before) as u64;
                    if trust >= 100 {
                        inner.state().clear_short(&key)?;
                    } else {
                        report.short.push(key.to_string());
                    }
                }
                Err(_) => report.short.push(key.to_string()),
            }
        }
    }
    Ok(unreadable)
}

/// Checks with batched `exists` that every member holds what the state says it does, and
/// forgets the copies that are not there.
fn verify_holdings(inner: &Arc<Inner>, report: &mut Report) -> Result<()> {
    for m in inner.members() {
        let Some(b) = m.backend().cloned() else {
            continue;
        };
        let mut after = None;
        loop {
            let keys = inner.state().held_by(m.row.id, after, 4096)?;
            let Some(last) = keys.last().copied() else {
                break;
            };
            after = Some(last);
            let present = match b.exists(&keys) {
                Ok(p) if p.len() == keys.len() => p,
                Ok(_) => {
                    return Err(Error::backend(
                        ErrorCode::Io,
                        format!(
                            "{} answered exists with the wrong number of answers",
                            m.name()
                        ),
                    ))
                }
                Err(e) => {
                    inner.broken(&m, &e);
                    break;
                }
            };
            for (k, p) in keys.iter().zip(present) {
                if !p {
                    report.missing += 1;
                    inner.state().drop_copies(k, &[m.row.id])?;
                    inner.state().mark_short(k)?;
                }
            }
        }
    }
    Ok(())
}

/// Tops up every block of the state, a page at a time, and flushes the copies made.
fn top_up_all(inner: &Arc<Inner>, report: &mut Report) -> Result<()> {
    let mut after = None;
    loop {
        let (keys, more) = inner.state().list(after, PAGE * 16)?;
        if let Some(k) = keys.last() {
            after = Some(*k);
        }
        top_up_report(inner, &keys, None, report)?;
        if !more {
            break;
        }
    }
    inner.flush_all()
}

/// Every block back to full trust after a loss: first the members are asked whether they
/// really hold what the state says, then every block short of 100% is copied.
pub(crate) fn rereplicate(inner: &Arc<Inner>) -> Result<Report> {
    let mut report = Report::default();
    verify_holdings(inner, &mut report)?;
    top_up_all(inner, &mut report)?;
    Ok(report)
}

/// Copies everything that member `id` holds and that would fall short without it to other
/// members, then drops it. It gets no writes meanwhile (its write weight becomes 0).
pub(crate) fn drain(inner: &Arc<Inner>, m: &Member) -> Result<Report> {
    let id = m.row.id;
    let mut report = Report::default();
    let mut after = None;
    loop {
        let keys = inner.state().held_by(id, after, PAGE * 16)?;
        let Some(last) = keys.last().copied() else {
            break;
        };
        after = Some(last);
        top_up_report(inner, &keys, Some(id), &mut report)?;
    }
    inner.flush_all()?;
    Ok(report)
}

/// Compares every member's listing with the state (fixing the state both ways); with `read`,
/// also reads every copy and replaces damaged ones with a good copy from another member.
/// Then tops up whatever fell short.
pub(crate) fn scrub(inner: &Arc<Inner>, read: bool) -> Result<Report> {
    let mut report = Report::default();
    for m in inner.members() {
        let Some(b) = m.backend().cloned() else {
            continue;
        };
        if !m.info().is_some_and(|i| i.can_list) {
            continue;
        }
        let mut after = None;
        loop {
            let (listed, more) = match b.list(after, 10_000) {
                Ok(r) => r,
                Err(e) => {
                    inner.broken(&m, &e);
                    break;
                }
            };
            let Some(last) = listed.last().copied() else {
                break;
            };
            // What the state says this member holds in the same key range.
            let mut ours = Vec::new();
            let mut from = after;
            loop {
                let page = inner.state().held_by(m.row.id, from, 10_000)?;
                let done = page.len() < 10_000 || page.last().is_some_and(|k| *k >= last);
                from = page.last().copied();
                ours.extend(page.into_iter().filter(|k| *k <= last));
                if done {
                    break;
                }
            }
            let listed_set: std::collections::HashSet<Key> = listed.iter().copied().collect();
            let ours_set: std::collections::HashSet<Key> = ours.iter().copied().collect();
            for k in &listed {
                if !ours_set.contains(k) {
                    report.found += 1;
                    let size = inner.state().size(k)?.unwrap_or(0);
                    inner.state().add_copies(k, size, &[m.row.id], 0)?;
                }
            }
            for k in &ours {
                if !listed_set.contains(k) {
                    report.missing += 1;
                    inner.state().drop_copies(k, &[m.row.id])?;
                    inner.state().mark_short(k)?;
                }
            }
            after = Some(last);
            if !more {
                // Whatever the state still lists past the member's last key is missing too.
                let rest = inner.state().held_by(m.row.id, after, u32::MAX)?;
                for k in rest {
                    report.missing += 1;
                    inner.state().drop_copies(&k, &[m.row.id])?;
                }
                break;
            }
        }
        if read {
            read_member(inner, &m, &mut report)?;
        }
    }
    // Blocks below full trust after the corrections.
    top_up_all(inner, &mut report)?;
    report.checked = inner.state().totals()?.0;
    Ok(report)
}

/// Reads every copy member `m` holds; a damaged one is replaced by a good copy from another
/// member where `m` can remove blocks, and reported otherwise.
fn read_member(inner: &Arc<Inner>, m: &Arc<Member>, report: &mut Report) -> Result<()> {
    let Some(b) = m.backend().cloned() else {
        return Ok(());
    };
    let mut after = None;
    loop {
        let keys = inner.state().held_by(m.row.id, after, PAGE)?;
        let Some(last) = keys.last().copied() else {
            break;
        };
        after = Some(last);
        let tickets: Vec<_> = keys.iter().map(|k| (*k, b.start_get(*k))).collect();
        for (k, t) in tickets {
            match t.wait() {
                Ok(Some(_)) => inner.state().clear_damaged(&k, m.row.id)?,
                Ok(None) => {
                    report.missing += 1;
                    inner.state().drop_copies(&k, &[m.row.id])?;
                    inner.state().mark_short(&k)?;
                }
                Err(e) if e.code() == ErrorCode::Corrupt => {
                    report.damaged += 1;
                    inner.state().mark_damaged(&k, m.row.id, &e.to_string())?;
                    if repair_copy(inner, m, &k)? {
                        report.repaired += 1;
                        inner.state().clear_damaged(&k, m.row.id)?;
                    }
                }
                Err(e) => {
                    inner.broken(m, &e);
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Replaces member `m`'s damaged copy of `key` with a good one read from another member.
fn repair_copy(inner: &Arc<Inner>, m: &Arc<Member>, key: &Key) -> Result<bool> {
    let Some(b) = m.backend() else {
        return Ok(false);
    };
    if !m.info().is_some_and(|i| i.can_remove) {
        protocol::log::warning(&format!(
            "block {key} is damaged on {}, which cannot remove blocks: left as it is",
            m.name()
        ));
        inner.state().drop_copies(key, &[m.row.id])?;
        return Ok(false);
    }
    let holders: Vec<i64> = inner
        .state()
        .holders(key)?
        .into_iter()
        .filter(|h| *h != m.row.id)
        .collect();
    let mut good = None;
    for h in holders {
        if let Some(other) = inner.member(h).and_then(|o| o.backend().cloned()) {
            if let Ok(Some(d)) = other.get(*key) {
                good = Some(d);
                break;
            }
        }
    }
    let Some(data) = good else {
        protocol::log::warning(&format!(
            "block {key} is damaged on {} and no other member has a good copy",
            m.name()
        ));
        return Ok(false);
    };
    b.remove(&[*key])?;
    b.put(*key, &data)?;
    Ok(true)
}
