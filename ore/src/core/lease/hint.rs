//! Where this machine's last run left its lease slot free, so that the next run takes it back
//! with one compare-and-swap instead of reading every tag.
//!
//! Taking a lease means finding a free slot, and only a listing of the tags finds them: over
//! ssh that is one round trip, but an object store answers a listing of tags with names only,
//! and backend-s3 then reads each tag (a request per tag of the archive, on every run). A run
//! that frees its slot knows the exact value it left there (`free` and its proof, unique to
//! that run), so it writes slot and value to a small file beside the file cache. The next run
//! moves that slot from that value to its own: the store accepts the move exactly when nobody
//! took the slot since, so the file is a guess the compare-and-swap checks, never trusted. A
//! guess that fails costs one refused move, and the run lists the slots as before.
//!
//! `ore init` leaves a hint too: a new archive has no lease slot yet, so the first snapshot
//! from the machine that made it creates slot 0 from nothing, with no listing (on backend-s3,
//! a LIST and a GET per tag fewer).

use std::path::{Path, PathBuf};

/// The file holding the hint: slot name, a newline, the value left there in hex (empty: the
/// slot was never set).
pub struct Hint(pub PathBuf);

impl Hint {
    /// The hint kept beside the file cache at `cache` (the file cache's own path).
    pub fn beside(cache: &Path) -> Hint {
        Hint(cache.with_extension("lease"))
    }

    /// The slot and value left free by the last run (`None`: a slot never set), if the file
    /// holds a plausible one. The file is removed: a hint serves one run, and a run that
    /// frees its slot writes its own.
    pub fn take(&self) -> Option<(String, Option<Vec<u8>>)> {
        let text = std::fs::read_to_string(&self.0).ok()?;
        let _ = std::fs::remove_file(&self.0);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let (name, value) = text.split_once('\n')?;
        let slot = name.strip_prefix(super::LEASE_PREFIX)?;
        slot.parse::<u32>().ok()?;
        let value = match value {
            "" => None,
            v => Some(hex::decode(v).ok()?),
        };
        Some((name.to_string(), value))
    }

    /// Records that the archive just made has no lease slot: the next run creates slot 0.
    pub fn leave_none(&self) {
        self.leave(&format!("{}0", super::LEASE_PREFIX), &[]);
    }

    /// Records that slot `name` was left holding `value`. A hint that cannot be written only
    /// costs the next run a listing.
    pub fn leave(&self, name: &str, value: &[u8]) {
        let text = format!("{name}\n{}\n", hex::encode(value));
        // Private, as everything in the cache directory is (the file cache beside it).
        let _ = crate::core::util::write_private(&self.0, text.as_bytes(), false);
    }
}
