//! Managing members: `add`, `set`, `remove` and `drain`, and the `--trust N` style options
//! they (and `rereplicate`, `scrub`) take.

use crate::members::Member;
use crate::repair;
use crate::{trust_of, ReplicatedBackend};
use protocol::backend::AdminOutput;
use protocol::{Error, ErrorCode, Result};
use serde_json::json;
use std::sync::Arc;

fn bad(message: String) -> Error {
    Error::backend(ErrorCode::InvalidArgument, message)
}

/// `--trust N` style options; anything else is an error naming it.
pub(super) struct Opts {
    trust: Option<u32>,
    read: Option<u32>,
    write: Option<u32>,
    force: bool,
    pub(super) read_data: bool,
}

pub(super) fn parse_opts(command: &str, args: &[String], allowed: &[&str]) -> Result<Opts> {
    let mut o = Opts {
        trust: None,
        read: None,
        write: None,
        force: false,
        read_data: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if !allowed.contains(&a.as_str()) {
            return Err(bad(format!(
                "`{command}` does not take {a:?} (it takes {})",
                if allowed.is_empty() {
                    "no options".to_string()
                } else {
                    allowed.join(", ")
                }
            )));
        }
        let mut number = |max: u32| -> Result<u32> {
            let v = it
                .next()
                .ok_or_else(|| bad(format!("{a} needs a number")))?;
            v.parse::<u32>().ok().filter(|n| *n <= max).ok_or_else(|| {
                bad(format!(
                    "{a} {v:?}: expected a whole number from 0 to {max}"
                ))
            })
        };
        match a.as_str() {
            "--trust" => o.trust = Some(number(100)?),
            "--read-weight" => o.read = Some(number(1_000_000)?),
            "--write-weight" => o.write = Some(number(1_000_000)?),
            "--force" => o.force = true,
            "--read" => o.read_data = true,
            _ => unreachable!("checked against `allowed` above"),
        }
    }
    Ok(o)
}

/// The member named by `word`: its number, or its identifier.
fn member(b: &ReplicatedBackend, word: &str) -> Result<Arc<Member>> {
    let members = b.inner().members();
    let found = match word.trim_start_matches('#').parse::<i64>() {
        Ok(id) => members.iter().find(|m| m.row.id == id),
        Err(_) => members.iter().find(|m| m.row.archive == word),
    };
    found.cloned().ok_or_else(|| {
        let list: Vec<String> = members
            .iter()
            .map(|m| format!("{} ({})", m.row.id, m.row.archive))
            .collect();
        bad(format!(
            "no member {word:?}; the members are: {}",
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        ))
    })
}

fn split_member<'a>(command: &str, args: &'a [String]) -> Result<(&'a str, &'a [String])> {
    match args.split_first() {
        Some((m, rest)) if !m.starts_with("--") => Ok((m.as_str(), rest)),
        _ => Err(bad(format!(
            "`{command}` needs a member: its number (see `members`) or its identifier"
        ))),
    }
}

pub(super) fn add(b: &ReplicatedBackend, args: &[String]) -> Result<AdminOutput> {
    let (archive, rest) = split_member("add", args)?;
    let o = parse_opts("add", rest, &["--trust", "--read-weight", "--write-weight"])?;
    if b.inner().members().iter().any(|m| m.row.archive == archive) {
        return Err(bad(format!("{archive:?} is a member already")));
    }
    let (trust, read, write) = (
        o.trust.unwrap_or(100),
        o.read.unwrap_or(1),
        o.write.unwrap_or(1),
    );
    // A member that cannot be reached now is almost certainly a typo: refuse it.
    let probe = Member::connect(crate::state::MemberRow {
        id: 0,
        archive: archive.to_string(),
        trust,
        read_weight: read,
        write_weight: write,
        added: 0,
        broken_at: None,
        last_error: None,
        last_error_at: None,
    });
    if let Some(e) = probe.broken() {
        return Err(Error::backend(
            ErrorCode::InvalidArgument,
            format!("cannot add {archive:?}: {e}"),
        ));
    }
    drop(probe);
    let id = b.inner().state().add_member(archive, trust, read, write)?;
    b.reload_members()?;
    if let Some(m) = b.inner().member(id) {
        if m.writable() {
            b.inner().sync_tags(&m)?;
        }
    }
    Ok(AdminOutput::new(
        format!("added member {id}: {archive} (trust {trust}%, read weight {read}, write weight {write})\n"),
        json!({"id": id, "archive": archive, "trust": trust, "read_weight": read, "write_weight": write}),
    ))
}

