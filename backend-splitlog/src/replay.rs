//! Replaying the logs into the index: at opening, the records written after the index's last
//! commit (what a crash left unrecorded); for a reindex, every record of every log.
//!
//! A torn tail of the newest log is an interrupted write and is cut off; damage anywhere else is
//! reported and skipped, and what it may have done to the tags is worked out in
//! [`crate::damage`]: an opening replay that leaves a tag in doubt is not committed.

use crate::index::Index;
use crate::record::{self, RecordType};
use crate::{damage, logs, scan, Settings, State};
use protocol::{Error, Result};
use std::path::Path;

impl State {
    /// Replays the records written after the index's position.
    pub(crate) fn replay(&mut self) -> Result<ReplayReport> {
        let all = logs::list_logs(self.logs.dir())?;
        let (first_log, first_offset) = self
            .index
            .position()?
            .unwrap_or((all.first().copied().unwrap_or(1), 0));
        let mut report = ReplayReport::default();
        let last = all.last().copied();
        for n in all.into_iter().filter(|&n| n >= first_log) {
            let start = if n == first_log { first_offset } else { 0 };
            let path = logs::log_path(self.logs.dir(), n);
            let file = self
                .logs
                .file(n)?
                .try_clone()
                .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
            let scanner = scan::Scanner::new(&file, start, true)
                .map_err(|e| Error::io(format!("scanning log {n}"), e))?;
            for item in scanner {
                match item.map_err(|e| Error::io(format!("scanning {}", path.display()), e))? {
                    scan::Item::Record {
                        offset,
                        header,
                        payload,
                    } => {
                        let payload = payload.unwrap_or_default();
                        if matches!(header.kind, RecordType::TagSet | RecordType::TagRemoved) {
                            if let Some((name, _)) = record::parse_named(&payload) {
                                report.tags.changes.insert(name, (n, offset));
                            }
                        }
                        self.index.apply(n, offset, &header, &payload)?;
                        report.records += 1;
                    }
                    scan::Item::Corrupt {
                        offset,
                        next,
                        reason,
                        kind,
                    } => {
                        let at = (n, offset, next);
                        self.replay_damaged(&mut report, &file, &path, at, reason, kind)?;
                    }
                    scan::Item::TornTail { offset } => {
                        let newest = Some(n) == last;
                        self.replay_torn(&mut report, &path, (n, offset), newest)?;
                    }
                }
            }
        }
        self.settings = Settings::load(&self.index)?;
        Ok(report)
    }

    /// A damaged record at `offset` of log `n` (sound bytes resume at `next`): applied when one
    /// wrong byte explains the damage, otherwise skipped, counted as dead space and, when it
    /// could have been a tag record, noted as a suspect.
    fn replay_damaged(
        &mut self,
        report: &mut ReplayReport,
        file: &std::fs::File,
        path: &std::path::Path,
        (n, offset, next): (u32, u64, u64),
        reason: &str,
        kind: Option<RecordType>,
    ) -> Result<()> {
        if let Some((header, payload)) = repaired(file, offset, kind) {
            let m = format!(
                "{} offset {offset}: damaged record ({reason}) read back: one \
                 byte of it was wrong, and only one reading matches its checksum",
                path.display()
            );
            protocol::log::warning(&m);
            report.damaged.push(m);
            if let Some((name, _)) = record::parse_named(&payload) {
                if header.kind != RecordType::TagKept {
                    report.tags.changes.insert(name, (n, offset));
                }
            }
            self.index.apply(n, offset, &header, &payload)?;
            report.records += 1;
            return Ok(());
        }
        let m = format!(
            "{} offset {offset}: damaged record ({reason}); skipped {} bytes",
            path.display(),
            next - offset
        );
        protocol::log::warning(&m);
        let mut h = [0u8; record::HEADER_LEN];
        let header = std::os::unix::fs::FileExt::read_exact_at(file, &mut h, offset)
            .ok()
            .map(|()| &h);
        if damage::could_be_tag(kind, header) {
            report.tags.suspects.push(damage::Suspect {
                at: (n, offset),
                what: m.clone(),
                newest_tail: false,
            });
        }
        report.damaged.push(m);
        self.index.account(n, 0, (next - offset) as i64)
    }

