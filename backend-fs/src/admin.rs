//! backend-fs's admin commands: the standard ones, `verify` (what the backend can check of
//! its files, `verify`), the tag history (`history`) and the record of blocks restricted
//! connections stored (`vouch`).

use crate::files::{read_optional, FileLock};
use crate::{history, vouch, FsBackend};
use ore_util::lock;
use protocol::backend::{admin_help, AdminCommand};
use protocol::provenance;
use protocol::{AdminOutput, Backend, Error, ErrorCode, Result};

pub(crate) const COMMANDS: &[AdminCommand] = &[
    AdminCommand {
        name: "help",
        args: "",
        help: "list the admin commands",
    },
    AdminCommand {
        name: "info",
        args: "",
        help: "where the archive lives, its layout and settings",
    },
    AdminCommand {
        name: "stats",
        args: "",
        help: "count blocks, bytes and tags (walks the whole archive)",
    },
    AdminCommand {
        name: "verify",
        args: "",
        help: "re-read every block file, check where each lies, and check every tag file",
    },
    protocol::history::READ_COMMAND,
    protocol::history::EXPIRE_COMMAND,
    provenance::UNVOUCHED_COMMAND,
    provenance::VOUCH_COMMAND,
    provenance::MARK_COMMAND,
];

pub(crate) fn run(b: &FsBackend, command: &str, args: &[String]) -> Result<AdminOutput> {
    if command == protocol::history::TAG_HISTORY {
        let asked = protocol::history::history_arg(args)?;
        let entries = history::list(&b.dir, asked)?;
        return Ok(protocol::history::output(asked, &entries));
    }
    if command == protocol::history::EXPIRE {
        let (cutoff, tag) = protocol::history::expire_args(args)?;
        b.check_writable("expiring tag history")?;
        let _inner = lock(&b.tag_mutex);
        let _outer = FileLock::acquire(&b.dir.join("tags.lock"))?;
        let n = history::expire(&b.dir, cutoff, tag, |t| read_optional(&b.tag_path(t)))?;
        return Ok(protocol::history::expired_output(n));
    }
    if let Some(out) = provenance_command(b, command, args)? {
        return Ok(out);
    }
    if !args.is_empty() {
        return Err(Error::backend(
            ErrorCode::Admin,
            format!("`{command}` takes no arguments, got {}", args.join(" ")),
        ));
    }
    match command {
        "help" => Ok(admin_help("backend-fs", COMMANDS)),
        "info" => Ok(AdminOutput::new(
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
        )),
        "stats" => Ok(b.stats()?.admin_output()),
        "verify" => crate::verify::verify(b),
        other => Err(protocol::backend::unknown_admin(other, COMMANDS)),
    }
}

/// `unvouched`, `vouch` and `mark-unvouched`; `None` for any other command.
fn provenance_command(
    b: &FsBackend,
    command: &str,
    args: &[String],
) -> Result<Option<AdminOutput>> {
    match command {
        provenance::UNVOUCHED => {
            let (after, limit) = provenance::page_args(args)?;
            b.publish()?;
            let (keys, more) = vouch::page(&b.dir, after, limit)?;
            Ok(Some(provenance::page_output(&keys, more)))
        }
        provenance::VOUCH | provenance::MARK => {
            let keys = provenance::key_args(command, args)?;
            b.check_writable("recording who stored a block")?;
            for k in &keys {
                if command == provenance::VOUCH {
                    vouch::forget(&b.root, k)?;
                } else {
                    vouch::mark(&b.root, k)?;
                }
            }
            b.root.sync_fs().map_err(|e| {
                Error::io(format!("syncing the file system of {}", b.dir.display()), e)
            })?;
            Ok(Some(provenance::count_output(command, keys.len())))
        }
        _ => Ok(None),
    }
}
