//! Issue 21, item 5, tried for real: an ssh key whose `authorized_keys` line forces
//! `backend-splitlog --append-only DIR` but lacks `restrict` may forward a local socket to
//! `DIR/attach.sock`. Whatever it sends there, it must not be served with more access than its
//! forced command gives it (see `protocol::share`, "Nothing reached through the socket claims
//! more than the key it came from").

use ore_tests::bin;
use ore_tests::ore::{scratch, Ore};
use ore_tests::sshd::Sshd;
use protocol::frame::{read_frame, read_magic, MAGIC, MAX_FRAME_BODY};
use protocol::message::{Hello, RemoveTag, Request, Response};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The forced command of an append-only key, without `restrict`: the key may forward.
fn forced_without_restrict(archive: &Path) -> String {
    format!(
        "command=\"{} --append-only {}\"",
        bin("backend-splitlog").display(),
        archive.display()
    )
}

/// Waits until `path` exists (a socket a process is about to make).
fn wait_for(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{what} did not appear at {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ssh -N -L LOCAL:REMOTE` through the key: a local socket forwarded to `remote`.
fn forward(sshd: &Sshd, local: &Path, remote: &Path) -> Killed {
    let child = Command::new("ssh")
        .arg("-F")
        .arg(sshd.config())
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
        .arg(format!("{}:{}", local.display(), remote.display()))
        .arg("ore-test")
        .stdin(Stdio::null())
        .spawn()
        .expect("ssh runs");
    wait_for(local, "the forwarded socket");
    Killed(child)
}

/// Speaks the protocol by hand through `socket` as an attacker would: sends `preamble`, then
/// (without waiting for anything) the greeting and a request to remove the tag `home`, and,
/// if the holder went along, asks to remove every block. `Ok` with the number of blocks
/// removed when the holder did it; `Err` saying how it was refused.
fn remove_everything_through(socket: &Path, preamble: &[u8]) -> Result<usize, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let hello = Request::Hello(Hello {
        min_version: 1,
        max_version: 1,
        client: "attacker".into(),
    });
    let remove_tag = Request::RemoveTag(RemoveTag {
        name: "home".into(),
        expected: None,
    });
    let mut opening = preamble.to_vec();
    opening.extend_from_slice(&MAGIC);
    opening.extend(hello.to_frame_bytes());
    opening.extend(remove_tag.to_frame_bytes());
    // A holder that waits for more of a preamble than was sent gets it from what follows.
    s.write_all(&opening).map_err(|e| format!("opening: {e}"))?;
    let mut r = s.try_clone().unwrap();
    read_magic(&mut r).map_err(|e| format!("no greeting: {e}"))?;
    let mut next = || -> Result<Response, String> {
        loop {
            let f = read_frame(&mut r, MAX_FRAME_BODY)
                .map_err(|e| format!("answer: {e}"))?
                .ok_or("the holder closed the connection")?;
            match Response::decode(f).map_err(|e| format!("decode: {e}"))? {
                Response::Log { .. } => continue,
                Response::Error { message, .. } => return Err(message),
                other => return Ok(other),
            }
        }
    };
    next()?; // the welcome
    next()?; // the tag removed
    let mut ask = |req: Request| -> Result<Response, String> {
        s.write_all(&req.to_frame_bytes())
            .map_err(|e| format!("request: {e}"))?;
        next()
    };
    let keys = match ask(Request::List {
        after: None,
        limit: 100_000,
    })? {
        Response::Keys { keys, .. } => keys,
        other => return Err(format!("unexpected answer {other:?}")),
    };
    ask(Request::Remove(keys.clone()))?;
    ask(Request::Flush)?;
    Ok(keys.len())
}

/// Ends an ssh session by closing its input, and waits until it (and so the backend program
/// it ran, which ends at the end of its input) has exited.
fn end_session(mut session: Killed) {
    drop(session.0.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    while session.0.try_wait().ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "the ssh session did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scratch_socket(d: &Path, name: &str) -> PathBuf {
    d.join(name)
}

/// Declares full access through `socket` every way a relay could: the bare byte, and the byte
/// followed by 32 guessed bytes where a relay puts the secret.
fn attack(socket: &Path) {
    for first in [0u8, 0x10] {
        let mut guessed = vec![first];
        guessed.extend_from_slice(&[0u8; 32]);
        for preamble in [vec![first], guessed] {
            let r = remove_everything_through(socket, &preamble);
            assert!(r.is_err(), "{preamble:?}: removed {r:?} blocks");
        }
    }
}

/// The attack of issue 21, item 5: an append-only key without `restrict` starts a holder
/// through its forced command, forwards a socket to the holder's `attach.sock`, and declares
/// full access in the first byte — or waits for the owner's own full-access holder and does
/// the same. Neither may remove a block.
#[test]
fn an_append_only_key_without_restrict_cannot_declare_full_access_through_a_forwarded_attach_socket(
) {
    let d = scratch();
    let archive = d.path().join("archive");
    let owner = Ore::new(archive.display().to_string());
    owner.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    ore_tests::trees::every_kind(&src);
    owner.snapshot("home", &src);
    let sshd = Sshd::start(Some(&forced_without_restrict(&archive)));
    let attach = archive.join(protocol::share::SOCKET);

    // 1. The key's own session holds the archive (append-only) and listens on attach.sock.
    let session = Command::new("ssh")
        .arg("-F")
        .arg(sshd.config())
        .args(["ore-test", "anything"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ssh runs");
    let session = Killed(session);
    wait_for(&attach, "the append-only holder's socket");
    let local = scratch_socket(d.path(), "fwd-1.sock");
    let fwd = forward(&sshd, &local, &attach);
    attack(&local);
    drop(fwd);
    end_session(session);

    // 2. The owner's own process holds the archive with full access.
    let holder = Command::new(bin("backend-splitlog"))
        .arg(&archive)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("backend-splitlog runs");
    let holder = Killed(holder);
    wait_for(&attach, "the owner's holder's socket");
    let local = scratch_socket(d.path(), "fwd-2.sock");
    let fwd = forward(&sshd, &local, &attach);
    attack(&local);
    drop(fwd);
    end_session(holder);

    // Every block is still there.
    owner.run(&["check"]).expect(0, "check after the attack");
    let dest = d.path().join("dest");
    owner
        .restore("home", &dest)
        .expect(0, "restore after the attack");
    ore_tests::trees::assert_same(&src, &dest);
}
