//! The holder's relay secret (see `protocol::share`): a connection to `attach.sock` that
//! declares an access is served only with the secret from `attach.key`, which is readable by
//! the archive's owner alone; without it — as through an ssh forwarding of the socket by a key
//! whose forced command cannot read files — the connection is closed before any greeting.

use connect::Client;
use protocol::frame::MAGIC;
use protocol::share::{SECRET, SOCKET};
use protocol::Backend;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

fn id(dir: &Path) -> String {
    format!(
        "{} '{}'",
        env!("CARGO_BIN_EXE_backend-splitlog"),
        dir.display()
    )
}

/// Sends `preamble` and the magic to the holder; what comes back before it closes (or 8
/// bytes, its greeting).
fn greeting_after(socket: &Path, preamble: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(preamble).unwrap();
    let _ = s.write_all(&MAGIC);
    // Nothing more is coming: a holder still reading a preamble sees its end.
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut got = vec![0u8; MAGIC.len()];
    let mut n = 0;
    while n < got.len() {
        match s.read(&mut got[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    got.truncate(n);
    got
}

#[test]
fn a_declared_access_without_the_holders_secret_is_closed_before_the_greeting() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    // Created first, as `ore init` would: the program creates nothing before a write.
    drop(
        backend_splitlog::SplitlogBackend::open(&dir, backend_splitlog::SplitlogOptions::default())
            .unwrap(),
    );
    let holder = Client::connect(&id(&dir)).unwrap();
    let socket = dir.join(SOCKET);
    let secret = std::fs::read(dir.join(SECRET)).unwrap();
    assert_eq!(secret.len(), 32);
    let mode = std::fs::metadata(dir.join(SECRET))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the secret is the owner's alone");
    for first in [0u8, 1, 2, 0x10] {
        let mut guessed = vec![first];
        guessed.extend_from_slice(&[0u8; 32]);
        assert_eq!(
            greeting_after(&socket, &guessed),
            b"",
            "byte {first:#x}, guessed"
        );
        assert_eq!(
            greeting_after(&socket, &[first]),
            b"",
            "byte {first:#x}, bare"
        );
    }
    let mut relay = vec![0u8];
    relay.extend_from_slice(&secret);
    assert_eq!(greeting_after(&socket, &relay), MAGIC, "a relay is greeted");
    // A new holder makes a new secret, and removes it with the socket.
    holder.close().unwrap();
    assert!(!dir.join(SECRET).exists());
    let again = Client::connect(&id(&dir)).unwrap();
    assert_ne!(std::fs::read(dir.join(SECRET)).unwrap(), secret);
    again.flush().unwrap();
    again.close().unwrap();
}
