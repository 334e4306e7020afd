//! `reindex [--accept-older TAG]...`: the index rebuilt from the logs alone, whatever state the
//! old one is in, and never a tag quietly rolled back.
//!
//! The new index is built in a file of its own beside the old one (`METADATA.reindex`), from
//! every record of every log; the old index is neither trusted nor touched meanwhile, so a
//! reindex that fails or is refused leaves the archive as it was. Only a finished rebuild takes
//! the old file's place. An old file that is damaged (it cannot be opened, or sqlite's own
//! check finds fault with it) is not deleted but moved aside as `METADATA.damaged-SECONDS` (with
//! its `-wal` and `-shm`), kept for inspection, and the output says so.
//!
//! The old index is also a witness. When damage in the logs may have changed a tag after its last
//! sound record ([`crate::damage`]), the rebuild takes the value the old index holds if that
//! index is sound and reflected the logs past the damage; otherwise the reindex is refused,
//! naming each tag, the value the logs still show, and the damage after it. `--accept-older TAG`
//! keeps the value the logs show for TAG. Either way the settled value is written again as a
//! fresh tag record, so a later reindex finds it proven by the logs alone.

use crate::damage::{self, Doubt, Pos};
use crate::index::Index;
use crate::record::{named_payload, RecordType};
use crate::{restrict, Settings, SplitlogBackend, State};
use protocol::backend::AdminOutput;
use protocol::{Error, ErrorCode, Key, Result};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What the index being replaced can still tell.
#[derive(Default)]
struct Witness {
    /// Its tags, when it is sound.
    tags: BTreeMap<String, Vec<u8>>,
    /// Its tag history (each value is recorded there in the same step as in the tag).
    history: BTreeSet<(String, Vec<u8>)>,
    /// How far into the logs it reflects, when it is sound.
    through: Option<Pos>,
    /// What is wrong with it, when it is damaged.
    damage: Option<String>,
    missing: Vec<damage::MissingLog>,
}

pub(crate) fn run(b: &SplitlogBackend, st: &mut State, args: &[String]) -> Result<AdminOutput> {
    let accept = accept_args(args)?;
    let witness = witness(st);
    let fresh_path = sibling(&b.metadata, ".reindex");
    remove_db(&fresh_path)?;
    let fresh = Index::open(&fresh_path)?;
    let old = std::mem::replace(&mut st.index, fresh);
    let read_only = st.read_only.take();
    match rebuild(st, &witness, &accept) {
        Ok((mut text, mut value)) => {
            let aside = install(b, st, old, &fresh_path, witness.damage.as_deref())?;
            if let Some(aside) = aside {
                let m = format!(
                    "the old index was damaged ({}); it is kept as {}\n",
                    witness.damage.as_deref().unwrap_or_default(),
                    aside.display()
                );
                // A damaged index is damage found, like a damaged record: it is among the
                // problems (so `ore-admin` exits 1 for this run, and 0 for the next).
                if let Some(p) = value["problems"].as_array_mut() {
                    p.insert(0, json!(m.trim_end()));
                }
                text = m + &text;
                value["moved_aside"] = json!(aside.display().to_string());
            }
            Ok(AdminOutput::new(text, value))
        }
        Err(e) => {
            drop(std::mem::replace(&mut st.index, old));
            remove_db(&fresh_path)?;
            st.read_only = read_only;
            if st.broken.is_none() {
                st.settings = Settings::load(&st.index)?;
            }
            Err(e)
        }
    }
}

/// The tags named by `--accept-older TAG` (repeatable).
fn accept_args(args: &[String]) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--accept-older", Some(tag)) => {
                out.insert(tag.clone());
            }
            _ => {
                return Err(Error::backend(
                    ErrorCode::Admin,
                    format!(
                        "reindex takes only `--accept-older TAG` (repeatable), got {}",
                        args.join(" ")
                    ),
                ))
            }
        }
    }
    Ok(out)
}

fn witness(st: &mut State) -> Witness {
    if let Some(why) = &st.broken {
        return Witness {
            damage: Some(why.clone()),
            ..Witness::default()
        };
    }
    if let Some(d) = st.index.damage() {
        return Witness {
            damage: Some(d),
            ..Witness::default()
        };
    }
    // What this session wrote counts (its records are in the logs and applied to the index);
    // an archive open for reading only has nothing uncommitted worth keeping.
    let mut read = || -> Result<Witness> {
        if st.read_only.is_none() {
            st.commit()?;
        }
        Ok(Witness {
            tags: st.index.tags()?.into_iter().collect(),
            history: st
                .index
                .tag_history(None)?
                .into_iter()
                .map(|(n, v, _)| (n, v))
                .collect(),
            through: st.index.position()?,
            damage: None,
            missing: st.missing.clone(),
        })
    };
    read().unwrap_or_else(|e| Witness {
        damage: Some(e.to_string()),
        ..Witness::default()
    })
}

/// The value the old index vouches for, for a tag in doubt: it reflected the logs past the
/// damage, and the value agrees with its own record of the tag's history, or names a block
/// that is stored (so a byte changed in the index file itself is not taken for the truth).
fn vouched(st: &State, w: &Witness, d: &Doubt) -> Result<Option<Option<Vec<u8>>>> {
    if w.damage.is_some() || w.through.is_none_or(|t| t <= d.last) {
        return Ok(None);
    }
    let value = w.tags.get(&d.tag).cloned();
    let Some(v) = &value else {
        return Ok(Some(None));
    };
    if w.history.contains(&(d.tag.clone(), v.clone())) {
        return Ok(Some(value));
    }
    let stored = std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse::<Key>().ok())
        .map(|k| st.index.contains(&k))
        .transpose()?;
    Ok((stored == Some(true)).then_some(value))
}

