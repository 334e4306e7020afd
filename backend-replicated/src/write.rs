//! Storing a block: on members drawn by write weight until the copies' trust reaches 100%,
//! replacing members that fail, and noting the copies (in memory, then in the state in
//! batches) to be made durable by the members' next flush.

use crate::members::{choose, Member};
use crate::Inner;
use crate::{repair, trust_of, COPY_BATCH};
use ore_util::lock;
use protocol::{Error, ErrorCode, Key, Result, Ticket};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

impl Inner {
    /// Records that a block is stored short of full trust; warns the first few times.
    fn shortfall(&self, key: &Key, trust: u32) {
        let _ = self.state().mark_short(key);
        let n = self.short.fetch_add(1, SeqCst);
        if n < 3 {
            protocol::log::warning(&format!(
                "block {key} is stored with {trust}% trust, short of 100% (not enough working \
                 members); `rereplicate` will complete it"
            ));
        }
    }

    /// Notes copies the members acknowledged (to be made durable by the flush of `gen`).
    fn record_copies(&self, key: Key, size: u64, members: &[i64], gen: u64) -> Result<()> {
        if members.is_empty() {
            return Ok(());
        }
        let full = {
            let mut copies = lock(&self.copies);
            let entry = copies.entry(key).or_insert((size, Vec::new()));
            entry.1.extend(members.iter().map(|m| (*m, gen)));
            copies.len() >= COPY_BATCH
        };
        if full {
            self.write_copies()?;
        }
        Ok(())
    }

    /// Writes the copies held in memory to the state.
    pub(crate) fn write_copies(&self) -> Result<()> {
        let copies: Vec<(Key, u64, i64, u64)> = lock(&self.copies)
            .drain()
            .flat_map(|(k, (size, ms))| ms.into_iter().map(move |(m, g)| (k, size, m, g)))
            .collect();
        self.state().add_copies_many(&copies)
    }

    /// Starts storing `data` on more members (never those in `exclude`) until the copies'
    /// trust reaches 100, counting the members in `holders`. The ticket gives the trust
    /// reached; zero trust is an error.
    pub(crate) fn start_replicate(
        self: &Arc<Self>,
        key: Key,
        data: Vec<u8>,
        holders: &[i64],
        exclude: Option<i64>,
        gen: u64,
    ) -> Ticket<u32> {
        let members = self.members();
        let have = trust_of(members.iter().filter(|m| holders.contains(&m.row.id)));
        let mut candidates: Vec<_> = members
            .iter()
            .filter(|m| m.writable() && !holders.contains(&m.row.id) && Some(m.row.id) != exclude)
            .cloned()
            .collect();
        if have >= 100 || (!holders.is_empty() && candidates.is_empty()) {
            // Stored already (never overwritten), or held and nowhere else to put it.
            return Ticket::ready(Ok(have));
        }
        let chosen = choose(&self.rng, &mut candidates, have);
        self.inflight(key, true);
        let tickets: Vec<_> = chosen
            .into_iter()
            .filter_map(|m| {
                let t = m.backend()?.start_put(key, data.clone());
                Some((m, t))
            })
            .collect();
        let inner = self.clone();
        Ticket::pending(move || {
            let r = inner.finish_replicate(key, &data, have, tickets, candidates, gen);
            inner.inflight(key, false);
            r
        })
    }

    fn finish_replicate(
        &self,
        key: Key,
        data: &[u8],
        mut have: u32,
        tickets: Vec<(Arc<Member>, Ticket<()>)>,
        mut candidates: Vec<Arc<Member>>,
        gen: u64,
    ) -> Result<u32> {
        let mut stored = Vec::new();
        let mut errors = Vec::new();
        // A member's answer: its trust counts, or it is marked broken.
        let mut settle = |m: &Member, outcome: Result<()>, have: &mut u32| match outcome {
            Ok(()) => {
                *have = have.saturating_add(m.row.trust).min(100);
                stored.push(m.row.id);
            }
            Err(e) => {
                errors.push(format!("{}: {e}", m.name()));
                self.broken(m, &e);
            }
        };
        for (m, t) in tickets {
            settle(&m, t.wait(), &mut have);
        }
        // Replace the members that failed.
        while have < 100 {
            let Some(m) = self.rng.draw(&mut candidates) else {
                break;
            };
            let Some(b) = m.backend() else { continue };
            settle(&m, b.put(key, data), &mut have);
        }
        self.record_copies(key, data.len() as u64, &stored, gen)?;
        if have == 0 {
            let why = if errors.is_empty() {
                "no member takes writes (each is broken, read-only, or has trust 0)".to_string()
            } else {
                errors.join("; ")
            };
            return Err(Error::backend(
                ErrorCode::Io,
                format!("block {key} was not stored with any trust: {why}"),
            ));
        }
        if have < 100 {
            self.shortfall(&key, have);
        }
        Ok(have)
    }

    pub(crate) fn inflight(&self, key: Key, add: bool) {
        let mut f = lock(&self.inflight);
        if add {
            *f.entry(key).or_default() += 1;
        } else if let Some(n) = f.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                f.remove(&key);
            }
        }
    }

    /// Flushes every working member; copies pending on members that fail are lost, and the
    /// blocks they leave short are copied to other members (and flushed) before returning.
    pub(crate) fn flush_all(self: &Arc<Self>) -> Result<()> {
        self.write_copies()?;
        for _round in 0..4 {
            let gen = self.gen.fetch_add(1, SeqCst);
            let members: Vec<_> = self
                .members()
                .into_iter()
                .filter(|m| m.backend().is_some())
                .collect();
            let results: Vec<(Arc<Member>, Result<()>)> = std::thread::scope(|s| {
                let hs: Vec<_> = members
                    .iter()
                    .map(|m| {
                        let m = m.clone();
                        s.spawn(move || {
                            let r = m.backend().map_or(Ok(()), |b| b.flush());
                            (m, r)
                        })
                    })
                    .collect();
                hs.into_iter().filter_map(|h| h.join().ok()).collect()
            });
            let mut lost = Vec::new();
            // Members broken earlier in the session never made their pending copies durable.
            for m in self.members().iter().filter(|m| m.backend().is_none()) {
                lost.extend(self.state().copies_lost(m.row.id)?);
            }
            for (m, r) in results {
                match r {
                    Ok(()) => self.state().copies_flushed(m.row.id, gen)?,
                    Err(e) => {
                        self.broken(&m, &e);
                        lost.extend(self.state().copies_lost(m.row.id)?);
                    }
                }
            }
            self.state().sync()?;
            if lost.is_empty() {
                break;
            }
            lost.sort();
            lost.dedup();
            protocol::log::warning(&format!(
                "{} block(s) had copies only acknowledged by members that failed before making \
                 them durable; copying them from the other holders",
                lost.len()
            ));
            let unrecoverable = repair::top_up(self, &lost, None)?;
            if !unrecoverable.is_empty() {
                return Err(Error::backend(
                    ErrorCode::Io,
                    format!(
                        "{} block(s) were acknowledged only by members that failed before making \
                         them durable, and no other member has them (first: {}); the snapshot \
                         that wrote them must be taken again",
                        unrecoverable.len(),
                        unrecoverable[0]
                    ),
                ));
            }
        }
        let short = self.short.swap(0, SeqCst);
        if short > 0 {
            protocol::log::warning(&format!(
                "{short} block(s) were stored short of 100% trust; run `rereplicate` (ore-admin) \
                 when enough members work"
            ));
        }
        Ok(())
    }
}
