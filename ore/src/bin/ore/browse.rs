//! `ore ls`, `ore cat`, `ore log`, `ore tags`, `ore fork`: how each prints. What they read and
//! change is in `ore::commands::{ls, cat, log, tags, fork}`.

use crate::cli::{CatArgs, ForkArgs, LogArgs, LsArgs, SnapshotsArgs};
use crate::{out, out_bytes, Done, Env};
use anyhow::{bail, Context, Result};
use ore::commands::ls::Listing;
use ore::commands::tags::{Head, Tagged};
use ore::core::entry::{Content, Entry, EntryKind};
use ore::core::repo::Repo;
use ore::core::util::{format_time, show};
use serde_json::json;

fn mode_string(e: &Entry) -> String {
    let mut s = String::with_capacity(10);
    s.push(e.kind.letter());
    let m = e.mode;
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        let bit = 1 << (8 - i);
        let ch = if m & bit != 0 { c } else { '-' };
        let ch = match (i, ch) {
            (2, 'x') if m & 0o4000 != 0 => 's',
            (2, '-') if m & 0o4000 != 0 => 'S',
            (5, 'x') if m & 0o2000 != 0 => 's',
            (5, '-') if m & 0o2000 != 0 => 'S',
            (8, 'x') if m & 0o1000 != 0 => 't',
            (8, '-') if m & 0o1000 != 0 => 'T',
            _ => ch,
        };
        s.push(ch);
    }
    s
}

fn size_of(e: &Entry) -> u64 {
    match &e.kind {
        EntryKind::File { size, .. } => *size,
        EntryKind::Symlink { target } => target.len() as u64,
        _ => 0,
    }
}

pub fn entry_json(e: &Entry, path: &str) -> serde_json::Value {
    let mut v = json!({
        "path": path,
        "name": show(&e.name),
        "type": e.kind.type_name(),
        "mode": format!("{:04o}", e.mode),
        "uid": e.uid, "gid": e.gid, "user": e.user, "group": e.group,
        "size": size_of(e),
        "mtime_ns": e.mtime,
        "mtime": format_time(e.mtime),
    });
    match &e.kind {
        EntryKind::Symlink { target } | EntryKind::Hardlink { target } => {
            v["target"] = json!(show(target))
        }
        EntryKind::CharDevice { rdev } | EntryKind::BlockDevice { rdev } => v["rdev"] = json!(rdev),
        // The block that holds the contents: for scripts and for finding what a damaged block
        // belongs to.
        EntryKind::File { content, .. } => match content {
            Content::Empty => {}
            Content::Chunk(k) => v["chunk"] = json!(k.to_hex()),
            Content::Index(k) => v["index"] = json!(k.to_hex()),
            Content::Catalogued { id } => v["catalogued"] = json!(id.map(|k| k.to_hex())),
            Content::Slice { key, start, len } => {
                v["chunk"] = json!(key.to_hex());
                v["slice"] = json!([start, len]);
            }
        },
        EntryKind::Dir { tree } => v["tree"] = json!(tree.to_hex()),
        _ => {}
    }
    if !e.xattrs.is_empty() {
        v["xattrs"] = json!(e.xattrs.iter().map(|x| show(&x.name)).collect::<Vec<_>>());
    }
    v
}

fn print_entry(env: &Env, long: bool, e: &Entry, path: &str) -> Result<()> {
    if env.global.json {
        return env.json(&entry_json(e, path));
    }
    if !long {
        return out(&format!("{path}\n"));
    }
    out(&long_line(e, path))
}

/// One line of a long listing: type and mode, owner, group, size, mtime, name (and target).
pub fn long_line(e: &Entry, path: &str) -> String {
    let owner = e.user.clone().unwrap_or_else(|| e.uid.to_string());
    let group = e.group.clone().unwrap_or_else(|| e.gid.to_string());
    let mut line = format!(
        "{} {owner:>8} {group:>8} {:>12} {} {path}",
        mode_string(e),
        size_of(e),
        format_time(e.mtime)
    );
    match &e.kind {
        EntryKind::Symlink { target } => line.push_str(&format!(" -> {}", show(target))),
        EntryKind::Hardlink { target } => line.push_str(&format!(" => {}", show(target))),
        _ => {}
    }
    line.push('\n');
    line
}

