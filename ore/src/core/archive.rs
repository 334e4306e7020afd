//! Opening an archive from its identifier (the rule is shared with the proxies, so it lives in
//! [`connect::open`]).

pub use connect::open::{
    classify, local_dir, open, open_existing, open_existing_single, open_single, Kind, LANES_ENV,
};

/// Environment variable naming the archive when no `-a/--archive` is given.
pub const ARCHIVE_ENV: &str = "ORE_ARCHIVE";
