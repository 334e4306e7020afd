//! The command line: every subcommand, its options and its examples.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

mod archival;
mod look;
mod save;
pub use archival::*;
pub use look::*;
pub use save::*;

#[derive(Parser, Debug)]
#[command(
    name = "ore",
    version,
    about = "Content-addressed, deduplicated, encrypted backups",
    after_help = "Examples:
  ore -a /mnt/disk/ore init                     create an archive in a directory
  ore -a /mnt/disk/ore snapshot home ~/         snapshot your home under the tag `home`
  ore -a /mnt/disk/ore restore home ~/restored  restore its newest snapshot
  ore -a 'ssh nas backend-splitlog /data' tags  any backend command line is an archive

The archive comes from -a/--archive, ORE_ARCHIVE, or the config file. The passphrase from
--passphrase-file (ORE_PASSPHRASE_FILE), --passphrase-command (ORE_PASSPHRASE_COMMAND),
ORE_PASSPHRASE, the config file's passphrase_command, or a prompt, in that order. The config
file is ~/.config/ore/config.toml, or --config (ORE_CONFIG).
Exit status: 0 success, 1 error, 3 completed with warnings."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after its name (shown under their own heading, after
/// the command's own).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// The archive: a directory (opened in process) or a backend command line. A plain path
    /// is an existing directory (`a2`, `/tmp/my backups/ore`: no quotes needed), or, for
    /// `init`, a new one: one word with a `/`, or a path whose parent exists. Anything else
    /// is a command line, split like a shell splits words (`backend-fs '/my dir'`).
    #[arg(
        short = 'a',
        long,
        global = true,
        env = "ORE_ARCHIVE",
        value_name = "ID"
    )]
    pub archive: Option<String>,
    /// Read the passphrase from the first line of FILE.
    #[arg(long, global = true, env = "ORE_PASSPHRASE_FILE", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Run CMD (with sh -c) and use the first line it prints as the passphrase; the command
    /// failing fails the run.
    #[arg(
        long,
        global = true,
        env = "ORE_PASSPHRASE_COMMAND",
        value_name = "CMD"
    )]
    pub passphrase_command: Option<String>,
    /// Config file (default ~/.config/ore/config.toml; missing is fine; a file named here or
    /// by ORE_CONFIG must exist).
    #[arg(long, global = true, env = "ORE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON (one document, or one per line for lists).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only what was asked for (keys, data), no summaries or progress.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Give up on a backend that sends nothing for SECS seconds (or a duration like 5m) while
    /// requests wait (a hung process or a silent network); 0 waits for ever. Passed on to
    /// proxies' inner backends.
    #[arg(
        long,
        global = true,
        env = "ORE_TIMEOUT",
        value_name = "SECS",
        default_value = "300",
        value_parser = timeout
    )]
    pub timeout: std::time::Duration,
    /// Write what the run did (exit status, duration, last success, a snapshot's counters) in
    /// the Prometheus text format to FILE, keeping the samples of other commands and tags
    /// there: for node_exporter's textfile collector.
    #[arg(long, global = true, env = "ORE_METRICS_FILE", value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

/// Reads a number of snapshots to keep, saying what is wrong with one that is not.
fn count(s: &str) -> Result<u32, String> {
    match s.trim().parse::<i64>() {
        Ok(n) if n < 0 => Err("a count cannot be negative: give 0 or more".into()),
        Ok(n) => u32::try_from(n).map_err(|_| format!("more than {}", u32::MAX)),
        Err(_) => Err("not a whole number: give a count of snapshots, like 7".into()),
    }
}

/// Reads a share from 0 to 1.
fn share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("not a share: give a number from 0 to 1, like 0.1".into()),
    }
}

