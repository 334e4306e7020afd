//! One ssh connection for all the lanes to a distant archive.
//!
//! Over a long link ore opens several connections to an archive (lanes, see
//! [`crate::open::open`]). When the identifier is an `ssh` command line, each would be a
//! TCP connection of its own with its own key exchange and login: several round trips and a
//! burst of public-key work on both ends, just as the run gets going — on a small machine the
//! extra connections took over a second to come up. OpenSSH can carry several sessions over
//! one connection (`ControlMaster`): the first connection becomes the master, and the lanes
//! are new sessions on it, each with its own flow-control window (which is what lanes are
//! for), opened in one round trip.
//!
//! So an identifier whose program is `ssh` gets, for this process only:
//! `-o ControlMaster=auto -o ControlPath=DIR/PID-%C -o ControlPersist=no`, where DIR is a
//! directory only this user can enter (`$XDG_RUNTIME_DIR/ore`, else `$TMPDIR/ore-UID`). The
//! socket is private to the process (its pid is in the name), so runs never share a master,
//! and the master ends with the first connection. A command line that already says how to
//! multiplex (`-S`, `-M`, or a `ControlMaster`/`ControlPath` option) is left as written, and so
//! is anything when no private directory can be had: the lanes then simply log in again.
//!
//! Better still, a lane need not be a session at all. The backend program serving the first
//! connection names its attach point (a unix socket next to the archive, and a ticket); the
//! master is asked to forward a private local socket to it ([`forward`]), and each lane is a
//! connection to that socket, which the master carries as one more channel — with its own
//! window, but no remote shell, no backend process and no relay copying its bytes. Where the
//! server refuses forwarding (a key with `restrict`, or a forced command, for which the
//! backend names no attach point), lanes are sessions as above. The local socket's name is
//! removed as soon as the lanes have connected through it, or by the run's end if that comes
//! first (it is made under the lanes' [`crate::Abandon`] switch), so none is left behind.
//!
//! # Why this is not the `openssh` crate
//!
//! The design card names the `openssh` crate for ssh, and it offers what this module writes by
//! hand: a master connection, sessions over it (its native mux), and `request_port_forward`.
//! It was measured against this module (December 2026, `openssh` 0.11.6 with `native-mux`, on
//! the real sshd of `tests/src/sshd.rs` on 127.0.0.1, a 2-core machine under a load of 8–11),
//! and this module was kept, for these reasons:
//!
//! - **No faster.** Starting one remote command, median of 15 interleaved runs: 0.47 s as
//!   `ore` does it here (the first connection is the master), 0.53 s through the crate (a
//!   background master, a session over it, then close), 0.50 s for plain `ssh`; a whole
//!   remote `ore tags` took 0.80 s here against 0.72 s in the crate's process mode (emulated
//!   with the same `ssh -M -f -N`, `-S` and `-O exit` commands it runs), against 0.06 s for the
//!   archive opened in process. The spread (0.4–1.8 s) is larger than any difference: login
//!   and the remote shell dominate, and the crate makes the same round trips (it too starts
//!   the `ssh` program for its master).
//! - **Heavier.** A minimal program that opens a session through the crate is 661 KB
//!   stripped against 389 KB for the same program starting `ssh` itself (4.2 MB against
//!   2.6 MB with line tables, release, thin LTO): +272 KB of tokio and the mux client, and an
//!   async runtime in a frontend whose client is plain threads and pipes.
//! - **Narrower.** An archive identifier is a whole ssh command line, so a user can give any
//!   option ssh takes (`-o`, `-c`, `-J`, `-A`, a `ProxyCommand`). The crate's builder takes
//!   user, port, key file, config file, jump hosts, compression, known-hosts policy and two
//!   timeouts, nothing else; and it starts its master with `BatchMode=yes` and stderr sent to a
//!   log, so a key with a passphrase and no agent cannot be used, where today ssh asks for it.
//! - **A master that outlives the run.** The crate's master is a daemon (`-f`, and
//!   `ControlPersist` forever by default) that only its `Session` ends; here the master is the
//!   first connection itself, with `ControlPersist=no`, so it ends with the run even when `ore`
//!   is killed, and the holder's hand-over (`protocol::share`) keeps working unchanged.
//!
//! What stays hand-written is therefore small: adding three options to the command line
//! ([`multiplexed`]), one `ssh -O forward` for the lanes' socket ([`forward`]), and
//! recognising the master's "open failed" line for a refused forwarding
//! ([`refused_channel`]): the first and the last are tested below, all three by
//! `tests/tests/ssh.rs`.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Longest socket path OpenSSH can use (a unix socket's limit, less the suffix ssh adds while
/// it sets the socket up).
const MAX_SOCKET_PATH: usize = 80;

