//! The optional config file (TOML). Its `archive` follows the same rule as `-a`
//! (`connect::open::classify`), relative paths from the current directory, and a leading `~/`
//! is the home directory, as the shell makes it for `-a ~/...`.
//!
//! ```toml
//! archive = "/mnt/disk/ore"
//! passphrase_command = "pass show ore"
//! compression = "zstd:3"          # for `ore init`
//! cache_dir = "/var/cache/ore"
//! exclude = [ { name = "*.tmp" }, { and = [ { name = "target" }, { larger_than = "1G" } ] } ]
//! ```

use anyhow::{anyhow, bail, Context, Result};
use ore::commands::snapshot::rules::Rule;
use serde::Deserialize;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub archive: Option<String>,
    pub passphrase_command: Option<String>,
    pub compression: Option<String>,
    pub cache_dir: Option<PathBuf>,
    #[serde(default)]
    pub exclude: Vec<Rule>,
}

/// The largest config file read (1 MiB: a config file is a few lines).
const MAX_CONFIG: u64 = 1 << 20;

pub fn default_path() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("ore/config.toml"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/ore/config.toml"))
}

/// Loads `path`, or the default file when it exists.
pub fn load(path: Option<&Path>) -> Result<Config> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => match default_path() {
            Some(p) => (p, false),
            None => return Ok(Config::default()),
        },
    };
    let what = || format!("config file {}", path.display());
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Config::default())
        }
        Err(e) => return Err(e).with_context(what),
    };
    // Read no more than a config file can sensibly be: `--config /dev/zero` is an error, not
    // all of memory.
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG + 1)
        .read_to_end(&mut bytes)
        .with_context(what)?;
    if bytes.len() as u64 > MAX_CONFIG {
        bail!(
            "{}: larger than {} KiB, too large for a config file",
            what(),
            MAX_CONFIG >> 10
        );
    }
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("{}: not UTF-8 text", what()))?;
    let mut config: Config = toml::from_str(&text).with_context(what)?;
    config.archive = config.archive.map(home_in);
    Ok(config)
}

/// `archive` with a leading `~/` made the home directory, as a shell would have made it on the
/// command line (a `~` inside a backend's command line stays as written: see USAGE.md).
fn home_in(archive: String) -> String {
    match (archive.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest).display().to_string(),
        _ => archive,
    }
}
