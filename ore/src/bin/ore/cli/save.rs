//! The arguments of the commands that make and give back snapshots: `init`, `snapshot`,
//! `restore`. Apart from the rest of the command line so that neither file grows past what can
//! be read in one sitting.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Store blocks unencrypted (they are still checked by their keyed hash).
    #[arg(long)]
    pub no_encryption: bool,
    /// Smallest chunk (e.g. 32K).
    #[arg(long, value_name = "SIZE")]
    pub chunk_min: Option<String>,
    /// Average chunk (e.g. 128K).
    #[arg(long, value_name = "SIZE")]
    pub chunk_avg: Option<String>,
    /// Largest chunk (e.g. 512K).
    #[arg(long, value_name = "SIZE")]
    pub chunk_max: Option<String>,
    /// `zstd:N` (1-22) or `none`.
    #[arg(long, value_name = "ALGO")]
    pub compression: Option<String>,
    /// Share the keys, chunker and compression of the archive SOURCE (opened with the same
    /// passphrase), so that `ore sync` between them copies blocks as they are stored.
    #[arg(long, value_name = "SOURCE", conflicts_with_all = ["no_encryption", "chunk_min", "chunk_avg", "chunk_max", "compression"])]
    pub from: Option<String>,
    /// The archive format version: 6 (the default); 5 for an archive that an ore from before
    /// format 6 must still read (each object of `import --each` keeps a directory block of its
    /// own); 4 for one from before format 5 (archive objects list no files, and archive tags
    /// must be upgraded before they change); 3 for one from before archive tags; 2 for one
    /// from before format 3 (each small file in a chunk of its own); or 1 for one from before
    /// format 2, in which `forget` gives the snapshots it keeps new keys. `ore upgrade` moves
    /// it to 6 later.
    #[arg(long, value_name = "N")]
    pub format_version: Option<u32>,
}

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// The tag to add the snapshot to.
    pub tag: String,
    /// What to save; `-` reads standard input (kept as one file, see --stdin-name).
    #[arg(required_unless_present_any = ["stdin_name", "stdin_from_command", "files_from"])]
    pub paths: Vec<PathBuf>,
    /// Also save the paths listed in FILE, one a line (blank lines and lines starting with #
    /// are skipped; repeatable). Every path is then kept at its own absolute place in the
    /// snapshot (`etc/hosts`, `home/me/notes`), so same-named files never collide.
    #[arg(long, value_name = "FILE")]
    pub files_from: Vec<PathBuf>,
    /// The --files-from lists are NUL-separated (`find -print0`), taken as they are.
    #[arg(short = '0', long = "null", requires = "files_from")]
    pub null: bool,
    /// Save standard input as one file of this name (default `stdin` for `-`); with several
    /// --stdin-from-command, the name of each, in the same order.
    #[arg(long, value_name = "NAME")]
    pub stdin_name: Vec<String>,
    /// Save what COMMAND prints as one file (named by --stdin-name, default `stdin`); a
    /// command that fails fails the snapshot, and the tag is not moved. Repeatable, each with
    /// its own --stdin-name: the files of one snapshot, read one after another.
    #[arg(long, value_name = "COMMAND")]
    pub stdin_from_command: Vec<String>,
    /// A label kept with the snapshot, KEY=VALUE (repeatable): shown by `ore snapshots` and
    /// `ore log`, matched by `ore snapshots --label`.
    #[arg(long, value_name = "KEY=VALUE", value_parser = label)]
    pub label: Vec<ore::core::labels::Label>,
    /// A note kept with the snapshot.
    #[arg(long, default_value = "")]
    pub comment: String,
    /// The host name kept with the snapshot (default: this machine's), for `ore snapshots
    /// --host`: a machine renamed, or several backing up under one name.
    #[arg(long, value_name = "NAME", value_parser = host_name)]
    pub host: Option<String>,
    /// Leave out paths matching PATTERN (gitignore syntax); may be repeated. An absolute path
    /// (or glob) below the snapshotted directory means that path (`--exclude ~/Documents`);
    /// another leading `/` anchors at the snapshotted directory, as in .gitignore.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Do not descend into other file systems (mount points are kept as empty directories).
    #[arg(long)]
    pub one_file_system: bool,
    /// Save access times.
    #[arg(long)]
    pub atime: bool,
    /// Save change times.
    #[arg(long)]
    pub ctime: bool,
    /// Read everything and report what would be stored, storing nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Read every file, ignoring the file cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Report the CPU time each stage took (walk, read, chunk, hash, compress, encrypt, store,
    /// index), in seconds and per GB read. Reading the clocks adds about a tenth to the run's
    /// CPU time.
    #[arg(long)]
    pub stats: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum OverwriteArg {
    Never,
    IfChanged,
    Always,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// SNAPSHOT or SNAPSHOT:PATH.
    pub snapshot: String,
    /// Where to restore to (created if missing).
    pub dest: PathBuf,
    /// Re-read every restored file and check it against the snapshot.
    #[arg(long)]
    pub verify: bool,
    /// What to do with what already exists: `never` (the default) leaves files and
    /// directories (their modes, owners and times) as they are, and counts them in one
    /// warning; `if-changed` (the default with --delete) replaces files whose size or mtime
    /// differ and sets directories' metadata; `always` replaces every file.
    #[arg(long, value_enum)]
    pub overwrite: Option<OverwriteArg>,
    /// Restore only what matches PATTERN, and everything below what does (repeatable). A
    /// pattern without `/` matches names; with `/`, paths from the snapshot's root as
    /// `ore ls` and `ore find` show them.
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Leave out what matches PATTERN, and everything below it (repeatable; wins over
    /// --include).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Remove what DEST holds that the snapshot does not (within what --include and
    /// --exclude select), so that DEST matches the snapshot; each removal is printed.
    #[arg(long)]
    pub delete: bool,
    /// Print what the restore would do, name by name (+ make, ~ replace, = keep,
    /// - remove, ! blocked), and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Do not restore owners, even as root.
    #[arg(long)]
    pub no_owner: bool,
}

/// A host name: not empty, one line, at most 255 bytes.
fn host_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 255 || s.chars().any(char::is_control) {
        return Err(format!(
            "{s:?} is not a host name: it must be 1 to 255 bytes, without control characters"
        ));
    }
    Ok(s.to_string())
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The tag to add snapshots to.
    pub tag: String,
    /// What to watch and save.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// How long no change must come before a snapshot starts (500ms, 2s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub settle: String,
    /// The longest a burst of changes waits for its snapshot, from its first change.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub longest: String,
    /// Leave out paths matching PATTERN (gitignore syntax), as `ore snapshot --exclude`.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Take directories with no event at, above or below them from the watch's file cache
    /// without listing them. Only for trees without hard links to files elsewhere, mounts
    /// inside, or rules that change with time: see `ore watch` in docs/USAGE.md.
    #[arg(long)]
    pub trust_events: bool,
}

/// A `--label` argument.
fn label(s: &str) -> Result<ore::core::labels::Label, String> {
    ore::core::labels::parse(s).map_err(|e| e.to_string())
}