pub(super) fn set(b: &ReplicatedBackend, args: &[String]) -> Result<AdminOutput> {
    let (word, rest) = split_member("set", args)?;
    let m = member(b, word)?;
    let o = parse_opts("set", rest, &["--trust", "--read-weight", "--write-weight"])?;
    if o.trust.is_none() && o.read.is_none() && o.write.is_none() {
        return Err(bad(
            "`set` needs at least one of --trust, --read-weight, --write-weight".into(),
        ));
    }
    let trust = o.trust.unwrap_or(m.row.trust);
    let read = o.read.unwrap_or(m.row.read_weight);
    let write = o.write.unwrap_or(m.row.write_weight);
    b.inner().state().set_member(m.row.id, trust, read, write)?;
    b.reload_members()?;
    Ok(AdminOutput::new(
        format!(
            "member {}: trust {trust}%, read weight {read}, write weight {write}\n",
            m.row.id
        ),
        json!({"id": m.row.id, "trust": trust, "read_weight": read, "write_weight": write}),
    ))
}

/// How many blocks member `id` holds that would fall short (or have no copy) without it.
fn needed(b: &ReplicatedBackend, id: i64) -> Result<(u64, u64)> {
    let members = b.inner().members();
    let (mut short, mut only) = (0, 0);
    let mut after = None;
    loop {
        let keys = b.inner().state().held_by(id, after, 4096)?;
        let Some(last) = keys.last().copied() else {
            break;
        };
        after = Some(last);
        for k in keys {
            let holders = b.inner().state().holders(&k)?;
            let others: Vec<_> = members
                .iter()
                .filter(|m| m.row.id != id && holders.contains(&m.row.id))
                .collect();
            if others.is_empty() {
                only += 1;
            }
            if trust_of(others) < 100 {
                short += 1;
            }
        }
    }
    Ok((short, only))
}

pub(super) fn remove(b: &ReplicatedBackend, args: &[String]) -> Result<AdminOutput> {
    let (word, rest) = split_member("remove", args)?;
    let m = member(b, word)?;
    let o = parse_opts("remove", rest, &["--force"])?;
    let (short, only) = needed(b, m.row.id)?;
    if short > 0 && !o.force {
        return Err(bad(format!(
            "{} is needed: without it {short} block(s) fall short of 100% trust ({only} would have \
             no copy at all). `drain {}` copies them elsewhere first; `remove {} --force` drops it \
             anyway",
            m.name(),
            m.row.id,
            m.row.id
        )));
    }
    b.inner().state().remove_member(m.row.id)?;
    b.reload_members()?;
    let warn = if short > 0 {
        format!(
            "; {short} block(s) are now short of 100% trust ({only} with no copy): run `rereplicate`"
        )
    } else {
        String::new()
    };
    Ok(AdminOutput::new(
        format!("removed {}{warn}\n", m.name()),
        json!({"id": m.row.id, "short": short, "lost": only}),
    ))
}

pub(super) fn drain(b: &ReplicatedBackend, args: &[String]) -> Result<AdminOutput> {
    let (word, rest) = split_member("drain", args)?;
    parse_opts("drain", rest, &[])?;
    let m = member(b, word)?;
    // No new copies go to it while it drains.
    b.inner()
        .state()
        .set_member(m.row.id, m.row.trust, m.row.read_weight, 0)?;
    b.reload_members()?;
    let m = member(b, word)?;
    let report = repair::drain(b.inner(), &m)?;
    let (short, only) = needed(b, m.row.id)?;
    if short > 0 {
        return Err(Error::backend(
            ErrorCode::Io,
            format!(
                "draining {} is incomplete: {short} block(s) still need it ({only} exist nowhere \
                 else); it stays, with write weight 0.\n{}",
                m.name(),
                report.text()
            ),
        ));
    }
    b.inner().state().remove_member(m.row.id)?;
    b.reload_members()?;
    Ok(report.output(&format!("drained and removed {}\n", m.name())))
}
