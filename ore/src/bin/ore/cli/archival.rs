//! The arguments of archival mode's commands: `import` and `search` (docs/ARCHIVAL.md).

use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The archive tag to file the objects on (made by the first import).
    pub tag: String,
    /// What to import: each PATH (a file or a directory) becomes one object.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// A property, KEY=VALUE or KEY:TYPE=VALUE (TYPE: text, int, date, list; repeatable).
    /// Known keys have fixed types: title, creator, source, comment and type are text, date
    /// is a date (YYYY-MM-DD[THH:MM[:SS]], UTC), tags a comma-separated list. It wins over
    /// what is found in the files.
    #[arg(long, value_name = "KEY=VALUE", value_parser = property)]
    pub set: Vec<ore::core::archival::Setting>,
    /// The object (its key, or a unique prefix of it) the imported PATH replaces: it leaves
    /// the searches and stays listed, reachable through the new object's parent link.
    #[arg(long, value_name = "OBJECT")]
    pub replace: Option<String>,
    /// One object per regular file under each directory PATH (instead of one per PATH),
    /// all filed at once: the directory is stored as a snapshot stores it, and --set applies
    /// to every object.
    #[arg(long)]
    pub each: bool,
    /// Find no properties in the files (name, size, mtime, MIME type): only --set.
    #[arg(long)]
    pub no_extract: bool,
    /// Record each tree's names, metadata and content ids without storing its data: a
    /// catalogue object, marked as such with the disk it is on, that `ore search --file`
    /// and `--name` search. Restoring it explains that the data is not in the archive.
    #[arg(long)]
    pub catalogue_only: bool,
    /// The name of the disk being catalogued, such as "USB-1 (2016)" (default: its file
    /// system label, else its mount point). Its mount point, device, label, UUID and model
    /// are recorded too, where the system knows them.
    #[arg(long, value_name = "NAME", requires = "catalogue_only")]
    pub volume: Option<String>,
    /// Leave out paths matching PATTERN (gitignore syntax), as `ore snapshot` does.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Do not descend into other file systems.
    #[arg(long)]
    pub one_file_system: bool,
    /// The host name kept with the objects (default: this machine's).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Read every file, ignoring the file cache (with --catalogue-only, the catalogue's own
    /// cache: every file is hashed again).
    #[arg(long)]
    pub no_cache: bool,
}

fn property(s: &str) -> Result<ore::core::archival::Setting, String> {
    ore::core::archival::parse_set(s).map_err(|e| e.to_string())
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// The archive tag to search (with --file or --name: every archive tag when left out).
    pub tag: Option<String>,
    /// The query, e.g. `creator=Bach and date>=2019-01-01`, `tags:holiday`,
    /// `title~"sonata"`; `and`, `or`, `not` and parentheses combine terms. Without one,
    /// every current object of the tag.
    pub query: Option<String>,
    /// Where is this file? Every stored or catalogued copy of its bytes.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["query", "name"])]
    pub file: Option<PathBuf>,
    /// Every stored or catalogued file of this name (case folded; end it with `*` for every
    /// name that starts so).
    #[arg(long, value_name = "NAME", conflicts_with = "query")]
    pub name: Option<String>,
    /// Answer from the archive's index alone, without reading or bringing up to date this
    /// machine's copy of it (the search cache, `search-ID.db` beside the file cache).
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Args, Debug)]
pub struct PropsArgs {
    /// The object: its key, or a unique prefix of it (6 or more hex digits).
    pub object: String,
    /// Make a new version of the object with this property set, KEY=VALUE or
    /// KEY:TYPE=VALUE (repeatable): the same tree, not stored again, with the old object as
    /// its parent; the old one leaves the searches. Prints the new object's key.
    #[arg(long, value_name = "KEY=VALUE", value_parser = property)]
    pub set: Vec<ore::core::archival::Setting>,
}
