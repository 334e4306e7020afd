//! What a repair (`rereplicate`, `scrub`, `drain`) did and found, for its admin answer.
//!
//! Counters say how much work was done; `problems` names each piece of damage found — a copy
//! a member lost, a damaged copy (repaired or not), a block no member can provide, a block left
//! short of full trust, a member that could not be checked. They become the answer's
//! `problems` array (PROTOCOL.md §6, "admin"), so `ore-admin` exits 1 after a run that found
//! damage even when it repaired all of it: a member that loses copies is worth knowing about.
//! Copies a member holds that the state did not list are not damage (a crash between a put
//! and the state's record leaves them) and are only counted.

use protocol::AdminOutput;

/// Problems kept one by one at most; past that, only counted (a member that lost everything
/// must not make the answer too large to send).
const MAX_LISTED: usize = protocol::backend::MAX_PROBLEMS_LISTED;

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
    /// Each piece of damage found, named (at most [`MAX_LISTED`], then a count).
    problems: Vec<String>,
    unlisted: u64,
}

impl Report {
    /// Records a piece of damage.
    pub fn problem(&mut self, p: String) {
        if self.problems.len() < MAX_LISTED {
            self.problems.push(p);
        } else {
            self.unlisted += 1;
        }
    }

    /// Every problem found, the last entry counting those not named.
    pub fn problems(&self) -> Vec<String> {
        let mut all = self.problems.clone();
        if self.unlisted > 0 {
            all.push(format!("and {} more problem(s) not listed", self.unlisted));
        }
        all
    }

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
        if !self.unreadable.is_empty() {
            t.push_str(&format!(
                "no readable copy:     {} (these blocks are lost)\n",
                self.unreadable.len()
            ));
        }
        t
    }

    /// The admin answer: `prefix`, the counters, and the problems (text and JSON).
    pub fn output(&self, prefix: &str) -> AdminOutput {
        AdminOutput::checked(
            format!("{prefix}{}", self.text()),
            self.json(),
            &self.problems(),
        )
    }
}
