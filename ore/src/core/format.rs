//! The format record: what an archive is and how to read it (FORMAT.md §3).
//!
//! It is the only block stored in the clear, named by its unkeyed hash, and found through the
//! reserved tag [`FORMAT_TAG`]. Changing it (a key slot added or removed) stores a new record
//! and moves the tag with compare-and-swap, so two people changing keys at once cannot lose
//! each other's change.
//!
//! An archive whose record is missing is new only if it holds nothing; otherwise the record
//! was lost, `ore init` refuses, and `restore` puts back the newest value the backend's tag
//! history kept (`missing`).

mod missing;

pub use missing::{check_empty, evidence, missing_error, restore, Evidence, Restored};

use crate::core::block::Compression;
use crate::core::crypto::KeySlot;
use crate::core::error::{Error, Result};
use protocol::Key;
use serde::{Deserialize, Serialize};

/// The reserved tag naming the format record.
pub const FORMAT_TAG: &str = protocol::tagrules::FORMAT_TAG;
/// The format version this build gives new archives (and `ore upgrade` older ones): 6, whose
/// chains are made of links ([`crate::core::link`], since 2), whose small files are kept in
/// shared chunks ([`SLICES_FROM`], since 3), which may have archive tags
/// ([`crate::core::archival::ARCHIVAL_FROM`], since 4), whose objects list their files and
/// may be catalogues ([`crate::core::archival::LISTS_FROM`], since 5), and whose objects of
/// one file may be the file itself ([`crate::core::archival::FILE_ROOTS_FROM`], since 6).
pub const FORMAT_VERSION: u32 = 6;
/// The first format version whose small files may be slices of shared chunks
/// (`Content::Slice`, FORMAT.md §4). Snapshots of older archives store each file apart, so
/// that the `ore`s that read them still can.
pub const SLICES_FROM: u32 = 3;
/// The oldest format version this build reads (and writes, as that version).
pub const OLDEST_FORMAT: u32 = 1;

/// Content-defined chunking parameters (bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
    /// FastCDC normalization level (0, 1 or 2): higher keeps chunk sizes closer to `avg`.
    pub normalization: u8,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min: 128 << 10,
            avg: 256 << 10,
            max: 1 << 20,
            normalization: 2,
        }
    }
}

impl ChunkerParams {
    /// The FastCDC normalization level.
    pub fn level(&self) -> fastcdc::v2020::Normalization {
        match self.normalization {
            0 => fastcdc::v2020::Normalization::Level0,
            1 => fastcdc::v2020::Normalization::Level1,
            _ => fastcdc::v2020::Normalization::Level2,
        }
    }

    /// Checks the limits of the FastCDC implementation and of block sizes.
    pub fn check(&self) -> Result<()> {
        let ok = self.min >= 64
            && self.min <= 1 << 20
            && self.avg >= 256
            && self.avg <= 4 << 20
            && self.max >= 1024
            && self.max <= 16 << 20
            && self.min <= self.avg
            && self.avg <= self.max
            && self.normalization <= 2;
        if ok {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "chunk sizes min {} / avg {} / max {} (normalization {}) are invalid: need 64 <= min <= 1 MiB, 256 <= avg <= 4 MiB, 1 KiB <= max <= 16 MiB, min <= avg <= max, and normalization 0, 1 or 2",
                self.min, self.avg, self.max, self.normalization
            )))
        }
    }
}

/// The format record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatRecord {
    /// [`OLDEST_FORMAT`] to [`FORMAT_VERSION`]: 1 for archives whose snapshots name the one
    /// before them, 2 for chains of links.
    pub format: u32,
    /// A random identifier of this archive (hex), so caches are never mixed up.
    pub archive_id: String,
    /// Seconds since the epoch.
    pub created: i64,
    /// `fastcdc-2020`.
    pub chunker_algorithm: String,
    pub chunker: ChunkerParams,
    /// `zstd:N` or `none`: what new blocks use (readers accept either).
    pub compression: String,
    /// `aes-256-gcm` or `none`.
    pub encryption: String,
    /// Wrapped copies of the master key, one per passphrase.
    pub key_slots: Vec<KeySlot>,
    /// The master key in hex, only in unencrypted archives.
    pub master_key: Option<String>,
    /// How long reflog entries (and the tags' kept history) are kept before a full-access gc
    /// expires them: an age (`14d`, `8w`) or `never`. Absent: [`DEFAULT_REFLOG_KEEP`]. (Absent
    /// from the JSON when unset, so records written before it existed hash as they did.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflog_keep: Option<String>,
}

