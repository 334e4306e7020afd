//! `ore import` and `ore search`: archival mode on the command line (docs/ARCHIVAL.md).

use crate::cli::{ForgetArgs, ImportArgs, PropsArgs, SearchArgs};
use crate::{out, with_progress, Done, Env};
use anyhow::{anyhow, Result};
use ore::commands::import::{import as import_objects, ImportOptions};
use ore::commands::snapshot::{local, SnapshotOptions};
use ore::core::archival::format_date;
use ore::core::archival::Summary;
use ore::core::util::{human_bytes, show};
use serde_json::json;

pub fn import(env: &Env, a: ImportArgs) -> Result<Done> {
    let interrupted = crate::save::stop_on_signals()?;
    let repo = env.open()?;
    let id = env.archive_id()?;
    let local = local::local(&repo, &id, env.cache_dir().as_deref(), a.no_cache);
    let opts = ImportOptions {
        tag: a.tag,
        paths: a.paths,
        set: a.set,
        replace: a.replace,
        extract: !a.no_extract,
        each: a.each,
        catalogue: a.catalogue_only,
        volume: a.volume,
        store: SnapshotOptions {
            excludes: a.exclude,
            rules: env.config.exclude.clone(),
            one_file_system: a.one_file_system,
            cache: local.cache.clone(),
            skip: local.skip,
            interrupted: Some(interrupted),
            host: a.host,
            ..SnapshotOptions::default()
        },
    };
    let tag = opts.tag.clone();
    let r = with_progress(env, |p| {
        let mut opts = opts;
        opts.store.progress = p;
        import_objects(&repo, &opts)
    })?;
    // A catalogue's cache says whose it is, so that `ore cache prune` can tell when its
    // archive is gone (a snapshot's file cache is noted by the snapshot).
    if let Some(files) = local.cache.as_deref().filter(|_| a.catalogue_only) {
        let dir = files.parent().unwrap_or(std::path::Path::new("."));
        let path = ore::core::filecache::catalogue_path(dir, &repo.format().archive_id);
        ore::commands::snapshot::local::remember(Some(&path), &id);
    }
    let warn = |w: &ore::core::entry::Warning| format!("{}: {}", show(&w.path), w.message);
    if env.global.json {
        env.json(&json!({
            "head": r.head.to_hex(),
            "raced": r.raced,
            "index_nodes": r.index_nodes,
            "files_read": r.files_read,
            "objects": r.objects.iter().map(|(k, o)| json!({
                "key": k.to_hex(),
                "source": show(&o.source),
                "size": o.size,
                "props": o.props.iter().map(|p| (p.key.clone(), value_json(&p.value))).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
            "warnings": r.warnings.iter().map(warn).collect::<Vec<_>>(),
            "unchanged": r.unchanged.iter().map(|(source, k)| json!({
                "source": show(source),
                "key": k.to_hex(),
            })).collect::<Vec<_>>(),
            "beside": r.beside.iter().map(|b| json!({
                "source": show(&b.source),
                "key": b.key.to_hex(),
                "earlier": b.earlier.to_hex(),
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        // In one write: a line at a time took 20 ms for 46,000 objects.
        let mut keys = String::with_capacity(65 * r.objects.len());
        for (k, _) in &r.objects {
            keys.push_str(&k.to_hex());
            keys.push('\n');
        }
        out(&keys)?;
        for w in &r.warnings {
            eprintln!("ore: warning: {}", warn(w));
        }
        if !env.global.quiet {
            again_notes(&tag, &r.unchanged, &r.beside);
        }
        if r.raced && !env.global.quiet {
            eprintln!(
                "another run moved the tag meanwhile: these objects were filed on top of what it \
                 made, and what it filed is kept"
            );
        }
    }
    let done = if r.warnings.is_empty() {
        Done::Clean
    } else {
        Done::Warnings
    };
    // The outcome holds every object made (46,000 for an `--each` of /usr/share): freeing
    // them took 40 ms, and the process ends next, so the exit reclaims them instead.
    std::mem::forget(r);
    Ok(done)
}

/// What an import says of paths its tag held already (`import::again`), a few by name and
/// the rest counted.
fn again_notes(
    tag: &str,
    unchanged: &[(Vec<u8>, protocol::Key)],
    beside: &[ore::commands::import::Beside],
) {
    const NAMED: usize = 5;
    for (source, key) in unchanged.iter().take(NAMED) {
        eprintln!(
            "ore: {} is on {tag} already, unchanged, as object {}: not imported again",
            show(source),
            key.to_hex()
        );
    }
    if unchanged.len() > NAMED {
        eprintln!(
            "ore: and {} more on {tag} already, unchanged: not imported again",
            unchanged.len() - NAMED
        );
    }
    for b in beside.iter().take(NAMED) {
        eprintln!(
            "ore: note: {} was on {tag} already, as object {}; {} is filed beside it (to make a \
             new version of it instead, import it alone with --replace {})",
            show(&b.source),
            b.earlier.to_hex(),
            b.key.to_hex(),
            b.earlier.to_hex()
        );
    }
    if beside.len() > NAMED {
        eprintln!(
            "ore: note: and {} more were on {tag} already and are filed beside their earlier \
             objects",
            beside.len() - NAMED
        );
    }
}

pub fn search(env: &Env, a: SearchArgs) -> Result<Done> {
    use ore::commands::locate::Wanted;
    let wanted = match (a.file, a.name) {
        (Some(f), _) => Some(Wanted::Contents(f)),
        (None, Some(n)) => Some(Wanted::Name(n)),
        (None, None) => None,
    };
    if let Some(Wanted::Contents(dir)) = wanted.as_ref().filter(|w| match w {
        Wanted::Contents(p) => p.is_dir(),
        Wanted::Name(_) => false,
    }) {
        return locate_under(env, a.tag.as_deref(), dir);
    }
    if let Some(w) = wanted {
        return locate(env, a.tag.as_deref(), &w);
    }
    let Some(tag) = a.tag else {
        return Err(anyhow!(
            "search takes TAG [QUERY] (or --file PATH / --name NAME): see `ore search --help`"
        ));
    };
    // Without a query, every current object of the tag.
    let query = match a.query {
        None => ore::core::query::Query::All,
        Some(text) => ore::core::query::parse(&text).map_err(|e| anyhow!("query: {e}"))?,
    };
    let repo = env.open_brief()?;
    let cache = if a.no_cache { None } else { env.cache_dir() };
    let hits = ore::commands::search::search(&repo, &tag, &query, cache.as_deref())?;
    if let Some(dir) = &cache {
        let path = ore::core::searchcache::cache_path(dir, &repo.format().archive_id);
        if let Err(e) = ore::core::filecache::remember_use(&path, &env.archive_id()?) {
            protocol::log::warning(&format!("the search cache: {e}"));
        }
    }
    if env.global.json {
        // One document per line, as every list is (`--json`), written a piece at a time: a
        // search that finds a million objects would otherwise hold their JSON whole besides
        // the hits.
        let mut piece = String::new();
        for h in &hits {
            piece.push_str(&hit_json(&h.key, &h.summary).to_string());
            piece.push('\n');
            if piece.len() >= 1 << 16 {
                out(&std::mem::take(&mut piece))?;
            }
        }
        out(&piece)?;
    } else {
        for h in &hits {
            let s = &h.summary;
            let date = s.date.map(format_date).unwrap_or_else(|| "-".into());
            let kind = if s.kind.is_empty() { "-" } else { &s.kind };
            out(&format!(
                "{}  {date}  {:>9}  {kind:<24}  {}\n",
                &h.key.to_hex()[..16],
                human_bytes(s.size),
                s.title
            ))?;
        }
    }
    Ok(Done::Clean)
}

/// `ore search [TAG] --file PATH` / `--name NAME`: one line per file found, stored or
/// catalogued (and where).
fn locate(env: &Env, tag: Option<&str>, wanted: &ore::commands::locate::Wanted) -> Result<Done> {
    let repo = env.open_brief()?;
    let found = ore::commands::locate::locate(&repo, tag, wanted)?;
    if env.global.json {
        for f in &found {
            env.json(&located_json(f))?;
        }
    } else {
        for f in &found {
            out(&format!("{}\n", located_text(f)))?;
        }
        if found.is_empty() && !env.global.quiet {
            eprintln!("no stored or catalogued copy found");
        }
    }
    Ok(Done::Clean)
}

/// `ore search --file DIR`: each regular file under DIR with its copies, or that it has none.
fn locate_under(env: &Env, tag: Option<&str>, dir: &std::path::Path) -> Result<Done> {
    let repo = env.open_brief()?;
    let files = ore::commands::locate::locate_under(&repo, tag, dir)?;
    let (mut kept, mut unknown) = (0usize, 0usize);
    for f in &files {
        let file = f.path.display().to_string();
        match &f.copies {
            Ok(copies) if env.global.json => {
                env.json(&json!({
                    "file": file,
                    "copies": copies.iter().map(located_json).collect::<Vec<_>>(),
                }))?;
            }
            Err(why) if env.global.json => env.json(&json!({ "file": file, "error": why }))?,
            Ok(copies) if copies.is_empty() => {
                out(&format!("{file}  -  no stored or catalogued copy\n"))?
            }
            Ok(copies) => {
                for c in copies {
                    out(&format!("{file}  {}\n", located_text(c)))?;
                }
            }
            Err(why) => {
                out(&format!("{file}  -  not looked up: {why}\n"))?;
            }
        }
        match &f.copies {
            Ok(c) if !c.is_empty() => kept += 1,
            Ok(_) => {}
            Err(_) => unknown += 1,
        }
    }
    if !env.global.quiet && !env.global.json {
        let none = files.len() - kept - unknown;
        eprintln!(
            "{kept} of {} file(s) under {} have a stored or catalogued copy, {none} none{}",
            files.len(),
            dir.display(),
            match unknown {
                0 => String::new(),
                n => format!("; {n} could not be looked up"),
            }
        );
    }
    Ok(if unknown == 0 {
        Done::Clean
    } else {
        Done::Warnings
    })
}

/// One copy `ore search --file/--name` found, as a JSON document.
fn located_json(f: &ore::commands::locate::Located) -> serde_json::Value {
    json!({
        "tag": f.tag,
        "object": f.object.to_hex(),
        "path": show(&f.path),
        "origin": show(&f.origin),
        "stored": f.catalogue.is_none(),
        "volume": f.catalogue.as_ref().map(|v| json!({
            "name": v.name, "label": v.label, "uuid": v.uuid, "mount": v.mount,
            "device": v.device, "fs": v.fs, "model": v.model,
        })),
    })
}

/// One copy `ore search --file/--name` found, as a line's text: its tag, object and path
/// there, whether it is stored or catalogued (and where), and where it was imported from.
fn located_text(f: &ore::commands::locate::Located) -> String {
    let place = match &f.catalogue {
        None => "stored    ".to_string(),
        Some(v) => format!("catalogued on {}:", v.name),
    };
    format!(
        "{}  {}:{}  {place} {}",
        f.tag,
        &f.object.to_hex()[..16],
        show(&f.path),
        show(&f.origin)
    )
}

pub fn props(env: &Env, a: PropsArgs) -> Result<Done> {
    let repo = env.open_brief()?;
    let (tag, key, o) = if a.set.is_empty() {
        let spec = a.object.to_ascii_lowercase();
        let Some((tag, key)) = ore::core::objects::find_anywhere(&repo, &spec)? else {
            return Err(anyhow!("no archive object `{spec}` (see `ore search`)"));
        };
        let o: ore::core::archival::Object = repo.get(key, ore::core::block::Kind::Object)?;
        (tag, key, o)
    } else {
        ore::commands::import::reprop(&repo, &a.object, &a.set)?
    };
    if env.global.json {
        return env.json(&json!({
            "key": key.to_hex(),
            "tag": tag,
            "parent": o.parent.map(|k| k.to_hex()),
            "source": show(&o.source),
            "imported": ore::core::util::format_time(o.imported_ns),
            "host": o.host,
            "user": o.user,
            "size": o.size,
            "catalogue": o.catalogue.as_ref().map(|v| v.describe()),
            "props": o.props.iter().map(|p| (p.key.clone(), value_json(&p.value))).collect::<serde_json::Map<_, _>>(),
        }))
        .map(|()| Done::Clean);
    }
    if !a.set.is_empty() {
        out(&format!("{}\n", key.to_hex()))?;
        return Ok(Done::Clean);
    }
    out(&object_text(&tag, &key, &o))?;
    Ok(Done::Clean)
}

/// What `ore props` (and explore's `info`) says of object `key` on `tag`: where it came
/// from, what it replaces, and its properties.
pub fn object_text(tag: &str, key: &protocol::Key, o: &ore::core::archival::Object) -> String {
    let mut text = format!(
        "object    {}\ntag       {tag}\nimported  {} by {}@{} from {}\n",
        key.to_hex(),
        ore::core::util::format_time(o.imported_ns),
        o.user,
        o.host,
        show(&o.source)
    );
    if let Some(p) = o.parent {
        text.push_str(&format!("replaces  {}\n", p.to_hex()));
    }
    if let Some(v) = &o.catalogue {
        text.push_str(&format!(
            "catalogue {} (its data is not in the archive)\n",
            v.describe()
        ));
    }
    for p in &o.props {
        let v = match &p.value {
            ore::core::archival::Value::Text(t) => t.clone(),
            ore::core::archival::Value::Int(n) => n.to_string(),
            ore::core::archival::Value::Date(d) => format_date(*d),
            ore::core::archival::Value::List(l) => l.join(", "),
        };
        text.push_str(&format!("{:<9} {v}\n", p.key));
    }
    text
}

fn hit_json(key: &protocol::Key, s: &Summary) -> serde_json::Value {
    json!({
        "key": key.to_hex(),
        "title": s.title,
        "date": s.date.map(format_date),
        "type": s.kind,
        "size": s.size,
    })
}

fn value_json(v: &ore::core::archival::Value) -> serde_json::Value {
    use ore::core::archival::Value;
    match v {
        Value::Text(t) => json!(t),
        Value::Int(n) => json!(n),
        Value::Date(d) => json!(format_date(*d)),
        Value::List(l) => json!(l),
    }
}

/// `ore forget` on archive tags: `--where QUERY` removes the objects it matches from each.
/// `true` when it handled the command (every tag an archive tag, with a query); an error for
/// a query on a snapshot tag, or an archive tag without one.
pub fn forget_archive_tags(env: &Env, repo: &ore::Repo, a: &ForgetArgs) -> Result<bool> {
    let mut archive = Vec::new();
    for tag in &a.tags {
        let is_archive = matches!(ore::core::objects::head_of(repo, tag), Ok(Some(_)));
        match (is_archive, &a.query) {
            (true, None) => {
                return Err(anyhow!(
                    "{tag} is an archive tag: forget takes --where QUERY for it (objects are \
                     forgotten by what they are, never by age alone)"
                ))
            }
            (false, Some(_)) => {
                return Err(anyhow!(
                    "{tag} is not an archive tag: --where is for archive tags (keep snapshots \
                     with --keep-last, --keep-daily, ...)"
                ))
            }
            (true, Some(_)) => archive.push(tag),
            (false, None) => {}
        }
    }
    let Some(text) = &a.query else {
        return Ok(false);
    };
    let query = ore::core::query::parse(text).map_err(|e| anyhow!("query: {e}"))?;
    for tag in archive {
        let hits = ore::commands::import::forget_where(repo, tag, &query, a.dry_run)?;
        if env.global.json {
            env.json(&json!({
                "tag": tag,
                "dry_run": a.dry_run,
                "forgotten": hits.iter().map(|h| hit_json(&h.key, &h.summary)).collect::<Vec<_>>(),
            }))?;
            continue;
        }
        for h in &hits {
            out(&format!(
                "{}  {}  {}\n",
                if a.dry_run { "would forget" } else { "forgot" },
                h.key.to_hex(),
                h.summary.title
            ))?;
        }
        if !env.global.quiet {
            eprintln!(
                "{tag}: {} object(s) {}",
                hits.len(),
                if a.dry_run {
                    "would be forgotten"
                } else {
                    "forgotten; `ore gc` frees what nothing else holds"
                }
            );
        }
    }
    Ok(true)
}