/// Reads `--timeout` (or `ORE_TIMEOUT`), refusing values past the limit.
fn timeout(s: &str) -> Result<std::time::Duration, String> {
    protocol::duration::read_duration(s)
        .map_err(|e| format!("{e} (set by --timeout or ORE_TIMEOUT)"))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new archive.
    #[command(after_help = "Examples:
  ore -a ./archive init
  ore -a ./archive init --compression zstd:9 --chunk-avg 256K
  ore -a 'backend-fs /srv/ore' init --no-encryption")]
    Init(InitArgs),
    /// Save directories and files as a new snapshot on a tag; prints the snapshot's key.
    #[command(after_help = "Examples:
  ore snapshot home ~/ --exclude '*.o' --exclude 'node_modules/'
  ore snapshot etc /etc --comment 'before the upgrade'
  ore snapshot system / --one-file-system --dry-run
  pg_dump db | ore snapshot db --stdin-name db.sql
  ore snapshot db --stdin-name db.sql --stdin-from-command 'pg_dump db'

Leave things out with --exclude (gitignore syntax), .oreignore files in the tree (gitignore
syntax, `!` re-includes), and `exclude` rules in the config file.")]
    Snapshot(SnapshotArgs),
    /// Store files or directories as archive objects with properties, filed on an archive
    /// tag's index; prints each object's key.
    #[command(after_help = "Examples:
  ore import photos ~/Pictures/2019-italy --set title='Italy 2019' --set tags=holiday,family
  ore import music ~/Music/bach-cello.flac --set creator=Bach --set date=1720-01-01
  ore import papers new.pdf --replace 3f2a          a new version of object 3f2a…

Properties found in the files: name, size, mtime and type (the MIME type from the first
bytes); --set wins over them, --no-extract leaves them out. See `ore search`.")]
    Import(ImportArgs),
    /// Show an archive object's properties, or make a new version of it with some set.
    #[command(after_help = "Examples:
  ore props 3f2a9c                              every property, with the object's parent
  ore props 3f2a9c --set comment='the good copy' --set tags=final,signed")]
    Props(PropsArgs),
    /// Find the objects of an archive tag whose properties match a query.
    #[command(after_help = "Examples:
  ore search photos 'tags:holiday and date>=2019-01-01'
  ore search music 'creator=Bach or title~\"sonata\"' --json
  ore search papers 'not type=application/pdf'

A term is KEY OP VALUE with OP one of = != < <= > >= (values compare as their property's
type: dates as dates, sizes as numbers), KEY:VALUE (a member of a list, such as tags), or
KEY~WORDS (each word starts a word of the property). Terms combine with and (or side by
side), or, not and parentheses. Values with spaces go in double quotes.")]
    Search(SearchArgs),
    /// Snapshot a tree again each time it changes (after the changes settle), walking only
    /// where something changed.
    #[command(after_help = "Examples:
  ore watch notes ~/notes                       a snapshot 2 s after each burst of changes
  ore watch src ~/src --settle 30s --longest 10m --exclude target/")]
    Watch(WatchArgs),
    /// Restore a snapshot, a directory in it, or one file.
    #[command(after_help = "Examples:
  ore restore home /tmp/home                 everything
  ore restore home~1:Documents /tmp/docs     one directory of the snapshot before
  ore restore home@2026-06-01:.bashrc .      one file as it was on June 1st
  ore restore 3fa9c1 /tmp/x --verify         by key prefix, re-reading what was written
  ore restore home /tmp/x --include '*.pdf' --exclude 'old/'
                                             every PDF, with the directories on the way
  ore restore home ~/ --delete --dry-run     what making ~/ match the snapshot would do
  ore restore home ~/ --delete               ... and do it (each removal is printed)")]
    Restore(RestoreArgs),
    /// List the files of a snapshot.
    #[command(after_help = "Examples:
  ore ls home
  ore ls home~2:etc -l
  ore ls home -R --json")]
    Ls(LsArgs),
    /// Write a file from a snapshot to standard output.
    #[command(after_help = "Examples:
  ore cat home:.bashrc | less
  ore cat 'home@2026-06-01:notes/todo.txt' > todo-then.txt")]
    Cat(CatArgs),
    /// Sizes: restored, deduplicated and stored, and what each tag (or each snapshot named)
    /// holds that nothing else does.
    #[command(after_help = "Examples:
  ore stats                    every tag, with what only it holds
  ore stats home~1 home        two snapshots, and what each adds to the other
  ore stats --json | jq .deduplicated")]
    Stats(StatsArgs),
    /// Find which snapshots hold a name (a glob), with each match's size and time.
    #[command(
        after_help = "A pattern without `/` is matched against each name; with a `/`,
against the whole path from the snapshot's root (as `ore ls SNAPSHOT:PATH` takes it), where
`*` stays within one name and `**` crosses directories.

Examples:
  ore find '*.pdf'
  ore find 'home/me/**/report*' --tag home --newer 30d
  ore find -i readme --older 2026-01-01
  ore find '*.sql' --json | jq -r '.snapshot + \" \" + .path'"
    )]
    Find(FindArgs),
    /// Show the snapshots of a tag, newest first.
    #[command(after_help = "Examples:
  ore log home
  ore log home --json | jq -r .key")]
    Log(LogArgs),
    /// List every snapshot of every tag, oldest first: key, time (local, with its offset),
    /// names (TAG~N), user@host, paths, files, size, warnings.
    #[command(after_help = "Examples:
  ore snapshots
  ore snapshots --tag home --host laptop
  ore snapshots --path /home/me --utc
  ore snapshots --json | jq -r 'select(.warnings > 0) | .key'")]
    Snapshots(SnapshotsArgs),
    /// List tags and the snapshot each names.
    #[command(after_help = "Examples:
  ore tags
  ore tags --json | jq -r .tag")]
    Tags,
    /// Start a new tag at another tag's newest snapshot.
    #[command(after_help = "Examples:
  ore fork home home-before-migration
  ore fork 'home~3' home-last-week")]
    Fork(ForkArgs),
    /// Manage passphrases (key slots).
    #[command(
        subcommand,
        after_help = "Examples:
  ore key list
  ore key add                      asks for the new passphrase (twice)
  ore key remove 3fa9c1d2
  ore key passwd --new-passphrase-file ~/.config/ore/new-pass"
    )]
    Key(KeyCommand),
    /// Verify that everything the archive's tags reach is present (and, with --read-data,
    /// intact), or compare a snapshot with a directory.
    #[command(after_help = "Examples:
  ore check                         every block every tag and reflog entry reaches exists
  ore check --read-data             ... and every block reads back, decrypts and hashes right
  ore check --read-data=3/7         ... for the 3rd of 7 fixed slices of the data (cron: 1..7)
  ore check --read-data=5%          ... for a random 5% of the data
  ore check home~2                  one snapshot (not its chain)
  ore check home --compare ~/       the newest snapshot of home against the directory

