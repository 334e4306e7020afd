//! The requests this process made to the store, by kind.
//!
//! Requests are what an object store bills and what its latency multiplies, so the benchmark
//! of issue 24 compares them between Ore and restic. Each request the crate issues is counted
//! once here (OpenDAL's retries and a listing's further pages are not seen); the admin command
//! `requests` answers them, and with `ORE_S3_REQUESTS=FILE` a backend process appends one JSON
//! line of its totals to FILE when it ends, which is how a script learns what a whole `ore`
//! run cost.

use std::sync::atomic::{AtomicU64, Ordering};

/// Kinds of requests, as the S3 API names them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Put,
    Get,
    Head,
    List,
    Delete,
}

/// Counters, shared by every clone of a store.
#[derive(Debug, Default)]
pub(crate) struct Requests([AtomicU64; 5]);

impl Requests {
    pub fn count(&self, kind: Kind) {
        self.0[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// `{"PUT": n, "GET": n, "HEAD": n, "LIST": n, "DELETE": n}`.
    pub fn json(&self) -> serde_json::Value {
        let n = |k: Kind| self.0[k as usize].load(Ordering::Relaxed);
        serde_json::json!({
            "PUT": n(Kind::Put),
            "GET": n(Kind::Get),
            "HEAD": n(Kind::Head),
            "LIST": n(Kind::List),
            "DELETE": n(Kind::Delete),
        })
    }
}
