//! One ssh connection for all the lanes to a distant archive.
//!
//! Over a long link ore opens several connections to an archive (lanes, see
//! [`crate::identifier::open`]). When the identifier is an `ssh` command line, each would be a
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

/// Whether ssh arguments already choose how connections are shared.
fn sets_up_sharing(args: &[String]) -> bool {
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        if !a.starts_with('-') || a == "--" {
            // The destination: what follows is the remote command.
            return false;
        }
        let flags = &a[1..];
        // Flags that take a value; the value is either the rest of this word or the next one.
        for (i, c) in flags.char_indices() {
            if c == 'S' || c == 'M' {
                return true;
            }
            if "BbcDEeFIiJLlmOopQRWw".contains(c) {
                let value = if i + 1 < flags.len() {
                    flags[i + 1..].to_string()
                } else {
                    it.next().cloned().unwrap_or_default()
                };
                if c == 'o' {
                    let key = value.split(['=', ' ']).next().unwrap_or("");
                    if key.eq_ignore_ascii_case("ControlMaster")
                        || key.eq_ignore_ascii_case("ControlPath")
                    {
                        return true;
                    }
                }
                break;
            }
        }
    }
    false
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
