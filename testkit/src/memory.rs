//! An in-memory backend: the reference implementation of the trait's rules, used by tests of
//! everything built on top of a backend, and by the tests of `serve` (in `protocol`) and of
//! `Client` (in `connect`).

use ore_util::sync::lock;
use protocol::admin::{entry, records, Records, Table};
use protocol::backend::{check_block_size, AdminOutput, Backend, BackendInfo, CasOutcome, Stats};
use protocol::error::{Error, ErrorCode, Result};
use protocol::history;
use protocol::key::{check_tag_name, check_tag_value, Key};
use protocol::message::Level;
use protocol::provenance;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// Default maximum block size of the in-memory backend (16 MiB).
pub const DEFAULT_MAX_BLOCK: u32 = 16 << 20;

const TABLE: &Table<MemoryBackend> = &[
    &[
        entry("help", "", "list the admin commands", |_, _| {
            Ok(protocol::admin::help("the memory backend", TABLE))
        }),
        entry("info", "", "what this backend is", |b, _| {
            Ok(AdminOutput::new(
                "in-memory archive (not persistent)\n",
                serde_json::json!({"kind": "memory", "max_block_size": b.max_block_size}),
            ))
        }),
        entry("stats", "", "blocks, bytes and tags held", |b, _| {
            Ok(b.stats()?.admin_output())
        }),
        entry(
            "log",
            "debug|info|warning|error TEXT",
            "send TEXT back as a log message (to test how clients show them)",
            log,
        ),
    ],
    &records::<MemoryBackend>(),
];

#[derive(Default)]
struct State {
    blocks: BTreeMap<Key, Vec<u8>>,
    tags: BTreeMap<String, Vec<u8>>,
    history: history::Memory,
    unvouched: provenance::Marks,
}

/// Blocks and tags in a map, lost when dropped.
pub struct MemoryBackend {
    state: Mutex<State>,
    max_block_size: u32,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::new(DEFAULT_MAX_BLOCK)
    }
}

impl MemoryBackend {
    pub fn new(max_block_size: u32) -> MemoryBackend {
        MemoryBackend {
            state: Mutex::new(State::default()),
            max_block_size,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic in another thread cannot leave the maps half-updated: every change is one
        // insert or remove. So a poisoned lock is safe to keep using.
        lock(&self.state)
    }
}

impl Backend for MemoryBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            server: format!("memory {}", env!("CARGO_PKG_VERSION")),
            description: "in-memory archive (not persistent)".into(),
            max_block_size: self.max_block_size,
            writable: true,
            can_remove: true,
            can_list: true,
            admin_commands: protocol::admin::names(TABLE),
        }
    }

    fn put(&self, key: Key, data: &[u8]) -> Result<()> {
        check_block_size(&key, data.len(), self.max_block_size)?;
        self.state()
            .blocks
            .entry(key)
            .or_insert_with(|| data.to_vec());
        Ok(())
    }

    fn put_restricted(&self, key: Key, data: &[u8]) -> Result<()> {
        check_block_size(&key, data.len(), self.max_block_size)?;
        let s = &mut *self.state();
        if let std::collections::btree_map::Entry::Vacant(v) = s.blocks.entry(key) {
            v.insert(data.to_vec());
            s.unvouched.mark(key);
        }
        Ok(())
    }

    fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
        Ok(self.state().blocks.get(&key).cloned())
    }

    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
        let s = self.state();
        Ok(keys.iter().map(|k| s.blocks.contains_key(k)).collect())
    }

    fn remove(&self, keys: &[Key]) -> Result<()> {
        let mut s = self.state();
        for k in keys {
            s.blocks.remove(k);
            s.unvouched.forget(k);
        }
        Ok(())
    }

    fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        let s = self.state();
        let mut it: Box<dyn Iterator<Item = &Key>> = match after {
            Some(a) => Box::new(
                s.blocks
                    .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
                    .map(|(k, _)| k),
            ),
            None => Box::new(s.blocks.keys()),
        };
        let keys: Vec<Key> = it.by_ref().take(limit as usize).copied().collect();
        let more = it.next().is_some();
        Ok((keys, more))
    }

    fn get_tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
        check_tag_name(name)?;
        Ok(self.state().tags.get(name).cloned())
    }

    fn set_tag(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<CasOutcome> {
        check_tag_name(name)?;
        check_tag_value(value)?;
        let mut s = self.state();
        let current = s.tags.get(name).map(Vec::as_slice);
        if current != expected {
            return Ok(CasOutcome::Conflict {
                current: current.map(<[u8]>::to_vec),
            });
        }
        s.tags.insert(name.to_string(), value.to_vec());
        s.history.record(name, value);
        Ok(CasOutcome::Done)
    }

    fn remove_tag(&self, name: &str, expected: Option<&[u8]>) -> Result<CasOutcome> {
        check_tag_name(name)?;
        let mut s = self.state();
        let current = s.tags.get(name).map(Vec::as_slice);
        if expected.is_some() && current != expected {
            return Ok(CasOutcome::Conflict {
                current: current.map(<[u8]>::to_vec),
            });
        }
        s.tags.remove(name);
        Ok(CasOutcome::Done)
    }

    fn list_tags(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self
            .state()
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> Result<Stats> {
        let s = self.state();
        Ok(Stats {
            blocks: Some(s.blocks.len() as u64),
            bytes: Some(s.blocks.values().map(|v| v.len() as u64).sum()),
            tags: Some(s.tags.len() as u64),
        })
    }

    fn admin(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        protocol::admin::dispatch(TABLE, self, command, args)
    }
}

impl Records for MemoryBackend {
    fn tag_history(&self, args: &[String]) -> Result<AdminOutput> {
        let asked = history::history_arg(args)?;
        Ok(history::output(asked, &self.state().history.list(asked)))
    }

    fn expire_tag_history(&self, args: &[String]) -> Result<AdminOutput> {
        let (cutoff, tag) = history::expire_args(args)?;
        let s = &mut *self.state();
        let tags = &s.tags;
        let n = s.history.expire(cutoff, tag, |t| tags.get(t).cloned());
        Ok(history::expired_output(n))
    }

    fn unvouched(&self, args: &[String]) -> Result<AdminOutput> {
        let (after, limit) = provenance::page_args(args)?;
        let (keys, more) = self.state().unvouched.page(after, limit);
        Ok(provenance::page_output(&keys, more))
    }

    fn record_vouching(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        let keys = provenance::key_args(command, args)?;
        let s = &mut *self.state();
        for k in &keys {
            if command == provenance::VOUCH {
                s.unvouched.forget(k);
            } else {
                s.unvouched.mark(*k);
            }
        }
        Ok(provenance::count_output(command, keys.len()))
    }
}

/// `log LEVEL TEXT`: sends TEXT back as a log message of LEVEL.
fn log(_: &MemoryBackend, args: &[String]) -> Result<AdminOutput> {
    let level = match args.first().map(String::as_str) {
        Some("debug") => Level::Debug,
        Some("info") => Level::Info,
        Some("warning") => Level::Warning,
        Some("error") => Level::Error,
        other => {
            return Err(Error::backend(
                ErrorCode::Admin,
                format!("log: the level must be debug, info, warning or error, not {other:?}"),
            ))
        }
    };
    protocol::log::log(level, &args[1..].join(" "));
    Ok(AdminOutput::new("sent\n", serde_json::Value::Null))
}
