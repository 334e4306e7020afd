//! The crash campaign: the real backend-splitlog binary is killed at every one of the first
//! few hundred operations of a workload (by fault injection, before and after the operation
//! runs) and at random moments (SIGKILL from outside). After each kill the archive is reopened
//! and checked against what the client saw acknowledged:
//!
//! - every put acknowledged before a completed flush is there, byte for byte (unless a later
//!   removal was attempted);
//! - every tag set acknowledged before a completed flush holds, unless a later change was
//!   attempted, in which case the tag holds one of the values attempted;
//! - no block is ever served with bytes other than the ones put under its key;
//! - the archive accepts new writes afterwards.
//!
//! `ORE_CRASH_POINTS` (default 300) sets how many kill points are run.

use backend_splitlog::{SplitlogBackend, SplitlogOptions};
use connect::{Client, ClientOptions};
use protocol::{Backend, CasOutcome, Key};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use testkit::conformance::{test_data, test_key};

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn id(dir: &Path) -> String {
    format!(
        "{} '{}'",
        env!("CARGO_BIN_EXE_backend-splitlog"),
        dir.display()
    )
}

fn data(i: u64) -> Vec<u8> {
    test_data(i, 100 + (i as usize * 37) % 5000)
}

/// What the client knows: the state as of the last completed flush, and what was attempted
/// after it.
#[derive(Default, Clone)]
struct Model {
    durable_blocks: BTreeSet<u64>,
    durable_tags: BTreeMap<String, Vec<u8>>,
    /// Blocks acknowledged (or attempted) since the last flush.
    pending_puts: BTreeSet<u64>,
    pending_removes: BTreeSet<u64>,
    /// Tag values attempted since the last flush.
    pending_tags: BTreeMap<String, Vec<Vec<u8>>>,
    tags_now: BTreeMap<String, Vec<u8>>,
    all_keys: BTreeSet<u64>,
}

impl Model {
    fn flushed(&mut self) {
        for i in std::mem::take(&mut self.pending_puts) {
            self.durable_blocks.insert(i);
        }
        for i in std::mem::take(&mut self.pending_removes) {
            self.durable_blocks.remove(&i);
        }
        self.pending_tags.clear();
        self.durable_tags = self.tags_now.clone();
    }
}

/// Runs the workload until the backend fails; returns the model of what was acknowledged.
fn workload(c: &dyn Backend, ops: u64) -> Model {
    let mut m = Model::default();
    for i in 0..ops {
        let r: protocol::Result<()> = match i % 10 {
            0..=5 => {
                m.all_keys.insert(i);
                m.pending_puts.insert(i);
                c.put(test_key(i), &data(i))
            }
            6 => {
                let name = format!("tag{}", i % 3);
                let expected = m.tags_now.get(&name).cloned();
                let value = i.to_string().into_bytes();
                m.pending_tags
                    .entry(name.clone())
                    .or_default()
                    .push(value.clone());
                match c.set_tag(&name, expected.as_deref(), &value) {
                    Ok(CasOutcome::Done) => {
                        m.tags_now.insert(name, value);
                        Ok(())
                    }
                    Ok(CasOutcome::Conflict { current }) => {
                        panic!("conflict on {name}: {current:?}")
                    }
                    Err(e) => Err(e),
                }
            }
            7 if i > 20 => {
                let victim = i - 19;
                m.pending_removes.insert(victim);
                m.pending_puts.remove(&victim);
                c.remove(&[test_key(victim)])
            }
            9 => c.flush().map(|()| m.flushed()),
            _ => c.get(test_key(i.saturating_sub(3))).map(|_| ()),
        };
        if r.is_err() {
            return m;
        }
    }
    m
}

fn check(dir: &Path, m: &Model, label: &str) {
    let b = SplitlogBackend::open(dir, SplitlogOptions::default())
        .unwrap_or_else(|e| panic!("{label}: the archive does not reopen: {e}"));
    for &i in &m.all_keys {
        let got = b
            .get(test_key(i))
            .unwrap_or_else(|e| panic!("{label}: get of block {i} failed: {e}"));
        if let Some(bytes) = &got {
            assert!(
                *bytes == data(i),
                "{label}: block {i} served with wrong bytes"
            );
        }
        if m.durable_blocks.contains(&i) && !m.pending_removes.contains(&i) {
            assert!(
                got.is_some(),
                "{label}: block {i}, put before a completed flush, is lost"
            );
        }
    }
    for (name, value) in &m.durable_tags {
        let got = b.get_tag(name).unwrap();
        let mut allowed = vec![Some(value.clone())];
        for v in m.pending_tags.get(name).into_iter().flatten() {
            allowed.push(Some(v.clone()));
        }
        assert!(
            allowed.contains(&got),
            "{label}: tag {name} is {got:?}, expected one of {allowed:?}"
        );
    }
    let k = Key([0xee; 32]);
    b.put(k, b"after the crash").unwrap();
    b.flush().unwrap();
    assert_eq!(
        b.get(k).unwrap().as_deref(),
        Some(&b"after the crash"[..]),
        "{label}"
    );
}

#[test]
fn killed_before_every_operation() {
    killed_at_every_operation("before");
}

#[test]
fn killed_after_every_operation() {
    killed_at_every_operation("after");
}

/// A run killed at `point` of each of the workload's operations in turn (two tests, so that
/// they run side by side).
fn killed_at_every_operation(point: &str) {
    let points: u64 = std::env::var("ORE_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut runs = 0;
    for after in 0..points {
        let t = scratch();
        let dir = t.path().join("a");
        let opts = ClientOptions {
            env: vec![(
                "ORE_FAULT".into(),
                format!("kill,after={after},point={point}"),
            )],
            ..Default::default()
        };
        let c = Client::connect_with(&id(&dir), opts).unwrap();
        // The workload is shorter than the default commit interval, so the index is only
        // committed by its flushes and most kills land between index commits.
        let m = workload(&c, points + 10);
        drop(c);
        check(&dir, &m, &format!("kill {point} operation {after}"));
        runs += 1;
    }
    eprintln!("crash campaign: {runs} kill points {point} an operation, all passed");
}

#[test]
fn killed_from_outside_at_random_moments() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for run in 0..25 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let t = scratch();
        let dir = t.path().join("a");
        // Created first, as `ore init` would: the program creates nothing before a write.
        drop(SplitlogBackend::open(&dir, SplitlogOptions::default()).unwrap());
        let c = Client::connect(&id(&dir)).unwrap();
        let pid = backend_pid(&dir);
        let delay = Duration::from_micros(seed % 60_000);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        });
        let m = workload(&c, 100_000);
        killer.join().unwrap();
        drop(c);
        check(&dir, &m, &format!("random kill {run} after {delay:?}"));
        eprintln!(
            "random kill {run} after {delay:?}: {} blocks put, {} durable",
            m.all_keys.len(),
            m.durable_blocks.len()
        );
    }
}

/// The pid recorded in the archive's lock file by the backend holding it.
fn backend_pid(dir: &Path) -> u32 {
    for _ in 0..500 {
        if let Ok(s) = std::fs::read_to_string(dir.join("lock")) {
            if let Ok(pid) = s.trim().parse() {
                return pid;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("no backend pid in {}", dir.join("lock").display());
}
