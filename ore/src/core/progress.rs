//! Progress counters shared by the threads of a snapshot or restore. The `ore` binary shows
//! them: a bar on a terminal, JSON lines with `--json`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Counters updated as work is done.
#[derive(Debug)]
pub struct Progress {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    /// Expected total bytes, when known (0 = unknown).
    pub total_bytes: AtomicU64,
    pub done: AtomicBool,
    started: Instant,
    /// What `files` counts, in the status line ("files", "blocks").
    unit: &'static str,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            total_bytes: AtomicU64::new(0),
            done: AtomicBool::new(false),
            started: Instant::now(),
            unit: "files",
        }
    }
}

impl Progress {
    /// Counters whose first number counts `unit` ("blocks") rather than files.
    pub fn counting(unit: &'static str) -> Progress {
        Progress {
            unit,
            ..Progress::default()
        }
    }

    pub fn add_file(&self) {
        self.files.fetch_add(1, Relaxed);
    }

    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Relaxed);
    }

    /// The counters now, for a progress bar or a JSON line.
    pub fn now(&self) -> Counters {
        Counters {
            unit: self.unit,
            done: self.files.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            total_bytes: Some(self.total_bytes.load(Relaxed)).filter(|&t| t > 0),
            seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}

/// The counters of a [`Progress`] at one moment.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Counters {
    /// What `done` counts: "files", "blocks".
    pub unit: &'static str,
    pub done: u64,
    pub bytes: u64,
    /// The bytes expected in all, when known.
    pub total_bytes: Option<u64>,
    /// Since the work began.
    pub seconds: f64,
}