/// Replays every log into the (empty) index in `st`, settles tags in doubt, and says what it
/// did: text and JSON.
fn rebuild(
    st: &mut State,
    w: &Witness,
    accept: &BTreeSet<String>,
) -> Result<(String, serde_json::Value)> {
    let mut r = st.replay()?;
    // A log the old index knew that is gone may have held tag records too.
    let dir = st.logs.dir().to_path_buf();
    for m in &w.missing {
        r.tags.suspects.push(damage::Suspect {
            at: (m.log, 0),
            what: m.describe(&dir),
            newest_tail: false,
        });
    }
    let more: BTreeSet<String> = w.tags.keys().cloned().collect();
    let doubts = damage::doubts(&r.tags, &st.index, &more, w.through, None)?;
    let mut settled = Vec::new();
    let mut open = Vec::new();
    for d in doubts {
        if accept.contains(&d.tag) {
            settled.push((d.tag.clone(), d.older.clone(), "the older value, as asked"));
        } else if let Some(v) = vouched(st, w, &d)? {
            settled.push((d.tag.clone(), v, "the value the replaced index held"));
        } else {
            open.push(d);
        }
    }
    if !open.is_empty() {
        return Err(Error::backend(
            ErrorCode::Corrupt,
            format!(
                "reindex refused (the index is left as it was): {}",
                damage::explain(st.logs.dir(), &open)
            ),
        ));
    }
    // Written again, so the logs alone prove them from now on.
    for (tag, value, _) in &settled {
        match value {
            Some(v) => st.write(RecordType::TagSet, [0; 32], &named_payload(tag, v))?,
            None => st.write(RecordType::TagRemoved, [0; 32], &named_payload(tag, &[]))?,
        }
    }
    st.settings = Settings::load(&st.index)?;
    st.commit()?;
    let mut problems = r.damaged.clone();
    problems.extend(w.missing.iter().map(|m| m.describe(&dir)));
    let (blocks, _) = st.index.block_count()?;
    let tags = st.index.tags()?.len();
    let settled_lines: Vec<String> = settled
        .iter()
        .map(|(t, v, how)| {
            format!(
                "tag {t}: damage in the logs may have changed it after its last sound record; \
                 set to {} ({how})",
                damage::show(v.as_deref())
            )
        })
        .collect();
    let text = format!(
        "reindexed {} records: {blocks} blocks, {tags} tags; {} damaged records skipped, {} torn tails cut\n{}",
        r.records,
        r.damaged.len(),
        r.torn.len(),
        problems
            .iter()
            .chain(&r.torn)
            .chain(&settled_lines)
            .map(|m| format!("  {m}\n"))
            .collect::<String>()
    );
    Ok((
        text,
        json!({"records": r.records, "blocks": blocks, "tags": tags, "damaged": r.damaged,
               "torn": r.torn, "settled": settled_lines, "problems": problems}),
    ))
}

/// Puts the rebuilt index in the old one's place; returns where a damaged old file was kept.
fn install(
    b: &SplitlogBackend,
    st: &mut State,
    old: Index,
    fresh_path: &Path,
    damage: Option<&str>,
) -> Result<Option<PathBuf>> {
    let fresh = std::mem::replace(&mut st.index, Index::placeholder()?);
    fresh.close()?;
    drop(old);
    let aside = match damage {
        Some(_) => {
            let secs = protocol::history::now();
            let aside = sibling(&b.metadata, &format!(".damaged-{secs}"));
            for suffix in ["", "-wal", "-shm"] {
                let from = sibling(&b.metadata, suffix);
                if from.exists() {
                    let to = sibling(&aside, suffix);
                    std::fs::rename(&from, &to).map_err(|e| {
                        Error::io(
                            format!("moving {} aside to {}", from.display(), to.display()),
                            e,
                        )
                    })?;
                }
            }
            Some(aside)
        }
        None => {
            // (The rename below replaces the old file in one step; its write-ahead files,
            // which a clean close already removed, must not outlive it.)
            for suffix in ["-wal", "-shm"] {
                remove_db_file(&sibling(&b.metadata, suffix))?;
            }
            None
        }
    };
    std::fs::rename(fresh_path, &b.metadata).map_err(|e| {
        Error::io(
            format!(
                "putting the rebuilt index {} in place of {}",
                fresh_path.display(),
                b.metadata.display()
            ),
            e,
        )
    })?;
    if let Some(parent) = b.metadata.parent() {
        let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
    }
    st.index = Index::open(&b.metadata)?;
    restrict(&b.metadata);
    st.settings = Settings::load(&st.index)?;
    st.broken = None;
    st.doubts.clear();
    st.read_only = None;
    st.missing = damage::missing_logs(st)?;
    Ok(aside)
}

/// `path` with `suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Removes a database file and its `-wal` and `-shm`, where they exist.
fn remove_db(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        remove_db_file(&sibling(path, suffix))?;
    }
    Ok(())
}

fn remove_db_file(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", p.display()), e)),
    }
}