    /// Log `n` ends inside a record at `offset`: an interrupted write when it is the `newest`
    /// log (cut off, if it is the one appended to), damage otherwise; a suspect either way.
    fn replay_torn(
        &mut self,
        report: &mut ReplayReport,
        path: &std::path::Path,
        (n, offset): (u32, u64),
        newest: bool,
    ) -> Result<()> {
        let size = self.logs.size_of(n)?;
        let m = if newest {
            format!(
                "{}: cut off {} bytes of an interrupted write at offset {offset}",
                path.display(),
                size - offset
            )
        } else {
            format!(
                "{} offset {offset}: the log ends at byte {size} in the middle of \
                 a record (it was cut short, though later logs were written after it)",
                path.display()
            )
        };
        report.tags.suspects.push(damage::Suspect {
            at: (n, offset),
            what: m.clone(),
            newest_tail: newest,
        });
        if newest && n == self.logs.end().0 {
            self.logs.truncate(n, offset)?;
        }
        protocol::log::warning(&m);
        if newest {
            report.torn.push(m);
        } else {
            report.damaged.push(m);
        }
        Ok(())
    }
}

impl State {
    /// The replay at opening: committed when it leaves no tag in doubt. Otherwise the archive
    /// is open for reading only, answering from what the replay found (never committed, so
    /// the next opening meets the same doubt) but refusing to answer for the doubted tags until
    /// a reindex settles them (see [`damage`]).
    pub(crate) fn settle_replay(&mut self) -> Result<()> {
        let committed = self.index.position()?;
        let report = self.replay()?;
        let doubts = damage::doubts(
            &report.tags,
            &self.index,
            &Default::default(),
            None,
            committed,
        )?;
        if doubts.is_empty() {
            // Damage passed over because it was never flushed still sits in the logs, where a
            // later replay of every log (a deleted index) would doubt the tags before it: the
            // values this replay settled on are written again after it, so the logs alone
            // keep showing them.
            let excused =
                damage::doubts(&report.tags, &self.index, &Default::default(), None, None)?;
            for d in excused {
                match d.older {
                    Some(v) => self.write(
                        RecordType::TagSet,
                        [0; 32],
                        &record::named_payload(&d.tag, &v),
                    )?,
                    None => self.write(
                        RecordType::TagRemoved,
                        [0; 32],
                        &record::named_payload(&d.tag, &[]),
                    )?,
                }
            }
            return self.commit();
        }
        let why = format!(
            "open for reading only: {}",
            damage::explain(self.logs.dir(), &doubts)
        );
        protocol::log::warning(&why);
        self.read_only = Some(why);
        self.doubts = doubts;
        Ok(())
    }
}

/// The lowest number the next new log may take: past the newest log the index names when that
/// log is gone or shorter than the index says it was (cut short), so that nothing written now
/// lands where the index places older records. 0: no such constraint.
pub(crate) fn next_log_floor(
    dir: &Path,
    index: &Index,
    known: u32,
) -> Result<(u32, Option<String>)> {
    let Some((log, offset)) = index.position()? else {
        return Ok(if logs::log_path(dir, known).exists() || known == 0 {
            (0, None)
        } else {
            (known + 1, None)
        });
    };
    let newest = known.max(log);
    let path = logs::log_path(dir, newest);
    match std::fs::metadata(&path) {
        Ok(m) if newest != log || m.len() >= offset => Ok((0, None)),
        Ok(m) => Ok((
            newest + 1,
            Some(format!(
                "{} is {} bytes, but the index reflects it up to byte {offset}: it was cut \
                 short, and the records past its end are lost (reads of their blocks fail as \
                 damaged); new records go to the next log",
                path.display(),
                m.len()
            )),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((newest + 1, None)),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct ReplayReport {
    pub records: u64,
    /// Damaged records, and logs cut short that are not the newest.
    pub damaged: Vec<String>,
    /// Interrupted writes cut off the newest log.
    pub torn: Vec<String>,
    /// Where each tag last changed, and the damage that may have changed tags since.
    pub tags: damage::TagTrail,
}

/// A tag or setting record whose payload has one wrong byte, read back (see
/// [`record::repair_named`]).
fn repaired(
    file: &std::fs::File,
    offset: u64,
    kind: Option<RecordType>,
) -> Option<(record::Header, Vec<u8>)> {
    use std::os::unix::fs::FileExt;
    if !matches!(
        kind,
        Some(
            RecordType::TagSet | RecordType::TagRemoved | RecordType::TagKept | RecordType::Setting
        )
    ) {
        return None;
    }
    let mut h = [0u8; record::HEADER_LEN];
    file.read_exact_at(&mut h, offset).ok()?;
    let header = record::Header::decode(&h)?;
    if header.len as usize > record::REPAIR_MAX {
        return None;
    }
    let mut payload = vec![0u8; header.len as usize];
    file.read_exact_at(&mut payload, offset + record::HEADER_LEN as u64)
        .ok()?;
    record::repair_named(&header, &payload).map(|p| (header, p))
}
