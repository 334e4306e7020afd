//! The format object `ore-s3.json`: what layout an archive has and its settings, created once
//! with `If-None-Match: *` so that two processes creating one archive agree (LAYOUT.md,
//! "Format object"). A prefix that holds objects but no format object is refused, so that
//! backend-s3 never mixes an archive into someone else's data.

use crate::store::Store;
use crate::{S3Options, DEFAULT_MAX_BLOCK, FORMAT, FORMAT_1, FORMAT_OBJECT};
use protocol::{Error, ErrorCode, Result};

/// What the format object says.
pub(crate) struct Format {
    /// The layout: 2 ([`FORMAT`]), or 1 ([`FORMAT_1`]: removal records in `deleted/`).
    pub layout: u8,
    pub max_block_size: u32,
    /// Tags are records in `tag-log/` ("tags": "log"), not objects moved by compare-and-swap.
    pub tag_log: bool,
    /// This process created the archive.
    pub created: bool,
}

/// The format object's bytes.
pub(crate) fn body(max: u32, tag_log: bool) -> Vec<u8> {
    serde_json::json!({
        "format": FORMAT,
        "max_block_size": max,
        "blocks": "packs (packs/<id>; index/<id> and removal records index/r-<...>)",
        "tags": if tag_log { "log" } else { "objects" },
    })
    .to_string()
    .into_bytes()
}

/// Reads the format object, or creates it in an empty prefix.
pub(crate) async fn format_object(store: &Store, opts: &S3Options) -> Result<Format> {
    let invalid = |m: String| Error::backend(ErrorCode::InvalidArgument, m);
    for _ in 0..3 {
        if let Some(bytes) = store.get(FORMAT_OBJECT).await? {
            let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                invalid(format!(
                    "{}: {FORMAT_OBJECT} is not JSON: {e}",
                    store.archive
                ))
            })?;
            let layout = match v["format"].as_str() {
                Some(FORMAT) => 2,
                Some(FORMAT_1) => 1,
                _ => {
                    return Err(invalid(format!(
                        "{}: {FORMAT_OBJECT} names format {}, not {FORMAT} or {FORMAT_1}",
                        store.archive, v["format"]
                    )))
                }
            };
            let max = v["max_block_size"]
                .as_u64()
                .and_then(|m| u32::try_from(m).ok());
            return match max {
                Some(m) if m > 0 && m <= protocol::frame::MAX_BLOCK_LIMIT => Ok(Format {
                    layout,
                    max_block_size: m,
                    tag_log: v["tags"] == "log",
                    created: false,
                }),
                _ => Err(invalid(format!(
                    "{}: {FORMAT_OBJECT} has no valid max_block_size",
                    store.archive
                ))),
            };
        }
        if opts.read_only {
            return Err(invalid(format!(
                "{} is not an Ore archive (no {FORMAT_OBJECT}), and --read-only cannot create one",
                store.archive
            )));
        }
        // A probe's scratch object (this process's own, written beside this check, or one a
        // process that died mid-probe left) does not make the prefix someone else's.
        let (present, _) = store.list("", None, 16, true).await?;
        if present.iter().any(|p| !p.starts_with("probe/")) {
            return Err(invalid(format!(
                "{} holds objects but no {FORMAT_OBJECT}; refusing to create an archive there",
                store.archive
            )));
        }
        let max = opts.max_block_size.unwrap_or(DEFAULT_MAX_BLOCK);
        if max == 0 || max > protocol::frame::MAX_BLOCK_LIMIT {
            return Err(invalid(format!(
                "maximum block size {max} is outside 1..={}",
                protocol::frame::MAX_BLOCK_LIMIT
            )));
        }
        if store
            .put_new(FORMAT_OBJECT, body(max, opts.assume_unconditional))
            .await?
        {
            return Ok(Format {
                layout: 2,
                max_block_size: max,
                tag_log: opts.assume_unconditional,
                created: true,
            });
        }
        // Another process created it first: read theirs.
    }
    Err(invalid(format!(
        "{}: {FORMAT_OBJECT} keeps changing",
        store.archive
    )))
}