Problems are listed with the block key, its kind, what the backend said about it and the
snapshot paths that reach it. Checking everything also compares every tag with the reflog: a
tag behind its own history (rolled back) is listed with the command that puts it back, and so
is a reflog that is missing or unreadable. The exit status is 1 when anything is missing,
damaged or behind.")]
    Check(CheckArgs),
    /// Show what changed between two snapshots: added, removed, modified, renamed.
    #[command(after_help = "Examples:
  ore diff home~1 home              what the last snapshot changed
  ore diff home@2026-01-01 home etc only under etc/
  ore diff home~1 home --json       one change per line, for scripts

Lines start with + (added), - (removed), M (modified, saying what: content, mode, owner,
mtime, xattrs, target, type) or R (renamed or moved: same contents at a new path).
Directories that did not change are not read at all.")]
    Diff(DiffArgs),
    /// Copy tags and everything they reach to another archive.
    #[command(after_help = "Examples:
  ore -a /mnt/a init --from /srv/ore            an archive that shares the source's keys
  ore -a /srv/ore sync --to /mnt/a              copy every tag (blocks as stored)
  ore sync --to 'ssh nas backend-splitlog /data' home etc
  ore sync --to ./other --to-passphrase-file ~/.other-pass   re-encrypts for other keys

Blocks the destination lacks are copied (asked about in batches, many puts in flight);
destination tags are created, or moved forward when they name an older snapshot of the
same chain; a destination tag that moved on its own is reported and left alone. An
interrupted sync, run again, copies only what is still missing.")]
    Sync(SyncArgs),
    /// Write a snapshot as a self-contained, checksummed stream (see `ore load`).
    #[command(after_help = "Examples:
  ore dump home > home.oredump
  ore dump home~3 | ssh elsewhere ore -a /srv/ore load home

