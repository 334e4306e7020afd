//! A private OpenSSH server on 127.0.0.1 for tests: its own host key, user key, config and
//! port, so nothing touches the machine's ssh setup. The server runs as the current user and
//! lets only the generated key in.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running sshd; killed when dropped.
pub struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

const SSHD: &str = "/usr/sbin/sshd";

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs (apt-get install openssh-client)");
    assert!(st.success(), "ssh-keygen failed for {}", path.display());
}

/// The name of the user this process runs as.
fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; it is read at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        assert!(!pw.is_null(), "the current user has no passwd entry");
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on (at the moment of asking).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl Sshd {
    /// Starts the server and waits until it accepts connections. `authorized` is the option
    /// list put before the key in `authorized_keys` (e.g. a forced command), if any.
    pub fn start(authorized: Option<&str>) -> Sshd {
        assert!(
            Path::new(SSHD).is_file(),
            "{SSHD} is missing: these tests need a real OpenSSH server (apt-get install openssh-server)"
        );
        let dir = crate::ore::scratch();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("user_key"));
        let public = std::fs::read_to_string(d.join("user_key.pub")).expect("public key");
        let line = match authorized {
            Some(opts) => format!("{opts} {public}"),
            None => public,
        };
        std::fs::write(d.join("authorized_keys"), line).expect("authorized_keys");
        // Running as root, sshd wants its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nLogLevel ERROR\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        let user = current_user();
        let client = format!(
            "Host ore-test\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  \
             IdentityFile {d}/user_key\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  \
             UserKnownHostsFile /dev/null\n  BatchMode yes\n  LogLevel ERROR\n",
            d = d.display()
        );
        std::fs::write(d.join("ssh_config"), client).expect("ssh_config");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .spawn()
            .expect("sshd starts");
        let s = Sshd { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start listening on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// The client config file (host alias `ore-test`).
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// An archive identifier that runs `remote` (a command line) on the other side.
    pub fn identifier(&self, remote: &str) -> String {
        format!("ssh -F {} ore-test {remote}", crate::quote(&self.config()))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
