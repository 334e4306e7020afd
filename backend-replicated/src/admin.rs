//! Admin commands: managing members and keeping blocks at full trust.
//!
//! `rereplicate`, `scrub` and `drain` look at the blocks and name the damage they find in
//! their answer's `problems` (see `report`), so `ore-admin` exits 1 after them. `stats` and
//! `members` only inform: they count damaged copies and show broken members that earlier runs
//! recorded, and never report `problems`.

use crate::members::Member;
use crate::repair;
use crate::{trust_of, ReplicatedBackend};
use ore_util::admin::{abouts, find};
use protocol::backend::{admin_help, unknown_admin, AdminCommand, AdminOutput};
use protocol::history;
use protocol::provenance;
use protocol::{Backend, Error, ErrorCode, Result};
use serde_json::json;
use std::sync::Arc;

type Spec = ore_util::admin::Spec<ReplicatedBackend, AdminCommand, Result<AdminOutput>>;

/// An entry of the table for a command of the replicated backend's own.
const fn own(
    name: &'static str,
    args: &'static str,
    help: &'static str,
    run: fn(&ReplicatedBackend, &[String]) -> Result<AdminOutput>,
) -> Spec {
    Spec::new(AdminCommand { name, args, help }, run)
}

const TABLE: &[Spec] = &[
    own("help", "", "list the admin commands", |b, _| Ok(help(b))),
    own(
        "info",
        "",
        "the state file, the members and what the archive can do",
        |b, _| info(b),
    ),
    own(
        "stats",
        "",
        "blocks, bytes, tags, blocks short of full trust, damaged copies",
        |b, _| stats(b),
    ),
    Spec::new(history::READ_COMMAND, tag_history),
    Spec::new(history::EXPIRE_COMMAND, expire_tag_history),
    Spec::new(provenance::UNVOUCHED_COMMAND, crate::vouch::unvouched),
    Spec::new(provenance::VOUCH_COMMAND, |b, args| {
        crate::vouch::record(b, provenance::VOUCH, args)
    }),
    Spec::new(provenance::MARK_COMMAND, |b, args| {
        crate::vouch::record(b, provenance::MARK, args)
    }),
    own(
        "members",
        "",
        "every member: trust, weights, health, copies held, last error",
        |b, _| members(b),
    ),
    own(
        "add",
        "ARCHIVE-ID [--trust N] [--read-weight N] [--write-weight N]",
        "add a member (trust % default 100, weights default 1; write weight 0 = read-only)",
        add,
    ),
    own(
        "set",
        "MEMBER [--trust N] [--read-weight N] [--write-weight N]",
        "change a member's trust or weights (MEMBER: its number or identifier)",
        set,
    ),
    own(
        "remove",
        "MEMBER [--force]",
        "drop a member; refused while blocks would fall short without it (use drain)",
        remove,
    ),
    own(
        "drain",
        "MEMBER",
        "copy what would fall short without the member to others, then drop it",
        drain,
    ),
    own(
        "rereplicate",
        "",
        "check the members hold what the state says, then bring every block to 100% trust",
        |b, args| {
            parse_opts("rereplicate", args, &[])?;
            Ok(repair::rereplicate(b.inner())?.output(""))
        },
    ),
    own(
        "scrub",
        "[--read]",
        "compare each member's listing with the state and repair; --read also reads every copy",
        |b, args| {
            let o = parse_opts("scrub", args, &["--read"])?;
            Ok(repair::scrub(b.inner(), o.read_data)?.output(""))
        },
    ),
];

pub fn names() -> Vec<String> {
    protocol::backend::admin_names(&abouts(TABLE))
}

fn bad(message: String) -> Error {
    Error::backend(ErrorCode::InvalidArgument, message)
}

/// `--trust N` style options; anything else is an error naming it.
struct Opts {
    trust: Option<u32>,
    read: Option<u32>,
    write: Option<u32>,
    force: bool,
    read_data: bool,
}

