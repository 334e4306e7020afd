//! backend-fs's admin commands: the standard ones, `verify` (what the backend can check of
//! its files, `verify`), the tag history (`history`) and the record of blocks restricted
//! connections stored (`vouch`).
//!
//! One table, [`TABLE`], holds each command's name, help and handler: `help`, the welcome's list
//! and the dispatch all read it.

use crate::files::{read_optional, FileLock};
use crate::{history, vouch, FsBackend};
use ore_util::lock;
use protocol::admin::{entry, no_args, records, Records, Table};
use protocol::provenance;
use protocol::{AdminOutput, Backend, Error, Result};

pub(crate) const TABLE: &Table<FsBackend> = &[
    &[
        entry("help", "", "list the admin commands", help),
        entry(
            "info",
            "",
            "where the archive lives, its layout and settings",
            info,
        ),
        entry(
            "stats",
            "",
            "count blocks, bytes and tags (walks the whole archive)",
            stats,
        ),
        entry(
            "verify",
            "",
            "re-read every block file, check where each lies, and check every tag file",
            verify,
        ),
    ],
    &records::<FsBackend>(),
];

fn help(_: &FsBackend, args: &[String]) -> Result<AdminOutput> {
    no_args("help", args)?;
    Ok(protocol::admin::help("backend-fs", TABLE))
}

fn info(b: &FsBackend, args: &[String]) -> Result<AdminOutput> {
    no_args("info", args)?;
    Ok(AdminOutput::new(
        format!(
            "backend-fs archive\n  directory:      {}\n  layout:         blocks/ab/cd/<key>, tags/<name>\n  max block size: {} bytes\n  access:         {}\n",
            b.dir.display(),
            b.max_block_size,
            if b.read_only { "read-only" } else { "read-write" }
        ),
        serde_json::json!({
            "kind": "fs",
            "directory": b.dir.display().to_string(),
            "max_block_size": b.max_block_size,
            "read_only": b.read_only,
        }),
    ))
}

fn stats(b: &FsBackend, args: &[String]) -> Result<AdminOutput> {
    no_args("stats", args)?;
    Ok(b.stats()?.admin_output())
}

fn verify(b: &FsBackend, args: &[String]) -> Result<AdminOutput> {
    no_args("verify", args)?;
    crate::verify::verify(b)
}

impl Records for FsBackend {
    fn tag_history(&self, args: &[String]) -> Result<AdminOutput> {
        let asked = protocol::history::history_arg(args)?;
        let entries = history::list(&self.dir, asked)?;
        Ok(protocol::history::output(asked, &entries))
    }

    fn expire_tag_history(&self, args: &[String]) -> Result<AdminOutput> {
        let (cutoff, tag) = protocol::history::expire_args(args)?;
        self.check_writable("expiring tag history")?;
        let _inner = lock(&self.tag_mutex);
        let _outer = FileLock::acquire(&self.dir.join("tags.lock"))?;
        let n = history::expire(&self.dir, cutoff, tag, |t| read_optional(&self.tag_path(t)))?;
        Ok(protocol::history::expired_output(n))
    }

    fn unvouched(&self, args: &[String]) -> Result<AdminOutput> {
        let (after, limit) = provenance::page_args(args)?;
        self.publish()?;
        let (keys, more) = vouch::page(&self.dir, after, limit)?;
        Ok(provenance::page_output(&keys, more))
    }

    fn record_vouching(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        let keys = provenance::key_args(command, args)?;
        self.check_writable("recording who stored a block")?;
        for k in &keys {
            if command == provenance::VOUCH {
                vouch::forget(&self.root, k)?;
            } else {
                vouch::mark(&self.root, k)?;
            }
        }
        self.root.sync_fs().map_err(|e| {
            Error::io(
                format!("syncing the file system of {}", self.dir.display()),
                e,
            )
        })?;
        Ok(provenance::count_output(command, keys.len()))
    }
}
