//! backend-fs's admin commands: the standard ones, `verify` (what the backend can check of
//! its files, `verify`), the tag history (`history`) and the record of blocks restricted
//! connections stored (`vouch`).
//!
//! One table, [`TABLE`], holds each command's name, help and handler: `help`, the welcome's list
//! and the dispatch all read it.

use crate::files::{read_optional, FileLock};
use crate::{history, vouch, FsBackend};
use ore_util::admin::{abouts, find};
use ore_util::lock;
use protocol::backend::{admin_help, admin_names, unknown_admin, AdminCommand};
use protocol::provenance;
use protocol::{AdminOutput, Backend, Error, ErrorCode, Result};

type Spec = ore_util::admin::Spec<FsBackend, AdminCommand, Result<AdminOutput>>;

const TABLE: &[Spec] = &[
    Spec::new(
        AdminCommand {
            name: "help",
            args: "",
            help: "list the admin commands",
        },
        help,
    ),
    Spec::new(
        AdminCommand {
            name: "info",
            args: "",
            help: "where the archive lives, its layout and settings",
        },
        info,
    ),
    Spec::new(
        AdminCommand {
            name: "stats",
            args: "",
            help: "count blocks, bytes and tags (walks the whole archive)",
        },
        stats,
    ),
    Spec::new(
        AdminCommand {
            name: "verify",
            args: "",
            help: "re-read every block file, check where each lies, and check every tag file",
        },
        verify,
    ),
    Spec::new(protocol::history::READ_COMMAND, tag_history),
    Spec::new(protocol::history::EXPIRE_COMMAND, expire_tag_history),
    Spec::new(provenance::UNVOUCHED_COMMAND, unvouched),
    Spec::new(provenance::VOUCH_COMMAND, |b, args| {
        record_vouching(b, provenance::VOUCH, args)
    }),
    Spec::new(provenance::MARK_COMMAND, |b, args| {
        record_vouching(b, provenance::MARK, args)
    }),
];

/// The names of the admin commands, for the welcome.
pub(crate) fn names() -> Vec<String> {
    admin_names(&abouts(TABLE))
}

pub(crate) fn run(b: &FsBackend, command: &str, args: &[String]) -> Result<AdminOutput> {
    match find(TABLE, |c| c.name == command) {
        Some(spec) => (spec.run)(b, args),
        None => {
            no_args(command, args)?;
            Err(unknown_admin(command, &abouts(TABLE)))
        }
    }
}

fn no_args(command: &str, args: &[String]) -> Result<()> {
    if args.is_empty() {
        return Ok(());
    }
    Err(Error::backend(
        ErrorCode::Admin,
        format!("`{command}` takes no arguments, got {}", args.join(" ")),
    ))
}

fn help(_: &FsBackend, args: &[String]) -> Result<AdminOutput> {
    no_args("help", args)?;
    Ok(admin_help("backend-fs", &abouts(TABLE)))
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

fn tag_history(b: &FsBackend, args: &[String]) -> Result<AdminOutput> {
    let asked = protocol::history::history_arg(args)?;
    let entries = history::list(&b.dir, asked)?;
    Ok(protocol::history::output(asked, &entries))
}

fn expire_tag_history(b: &FsBackend, args: &[String]) -> Result<AdminOutput> {
    let (cutoff, tag) = protocol::history::expire_args(args)?;
    b.check_writable("expiring tag history")?;
    let _inner = lock(&b.tag_mutex);
    let _outer = FileLock::acquire(&b.dir.join("tags.lock"))?;
    let n = history::expire(&b.dir, cutoff, tag, |t| read_optional(&b.tag_path(t)))?;
    Ok(protocol::history::expired_output(n))
}

/// `unvouched`: a page of the blocks restricted connections stored.
fn unvouched(b: &FsBackend, args: &[String]) -> Result<AdminOutput> {
    let (after, limit) = provenance::page_args(args)?;
    b.publish()?;
    let (keys, more) = vouch::page(&b.dir, after, limit)?;
    Ok(provenance::page_output(&keys, more))
}

/// `vouch` and `mark-unvouched` (`command`): forgets or records who stored each block.
fn record_vouching(b: &FsBackend, command: &str, args: &[String]) -> Result<AdminOutput> {
    let keys = provenance::key_args(command, args)?;
    b.check_writable("recording who stored a block")?;
    for k in &keys {
        if command == provenance::VOUCH {
            vouch::forget(&b.root, k)?;
        } else {
            vouch::mark(&b.root, k)?;
        }
    }
    b.root
        .sync_fs()
        .map_err(|e| Error::io(format!("syncing the file system of {}", b.dir.display()), e))?;
    Ok(provenance::count_output(command, keys.len()))
}
