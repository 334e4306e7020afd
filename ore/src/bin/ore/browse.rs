//! `ore ls`, `ore cat`, `ore log`, `ore tags`, `ore fork`.

use crate::cli::{CatArgs, ForkArgs, LogArgs, LsArgs};
use crate::{out, out_bytes, Done, Env};
use anyhow::{bail, Context, Result};
use ore::core::block::Kind;
use ore::core::entry::{Content, Entry, EntryKind, Piece};
use ore::core::repo::Repo;
use ore::core::tree::{DirTree, FileTree, Reader};
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

fn entry_json(e: &Entry, path: &str) -> serde_json::Value {
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

/// Lists directory tree `tree` (at `prefix`), and with `-R` everything below it, depth first.
/// The walk keeps its open directories on a stack of its own rather than recursing, and stops
/// with an error at the depth `ore load` accepts: a crafted snapshot nested a hundred thousand
/// deep overflowed the stack (an abort).
fn list_dir(env: &Env, repo: &Repo, tree: protocol::Key, prefix: &str, a: &LsArgs) -> Result<()> {
    let mut open = vec![(Reader::<DirTree>::new(repo, tree), prefix.to_string())];
    while let Some((r, prefix)) = open.last_mut() {
        // A damaged or crafted directory is named by its path, as well as its block.
        let next = r.next_item().with_context(|| match prefix.as_str() {
            "" => "reading the snapshot's top directory".to_string(),
            p => format!("reading directory `{}`", ore::core::depth::shortened(p)),
        });
        let Some(e) = next? else {
            open.pop();
            continue;
        };
        let path = if prefix.is_empty() {
            show(&e.name)
        } else {
            format!("{prefix}/{}", show(&e.name))
        };
        print_entry(env, a.long, &e, &path)?;
        if let (true, EntryKind::Dir { tree }) = (a.recursive, e.kind) {
            if open.len() >= ore::core::depth::MAX_DEPTH {
                return Err(ore::core::depth::too_deep(tree, &path).into());
            }
            open.push((Reader::new(repo, tree), path));
        }
    }
    Ok(())
}

pub fn ls(env: &Env, a: LsArgs) -> Result<Done> {
    let (name, path) = ore::core::spec::split_path(&a.snapshot);
    let (repo, snap) = env.open_at_brief(name)?;
    let e = ore::core::tree::find(&repo, &snap.root, path.as_bytes())?;
    match e.kind {
        EntryKind::Dir { tree } => list_dir(env, &repo, tree, path.trim_end_matches('/'), &a)
            .with_context(|| format!("listing {}", a.snapshot))?,
        _ => print_entry(env, a.long, &e, path)?,
    }
    Ok(Done::Clean)
}

pub fn cat(env: &Env, a: CatArgs) -> Result<Done> {
    let (name, path) = ore::core::spec::split_path(&a.file);
    if path.is_empty() {
        bail!("`ore cat` needs SNAPSHOT:PATH naming a file");
    }
    let (repo, snap) = env.open_at(name)?;
    let e = ore::core::tree::find(&repo, &snap.root, path.as_bytes())?;
    let EntryKind::File { size, content } = e.kind else {
        bail!("`{path}` is not a regular file in the snapshot");
    };
    write_contents(&repo, &content)?;
    let _ = size;
    Ok(Done::Clean)
}

/// Writes a file's contents to standard output (holes as zeros), a block at a time.
pub fn write_contents(repo: &Repo, content: &Content) -> Result<()> {
    match content {
        Content::Empty => {}
        Content::Chunk(k) => out_bytes(repo.get_block(*k, Kind::Chunk)?.data())?,
        Content::Index(root) => {
            let mut r = Reader::<FileTree>::new(repo, *root);
            let zeros = vec![0u8; 1 << 20];
            while let Some(p) = r.next_item()? {
                match p {
                    Piece::Data { key, .. } => out_bytes(repo.get_block(key, Kind::Chunk)?.data())?,
                    Piece::Hole { mut len } => {
                        while len > 0 {
                            let n = len.min(zeros.len() as u64) as usize;
                            out_bytes(&zeros[..n])?;
                            len -= n as u64;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

pub fn log(env: &Env, a: LogArgs) -> Result<Done> {
    let repo = env.open_brief()?;
    let chain = ore::core::spec::chain(&repo, &a.tag)?;
    if chain.is_empty() {
        bail!("no tag called `{}` (see `ore tags`)", a.tag);
    }
    for (i, (k, s)) in chain.iter().enumerate() {
        if env.global.json {
            env.json(&json!({
                "key": k.to_hex(), "name": format!("{}~{i}", a.tag), "time": format_time(s.time), "time_ns": s.time,
                "host": s.host, "user": s.user,
                "paths": s.paths.iter().map(|p| show(p)).collect::<Vec<_>>(),
                "comment": s.comment, "stats": s.stats, "warnings": s.warnings_total,
            }))?;
        } else {
            let mut line = format!(
                "{}  {}  {}~{i}  {}@{}  {} files  {}",
                &k.to_hex()[..12],
                format_time(s.time),
                a.tag,
                s.user,
                s.host,
                s.stats.files,
                ore::core::util::human_bytes(s.stats.bytes)
            );
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

pub fn tags(env: &Env) -> Result<Done> {
    let repo = env.open_brief()?;
    for (name, key) in repo.tags()? {
        let snap = repo.snapshot(key)?;
        if env.global.json {
            env.json(&json!({"tag": name, "key": key.to_hex(), "time": format_time(snap.time), "time_ns": snap.time, "host": snap.host}))?;
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
    ore::core::format::check_user_tag(&a.new_tag)?;
    let _lease = ore::core::lease::Lease::acquire(&repo)?;
    let (key, _) = ore::core::spec::resolve(&repo, &a.tag)?;
    if !repo.move_tag(&a.new_tag, None, key, "fork")? {
        bail!("tag `{}` already exists; nothing was changed", a.new_tag);
    }
    if env.global.json {
        env.json(&json!({"tag": a.new_tag, "key": key.to_hex(), "from": a.tag}))?;
    } else if !env.global.quiet {
        eprintln!("tag {} now names {key}, like {}", a.new_tag, a.tag);
    }
    Ok(Done::Clean)
}
