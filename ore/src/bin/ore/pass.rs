//! Getting passphrases without ever taking one as a plain argument.

use anyhow::{anyhow, bail, Context, Result};
use std::io::IsTerminal;
use std::path::Path;

/// Where the passphrase for opening comes from, in order of preference.
#[derive(Debug, Default, Clone)]
pub struct Source {
    pub file: Option<std::path::PathBuf>,
    pub command: Option<String>,
    pub config_command: Option<String>,
}

fn first_line(bytes: &[u8]) -> Vec<u8> {
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let line = &bytes[..end];
    line.strip_suffix(b"\r").unwrap_or(line).to_vec()
}

fn from_file(p: &Path) -> Result<Vec<u8>> {
    let b = std::fs::read(p).with_context(|| format!("passphrase file {}", p.display()))?;
    Ok(first_line(&b))
}

fn from_command(cmd: &str) -> Result<Vec<u8>> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("passphrase command `{cmd}`"))?;
    if !out.status.success() {
        bail!("passphrase command `{cmd}` failed ({})", out.status);
    }
    Ok(first_line(&out.stdout))
}

fn prompt(text: &str) -> Result<Vec<u8>> {
    if !std::io::stdin().is_terminal() && std::fs::File::open("/dev/tty").is_err() {
        bail!(
            "no passphrase: set ORE_PASSPHRASE, or use --passphrase-file or --passphrase-command"
        );
    }
    rpassword::prompt_password(text)
        .map(String::into_bytes)
        .map_err(|e| anyhow!("no passphrase: could not prompt ({e}); set ORE_PASSPHRASE, or use --passphrase-file or --passphrase-command"))
}

impl Source {
    /// The passphrase for opening an archive.
    pub fn get(&self, text: &str) -> Result<Vec<u8>> {
        if let Some(f) = &self.file {
            return from_file(f);
        }
        if let Some(c) = &self.command {
            return from_command(c);
        }
        if let Some(p) = std::env::var_os("ORE_PASSPHRASE") {
            return Ok(std::os::unix::ffi::OsStringExt::into_vec(p));
        }
        if let Some(c) = &self.config_command {
            return from_command(c);
        }
        prompt(text)
    }

    /// A passphrase being chosen (init): from the same sources, or asked twice.
    pub fn get_new(&self) -> Result<Vec<u8>> {
        if self.file.is_some()
            || self.command.is_some()
            || std::env::var_os("ORE_PASSPHRASE").is_some()
            || self.config_command.is_some()
        {
            let p = self.get("")?;
            if p.is_empty() {
                bail!("the passphrase is empty");
            }
            return Ok(p);
        }
        new_prompted()
    }
}

fn new_prompted() -> Result<Vec<u8>> {
    let a = prompt("New passphrase: ")?;
    let b = prompt("Repeat it: ")?;
    if a != b {
        bail!("the two passphrases differ; nothing was changed");
    }
    if a.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(a)
}

/// A second, new passphrase (key add/passwd): ORE_NEW_PASSPHRASE, a file, or asked twice.
pub fn new_passphrase(file: Option<&Path>) -> Result<Vec<u8>> {
    if let Some(f) = file {
        return from_file(f);
    }
    if let Some(p) = std::env::var_os("ORE_NEW_PASSPHRASE") {
        return Ok(std::os::unix::ffi::OsStringExt::into_vec(p));
    }
    new_prompted()
}
