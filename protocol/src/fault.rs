//! Fault injection for tests: make a backend die or fail at a chosen operation.
//!
//! Crash safety can only be tested by crashing, at every point. `serve` reads `ORE_FAULT` once
//! at start; a test sets it on the backend's environment and drives a workload, and the backend
//! kills itself (SIGKILL, exactly as `kill -9` would: no destructors, no buffered output) or
//! starts answering with errors after a chosen number of operations. The syntax is documented in
//! PROTOCOL.md ("Fault injection"):
//!
//! ```text
//! ORE_FAULT=MODE,after=N[,op=OP][,point=before|after][,server=PREFIX]
//! ```

use crate::error::{Error, ErrorCode, Result};

/// Name of the environment variable read by `serve`.
pub const FAULT_ENV: &str = "ORE_FAULT";

/// What to do when the fault fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// SIGKILL the process.
    Kill,
    /// Answer the operation (and every later matching one) with an `Injected` error.
    Error,
}

/// When a kill fires relative to the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// Before the operation runs: it never happens.
    Before,
    /// After the operation ran, before its answer is sent: it happened but was never
    /// acknowledged.
    After,
}

/// A parsed `ORE_FAULT` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub mode: FaultMode,
    pub after: u64,
    pub op: Option<String>,
    pub point: FaultPoint,
    pub server: Option<String>,
    seen: u64,
}

/// What `serve` must do for one operation.
#[derive(Debug, PartialEq, Eq)]
pub enum FaultAction {
    Proceed,
    KillBefore,
    KillAfter,
    Fail,
}

impl Fault {
    /// Reads `ORE_FAULT`; `Ok(None)` when it is unset or empty.
    pub fn from_env() -> Result<Option<Fault>> {
        match std::env::var(FAULT_ENV) {
            Ok(s) if !s.trim().is_empty() => Fault::parse(&s).map(Some),
            _ => Ok(None),
        }
    }

    /// Parses the `ORE_FAULT` syntax.
    pub fn parse(s: &str) -> Result<Fault> {
        let bad = |why: String| {
            Error::backend(
                ErrorCode::InvalidArgument,
                format!("{FAULT_ENV}={s:?}: {why} (expected MODE,after=N[,op=OP][,point=before|after][,server=PREFIX] with MODE kill or error)"),
            )
        };
        let mut parts = s.split(',').map(str::trim);
        let mode = match parts.next() {
            Some("kill") => FaultMode::Kill,
            Some("error") => FaultMode::Error,
            other => return Err(bad(format!("unknown mode {other:?}"))),
        };
        let mut fault = Fault {
            mode,
            after: 0,
            op: None,
            point: FaultPoint::Before,
            server: None,
            seen: 0,
        };
        let mut have_after = false;
        for part in parts {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("`{part}` is not KEY=VALUE")))?;
            match k {
                "after" => {
                    fault.after = v
                        .parse()
                        .map_err(|_| bad(format!("after={v:?} is not a number")))?;
                    have_after = true;
                }
                "op" => {
                    const OPS: [&str; 14] = [
                        "hello",
                        "put",
                        "get",
                        "exists",
                        "remove",
                        "list",
                        "get-tag",
                        "set-tag",
                        "remove-tag",
                        "list-tags",
                        "flush",
                        "stats",
                        "admin",
                        "attach-point",
                    ];
                    if !OPS.contains(&v) {
                        return Err(bad(format!(
                            "op={v:?} is not an operation (one of {})",
                            OPS.join(", ")
                        )));
                    }
                    fault.op = Some(v.to_string())
                }
                "point" => {
                    fault.point = match v {
                        "before" => FaultPoint::Before,
                        "after" => FaultPoint::After,
                        _ => return Err(bad(format!("point={v:?} is not before or after"))),
                    }
                }
                "server" => fault.server = Some(v.to_string()),
                _ => return Err(bad(format!("unknown setting `{k}`"))),
            }
        }
        if !have_after {
            return Err(bad("after=N is missing".into()));
        }
        Ok(fault)
    }

    /// Whether this fault applies to a server that calls itself `server`.
    pub fn applies_to(&self, server: &str) -> bool {
        self.server.as_deref().is_none_or(|p| server.starts_with(p))
    }

    /// Counts one operation and says what to do with it.
    pub fn on_operation(&mut self, op: &str) -> FaultAction {
        if self.op.as_deref().is_some_and(|o| o != op) {
            return FaultAction::Proceed;
        }
        self.seen += 1;
        if self.seen <= self.after {
            return FaultAction::Proceed;
        }
        match (self.mode, self.point) {
            (FaultMode::Error, _) => FaultAction::Fail,
            (FaultMode::Kill, FaultPoint::Before) => FaultAction::KillBefore,
            (FaultMode::Kill, FaultPoint::After) => FaultAction::KillAfter,
        }
    }
}

/// Kills the current process with SIGKILL, as `kill -9` would.
pub fn kill_self() -> ! {
    // SAFETY: kill and getpid have no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL cannot be caught; if it somehow returns, abort without unwinding.
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_counts() {
        let mut f = Fault::parse("error,after=2,op=put").unwrap();
        assert_eq!(f.on_operation("get"), FaultAction::Proceed);
        assert_eq!(f.on_operation("put"), FaultAction::Proceed);
        assert_eq!(f.on_operation("put"), FaultAction::Proceed);
        assert_eq!(f.on_operation("put"), FaultAction::Fail);
        assert_eq!(f.on_operation("put"), FaultAction::Fail);
        let mut f = Fault::parse("kill,after=0,point=after").unwrap();
        assert_eq!(f.on_operation("flush"), FaultAction::KillAfter);
        let f = Fault::parse("kill,after=1,server=backend-fs").unwrap();
        assert!(f.applies_to("backend-fs 0.1.0"));
        assert!(!f.applies_to("backend-splitlog 0.1.0"));
    }

    #[test]
    fn bad_settings_are_named() {
        for s in [
            "boom,after=1",
            "kill",
            "kill,after=x",
            "kill,after=1,when=now",
            "kill,after=1,op=set_tag",
        ] {
            let e = Fault::parse(s).unwrap_err().to_string();
            assert!(e.contains("ORE_FAULT"), "{e}");
        }
    }
}