The stream holds names, metadata and bytes but no keys, so it loads into any archive.")]
    Dump(DumpArgs),
    /// Read a stream written by `ore dump` onto TAG: a snapshot's as a new snapshot, an
    /// archive tag's as its objects, filed on TAG.
    #[command(after_help = "Examples:
  ore load home < home.oredump
  ssh old-server ore dump home | ore load home")]
    Load(LoadArgs),
    /// Browse the archive in a shell: tags, their snapshots by time, and the files in them.
    #[command(after_help = "Example session:
  $ ore explore
  ore:/> ls
  home/
  ore:/> cd home/current/Documents
  ore:/home/current/Documents> ls -l
  ore:/home/current/Documents> get report.odt /tmp/report.odt
  ore:/home/current/Documents> info

Commands: ls [-l], cd, pwd, cat, get PATH [DEST], info, find PATTERN, help, exit. Not on a
terminal, commands are read from standard input, one per line.")]
    Explore {
        /// Show only this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Mount the archive read-only (FUSE): /TAG/TIME/... and /TAG/current.
    #[command(after_help = "Examples:
  ore mount /mnt/ore                 every tag; Ctrl-C or `fusermount3 -u /mnt/ore` to leave
  ore mount /mnt/ore --tag home      one tag only
  ls /mnt/ore/home/                  current  2026-11-21T02:00:01  2026-11-22T02:00:03 ...
  cp /mnt/ore/home/current/notes.txt .

Files are read on demand: only the blocks a read touches are fetched, through a bounded
cache, with read-ahead for sequential reads. Needs fuse3 (fusermount3).")]
    Mount {
        /// The directory to mount on (what it holds is hidden, not changed, until unmounted).
        mountpoint: PathBuf,
        /// Show only this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Drop snapshots from tags by a retention policy (gc then frees their space).
    #[command(after_help = "Examples:
  ore forget home --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run
  ore forget home etc --keep-last 10 --keep-within 30d

A snapshot is kept when any rule keeps it; the output says which. Buckets are UTC hours,
days, Monday-based weeks, months and years. Forgetting rewrites the tag's chain (kept
snapshots newer than a dropped one get new keys); the old chain stays reachable through the
reflog until `ore reflog expire`, and gc frees space only after that.")]
    Forget(ForgetArgs),
    /// Remove every block that no tag, reflog entry or format record reaches.
    #[command(after_help = "Examples:
  ore gc --dry-run      what would be removed, and its size
  ore gc                remove it, then compact (splitlog)

Safe while snapshots run: gc waits for runs in progress to finish before it removes anything,
and runs that start meanwhile wait for it (nothing is locked for good: a crashed run's lease
expires after ORE_LEASE_TTL seconds, 900 by default).")]
    Gc(GcArgs),
    /// Move a tag to any snapshot (a rollback); the move is recorded in the reflog.
    #[command(after_help = "Examples:
  ore reset home home~1          undo the last snapshot of home
  ore reset home 3fa9c1d2e4b5    point home at a snapshot listed by `ore reflog home`")]
    Reset(ResetArgs),
    /// Show how a tag moved, newest first; `ore reflog expire` drops old entries.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:
  ore reflog home
  ore reflog expire --older-than 90d"
    )]
    Reflog(ReflogArgs),
    /// Every value each tag has had, oldest first, as the archive keeps them until expired.
    #[command(after_help = "Examples:
  ore tag-history home           where home has pointed; reset or fork from any kept value
  ore reset home 3fa9c1d2e4b5    point home back at one of them

The archive's backend keeps each value a tag is set to, even when an append-only key moves
it, and gc keeps the snapshots they name. `ore reflog expire` (with full access) expires
values first seen before its cutoff.")]
    TagHistory(TagHistoryArgs),
    /// Put back a lost format record: the newest value of `ore:format` the tag history kept.
    #[command(after_help = "Examples:
  ore-admin ARCHIVE tag-history ore:format   the values the format record had
  ore -a ARCHIVE restore-format              put back the newest one that still decodes

For an archive whose tag ore:format was deleted or damaged while its data is there: every
command then says the format record is missing. Never run `ore init` there (a new record has a
new master key). This sets ore:format only if it does not exist, to a block that decodes as a
format record.")]
    RestoreFormat,
    /// Move an archive made by an older ore to the current format version.
    #[command(after_help = "Examples:
  ore -a ARCHIVE upgrade

