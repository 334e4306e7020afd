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

use std::path::PathBuf;

/// The file holding the hint: slot name, a newline, the value left there in hex.
pub struct Hint(pub PathBuf);

impl Hint {
    /// The slot and value left free by the last run, if the file holds a plausible one. The
    /// file is removed: a hint serves one run, and a run that frees its slot writes its own.
    pub fn take(&self) -> Option<(String, Vec<u8>)> {
        let text = std::fs::read_to_string(&self.0).ok()?;
        let _ = std::fs::remove_file(&self.0);
        let (name, value) = text.trim_end().split_once('\n')?;
        let slot = name.strip_prefix(super::LEASE_PREFIX)?;
        slot.parse::<u32>().ok()?;
        Some((name.to_string(), hex::decode(value).ok()?))
    }

    /// Records that slot `name` was left holding `value`. A hint that cannot be written only
    /// costs the next run a listing.
    pub fn leave(&self, name: &str, value: &[u8]) {
        let text = format!("{name}\n{}\n", hex::encode(value));
        // Private, as everything in the cache directory is (the file cache beside it).
        let _ = crate::core::util::write_private(&self.0, text.as_bytes(), false);
    }
}