pub fn ls(env: &Env, a: LsArgs) -> Result<Done> {
    let (name, path) = ore::core::spec::split_path(&a.snapshot);
    let (repo, snap) = env.open_at_brief(name)?;
    match ore::commands::ls::ls(&repo, &snap, path, a.recursive)? {
        Listing::One(e) => print_entry(env, a.long, &e, path)?,
        Listing::Dir(walk) => {
            print_walk(env, a.long, walk).with_context(|| format!("listing {}", a.snapshot))?
        }
    }
    Ok(Done::Clean)
}

fn print_walk(env: &Env, long: bool, walk: ore::commands::ls::Walk) -> Result<()> {
    for item in walk {
        let (path, e) = item.map_err(|e| match e.reading {
            Some(reading) => anyhow::Error::from(e.error).context(reading),
            None => e.error.into(),
        })?;
        print_entry(env, long, &e, &path)?;
    }
    Ok(())
}

pub fn cat(env: &Env, a: CatArgs) -> Result<Done> {
    let (name, path) = ore::core::spec::split_path(&a.file);
    if path.is_empty() {
        bail!("`ore cat` needs SNAPSHOT:PATH naming a file");
    }
    let (repo, snap) = env.open_at(name)?;
    let content = ore::commands::cat::find_file(&repo, &snap, path)?;
    write_contents(&repo, &content).with_context(|| path.to_string())?;
    Ok(Done::Clean)
}

/// Writes a file's contents to standard output (holes as zeros), a block at a time.
pub fn write_contents(repo: &Repo, content: &Content) -> Result<()> {
    ore::commands::cat::contents(repo, content, out_bytes)
}

pub fn log(env: &Env, a: LogArgs) -> Result<Done> {
    let repo = env.open_brief()?;
    let chain = ore::commands::log::log(&repo, &a.tag)?;
    for (i, (k, s)) in chain.iter().enumerate() {
        if env.global.json {
            env.json(&json!({
                "key": k.to_hex(), "name": format!("{}~{i}", a.tag), "time": format_time(s.time), "time_ns": s.time,
                "host": s.host, "user": s.user,
                "paths": s.paths.iter().map(|p| show(p)).collect::<Vec<_>>(),
                "comment": s.comment, "stats": s.stats, "warnings": s.warnings_total,
                "labels": labels_json(s),
            }))?;
        } else {
            let mut line = format!(
                "{}  {}  {}~{i}  {}@{}  {} files  {}",
                &k.to_hex()[..12],
                ore::core::util::format_zoned(s.time, a.utc),
                a.tag,
                s.user,
                s.host,
                s.stats.files,
                ore::core::util::human_bytes(s.stats.bytes)
            );
            line.push_str(&format!("  {}", paths(s)));
            if !s.labels.is_empty() {
                line.push_str(&format!("  {}", ore::core::labels::shown(&s.labels)));
            }
            if s.warnings_total > 0 {
                line.push_str(&format!("  {} warning(s)", s.warnings_total));
            }
            if !s.comment.is_empty() {
                line.push_str(&format!("  {}", s.comment));
            }
            line.push('\n');
            out(&line)?;
        }
    }
    Ok(Done::Clean)
}

