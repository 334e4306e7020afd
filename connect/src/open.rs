//! Opening an archive from its identifier: the one rule every program of Ore follows.
//!
//! An archive identifier is either a plain path — a directory, like `./archive`,
//! `/mnt/disk/ore`, `a2` or `/tmp/my backups/ore` — which opens a splitlog archive inside this
//! process (the embedded default: nothing to install, nothing to start), or a command line that
//! starts a backend program speaking the Ore protocol (`backend-fs /mnt/ore`, `ssh nas
//! backend-splitlog /data`). Which it is follows one written rule ([`classify`], the same in
//! docs/USAGE.md): what a user would call a path is a path, with no quoting needed, even with
//! spaces in it. Every failure names the identifier.

use crate::{Client, ClientOptions};
use backend_splitlog::{Opened, SplitlogBackend, SplitlogOptions};
use protocol::{AttachPoint, Backend, Error, Ticket};
use std::path::Path;
use std::sync::Arc;

pub use protocol::duration::{busy_limit, TIMEOUT_ENV};

/// Options for a client started from an identifier: the timeout from [`TIMEOUT_ENV`].
pub fn client_options(id: &str) -> protocol::Result<ClientOptions> {
    Ok(ClientOptions {
        timeout: protocol::duration::env_timeout(id)?,
        ..ClientOptions::default()
    })
}

/// How an identifier will be opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// A directory holding a splitlog archive, opened in process.
    Path(&'a Path),
    /// An archive in an object store (`s3://...` and backend-s3's options), opened in
    /// process (see [`crate::s3`]).
    S3(&'a str),
    /// A command line starting a backend program.
    Command(&'a str),
}

/// Decides whether `id` is a plain path, an object store or a command line. The rule, in
/// this order:
///
/// 0. `id` starts with `s3://`: an archive in an object store, opened in process with
///    backend-s3's options after the URL (see [`crate::s3`]).
/// 1. `id` names an existing directory: a plain path (`a2`, `./a2`, `/tmp/my backups/ore`).
/// 2. `id` names an executable file, or has no `/`: a command (`/bin/sh`, `backend-memory`,
///    and `a2` when there is no directory `a2` here: a program looked for on `PATH`).
/// 3. `id` is one word (no space, quote or backslash), or the directory it would be in
///    exists and its first word is not an executable file: a plain path, for an archive
///    `ore init` creates (`./new/ore`, `/tmp/my backups/new` when `/tmp/my backups` exists,
///    but not `/usr/bin/backend-fs --read-only`).
/// 4. Anything else is a command line, split into words like a shell would
///    (`backend-fs /x`, `ssh nas backend-splitlog /data`,
///    `backend-splitlog '/tmp/my backups/ore'`).
///
/// A path is never split: no quoting is needed (or taken) inside a plain path.
pub fn classify(id: &str) -> Kind<'_> {
    if crate::s3::is_s3(id) {
        return Kind::S3(id);
    }
    let path = Path::new(id);
    if id.is_empty() {
        return Kind::Command(id);
    }
    if path.is_dir() {
        return Kind::Path(path);
    }
    if !id.contains('/') || is_executable_file(path) {
        return Kind::Command(id);
    }
    let one_word = !id
        .chars()
        .any(|c| c.is_whitespace() || c == '\'' || c == '"' || c == '\\');
    let parent_exists = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .is_some_and(Path::is_dir);
    let starts_with_program = id
        .split_whitespace()
        .next()
        .is_some_and(|w| is_executable_file(Path::new(w)));
    if one_word || (parent_exists && !starts_with_program) {
        Kind::Path(path)
    } else {
        Kind::Command(id)
    }
}

fn is_executable_file(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// How many connections to open to an archive started by a command: [`LANES_ENV`] if set,
/// else 4 when a round trip to it takes 10 ms or more, else 1. Over a long link one connection is
/// capped by more than round trips: an ssh session moves at most one flow-control window (2 MiB
/// in OpenSSH) per round trip, and each further session brings its own. Near by, extra
/// connections would only cost processes and CPU.
pub const LANES_ENV: &str = "ORE_LANES";

/// Round trips at least this long make lanes worth opening.
const LANES_RTT: std::time::Duration = std::time::Duration::from_millis(10);

/// The number of lanes [`LANES_ENV`] asks for, if it is set.
fn lanes_asked(id: &str) -> protocol::Result<Option<usize>> {
    let Ok(v) = std::env::var(LANES_ENV) else {
        return Ok(None);
    };
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=64).contains(&n) => Ok(Some(n)),
        _ => Err(Error::Connection {
            archive: id.to_string(),
            message: format!("{LANES_ENV}={v:?} is not a number of connections from 1 to 64"),
        }),
    }
}