/// `cmd` with ssh's connection sharing turned on, when its program is `ssh` and it does not
/// set sharing up itself; `None` to run `cmd` as it is.
pub fn multiplexed(cmd: &str) -> Option<String> {
    let dir = private_dir()?;
    with_control_path(cmd, &dir, std::process::id())
}

/// `cmd` with the options for a master socket in `dir` named for process `pid`.
fn with_control_path(cmd: &str, dir: &Path, pid: u32) -> Option<String> {
    let words = shell_words::split(cmd).ok()?;
    let program = words.first()?;
    if Path::new(program).file_name()? != "ssh" || sets_up_sharing(&words[1..]) {
        return None;
    }
    // %C expands to 40 hex digits; a `%` of the directory's own is escaped.
    let path = format!("{}/{pid}-%C", dir.to_str()?.replace('%', "%%"));
    if path.len() + 38 > MAX_SOCKET_PATH {
        return None;
    }
    let mut out = vec![program.clone()];
    for opt in [
        "ControlMaster=auto".to_string(),
        format!("ControlPath={path}"),
        "ControlPersist=no".to_string(),
    ] {
        out.push("-o".into());
        out.push(opt);
    }
    out.extend(words[1..].iter().cloned());
    Some(shell_words::join(out))
}

/// ssh's command-line flags (each with its value, for those that take one) and the index in
/// the arguments of the destination, after which comes the remote command.
fn parse_ssh(args: &[String]) -> (Vec<(char, String)>, Option<usize>) {
    let mut flags = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            return (flags, (i + 1 < args.len()).then_some(i + 1));
        }
        if !a.starts_with('-') || a.len() < 2 {
            return (flags, Some(i));
        }
        let cluster = &a[1..];
        for (j, c) in cluster.char_indices() {
            // Flags that take a value; the value is either the rest of this word or the next.
            if "BbcDEeFIiJLlmOopQRSWw".contains(c) {
                let value = if j + 1 < cluster.len() {
                    cluster[j + 1..].to_string()
                } else {
                    i += 1;
                    args.get(i).cloned().unwrap_or_default()
                };
                flags.push((c, value));
                break;
            }
            flags.push((c, String::new()));
        }
        i += 1;
    }
    (flags, None)
}

/// Whether ssh arguments already choose how connections are shared.
fn sets_up_sharing(args: &[String]) -> bool {
    parse_ssh(args).0.iter().any(|(c, value)| {
        let key = value.split(['=', ' ']).next().unwrap_or("");
        *c == 'S'
            || *c == 'M'
            || (*c == 'o'
                && (key.eq_ignore_ascii_case("ControlMaster")
                    || key.eq_ignore_ascii_case("ControlPath")))
    })
}