/// A snapshot's labels as a JSON object.
fn labels_json(s: &ore::core::entry::Snapshot) -> serde_json::Value {
    s.labels
        .iter()
        .map(|l| (l.key.clone(), serde_json::Value::from(l.value.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A snapshot's paths, as one column (separated by spaces).
fn paths(s: &ore::core::entry::Snapshot) -> String {
    s.paths
        .iter()
        .map(|p| show(p))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn snapshots(env: &Env, a: SnapshotsArgs) -> Result<Done> {
    let repo = env.open_brief()?;
    let filter = ore::commands::snapshots::Filter {
        tags: a.tag,
        hosts: a.host,
        labels: a.label,
        paths: a
            .path
            .iter()
            .map(|p| {
                let p = std::path::absolute(p).unwrap_or_else(|_| p.clone());
                ore::core::util::path_bytes(&p).to_vec()
            })
            .collect(),
    };
    let listed = ore::commands::snapshots::snapshots(&repo, &filter)?;
    for l in &listed {
        let s = &l.snapshot;
        if env.global.json {
            env.json(&json!({
                "key": l.key.to_hex(), "names": l.names,
                "time": ore::core::util::rfc3339_zoned(s.time, a.utc), "time_ns": s.time,
                "tag": s.tag, "host": s.host, "user": s.user,
                "paths": s.paths.iter().map(|p| show(p)).collect::<Vec<_>>(),
                "files": s.stats.files, "bytes": s.stats.bytes,
                "warnings": s.warnings_total, "comment": s.comment,
                "labels": labels_json(s),
            }))?;
            continue;
        }
        let mut line = format!(
            "{}  {}  {}  {}@{}  {}  {} files  {}",
            &l.key.to_hex()[..12],
            ore::core::util::format_zoned(s.time, a.utc),
            l.names.join(","),
            s.user,
            s.host,
            paths(s),
            s.stats.files,
            ore::core::util::human_bytes(s.stats.bytes)
        );
        if !s.labels.is_empty() {
            line.push_str(&format!("  {}", ore::core::labels::shown(&s.labels)));
        }
        if s.warnings_total > 0 {
            line.push_str(&format!("  {} warning(s)", s.warnings_total));
        }
        line.push('\n');
        out(&line)?;
    }
    if !env.global.json && !env.global.quiet {
        eprintln!("{} snapshot(s)", listed.len());
    }
    Ok(Done::Clean)
}

pub fn tags(env: &Env) -> Result<Done> {
    let repo = env.open_brief()?;
    for tagged in ore::commands::tags::tags(&repo)? {
        let head = match tagged? {
            Tagged::Snapshots(head) => head,
            Tagged::Archive { tag, node, head } => {
                if env.global.json {
                    env.json(&json!({"tag": tag, "archive": true, "node": node.to_hex(), "objects": head.objects, "current": head.current, "time": format_time(head.made_ns), "time_ns": head.made_ns}))?;
                } else {
                    let replaced = match head.objects.saturating_sub(head.current) {
                        0 => String::new(),
                        n => format!(" (+{n} replaced)"),
                    };
                    out(&format!(
                        "{tag}\t{}\t{}\tarchive tag: {} object(s){replaced}\n",
                        &node.to_hex()[..12],
                        format_time(head.made_ns),
                        head.current
                    ))?;
                }
                continue;
            }
        };
        let Head {
            tag: name,
            key,
            node,
            snapshot: snap,
        } = *head;
        if env.global.json {
            env.json(&json!({"tag": name, "key": key.to_hex(), "node": node.to_hex(), "time": format_time(snap.time), "time_ns": snap.time, "host": snap.host}))?;
        } else {
            out(&format!(
                "{name}\t{}\t{}\t{}\n",
                &key.to_hex()[..12],
                format_time(snap.time),
                snap.host
            ))?;
        }
    }
    Ok(Done::Clean)
}

pub fn fork(env: &Env, a: ForkArgs) -> Result<Done> {
    let repo = env.open_brief()?;
    let key = ore::commands::fork::fork(&repo, &a.tag, &a.new_tag)?;
    if env.global.json {
        env.json(&json!({"tag": a.new_tag, "key": key.to_hex(), "from": a.tag}))?;
    } else if !env.global.quiet {
        eprintln!("tag {} now names {key}, like {}", a.new_tag, a.tag);
    }
    Ok(Done::Clean)
}
