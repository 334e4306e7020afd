//! `ore-admin ARCHIVE metrics [FILE]`: the backend's counters in the Prometheus text format,
//! on stdout or written whole to FILE (through a temporary name, for node_exporter's textfile
//! collector). Unlike the other commands it is answered here, from the protocol's `stats`
//! and `info`, so it works the same for every backend and proxy. A backend that cannot be
//! reached is a sample too (`ore_backend_up 0`) and exit status 1: the alert a monitoring
//! system wants.

use anyhow::{Context, Result};
use protocol::Backend;

/// The samples for `archive`, opened or not.
pub fn text(archive: &str, opened: &Result<std::sync::Arc<dyn Backend>>) -> String {
    let label = format!("archive=\"{}\"", ore::core::util::label_value(archive));
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, labels: &str, value: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{labels}}} {value}\n"
        ));
    };
    let backend = match opened {
        Ok(b) => b,
        Err(_) => {
            gauge("ore_backend_up", "Whether the backend answered.", &label, 0);
            return out;
        }
    };
    let stats = backend.stats();
    gauge(
        "ore_backend_up",
        "Whether the backend answered.",
        &label,
        u64::from(stats.is_ok()),
    );
    let info = backend.info();
    gauge(
        "ore_backend_info",
        "The backend's program and description (always 1).",
        &format!(
            "{label},server=\"{}\",description=\"{}\"",
            ore::core::util::label_value(&info.server),
            ore::core::util::label_value(&info.description)
        ),
        1,
    );
    gauge(
        "ore_backend_writable",
        "Whether this connection may store blocks.",
        &label,
        u64::from(info.writable),
    );
    gauge(
        "ore_backend_can_remove",
        "Whether this connection may remove blocks (not append-only).",
        &label,
        u64::from(info.can_remove),
    );
    if let Ok(s) = stats {
        for (name, help, v) in [
            ("ore_backend_blocks", "Blocks stored.", s.blocks),
            ("ore_backend_bytes", "Bytes stored.", s.bytes),
            ("ore_backend_tags", "Tags.", s.tags),
        ] {
            if let Some(v) = v {
                gauge(name, help, &label, v);
            }
        }
    }
    out
}

/// Prints the samples, or writes them to `file`; whether the backend answered.
pub fn run(archive: &str, file: Option<&str>) -> Result<bool> {
    let opened = ore::core::archive::open_single(archive).map_err(anyhow::Error::from);
    let text = text(archive, &opened);
    let up = opened.as_ref().is_ok_and(|b| b.stats().is_ok());
    match file {
        None => print!("{text}"),
        Some(f) => {
            ore::core::util::replace_whole(std::path::Path::new(f), text.as_bytes())
                .with_context(|| format!("writing {f}"))?;
        }
    }
    if let Err(e) = &opened {
        eprintln!("error: {e:#}");
    }
    Ok(up)
}
