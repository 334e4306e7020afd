//! Getting passphrases without ever taking one as a plain argument.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufReader, IsTerminal, Read};
use std::path::Path;

/// Where the passphrase for opening comes from, in order of preference.
#[derive(Debug, Default, Clone)]
pub struct Source {
    pub file: Option<std::path::PathBuf>,
    pub command: Option<String>,
    pub config_command: Option<String>,
}

/// The longest passphrase read from a file or a command.
const MAX_PASSPHRASE: usize = 4096;
/// The most a passphrase command may print in all; it should print the passphrase and end.
const MAX_COMMAND_OUTPUT: u64 = 1 << 20;

/// The first line of `r` (without its line ending), reading no more than a passphrase can be:
/// a file or a command that goes on and on (`/dev/zero`, `yes`) costs nothing.
fn first_line(r: impl Read, what: &str) -> Result<Vec<u8>> {
    let mut line = Vec::new();
    ore::core::util::read_line_capped(&mut BufReader::new(r), MAX_PASSPHRASE, &mut line).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            anyhow!("{what}: its first line is longer than {MAX_PASSPHRASE} bytes, too long for a passphrase")
        } else {
            anyhow::Error::new(e).context(what.to_string())
        }
    })?;
    Ok(line)
}

fn from_file(p: &Path) -> Result<Vec<u8>> {
    let what = format!("passphrase file {}", p.display());
    let f = std::fs::File::open(p).with_context(|| what.clone())?;
    first_line(f, &what)
}

fn from_command(cmd: &str) -> Result<Vec<u8>> {
    let what = format!("passphrase command `{cmd}`");
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::inherit())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    for var in connect::spawn::SECRET_ENV {
        command.env_remove(var);
    }
    let mut child = command.spawn().with_context(|| what.clone())?;
    let read = match child.stdout.take() {
        Some(mut out) => first_line(&mut out, &what).and_then(|line| {
            // Let it finish printing (a password manager may print more lines), but only so
            // much: one that never stops is stopped.
            let rest = std::io::copy(&mut out.take(MAX_COMMAND_OUTPUT + 1), &mut std::io::sink())
                .with_context(|| what.clone())?;
            if rest > MAX_COMMAND_OUTPUT {
                bail!("{what} printed more than {MAX_COMMAND_OUTPUT} bytes without ending; it should print the passphrase and exit");
            }
            Ok(line)
        }),
        None => Err(anyhow!("{what}: its output could not be read")),
    };
    if read.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().with_context(|| what.clone())?;
    let line = read?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(line)
}

/// Where the passphrase of an archive can come from without a terminal.
const SOURCES: &str = "set ORE_PASSPHRASE, or use --passphrase-file (ORE_PASSPHRASE_FILE) or \
     --passphrase-command (ORE_PASSPHRASE_COMMAND)";

/// Where a new passphrase (`key add`, `key passwd`) can come from without a terminal.
const NEW_SOURCES: &str = "set ORE_NEW_PASSPHRASE, or use --new-passphrase-file (ORE_PASSPHRASE \
     opens the archive; the new passphrase is another)";

/// Asks on the terminal; without one, says where the passphrase can come from instead
/// (`sources`, and what is missing: `what`).
fn prompt(text: &str, what: &str, sources: &str) -> Result<Vec<u8>> {
    if !std::io::stdin().is_terminal() && std::fs::File::open("/dev/tty").is_err() {
        bail!("no {what}: {sources}");
    }
    rpassword::prompt_password(text)
        .map(String::into_bytes)
        .map_err(|e| anyhow!("no {what}: could not prompt ({e}); {sources}"))
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
        prompt(text, "passphrase", SOURCES)
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
        new_prompted("passphrase", SOURCES)
    }
}

fn new_prompted(what: &str, sources: &str) -> Result<Vec<u8>> {
    let a = prompt("New passphrase: ", what, sources)?;
    let b = prompt("Repeat it: ", what, sources)?;
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
    new_prompted("new passphrase", NEW_SOURCES)
}
