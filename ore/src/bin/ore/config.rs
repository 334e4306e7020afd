//! The optional config file (TOML).
//!
//! ```toml
//! archive = "/mnt/disk/ore"
//! passphrase_command = "pass show ore"
//! compression = "zstd:3"          # for `ore init`
//! cache_dir = "/var/cache/ore"
//! exclude = [ { name = "*.tmp" }, { and = [ { name = "target" }, { larger_than = "1G" } ] } ]
//! ```

use anyhow::{Context, Result};
use ore::rules::Rule;
use serde::Deserialize;
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

fn default_path() -> Option<PathBuf> {
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
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Config::default())
        }
        Err(e) => return Err(e).with_context(|| format!("config file {}", path.display())),
    };
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}
