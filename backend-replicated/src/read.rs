//! Reading a block: the best holder first, then the other holders, then every member.
//!
//! A read also keeps the state honest: a copy found where the state did not expect it is
//! recorded, a copy the state listed but the member lacks is forgotten (and the block marked
//! short), and a copy the member reports damaged is recorded and reported, while the caller
//! gets the good bytes from another member.

use crate::members::Member;
use crate::Inner;
use protocol::{Error, ErrorCode, Key, Result, Ticket};
use std::sync::Arc;

impl Inner {
    /// Starts reading `key`: from the best holder first, falling back to the others and then
    /// to every member.
    pub(crate) fn start_get(self: &Arc<Self>, key: Key) -> Ticket<Option<Vec<u8>>> {
        let holders = match self.holders(&key) {
            Ok(h) => h,
            Err(e) => return Ticket::ready(Err(e)),
        };
        let order = self.read_order(&holders);
        let first = order
            .first()
            .and_then(|m| m.any_backend())
            .map(|b| b.start_get(key));
        let inner = self.clone();
        Ticket::pending(move || inner.finish_get(key, holders, order, first))
    }

    /// Members to read `key` from, best first: holders by read weight (working ones first),
    /// then every other member by read weight.
    fn read_order(&self, holders: &[i64]) -> Vec<Arc<Member>> {
        let mut members = self.members();
        members.sort_by_key(|m| {
            (
                !holders.contains(&m.row.id),
                m.broken().is_some(),
                std::cmp::Reverse(m.row.read_weight),
                self.rng.below(1 << 16),
            )
        });
        members
    }

    /// Reads `key` from the members in `order`, the first answer already on its way.
    fn finish_get(
        &self,
        key: Key,
        holders: Vec<i64>,
        order: Vec<Arc<Member>>,
        first: Option<Ticket<Option<Vec<u8>>>>,
    ) -> Result<Option<Vec<u8>>> {
        let mut first = first;
        let mut missing = Vec::new();
        let mut damaged: Vec<(Arc<Member>, String)> = Vec::new();
        let mut errors = Vec::new();
        // Whether every failure was a member that could not be reached (not a failed read).
        let mut unreached = true;
        for m in &order {
            let r = match first.take() {
                Some(t) => t.wait(),
                None => match m.any_backend() {
                    Some(b) => b.get(key),
                    None => continue,
                },
            };
            match r {
                Ok(Some(data)) => {
                    self.after_read(&key, &holders, m, data.len() as u64, &missing, &damaged);
                    return Ok(Some(data));
                }
                Ok(None) => {
                    if holders.contains(&m.row.id) {
                        missing.push(m.clone());
                    }
                }
                Err(e) if e.code() == ErrorCode::Corrupt => {
                    damaged.push((m.clone(), e.to_string()))
                }
                Err(e) => {
                    errors.push(format!("{}: {e}", m.name()));
                    unreached &=
                        matches!(e, Error::Connection { .. }) || e.code() == ErrorCode::Unavailable;
                    if matches!(e, Error::Connection { .. }) {
                        self.broken(m, &e);
                    }
                }
            }
        }
        let known_damage = !damaged.is_empty();
        for (m, why) in &damaged {
            let _ = self.state().mark_damaged(&key, m.row.id, why);
            errors.push(format!("{}: {why}", m.name()));
        }
        if errors.is_empty() && !known_damage {
            if !missing.is_empty() {
                let names: Vec<String> = missing.iter().map(|m| m.name()).collect();
                protocol::log::warning(&format!(
                    "block {key} should be on {} but no member has it",
                    names.join(", ")
                ));
                let ids: Vec<i64> = missing.iter().map(|m| m.row.id).collect();
                self.state().drop_copies(&key, &ids)?;
            }
            return Ok(None);
        }
        Err(Error::backend(
            if known_damage {
                ErrorCode::Corrupt
            } else if unreached {
                ErrorCode::Unavailable
            } else {
                ErrorCode::Io
            },
            format!(
                "block {key} could not be read from any member: {}",
                errors.join("; ")
            ),
        ))
    }

    /// Bookkeeping after a successful read from `m`: copies that were not there, damaged
    /// copies, and a copy found where the state did not expect it.
    fn after_read(
        &self,
        key: &Key,
        holders: &[i64],
        m: &Member,
        size: u64,
        missing: &[Arc<Member>],
        damaged: &[(Arc<Member>, String)],
    ) {
        let mut st = self.state();
        if !holders.contains(&m.row.id) {
            let _ = st.add_copies(key, size, &[m.row.id], 0);
        }
        if !missing.is_empty() {
            let ids: Vec<i64> = missing.iter().map(|m| m.row.id).collect();
            let _ = st.drop_copies(key, &ids);
            let _ = st.mark_short(key);
            for x in missing {
                protocol::log::warning(&format!(
                    "block {key} was not on {} as recorded; read it from {} (`rereplicate` restores full trust)",
                    x.name(),
                    m.name()
                ));
            }
        }
        for (x, why) in damaged {
            let _ = st.mark_damaged(key, x.row.id, why);
            protocol::log::warning(&format!(
                "block {key} is damaged on {} ({why}); read it from {} instead (`scrub --read` repairs it)",
                x.name(),
                m.name()
            ));
        }
    }
}