Format 3 (the current one) keeps small files together in shared chunks, which makes archives
of many small files smaller and faster to write and restore. Format 2 keeps the order of a tag's
snapshots in chain links beside the snapshots, so that `forget` never changes the key of a
snapshot it keeps (in format 1 each snapshot named the one before it, and forgetting gave every
newer kept snapshot a new key). The upgrade writes a new format record and nothing else:
existing snapshots keep their keys and stay readable, and new snapshots use the new format. An
ore that reads only an older format refuses the archive afterwards, so upgrade every machine's
ore first.")]
    Upgrade,
    /// Show or prune this machine's file caches (one per archive snapshotted from here).
    #[command(after_help = "Examples:
  ore cache list
  ore cache prune --dry-run
  ore cache prune

A file cache remembers every path, size and owner this machine saved to an archive, so that
unchanged files are not read again. `prune` removes the caches of archives that no longer
exist (their directory is gone, or it holds another archive now); one that cannot be reached
is kept.")]
    Cache(CacheArgs),
    /// Print a completion script for a shell.
    #[command(after_help = "Examples:
  ore completions bash > ~/.local/share/bash-completion/completions/ore
  ore completions zsh > ~/.zfunc/_ore        (with fpath+=~/.zfunc before compinit)
  ore completions fish > ~/.config/fish/completions/ore.fish")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one per command into a directory.
    #[command(after_help = "Examples:
  ore man | man -l -
  ore man --dir ~/.local/share/man/man1      ore.1, ore-snapshot.1, ... (then: man ore-snapshot)")]
    Man {
        /// Write ore.1 and ore-COMMAND.1 for every command into DIR instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// List the file caches: archive id, identifier last used, size, last use.
    #[command(after_help = "Examples:
  ore cache list
  ore cache list --json | jq -r .identifier")]
    List,
    /// Remove the file caches of archives that no longer exist.
    #[command(after_help = "Examples:
  ore cache prune --dry-run
  ore cache prune")]
    Prune {
        /// Say what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Args, Debug)]
pub struct TagHistoryArgs {
    /// Only this tag (reserved `ore:` names too).
    pub tag: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Snapshots to check (default: everything the tags and the reflog reach).
    pub snapshots: Vec<String>,
    /// Also read and verify file data: all, a percentage (`=10%`), or a slice (`=N/M`).
    #[arg(long, value_name = "WHICH", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub read_data: Option<String>,
    /// Compare the one SNAPSHOT[:PATH] given with the directory PATH, bytes and metadata.
    #[arg(long, value_name = "PATH")]
    pub compare: Option<std::path::PathBuf>,
    /// Read exactly the blocks append-only connections stored that no full-access check has
    /// read yet (with full access, the sound ones are then marked so the next run skips them).
    #[arg(long, conflicts_with = "compare")]
    pub unverified: bool,
    /// With --unverified: remove the blocks found bad (full access), so that the next
    /// snapshot that meets their data stores it again (run it with --no-cache).
    #[arg(long, requires = "unverified")]
    pub remove_bad: bool,
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The destination archive.
    #[arg(long, value_name = "ARCHIVE-ID")]
    pub to: String,
    /// Tags to copy (default: all).
    pub tags: Vec<String>,
    /// The destination's passphrase, from the first line of FILE (default: the source's).
    #[arg(long, value_name = "FILE")]
    pub to_passphrase_file: Option<PathBuf>,
    /// The destination's passphrase, printed by CMD (default: the source's).
    #[arg(long, value_name = "CMD")]
    pub to_passphrase_command: Option<String>,
}

#[derive(Args, Debug)]
pub struct DumpArgs {
    /// The snapshot.
    pub snapshot: String,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The tag to add the loaded snapshot to.
    pub tag: String,
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// The tags to apply the policy to.
    #[arg(required = true)]
    pub tags: Vec<String>,
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = count)]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = count)]
    pub keep_hourly: Option<u32>,
    /// ... of each of the last N days.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = count)]
    pub keep_daily: Option<u32>,
    /// ... of each of the last N weeks.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = count)]
    pub keep_weekly: Option<u32>,
    /// ... of each of the last N months.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = count)]
    pub keep_monthly: Option<u32>,
    /// ... of each of the last N years.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = count)]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot made within DURATION (e.g. 36h, 30d, 2y) of the newest.
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// For archive tags: forget the objects that match QUERY (see `ore search`), with the
    /// versions they replaced. Archive tags forget only by a query, never by age alone.
    #[arg(long = "where", value_name = "QUERY", conflicts_with_all = ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within"])]
    pub query: Option<String>,
    /// Decide and report, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Then free the space at once: expire these tags' reflog entries and kept values (the
    /// dropped snapshots can no longer be brought back), and run gc.
    #[arg(long, visible_alias = "gc")]
    pub prune: bool,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Report what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Longest wait, in seconds, for runs in progress before giving up.
    #[arg(long, value_name = "SECS", default_value = "3600")]
    pub wait: u64,
    /// Do not compact afterwards.
    #[arg(long)]
    pub no_compact: bool,
    /// Compact logs (splitlog) whose dead share is at least this, 0 to 1.
    #[arg(long, value_name = "SHARE", default_value = "0.1", value_parser = share)]
    pub compact_threshold: f64,
    /// Expire every reflog entry and kept tag value first, not only those older than the
    /// archive's retention (`ore reflog keep`): frees what only they hold, and forgotten
    /// snapshots can no longer be brought back.
    #[arg(long)]
    pub expire_reflog: bool,
}

