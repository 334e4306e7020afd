//! Running the `ore` binary against an archive, with its own cache and a passphrase.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One archive and the environment `ore` runs in for it.
pub struct Ore {
    pub archive: String,
    pub cache: PathBuf,
    pub passphrase: String,
    _dir: tempfile::TempDir,
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// What a finished process printed and how it ended.
    pub fn of(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Panics unless the exit code is `code`.
    pub fn expect(self, code: i32, what: &str) -> Run {
        assert_eq!(
            self.code, code,
            "{what}: exit {}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// A scratch directory on a real disk file system (xattrs and sparse files work there).
pub fn scratch() -> tempfile::TempDir {
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).expect("scratch base");
    tempfile::tempdir_in(base).expect("scratch dir")
}

impl Ore {
    /// An archive at `archive` (an identifier), not yet initialised.
    pub fn new(archive: impl Into<String>) -> Ore {
        let dir = scratch();
        Ore {
            archive: archive.into(),
            cache: dir.path().join("cache"),
            passphrase: "correct horse battery staple".into(),
            _dir: dir,
        }
    }

    /// A splitlog archive in a fresh directory, initialised (with cheap key derivation).
    pub fn local() -> (Ore, tempfile::TempDir) {
        let d = scratch();
        let o = Ore::new(d.path().join("archive").display().to_string());
        o.run(&["init"]).expect(0, "init");
        (o, d)
    }

    /// A `backend-fs` archive in `dir` (reached through the real binary), initialised.
    pub fn fs(dir: &Path) -> Ore {
        let o = Ore::new(format!("backend-fs {}", crate::quote(dir)));
        o.run(&["init"]).expect(0, "init");
        o
    }

    /// The archive of [`Ore::fs`] on `dir` reached through `delay-link --serial MS`: one
    /// request at a time, each answered after `ms` ms, so that a run lasts long enough to be
    /// caught in the middle.
    pub fn fs_serially_slowed(&self, dir: &Path, ms: u32) -> Ore {
        let mut slow = Ore::new(format!(
            "{} --serial {ms} {} {}",
            crate::quote(&crate::bin("delay-link")),
            crate::quote(&crate::bin("backend-fs")),
            crate::quote(dir)
        ));
        slow.passphrase = self.passphrase.clone();
        slow
    }

    /// The command with the archive, cache and passphrase set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(crate::bin("ore"));
        c.arg("-a")
            .arg(&self.archive)
            .args(args)
            .env("ORE_PASSPHRASE", &self.passphrase)
            .env("XDG_CACHE_HOME", &self.cache)
            .env("XDG_CONFIG_HOME", self.cache.join("no-config"))
            .env_remove("ORE_ARCHIVE")
            .env_remove("ORE_FAULT")
            .stdin(std::process::Stdio::null());
        c
    }

    /// Runs `ore ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(self.cmd(args).output().expect("ore runs"))
    }

    /// Runs `ore explore` with `script` on its standard input (in directory `cwd`, if given),
    /// the way scripts drive it.
    pub fn explore(&self, script: &str, cwd: Option<&Path>) -> Run {
        use std::io::Write;
        use std::process::Stdio;
        let mut c = self.cmd(&["explore"]);
        if let Some(dir) = cwd {
            c.current_dir(dir);
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ore runs");
        child
            .stdin
            .take()
            .expect("its standard input")
            .write_all(script.as_bytes())
            .expect("the script is written");
        Run::of(child.wait_with_output().expect("ore ends"))
    }

    /// Snapshots `path` to `tag`, returning the key.
    pub fn snapshot(&self, tag: &str, path: &Path) -> String {
        let r = self
            .run(&["snapshot", tag, path.to_str().expect("utf-8 test path")])
            .expect(0, "snapshot");
        r.stdout.trim().to_string()
    }

    /// What `tag` holds: the key of the newest chain link (FORMAT.md §6), the value the backend
    /// keeps, its tag history lists and the reflog records (as `new_node`); "" without the tag.
    pub fn node(&self, tag: &str) -> String {
        let r = self.run(&["tags", "--json"]).expect(0, "tags --json");
        r.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["tag"] == tag)
            .and_then(|v| v["node"].as_str().map(String::from))
            .unwrap_or_default()
    }

    /// The block key `ore --json ls SNAPSHOT` gives the entry at `path` under `field`
    /// (`tree` for a directory, `chunk` or `index` for a file).
    pub fn key_of(&self, snapshot: &str, path: &str, field: &str) -> String {
        let r = self.run(&["--json", "ls", snapshot]).expect(0, "ls --json");
        r.stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
            .find(|v| v["path"] == path)
            .and_then(|v| v[field].as_str().map(String::from))
            .unwrap_or_else(|| panic!("no {field} for {path} in\n{}", r.stdout))
    }

    /// Restores `what` to `dest`.
    pub fn restore(&self, what: &str, dest: &Path) -> Run {
        self.run(&["restore", what, dest.to_str().expect("utf-8 test path")])
    }
}

/// The file of block `key` (64 hex digits) in the backend-fs archive at `fsdir`.
pub fn block_file(fsdir: &Path, key: &str) -> PathBuf {
    fsdir
        .join("blocks")
        .join(&key[..2])
        .join(&key[2..4])
        .join(key)
}

/// A backend-fs archive in `d/fs` holding one snapshot, tag `t`, of `d/src` (one file `a`),
/// taken with the cache: the archive, its directory and the source.
pub fn fs_with_one_snapshot(d: &Path) -> (Ore, PathBuf, PathBuf) {
    let fsdir = d.join("fs");
    let ore = Ore::fs(&fsdir);
    let src = d.join("src");
    std::fs::create_dir(&src).expect("mkdir src");
    std::fs::write(src.join("a"), b"first").expect("write a");
    ore.snapshot("t", &src);
    (ore, fsdir, src)
}