/// The reflog retention of an archive that sets none.
pub const DEFAULT_REFLOG_KEEP: &str = "14d";

/// The reflog retention `s` names, in seconds (`None`: never expired), or why it names none.
pub fn parse_reflog_keep(s: &str) -> Result<Option<i64>> {
    if s == "never" {
        return Ok(None);
    }
    crate::core::util::parse_duration(s)
        .map(Some)
        .ok_or_else(|| {
            Error::Usage(format!(
                "reflog retention `{s}`: give an age (14d, 8w, 1y, 0d) or `never`"
            ))
        })
}

impl FormatRecord {
    /// The archive's reflog retention in seconds (`None`: never expired).
    pub fn reflog_keep_secs(&self) -> Result<Option<i64>> {
        parse_reflog_keep(self.reflog_keep.as_deref().unwrap_or(DEFAULT_REFLOG_KEEP))
    }

    /// Whether blocks are encrypted.
    pub fn encrypted(&self) -> bool {
        self.encryption != "none"
    }

    /// The compression new blocks use.
    pub fn compression(&self) -> Result<Compression> {
        parse_compression(&self.compression)
    }

    /// Parses a stored record, checking what this build understands.
    pub fn parse(data: &[u8]) -> Result<FormatRecord> {
        let r: FormatRecord = serde_json::from_slice(data)
            .map_err(|e| Error::Archive(format!("the format record does not parse: {e}")))?;
        if !(OLDEST_FORMAT..=FORMAT_VERSION).contains(&r.format) {
            return Err(Error::Archive(format!(
                "the archive has format version {}, this ore reads versions {OLDEST_FORMAT} to \
                 {FORMAT_VERSION}{}",
                r.format,
                if r.format > FORMAT_VERSION {
                    ": it was written by a newer ore"
                } else {
                    ""
                }
            )));
        }
        if r.chunker_algorithm != "fastcdc-2020" {
            return Err(Error::Archive(format!(
                "unknown chunker `{}`",
                r.chunker_algorithm
            )));
        }
        if !matches!(r.encryption.as_str(), "none" | "aes-256-gcm") {
            return Err(Error::Archive(format!(
                "unknown encryption `{}`",
                r.encryption
            )));
        }
        r.chunker.check()?;
        r.compression()?;
        Ok(r)
    }
}

/// Parses `zstd`, `zstd:N` (1..=22) or `none`.
pub fn parse_compression(s: &str) -> Result<Compression> {
    let bad = || {
        Error::Usage(format!(
            "compression `{s}` is not `none`, `zstd` or `zstd:LEVEL` (1-22)"
        ))
    };
    match s {
        "none" => Ok(Compression::None),
        "zstd" => Ok(Compression::Zstd(3)),
        _ => {
            let level: i32 = s
                .strip_prefix("zstd:")
                .ok_or_else(bad)?
                .parse()
                .map_err(|_| bad())?;
            if (1..=22).contains(&level) {
                Ok(Compression::Zstd(level))
            } else {
                Err(bad())
            }
        }
    }
}

/// Checks a tag name given by a user: the backend's rules, and none of the characters the
/// snapshot syntax uses (`:`, `@`, `~`), which also keeps the reserved `ore:` names apart.
pub fn check_user_tag(name: &str) -> Result<()> {
    protocol::key::check_tag_name(name).map_err(|e| Error::Usage(e.to_string()))?;
    if let Some(c) = name.chars().find(|c| matches!(c, ':' | '@' | '~')) {
        return Err(Error::Usage(format!(
            "invalid tag name {name:?}: it contains `{c}`, which snapshot names use (TAG~N, TAG@DATE, SNAPSHOT:PATH)"
        )));
    }
    Ok(())
}

/// Whether a tag name is reserved for the archive itself.
pub fn is_system_tag(name: &str) -> bool {
    name.starts_with("ore:")
}

/// A tag value (64 hex digits) as a key.
pub fn parse_tag_value(v: &[u8]) -> Option<Key> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}