fn parse_opts(command: &str, args: &[String], allowed: &[&str]) -> Result<Opts> {
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

pub fn run(b: &ReplicatedBackend, command: &str, args: &[String]) -> Result<AdminOutput> {
    match find(TABLE, |c| c.name == command) {
        Some(spec) => (spec.run)(b, args),
        None => Err(unknown_admin(command, &abouts(TABLE))),
    }
}

fn help(b: &ReplicatedBackend) -> AdminOutput {
    let mut out = admin_help(&b.info().server, &abouts(TABLE));
    out.text.push_str(
        "\nA block is stored on members drawn at random by write weight until their trust adds \
         up to 100%.\nMember changes take effect for the next connection.\n",
    );
    out
}

fn info(b: &ReplicatedBackend) -> Result<AdminOutput> {
    let i = b.info();
    let members = b.inner().members();
    let text = format!(
        "state:        {}\n{}\nmembers:      {}\nwritable:     {}\ncan remove:   {}\nmax block:    {} bytes\n",
        b.path().display(),
        i.description,
        members.len(),
        i.writable,
        i.can_remove,
        i.max_block_size
    );
    let json = json!({
        "kind": "replicated",
        "state": b.path().display().to_string(),
        "description": i.description,
        "members": members.len(),
        "writable": i.writable,
        "can_remove": i.can_remove,
        "max_block_size": i.max_block_size,
    });
    Ok(AdminOutput::new(text, json))
}

fn stats(b: &ReplicatedBackend) -> Result<AdminOutput> {
    let s = b.stats()?;
    let st = b.inner().state();
    let short = st.short_count()?;
    let damaged = st.damaged()?;
    drop(st);
    let text = format!(
        "blocks:          {}\nbytes:           {}\ntags:            {}\nshort of 100%:   {short}\ndamaged copies:  {}\n",
        s.blocks.unwrap_or(0),
        s.bytes.unwrap_or(0),
        s.tags.unwrap_or(0),
        damaged.len()
    );
    let damaged: Vec<_> = damaged
        .iter()
        .map(|(k, m, w)| json!({"key": k.to_string(), "member": m, "what": w}))
        .collect();
    let json = json!({
        "blocks": s.blocks, "bytes": s.bytes, "tags": s.tags,
        "short": short, "damaged": damaged,
    });
    Ok(AdminOutput::new(text, json))
}

fn expire_tag_history(b: &ReplicatedBackend, args: &[String]) -> Result<AdminOutput> {
    let (cutoff, tag) = history::expire_args(args)?;
    Ok(history::expired_output(
        b.inner().state().expire_tag_history(cutoff, tag)?,
    ))
}

fn tag_history(b: &ReplicatedBackend, args: &[String]) -> Result<AdminOutput> {
    let asked = history::history_arg(args)?;
    let entries: Vec<history::Entry> = b
        .inner()
        .state()
        .tag_history(asked)?
        .into_iter()
        .filter(|(tag, _, _)| history::keeps_history(tag))
        .map(|(tag, time, value)| history::Entry {
            tag,
            value: history::show_value(&value),
            time,
        })
        .collect();
    Ok(history::output(asked, &entries))
}

fn members(b: &ReplicatedBackend) -> Result<AdminOutput> {
    let held = b.inner().state().held_by_member()?;
    let members = b.inner().members();
    let mut text = String::from("  #  trust  read  write  health  copies      archive\n");
    let mut rows = Vec::new();
    for m in &members {
        let (durable, pending) = held
            .iter()
            .find(|(id, _, _)| *id == m.row.id)
            .map_or((0, 0), |(_, d, p)| (*d, *p));
        let broken = m.broken();
        let health = match (&broken, m.info().map(|i| i.writable)) {
            (Some(_), _) => "broken",
            (None, Some(false)) => "ro",
            _ => "ok",
        };
        text.push_str(&format!(
            "{:>3}  {:>4}%  {:>4}  {:>5}  {:<6}  {:>10}  {}\n",
            m.row.id,
            m.row.trust,
            m.row.read_weight,
            m.row.write_weight,
            health,
            durable,
            m.row.archive
        ));
        let last_error = broken.clone().or_else(|| m.row.last_error.clone());
        if let Some(e) = &last_error {
            let when = m
                .row
                .last_error_at
                .map(|t| format!(" ({} ago)", ago(crate::state::now() - t)))
                .unwrap_or_default();
            text.push_str(&format!("       last error{when}: {e}\n"));
        }
        rows.push(json!({
            "id": m.row.id,
            "archive": m.row.archive,
            "trust": m.row.trust,
            "read_weight": m.row.read_weight,
            "write_weight": m.row.write_weight,
            "health": health,
            "broken_since": m.row.broken_at,
            "last_error_at": m.row.last_error_at,
            "copies": durable,
            "pending": pending,
            "last_error": last_error,
        }));
    }
    if members.is_empty() {
        text = "no members: the archive is read-only and empty; add one with `add ARCHIVE-ID`\n"
            .into();
    }
    Ok(AdminOutput::new(text, json!(rows)))
}

/// A duration in seconds, roughly, in words.
fn ago(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn add(b: &ReplicatedBackend, args: &[String]) -> Result<AdminOutput> {
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

fn set(b: &ReplicatedBackend, args: &[String]) -> Result<AdminOutput> {
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

fn remove(b: &ReplicatedBackend, args: &[String]) -> Result<AdminOutput> {
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

fn drain(b: &ReplicatedBackend, args: &[String]) -> Result<AdminOutput> {
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