/// How many lanes a round trip of `rtt` calls for.
fn lanes_for_rtt(rtt: std::time::Duration) -> usize {
    if rtt >= LANES_RTT {
        4
    } else {
        1
    }
}

/// Opens the archive named by `id`: in process for a plain path, else by starting its command
/// — once more than that, in the background, when it is far away (see [`LANES_ENV`]), all
/// used together as [`crate::Lanes`].
pub fn open(id: &str) -> protocol::Result<Arc<dyn Backend>> {
    match classify(id) {
        Kind::Path(dir) => open_local(id, dir),
        Kind::S3(id) => crate::s3::open(id),
        Kind::Command(cmd) => open_command(id, cmd, None),
    }
}

/// Opens the archive named by `id` over one connection (an interactive admin session).
pub fn open_single(id: &str) -> protocol::Result<Arc<dyn Backend>> {
    match classify(id) {
        Kind::Path(dir) => open_local(id, dir),
        Kind::S3(id) => crate::s3::open(id),
        Kind::Command(cmd) => open_command(id, cmd, Some(1)),
    }
}

/// Starts `cmd` once, then (when the round trip calls for it, or `lanes` asks) more times in the
/// background: the further connections join as lanes when all have been opened (see
/// [`crate::Lanes::joining`]), so a short run is never kept waiting for them. One that fails
/// only means fewer lanes — a backend whose archive admits one process and no attachments
/// refuses them — and is said at debug level.
fn open_command(id: &str, cmd: &str, lanes: Option<usize>) -> protocol::Result<Arc<dyn Backend>> {
    let opts = client_options(id)?;
    let lanes = match lanes {
        Some(n) => Some(n),
        None => lanes_asked(id)?,
    };
    // Lanes over ssh share the first connection (see `sshmux`).
    let shared = match lanes {
        Some(1) => None,
        _ => crate::sshmux::multiplexed(cmd),
    };
    if let Some(c) = &shared {
        protocol::log::debug(&format!("{id}: started as {c}"));
    }
    let cmd = shared.as_deref().unwrap_or(cmd);
    // The master reports each forwarded channel the server refuses; that is handled.
    let expected: fn(&str) -> bool = crate::sshmux::refused_channel;
    let first = Client::connect_with(
        cmd,
        ClientOptions {
            expected_stderr: shared.is_some().then_some(expected),
            ..opts.clone()
        },
    )
    .map_err(|e| one_word_hint(id, e))?;
    if lanes == Some(1) {
        return Ok(Arc::new(first));
    }
    // Unless told, the round trip decides — measured now, but waited for in the background, so
    // the run's own first requests follow the probe at once instead of a round trip later.
    let probe = match lanes {
        Some(_) => None,
        None => Some(first.start_round_trip()),
    };
    // Over ssh the lanes can be channels to the first connection's process (see `sshmux`):
    // where it may be reached is asked now too, and answered with the probe.
    let point = shared.is_some().then(|| first.start_attach_point());
    let (tx, rx) = std::sync::mpsc::channel();
    // A run that ends before the lanes are up kills them rather than waiting for them.
    let abandon = crate::Abandon::default();
    let both = Arc::new(crate::Lanes::joining(first, rx).with_abandon(abandon.clone()));
    let more = MoreLanes {
        id: id.to_string(),
        cmd: cmd.to_string(),
        opts: ClientOptions {
            abandon: Some(abandon.clone()),
            ..opts
        },
        abandon,
        asked: lanes,
        probe,
        point,
        lanes: Arc::downgrade(&both),
        joining: tx,
    };
    std::thread::Builder::new()
        .name("ore lanes".into())
        .spawn(move || more.open())
        .map_err(|e| Error::io("starting the lanes thread", e))?;
    Ok(both)
}

/// `e`, for an identifier of one word without a `/` that failed to start or to answer, with
/// what the rule took it for: `-a ar` meant as a new archive in `./ar` runs a program `ar`.
fn one_word_hint(id: &str, e: Error) -> Error {
    match e {
        Error::Connection { archive, message }
            if !id.contains('/') && !id.chars().any(char::is_whitespace) =>
        {
            Error::Connection {
                archive,
                message: format!(
                    "{message} (`{id}` names no directory here, so it was taken for a program; \
                     for an archive in a new directory of that name, write ./{id})"
                ),
            }
        }
        other => other,
    }
}

