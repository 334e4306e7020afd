//! `ore find` and `ore stats`: how their answers print. The search and the counting are
//! `ore::commands::{find, stats}`.

use crate::browse::{entry_json, long_line};
use crate::cli::{FindArgs, StatsArgs};
use crate::{out, Done, Env};
use anyhow::{bail, Result};
use ore::commands::find::{find as search, Query};
use ore::core::util::{format_zoned, parse_duration, parse_time, rfc3339_zoned};

pub fn find(env: &Env, a: FindArgs) -> Result<Done> {
    let q = Query {
        pattern: a.pattern.clone(),
        ignore_case: a.ignore_case,
        tags: a.tag.clone(),
        newer: a
            .newer
            .as_deref()
            .map(|s| bound(s, "--newer", true))
            .transpose()?,
        older: a
            .older
            .as_deref()
            .map(|s| bound(s, "--older", false))
            .transpose()?,
    };
    let repo = env.open_brief()?;
    let (mut snapshots, mut hits, mut failed) = (0u64, 0u64, 0u64);
    search(&repo, &q, |found| {
        let found = match found {
            Ok(f) => f,
            Err(e) => {
                failed += 1;
                protocol::log::error(&format!("{e}; the search goes on with the others"));
                return Ok(());
            }
        };
        snapshots += 1;
        hits += found.hits.len() as u64;
        let l = &found.snapshot;
        let key = l.key.to_hex();
        if env.global.json {
            for h in &found.hits {
                let mut v = entry_json(&h.entry, &h.path);
                v["snapshot"] = key.clone().into();
                v["names"] = l.names.clone().into();
                v["time"] = rfc3339_zoned(l.snapshot.time, a.utc).into();
                v["time_ns"] = l.snapshot.time.into();
                env.json(&v)
                    .map_err(|e| ore::core::error::Error::Local(e.to_string()))?;
            }
            return Ok(());
        }
        let mut text = format!(
            "{}  {}  {}\n",
            &key[..12],
            format_zoned(l.snapshot.time, a.utc),
            l.names.join(",")
        );
        for h in &found.hits {
            text.push_str("  ");
            text.push_str(&long_line(&h.entry, &h.path));
        }
        out(&text).map_err(|e| ore::core::error::Error::Local(e.to_string()))
    })?;
    if !env.global.json && !env.global.quiet {
        match snapshots {
            0 => eprintln!("no snapshot holds a name matching `{}`", a.pattern),
            _ => eprintln!("{hits} match(es) in {snapshots} snapshot(s)"),
        }
    }
    if failed > 0 {
        bail!("{failed} snapshot(s) could not be searched (damaged; see above): `ore check` says more");
    }
    Ok(Done::Clean)
}

/// The time `--newer`/`--older` name, in ns since the epoch: an age back from now (`30d`), or
/// a date, whose day counts whole (from its first instant for `--newer`, to its last for
/// `--older`), or a date and time.
fn bound(s: &str, option: &str, from_start: bool) -> Result<i64> {
    if let Some(age) = parse_duration(s) {
        let now = jiff::Timestamp::now().as_nanosecond();
        let back = i128::from(age) * 1_000_000_000;
        return Ok(i64::try_from(now - back).unwrap_or(i64::MIN));
    }
    let Some(t) = parse_time(s) else {
        bail!("{option} {s}: not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], UTC) nor an age (30d, 12h, 2w)");
    };
    let day_only = !s.trim().contains(['T', ' ']);
    Ok(if day_only && from_start {
        t.saturating_sub(86_400_000_000_000 - 1)
    } else {
        t
    })
}

pub fn stats(env: &Env, a: StatsArgs) -> Result<Done> {
    let repo = env.open()?;
    let mut named = Vec::new();
    for s in &a.snapshots {
        let (key, _) = ore::core::spec::resolve(&repo, s)?;
        named.push((s.clone(), key));
    }
    let st = ore::commands::stats::stats(&repo, &named)?;
    if env.global.json {
        env.json(&serde_json::to_value(&st)?)?;
        return Ok(Done::Clean);
    }
    let hb = ore::core::util::human_bytes;
    let d = &st.deduplicated;
    let mut text = format!(
        "{} snapshot(s): {} files, {} restored in all\n",
        st.snapshots,
        st.files,
        hb(st.restored_bytes),
    );
    if st.archive_tags > 0 {
        text.push_str(&format!(
            "{} archive tag(s): {} object(s) listed\n",
            st.archive_tags, st.objects
        ));
    }
    text.push_str(&format!(
        "deduplicated: {} chunks, {} before compression; {} tree blocks, {} stored\n",
        d.chunks,
        hb(d.chunk_bytes),
        d.trees,
        hb(d.tree_bytes),
    ));
    if let Some(bytes) = st.archive_bytes.filter(|&b| b > 0) {
        let data = bytes.saturating_sub(d.tree_bytes).max(1);
        // Objects record no restored size here: the ratio is a snapshot's, so it is left
        // out where there is none to compare with.
        let smaller = match st.restored_bytes {
            0 => String::new(),
            r => format!(": {:.2}x smaller than restored", r as f64 / bytes as f64),
        };
        text.push_str(&format!(
            "archive: {} stored{} (its backend's count, every block){smaller}; data compressed \
             about {:.2}x\n",
            hb(bytes),
            st.archive_blocks
                .map(|b| format!(" in {b} blocks"))
                .unwrap_or_default(),
            d.chunk_bytes as f64 / data as f64,
        ));
    }
    text.push_str(&format!(
        "by {}: what it reaches, and what only it holds\n",
        st.by
    ));
    for g in &st.groups {
        let what = match g.objects {
            Some(o) => format!("archive tag, {} object(s), {} current", o.listed, o.current),
            None => format!(
                "{} snapshot(s), {} restored",
                g.snapshots,
                hb(g.restored_bytes)
            ),
        };
        text.push_str(&format!(
            "  {}  {what}; reaches {} in {} chunks; alone {} in {} chunks and {} in {} tree \
             blocks\n",
            g.name,
            hb(g.reached.chunk_bytes),
            g.reached.chunks,
            hb(g.unique.chunk_bytes),
            g.unique.chunks,
            hb(g.unique.tree_bytes),
            g.unique.trees,
        ));
    }
    out(&text)?;
    Ok(Done::Clean)
}
