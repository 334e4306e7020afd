//! Admin commands: managing members and keeping blocks at full trust.
//!
//! `rereplicate`, `scrub` and `drain` look at the blocks and name the damage they find in
//! their answer's `problems` (see `report`), so `ore-admin` exits 1 after them. `stats` and
//! `members` only inform: they count damaged copies and show broken members that earlier runs
//! recorded, and never report `problems`.

mod manage;

use crate::repair;
use crate::ReplicatedBackend;
use manage::{add, drain, parse_opts, remove, set};
use protocol::admin::{entry, records, Records, Table};
use protocol::backend::AdminOutput;
use protocol::history;
use protocol::{Backend, Result};
use serde_json::json;

pub(crate) const TABLE: &Table<ReplicatedBackend> = &[
    &[
        entry("help", "", "list the admin commands", |b, _| Ok(help(b))),
        entry(
            "info",
            "",
            "the state file, the members and what the archive can do",
            |b, _| info(b),
        ),
        entry(
            "stats",
            "",
            "blocks, bytes, tags, blocks short of full trust, damaged copies",
            |b, _| stats(b),
        ),
    ],
    &records::<ReplicatedBackend>(),
    &[
        entry(
            "members",
            "",
            "every member: trust, weights, health, copies held, last error",
            |b, _| members(b),
        ),
        entry(
            "add",
            "ARCHIVE-ID [--trust N] [--read-weight N] [--write-weight N]",
            "add a member (trust % default 100, weights default 1; write weight 0 = read-only)",
            add,
        ),
        entry(
            "set",
            "MEMBER [--trust N] [--read-weight N] [--write-weight N]",
            "change a member's trust or weights (MEMBER: its number or identifier)",
            set,
        ),
        entry(
            "remove",
            "MEMBER [--force]",
            "drop a member; refused while blocks would fall short without it (use drain)",
            remove,
        ),
        entry(
            "drain",
            "MEMBER",
            "copy what would fall short without the member to others, then drop it",
            drain,
        ),
        entry(
            "rereplicate",
            "",
            "check the members hold what the state says, then bring every block to 100% trust",
            |b, args| {
                parse_opts("rereplicate", args, &[])?;
                Ok(repair::rereplicate(b.inner())?.output(""))
            },
        ),
        entry(
            "scrub",
            "[--read]",
            "compare each member's listing with the state and repair; --read also reads every copy",
            |b, args| {
                let o = parse_opts("scrub", args, &["--read"])?;
                Ok(repair::scrub(b.inner(), o.read_data)?.output(""))
            },
        ),
    ],
];

fn help(b: &ReplicatedBackend) -> AdminOutput {
    let mut out = protocol::admin::help(&b.info().server, TABLE);
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

/// The members keep the records; this proxy merges and forwards (`vouch`).
impl Records for ReplicatedBackend {
    fn expire_tag_history(&self, args: &[String]) -> Result<AdminOutput> {
        let (cutoff, tag) = history::expire_args(args)?;
        Ok(history::expired_output(
            self.inner().state().expire_tag_history(cutoff, tag)?,
        ))
    }

    fn tag_history(&self, args: &[String]) -> Result<AdminOutput> {
        let asked = history::history_arg(args)?;
        let entries: Vec<history::Entry> = self
            .inner()
            .state()
            .tag_history(asked)?
            .into_iter()
            .filter(|(tag, _, _)| history::keeps_history(tag))
            .map(|(tag, time, value)| history::Entry::new(tag, &value, time))
            .collect();
        Ok(history::output(asked, &entries))
    }

    fn unvouched(&self, args: &[String]) -> Result<AdminOutput> {
        crate::vouch::unvouched(self, args)
    }

    fn record_vouching(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        crate::vouch::record(self, command, args)
    }
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
