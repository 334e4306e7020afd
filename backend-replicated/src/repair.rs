//! Keeping every block at full trust: topping up, re-replicating, draining and scrubbing.
//!
//! All of them walk the state's blocks in key order, a page at a time (memory stays bounded
//! whatever the archive's size), keep a page of reads and writes in flight at once, and finish
//! with a flush, so the copies they made count only once the members made them durable.
//! Each names the damage it finds in its [`Report`], repaired or not.

use crate::members::Member;
use crate::report::Report;
use crate::{trust_of, Inner};
use protocol::{Error, ErrorCode, Key, Result, Ticket};
use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

/// Blocks handled at once.
const PAGE: u32 = 256;

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
                    report.problem(format!(
                        "block {key}: no member has a readable copy (holders by the state: {}); \
                         the block is lost",
                        holder_names(inner, &holders)
                    ));
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
                        report.problem(format!(
                            "block {key}: still short of 100% trust ({trust}%) after copying"
                        ));
                        report.short.push(key.to_string());
                    }
                }
                Err(e) => {
                    report.problem(format!(
                        "block {key}: still short of 100% trust, copying it failed: {e}"
                    ));
                    report.short.push(key.to_string());
                }
            }
        }
    }
    Ok(unreadable)
}

/// Checks with batched `exists` that every member holds what the state says it does, and
/// forgets the copies that are not there.
fn verify_holdings(inner: &Arc<Inner>, report: &mut Report) -> Result<()> {
    for m in inner.members() {
        let Some(b) = reachable(&m, report) else {
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
                    report.problem(format!("{} could not be checked: {e}", m.name()));
                    inner.broken(&m, &e);
                    break;
                }
            };
            for (k, p) in keys.iter().zip(present) {
                if !p {
                    report.problem(missing_copy(&m, k));
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
        let Some(b) = reachable(&m, &mut report) else {
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
                    report.problem(format!("{} could not be listed: {e}", m.name()));
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
                    report.problem(missing_copy(&m, k));
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
                    report.problem(missing_copy(&m, &k));
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
                    report.problem(missing_copy(m, &k));
                    report.missing += 1;
                    inner.state().drop_copies(&k, &[m.row.id])?;
                    inner.state().mark_short(&k)?;
                }
                Err(e) if e.code() == ErrorCode::Corrupt => {
                    report.damaged += 1;
                    inner.state().mark_damaged(&k, m.row.id, &e.to_string())?;
                    let outcome = match repair_copy(inner, m, &k)? {
                        None => {
                            report.repaired += 1;
                            inner.state().clear_damaged(&k, m.row.id)?;
                            "repaired with a good copy from another member".to_string()
                        }
                        Some(why) => format!("not repaired: {why}"),
                    };
                    report.problem(format!(
                        "block {k} is damaged on {}: {e} ({outcome})",
                        m.name()
                    ));
                }
                Err(e) => {
                    report.problem(format!("{} could not be read: {e}", m.name()));
                    inner.broken(m, &e);
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Replaces member `m`'s damaged copy of `key` with a good one read from another member:
/// `None` when it did, otherwise why not.
fn repair_copy(inner: &Arc<Inner>, m: &Arc<Member>, key: &Key) -> Result<Option<String>> {
    let Some(b) = m.backend() else {
        return Ok(Some(format!("{} is broken", m.name())));
    };
    if !m.info().is_some_and(|i| i.can_remove) {
        protocol::log::warning(&format!(
            "block {key} is damaged on {}, which cannot remove blocks: left as it is",
            m.name()
        ));
        inner.state().drop_copies(key, &[m.row.id])?;
        return Ok(Some(
            "the member cannot remove blocks; its copy no longer counts".into(),
        ));
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
        return Ok(Some("no other member has a good copy".into()));
    };
    b.remove(&[*key])?;
    b.put(*key, &data)?;
    Ok(None)
}

/// The member's connection; a broken member is a problem of the report (it was not checked).
fn reachable(m: &Arc<Member>, report: &mut Report) -> Option<Arc<dyn protocol::Backend>> {
    let b = m.backend().cloned();
    if b.is_none() {
        let why = m.broken().unwrap_or_default();
        report.problem(format!("{} could not be checked: {why}", m.name()));
    }
    b
}

fn missing_copy(m: &Member, key: &Key) -> String {
    format!(
        "block {key}: {} does not have the copy the state lists for it",
        m.name()
    )
}

/// The members `ids` by name, for a problem.
fn holder_names(inner: &Arc<Inner>, ids: &[i64]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter()
        .map(|id| {
            inner
                .member(*id)
                .map_or(format!("member {id}"), |m| m.name())
        })
        .collect::<Vec<_>>()
        .join(", ")
}