/// Makes the ssh master that `cmd` (as returned by [`multiplexed`]) started forward a new unix
/// socket here to the socket `remote` on the far machine, and returns the local one's path.
/// Connections to it then reach `remote` as new channels of the master's connection: no login,
/// no remote shell, no program started for them. `None` when that cannot be set up; the server
/// may still refuse each channel (forwarding turned off for the key), which a connection sees
/// as its socket closing at once.
pub fn forward(cmd: &str, remote: &str) -> Option<PathBuf> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let words = shell_words::split(cmd).ok()?;
    let (program, args) = words.split_first()?;
    let dest = parse_ssh(args).1?;
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let local = private_dir()?.join(format!("{}-{n}.lanes", std::process::id()));
    let local_str = local.to_str()?;
    // `-L` splits its argument at colons; a socket unix addresses cannot hold is no use either.
    if remote.contains(':') || local_str.contains(':') || local_str.len() > MAX_SOCKET_PATH {
        return None;
    }
    let _ = std::fs::remove_file(&local);
    let mut ssh = std::process::Command::new(program);
    for var in crate::spawn::SECRET_ENV {
        ssh.env_remove(var);
    }
    let out = ssh
        .args(&args[..dest])
        .args(["-O", "forward", "-L", &format!("{local_str}:{remote}")])
        .arg(&args[dest])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .ok()?;
    if !out.status.success() {
        protocol::log::debug(&format!(
            "ssh would not forward {remote}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
        return None;
    }
    Some(local)
}

/// Whether a line of the ssh master's stderr reports a channel the server refused to open: a
/// lane through a forwarding that the server does not allow, which falls back to a session.
pub fn refused_channel(line: &str) -> bool {
    line.strip_prefix("channel ")
        .and_then(|rest| rest.split_once(": open failed: "))
        .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A directory only this user can use, made if need be: `$XDG_RUNTIME_DIR/ore`, else
/// `$TMPDIR/ore-UID`. `None` if it cannot be made or is not private.
fn private_dir() -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("ore"),
        _ => std::env::temp_dir().join(format!("ore-{uid}")),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(_) => return None,
    }
    // Another user could have made it first: use it only if it is ours and closed to others.
    let md = std::fs::symlink_metadata(&dir).ok()?;
    (md.is_dir() && md.uid() == uid && md.mode() & 0o077 == 0).then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_commands_get_a_private_master_and_others_are_left_alone() {
        let dir = Path::new("/run/user/1000/ore");
        let got = with_control_path("ssh -p 2222 nas backend-splitlog /data", dir, 42).unwrap();
        assert_eq!(
            shell_words::split(&got).unwrap(),
            shell_words::split(
                "ssh -o ControlMaster=auto -o ControlPath=/run/user/1000/ore/42-%C \
                 -o ControlPersist=no -p 2222 nas backend-splitlog /data"
            )
            .unwrap()
        );
        let got = with_control_path("/usr/bin/ssh 'my host' backend-fs '/a b'", dir, 7).unwrap();
        assert_eq!(
            shell_words::split(&got).unwrap()[7..],
            ["my host", "backend-fs", "/a b"]
        );
        for own in [
            "ssh -S /tmp/sock nas backend-splitlog /d",
            "ssh -o ControlMaster=no nas backend-splitlog /d",
            "ssh -oControlPath=/x/%C nas backend-splitlog /d",
            "ssh -o 'controlpath /x' nas backend-splitlog /d",
            "ssh -M nas backend-splitlog /d",
            "ssh -4M nas backend-splitlog /d",
        ] {
            assert_eq!(with_control_path(own, dir, 1), None, "{own}");
        }
        // Options after the destination belong to the remote command, not to ssh.
        assert!(with_control_path("ssh nas backend-fs -S x", dir, 1).is_some());
        // An option's value is not mistaken for a flag.
        assert!(with_control_path("ssh -i -M nas backend-fs /d", dir, 1).is_some());
        for other in [
            "backend-fs /d",
            "sshpass -p x ssh nas backend-fs /d",
            "delay-link 20 ssh nas backend-fs /d",
            "'unbalanced",
        ] {
            assert_eq!(with_control_path(other, dir, 1), None, "{other}");
        }
        // A socket path too long for a unix socket: no sharing rather than a failing ssh.
        let deep = PathBuf::from(format!("/{}", "d".repeat(60)));
        assert_eq!(with_control_path("ssh nas backend-fs /d", &deep, 1), None);
    }

    #[test]
    fn the_destination_is_found_among_the_options() {
        let words = |s: &str| shell_words::split(s).unwrap();
        let dest = |s: &str| parse_ssh(&words(s)).1;
        assert_eq!(dest("nas backend-splitlog /d"), Some(0));
        assert_eq!(dest("-p 2222 -i key nas backend-splitlog /d"), Some(4));
        assert_eq!(dest("-4Cp2222 nas cmd"), Some(1));
        assert_eq!(dest("-o 'ControlPath /x' -F cfg ore-test cmd"), Some(4));
        assert_eq!(dest("-v -- nas cmd"), Some(2));
        assert_eq!(dest("-p 22"), None);
        assert_eq!(dest("-p"), None);
        let (flags, _) = parse_ssh(&words("-4Cp2222 -oBatchMode=yes nas"));
        assert_eq!(
            flags,
            [
                ('4', String::new()),
                ('C', String::new()),
                ('p', "2222".to_string()),
                ('o', "BatchMode=yes".to_string())
            ]
        );
    }

    #[test]
    fn refused_channels_are_recognised_in_the_masters_messages() {
        assert!(refused_channel(
            "channel 2: open failed: connect failed: open failed"
        ));
        assert!(refused_channel(
            "channel 13: open failed: administratively prohibited: open failed"
        ));
        for other in [
            "Warning: Permanently added '[127.0.0.1]:22' (ED25519) to the list of known hosts.",
            "channel x: open failed: y",
            "channel : open failed: y",
            "Host key verification failed.",
            "prefix channel 2: open failed: y",
        ] {
            assert!(!refused_channel(other), "{other}");
        }
    }

    #[test]
    fn the_socket_directory_is_private() {
        let d = tempfile::tempdir().unwrap();
        std::env::set_var("XDG_RUNTIME_DIR", d.path());
        let dir = private_dir().unwrap();
        assert_eq!(dir, d.path().join("ore"));
        let md = std::fs::metadata(&dir).unwrap();
        assert_eq!(md.mode() & 0o777, 0o700);
        // Opened to others (by someone else, or a mistake): not used.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        assert_eq!(private_dir(), None);
    }
}
