//! The arguments of the commands that look at an archive without changing it (`ls`, `cat`,
//! `log`, `snapshots`, `find`, `diff`) and of `fork`: apart from the rest of the command line
//! so that neither file grows past what can be read in one sitting.

use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The older snapshot.
    pub a: String,
    /// The newer snapshot.
    pub b: String,
    /// Only this directory (or file) of both.
    pub path: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// SNAPSHOT or SNAPSHOT:PATH.
    pub snapshot: String,
    /// Long listing: type, mode, owner, size, time.
    #[arg(short = 'l')]
    pub long: bool,
    /// Recurse into directories.
    #[arg(short = 'R')]
    pub recursive: bool,
}

#[derive(Args, Debug)]
pub struct CatArgs {
    /// SNAPSHOT:PATH of a file.
    pub file: String,
}

#[derive(Args, Debug)]
pub struct LogArgs {
    pub tag: String,
    /// Times in UTC, not this machine's zone (`--json` always gives UTC, as `TAG@DATE` takes).
    #[arg(long)]
    pub utc: bool,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    /// Only snapshots of this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Only snapshots taken on this host (repeatable).
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,
    /// Only snapshots that saved this path (repeatable; relative paths are taken from the
    /// current directory).
    #[arg(long, value_name = "PATH")]
    pub path: Vec<PathBuf>,
    /// Times in UTC, not this machine's zone (for scripts).
    #[arg(long)]
    pub utc: bool,
    /// Only snapshots with this label, KEY=VALUE (repeatable: all of them).
    #[arg(long, value_name = "KEY=VALUE", value_parser = |s: &str| ore::core::labels::parse(s).map_err(|e| e.to_string()))]
    pub label: Vec<ore::core::labels::Label>,
}

#[derive(Args, Debug)]
pub struct ForkArgs {
    /// The snapshot the new tag starts from: a tag (its newest), TAG~N, TAG@DATE or a key.
    #[arg(value_name = "SNAPSHOT")]
    pub tag: String,
    pub new_tag: String,
}

#[derive(Args, Debug)]
pub struct FindArgs {
    /// A glob: `*.pdf`, `report-202?.txt`, `home/me/**/notes*`.
    pub pattern: String,
    /// Only snapshots of this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Only snapshots taken since DATE (YYYY-MM-DD[THH:MM[:SS]], UTC) or for AGE (30d, 12h).
    #[arg(long, value_name = "DATE|AGE")]
    pub newer: Option<String>,
    /// Only snapshots taken before DATE (a day counts whole) or more than AGE ago.
    #[arg(long, value_name = "DATE|AGE")]
    pub older: Option<String>,
    /// Match without regard to case.
    #[arg(short = 'i', long)]
    pub ignore_case: bool,
    /// Times in UTC, not this machine's zone (for scripts).
    #[arg(long)]
    pub utc: bool,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Snapshots to count, each on its own (default: every tag, each with its chain).
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
}
