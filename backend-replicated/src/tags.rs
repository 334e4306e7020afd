//! Tags: kept in the state (which decides compare-and-swap) and copied to every member that
//! takes writes, so every such member holds every tag. (Not every block: a block goes only to
//! members enough for 100% trust, so a member alone is a complete archive only when it was
//! needed for every block.)

use crate::members::Member;
use crate::Inner;
use protocol::{CasOutcome, Error, ErrorCode, Result};
use std::collections::HashMap;

impl Inner {
    /// Writes a tag's value (`None`: removes it) to member `m`, whose value was probably
    /// `guess`.
    pub(crate) fn push_tag(
        &self,
        m: &Member,
        name: &str,
        guess: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<()> {
        let Some(b) = m.backend() else {
            return Ok(());
        };
        let mut expected = guess.map(<[u8]>::to_vec);
        for _ in 0..4 {
            if expected.as_deref() == value {
                return Ok(());
            }
            let outcome = match value {
                Some(v) => b.set_tag(name, expected.as_deref(), v)?,
                None => b.remove_tag(name, expected.as_deref())?,
            };
            match outcome {
                CasOutcome::Done => return Ok(()),
                CasOutcome::Conflict { current } => expected = current,
            }
        }
        Err(Error::backend(
            ErrorCode::Io,
            format!("tag {name} keeps changing on {}", m.name()),
        ))
    }

    /// Writes a tag change to every member that takes writes.
    pub(crate) fn spread_tag(&self, name: &str, old: Option<&[u8]>, value: Option<&[u8]>) {
        for m in self.members().iter().filter(|m| m.writable()) {
            if let Err(e) = self.push_tag(m, name, old, value) {
                protocol::log::warning(&format!(
                    "{} did not take the change of tag {name}: {e}; it is brought up to date \
                     when it works again",
                    m.name()
                ));
                self.broken(m, &e);
            }
        }
    }

    /// Brings a member's tags up to date with the state (tags the state never knew are left
    /// alone).
    pub(crate) fn sync_tags(&self, m: &Member) -> Result<()> {
        let Some(b) = m.backend() else {
            return Ok(());
        };
        let theirs: HashMap<String, Vec<u8>> = b.list_tags()?.into_iter().collect();
        let ours = self.state().all_tags()?;
        for (name, value) in ours {
            let cur = theirs.get(&name).map(Vec::as_slice);
            if cur != value.as_deref() {
                self.push_tag(m, &name, cur, value.as_deref())?;
            }
        }
        Ok(())
    }
}