/// The lanes still to be opened in the background, once the first connection is up.
struct MoreLanes {
    id: String,
    /// The command line that started the first connection.
    cmd: String,
    /// Options for each lane's connection, under the `abandon` switch.
    opts: ClientOptions,
    abandon: crate::Abandon,
    /// How many lanes were asked for (`None`: as many as the round trip calls for).
    asked: Option<usize>,
    /// The first connection's round trip, when it decides.
    probe: Option<Ticket<std::time::Duration>>,
    /// Where the first connection's process may be attached to (over ssh).
    point: Option<Ticket<AttachPoint>>,
    /// The lanes the run uses, while it does.
    lanes: std::sync::Weak<crate::Lanes<Client>>,
    /// Where the further connections go once they are all open.
    joining: std::sync::mpsc::Sender<Vec<Client>>,
}

impl MoreLanes {
    /// Opens the further lanes and hands them to the run, unless it has ended by then or the
    /// round trip calls for none.
    fn open(self) {
        let lanes = match (self.asked, self.probe) {
            (Some(n), _) => n,
            (None, Some(rtt)) => lanes_for_rtt(confirmed_round_trip(rtt, &self.lanes)),
            (None, None) => 1,
        };
        // A run that has ended by now needs no more connections.
        if lanes <= 1 || self.lanes.strong_count() == 0 {
            return;
        }
        let tunnel = self.point.and_then(|p| p.wait().ok()).and_then(|p| {
            // The forwarded socket is made under the switch, so that a run ending meanwhile
            // removes it (a process that exits does not wait for this thread).
            let local = self.abandon.make(
                || crate::sshmux::forward(&self.cmd, &p.socket),
                |local| {
                    let _ = std::fs::remove_file(local);
                },
            )?;
            Some((local, p.ticket))
        });
        let rest = connect_lanes(&self.id, &self.cmd, &self.opts, tunnel.as_ref(), lanes - 1);
        // Connected: the forwarded socket's name is no longer needed.
        if let Some((local, _)) = &tunnel {
            let _ = std::fs::remove_file(local);
        }
        let forwarded = rest.iter().filter(|(_, f)| *f).count();
        let rest: Vec<Client> = rest.into_iter().map(|(c, _)| c).collect();
        protocol::log::debug(&format!(
            "{}: {} connection(s) of {lanes} asked for, {forwarded} through a forwarded \
             attach point",
            self.id,
            rest.len() + 1
        ));
        self.abandon.release();
        let _ = self.joining.send(rest);
    }
}

/// Opens `n` connections at once, each a channel to the forwarded attach point `tunnel` (a
/// local socket and a ticket) if there is one and it answers, else a session of its own;
/// each comes with whether it came through the tunnel. One that fails is left out.
fn connect_lanes(
    id: &str,
    cmd: &str,
    opts: &ClientOptions,
    tunnel: Option<&(std::path::PathBuf, Vec<u8>)>,
    n: usize,
) -> Vec<(Client, bool)> {
    let connect = || {
        if let Some((local, ticket)) = tunnel {
            match Client::connect_socket(id, local, ticket, opts.clone()) {
                Ok(c) => return Ok((c, true)),
                Err(e) => protocol::log::debug(&format!(
                    "a lane through the forwarded attach point failed: {e}"
                )),
            }
        }
        Client::connect_with(cmd, opts.clone()).map(|c| (c, false))
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(connect)).collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(c)) => Some(c),
                Ok(Err(e)) => {
                    protocol::log::debug(&format!("an extra connection was refused: {e}"));
                    None
                }
                Err(_) => None,
            })
            .collect()
    })
}

/// The round trip `first` measured, confirmed when it is long enough for lanes but not by
/// far: the shortest of up to three probes, one after the other, so that a moment of a busy
/// machine (the answer read late) is not taken for a long link. A round trip of three times
/// the threshold or more is taken at once (a real long link, whose lanes should not wait).
/// Stops early when the connection is gone or answers quickly.
fn confirmed_round_trip(
    first: Ticket<std::time::Duration>,
    lanes: &std::sync::Weak<crate::Lanes<Client>>,
) -> std::time::Duration {
    let Ok(mut best) = first.wait() else {
        return std::time::Duration::ZERO;
    };
    for _ in 0..2 {
        if best < LANES_RTT || best >= 3 * LANES_RTT {
            break;
        }
        // Hold the connection only to send the probe, never while waiting for it.
        let Some(probe) = lanes.upgrade().map(|l| l.first().start_round_trip()) else {
            break;
        };
        match probe.wait() {
            Ok(t) => best = best.min(t),
            Err(_) => break,
        }
    }
    best
}