#[derive(Args, Debug)]
pub struct ResetArgs {
    pub tag: String,
    /// Where the tag should point: TAG, TAG~N, TAG@DATE or a key (prefix).
    pub snapshot: String,
}

#[derive(Args, Debug)]
pub struct ReflogArgs {
    #[command(subcommand)]
    pub command: Option<ReflogCommand>,
    /// Only this tag's moves.
    pub tag: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ReflogCommand {
    /// Drop entries older than DURATION; what only they kept becomes garbage for gc.
    #[command(after_help = "Examples:
  ore reflog expire --older-than 90d --dry-run
  ore reflog expire --older-than 1y && ore gc")]
    Expire {
        /// e.g. 90d, 12w, 1y; 0s drops every entry.
        #[arg(long, value_name = "DURATION")]
        older_than: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Show or set how long gc keeps reflog entries and the tags' earlier values (the
    /// archive's reflog retention: 14d unless set).
    #[command(after_help = "Examples:
  ore reflog keep              the retention now
  ore reflog keep 90d          keep three months of tag moves (and what they hold)
  ore reflog keep never        never expire (only `ore reflog expire` does)
  ore reflog keep default      back to 14d")]
    Keep {
        /// An age (14d, 8w, 1y, 0d), `never`, or `default`.
        #[arg(value_name = "AGE")]
        age: Option<String>,
    },
    /// Point the reflog back at one of its earlier heads (`ore tag-history ore:reflog`).
    #[command(after_help = "Examples:
  ore tag-history ore:reflog       the reflog's earlier heads, oldest first
  ore reflog reset 3fa9c1d2e4b5...  make one of them the reflog again (a full key)")]
    Reset {
        /// The reflog block's key (64 hex digits).
        key: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a passphrase (asks for the new one, or reads ORE_NEW_PASSPHRASE / --new-passphrase-file).
    #[command(after_help = "Examples:
  ore key add
  ORE_NEW_PASSPHRASE=\"$(pass show backup/laptop)\" ore key add")]
    Add(NewPass),
    /// List key slots.
    #[command(after_help = "Examples:
  ore key list                     the slot that opened the archive is marked *
  ore key list --json")]
    List,
    /// Remove a key slot by id (not the last one).
    #[command(after_help = "Example:
  ore key remove 3fa9c1d2          an id from `ore key list`")]
    Remove { id: String },
    /// Change the passphrase of the slot that opened the archive (the slot keeps its id).
    #[command(after_help = "Examples:
  ore key passwd
  ore key passwd --new-passphrase-file new.txt")]
    Passwd(NewPass),
}

#[derive(Args, Debug)]
pub struct NewPass {
    /// Read the new passphrase from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
}
