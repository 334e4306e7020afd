//! Progress counters shared by the threads of a snapshot or restore, and the line a terminal
//! shows from them (the `ore` binary draws it).

use crate::core::util::human_bytes;
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

    /// One status line: files, bytes, rate, and an ETA when the total is known.
    pub fn line(&self) -> String {
        let files = self.files.load(Relaxed);
        let bytes = self.bytes.load(Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = bytes as f64 / secs;
        let total = self.total_bytes.load(Relaxed);
        let mut s = format!(
            "{files} {}, {} ({}/s)",
            self.unit,
            human_bytes(bytes),
            human_bytes(rate as u64)
        );
        if total > 0 {
            let pct = (bytes as f64 / total as f64 * 100.0).min(100.0);
            s.push_str(&format!(" {pct:.0}% of {}", human_bytes(total)));
            if rate > 0.0 && total > bytes {
                let eta = ((total - bytes) as f64 / rate) as u64;
                s.push_str(&format!(", ETA {}:{:02}", eta / 60, eta % 60));
            }
        }
        s
    }
}
