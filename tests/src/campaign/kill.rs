//! Kill points: a run of `ore` started in a process group of its own, and one process of that
//! group — `ore` itself, or a backend it started (for a proxy, any process of the chain) —
//! killed with SIGKILL after a delay. Then the run is waited for, and the group must empty on
//! its own: a process left behind is a finding, reported and then killed.

use crate::ore::Run;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a run may go on after its kill before it counts as hung.
const HANG: Duration = Duration::from_secs(120);
/// How long the processes of a killed run have to exit after its `ore` ended.
const LINGER: Duration = Duration::from_secs(10);

/// Which process of the run was killed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Victim {
    /// `ore` itself.
    Ore,
    /// A backend process (its program name).
    Backend(String),
    /// Nobody: the run ended before the delay ran out.
    FinishedFirst,
}

/// What happened to a run with a kill point.
#[derive(Debug)]
pub struct Killed {
    pub victim: Victim,
    pub run: Run,
    /// Findings about the processes: a hang, a process left behind.
    pub problems: Vec<String>,
}

/// The processes of process group `pgid` that are alive (not zombies): (pid, parent, name).
pub fn group(pgid: i32) -> Vec<(i32, i32, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ')'.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let name = stat[stat.find('(').map_or(0, |i| i + 1)..close].to_string();
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let (Some(state), Some(ppid), Some(pgrp)) = (rest.first(), rest.get(1), rest.get(2)) else {
            continue;
        };
        if *state != "Z" && pgrp.parse::<i32>().ok() == Some(pgid) {
            out.push((pid, ppid.parse().unwrap_or(0), name));
        }
    }
    out
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    })
}

/// Runs `cmd` in a new process group and SIGKILLs one of its processes after `delay`:
/// a backend process when `backend` is set and the run has one (picked with `pick`), else
/// `ore`. Waits for the run, then for its group to empty.
pub fn run_with_kill(
    mut cmd: Command,
    delay: Duration,
    backend: bool,
    pick: &mut fastrand::Rng,
) -> Killed {
    let mut problems = Vec::new();
    let mut child = match cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Killed {
                victim: Victim::FinishedFirst,
                run: Run {
                    code: -1,
                    stdout: String::new(),
                    stderr: format!("ore does not start: {e}"),
                },
                problems: vec![format!("ore does not start: {e}")],
            }
        }
    };
    let pid = child.id() as i32;
    let out = child.stdout.take().map(reader);
    let err = child.stderr.take().map(reader);
    let started = Instant::now();
    let mut status = None;
    // The kill point is a moment, not an event: polling the child while the delay runs out is
    // what lets a run that ends first be told apart from one that was killed.
    while started.elapsed() < delay {
        if let Ok(Some(s)) = child.try_wait() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let victim = if status.is_some() {
        Victim::FinishedFirst
    } else {
        let others: Vec<_> = group(pid).into_iter().filter(|p| p.0 != pid).collect();
        let (target, victim) = if backend && !others.is_empty() {
            let (p, _, name) = &others[pick.usize(..others.len())];
            (*p, Victim::Backend(name.clone()))
        } else {
            (pid, Victim::Ore)
        };
        // SAFETY: kill(2) on a process of the group this function started.
        unsafe { libc::kill(target, libc::SIGKILL) };
        victim
    };
    let status = match status {
        Some(s) => Some(s),
        None => loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if started.elapsed() < delay + HANG => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    problems.push(format!(
                        "hang: ore (pid {pid}) still ran {} s after the kill point; \
                         its processes: {:?}",
                        HANG.as_secs(),
                        group(pid)
                    ));
                    // SAFETY: killpg(2) on the group this function started.
                    unsafe { libc::killpg(pid, libc::SIGKILL) };
                    break child.wait().ok();
                }
            }
        },
    };
    let ended = Instant::now();
    loop {
        let left = group(pid);
        if left.is_empty() {
            break;
        }
        if ended.elapsed() > LINGER {
            problems.push(format!(
                "left behind: {left:?} still ran {} s after ore ended",
                LINGER.as_secs()
            ));
            // SAFETY: as above.
            unsafe { libc::killpg(pid, libc::SIGKILL) };
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let code = status.and_then(|s| s.code()).unwrap_or(-1);
    Killed {
        victim,
        run: Run {
            code,
            stdout: out.and_then(|h| h.join().ok()).unwrap_or_default(),
            stderr: err.and_then(|h| h.join().ok()).unwrap_or_default(),
        },
        problems,
    }
}

/// Runs `cmd` in a new process group to its end, killing it after `limit` (then its code is
/// -1); a hang or a process left behind is appended to its stderr.
pub fn run_to_end(cmd: Command, limit: Duration) -> Run {
    let mut unused = fastrand::Rng::with_seed(0);
    let k = run_with_kill(cmd, limit, false, &mut unused);
    let mut run = k.run;
    if k.victim != Victim::FinishedFirst {
        run.code = -1;
        run.stderr.push_str(&format!(
            "\nhang: still running after {} s, killed",
            limit.as_secs()
        ));
    }
    for p in k.problems {
        run.stderr.push_str(&format!("\n{p}"));
    }
    run
}
