//! How a snapshot's counts read, in one place: `ore snapshot` prints them on one line when it
//! ends, and `info` in `ore explore` prints them for any snapshot, in the same words.

use ore::core::entry::SnapshotStats;
use ore::core::util::human_bytes;

/// What the snapshot holds: "3 files, 2 dirs, 0 other, 12.0 KiB".
pub fn contents(st: &SnapshotStats) -> String {
    format!(
        "{} files, {} dirs, {} other, {}",
        st.files,
        st.dirs,
        st.other,
        human_bytes(st.bytes)
    )
}

/// What making it stored: "4 new blocks, 12.0 KiB new (3.1 KiB stored)".
pub fn stored(st: &SnapshotStats) -> String {
    format!(
        "{} new blocks, {} new ({} stored)",
        st.new_blocks,
        human_bytes(st.new_bytes),
        human_bytes(st.stored_bytes)
    )
}