/// Opens a splitlog archive in process — or, where there is none yet, a store that creates it
/// at the first write (only `ore init` writes there: see [`protocol::vacant`]), so that a
/// mistaken identifier leaves nothing behind. One process at a time may hold an archive, so while another
/// holds it (a snapshot, a gc) this waits — up to the [`TIMEOUT_ENV`] limit, saying so once —
/// rather than failing: runs of `ore` against one archive line up instead of colliding.
fn open_local(id: &str, dir: &Path) -> protocol::Result<Arc<dyn Backend>> {
    let limit = busy_limit(id)?;
    let started = std::time::Instant::now();
    let mut said = false;
    let mut pause = std::time::Duration::from_millis(20);
    loop {
        let opts = SplitlogOptions {
            private: true,
            ..Default::default()
        };
        match SplitlogBackend::open_or_vacant(dir, opts) {
            Ok(Opened::Archive(b)) => return Ok(Arc::new(b)),
            Ok(Opened::Vacant(v)) => return Ok(Arc::new(v)),
            Err(e)
                if e.code() == protocol::ErrorCode::Locked
                    && started.elapsed() < OWN_LOCK_GRACE
                    && held_by_this_process(dir) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e)
                if e.code() == protocol::ErrorCode::Locked
                    && limit.is_none_or(|l| started.elapsed() < l) =>
            {
                if !said {
                    protocol::log::info(&format!("{e}: waiting"));
                    said = true;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(500));
            }
            Err(e) => {
                return Err(Error::Connection {
                    archive: id.to_string(),
                    message: e.to_string(),
                })
            }
        }
    }
}

/// How long an archive whose lock names this very process is waited for, whatever the limit.
/// A handle this process has just dropped can leave its lock held a moment longer: a program
/// another thread is starting shares the lock from its fork until it runs its own code. (Seen
/// as members of a replicated archive reopened at once reporting themselves "in use by another
/// process" with the test's own pid, under load.)
const OWN_LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the lock file of the archive in `dir` names this process as its holder.
fn held_by_this_process(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(backend_splitlog::logs::LOCK_FILE))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        == Some(std::process::id())
}

/// Opens the archive named by `id`, which must already exist: a plain path that is not a
/// directory is an error rather than a new, empty archive.
pub fn open_existing(id: &str) -> protocol::Result<Arc<dyn Backend>> {
    must_exist(id)?;
    open(id)
}

/// [`open_existing`] over one connection: for a command that reads or writes a few small
/// blocks, which extra lanes would not speed up and would only keep waiting while they open.
pub fn open_existing_single(id: &str) -> protocol::Result<Arc<dyn Backend>> {
    must_exist(id)?;
    open_single(id)
}

fn must_exist(id: &str) -> protocol::Result<()> {
    if let Kind::Path(dir) = classify(id) {
        if !dir.is_dir() {
            return Err(Error::Connection {
                archive: id.to_string(),
                message: "no such directory: create the archive with `ore init`".into(),
            });
        }
    }
    Ok(())
}

/// The directory of an archive opened in process, if `id` names one.
pub fn local_dir(id: &str) -> Option<&Path> {
    match classify(id) {
        Kind::Path(p) => Some(p),
        Kind::S3(_) | Kind::Command(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_commands() {
        assert_eq!(classify("./archive"), Kind::Path(Path::new("./archive")));
        assert_eq!(
            classify("/mnt/disk/ore"),
            Kind::Path(Path::new("/mnt/disk/ore"))
        );
        assert_eq!(classify("backend-fs /x"), Kind::Command("backend-fs /x"));
        assert_eq!(classify("backend-memory"), Kind::Command("backend-memory"));
        assert_eq!(classify("/bin/sh"), Kind::Command("/bin/sh"));
        assert_eq!(classify("'/a b'"), Kind::Command("'/a b'"));
        assert_eq!(classify("/bin/sh -c x"), Kind::Command("/bin/sh -c x"));
        assert_eq!(classify("/bin/sh x"), Kind::Command("/bin/sh x"));
    }

    #[test]
    fn directories_with_spaces_or_without_a_slash_are_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let spaced = tmp.path().join("my backups");
        std::fs::create_dir(&spaced).unwrap();
        let s = spaced.to_str().unwrap();
        assert_eq!(classify(s), Kind::Path(Path::new(s)));
        let new = format!("{s}/ore");
        assert_eq!(classify(&new), Kind::Path(Path::new(&new)));
        let quoted = format!("backend-splitlog '{s}/ore'");
        assert_eq!(classify(&quoted), Kind::Command(&quoted));
        let deep = format!("{s}/no such/ore");
        assert_eq!(classify(&deep), Kind::Command(&deep));
        assert_eq!(classify("."), Kind::Path(Path::new(".")));
        assert_eq!(
            classify("no-such-dir-here"),
            Kind::Command("no-such-dir-here")
        );
    }
}
