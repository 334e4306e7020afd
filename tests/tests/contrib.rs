//! The scheduling files in `contrib/` (issue 26, item 16): the systemd units pass
//! `systemd-analyze verify` with no warning (their `Documentation=` pages are the ones `ore
//! man` writes), and the example environment file and the cron lines make and prune real
//! snapshots when run as cron would run them.

use ore_tests::bin;
use ore_tests::ore::{scratch, Ore};
use std::path::{Path, PathBuf};
use std::process::Command;

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib")
}

/// `path` read, with each `(from, to)` replaced.
fn edited(path: &Path, edits: &[(&str, &str)]) -> String {
    let mut s = std::fs::read_to_string(path).expect("read a contrib file");
    for (from, to) in edits {
        assert!(s.contains(from), "{} holds {from}", path.display());
        s = s.replace(from, to);
    }
    s
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify_without_a_warning() {
    let d = scratch();
    let units = d.path().join("units");
    let man = d.path().join("man/man1");
    std::fs::create_dir_all(&units).expect("mkdir");
    std::fs::create_dir_all(&man).expect("mkdir");
    let ore = bin("ore");
    let o = Command::new(&ore)
        .args(["man", "--dir"])
        .arg(&man)
        .output()
        .expect("ore man");
    assert!(o.status.success(), "{o:?}");
    let env = d.path().join("home.env");
    std::fs::copy(contrib().join("example.env"), &env).expect("copy");
    let dir = contrib().join("systemd");
    let mut names = Vec::new();
    for e in std::fs::read_dir(&dir).expect("contrib/systemd") {
        let p = e.expect("entry").path();
        let name = p
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&p)
            .expect("read")
            // verify checks that the program exists, and reads the environment file.
            .replace("/usr/local/bin/ore", &ore.display().to_string())
            .replace(
                "/etc/ore/%i.env",
                &env.display().to_string().replace("home", "%i"),
            );
        std::fs::write(units.join(&name), text).expect("write");
        names.push(name.replace("@.", "@home."));
    }
    names.sort();
    assert_eq!(
        names,
        [
            "ore-prune@home.service",
            "ore-prune@home.timer",
            "ore-snapshot@home.service",
            "ore-snapshot@home.timer"
        ]
    );
    let which = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        which.is_ok_and(|o| o.status.success()),
        "systemd-analyze is needed for this test (Debian package systemd; .ci/run installs it)"
    );
    let r = Command::new("systemd-analyze")
        .arg("verify")
        .args(names.iter().map(|n| units.join(n)))
        .env("MANPATH", d.path().join("man"))
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success() && stderr.trim().is_empty(), "{stderr}");
    // The check itself catches a mistake.
    let broken = units.join("ore-snapshot@.timer");
    let text = std::fs::read_to_string(&broken).expect("read");
    std::fs::write(
        &broken,
        text.replace("OnCalendar=", "OnCalendar=tuesday-ish "),
    )
    .expect("w");
    let r = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("ore-snapshot@home.timer"))
        .env("MANPATH", d.path().join("man"))
        .output()
        .expect("systemd-analyze runs");
    assert!(!r.stderr.is_empty(), "a bad calendar is reported");
}

#[test]
fn the_example_environment_and_the_cron_lines_snapshot_and_prune_a_real_archive() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let pass = d.path().join("passphrase");
    std::fs::write(&pass, format!("{}\n", o.passphrase)).expect("write");
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    for p in [&a, &b] {
        std::fs::create_dir(p).expect("mkdir");
        std::fs::write(p.join("f"), b"data").expect("write");
    }
    let env = d.path().join("home.env");
    let paths = format!("ORE_PATHS=\"{} {}\"", a.display(), b.display());
    let archive = format!("ORE_ARCHIVE={}", d.path().join("arch").display());
    let pass_line = format!("ORE_PASSPHRASE_FILE={}", pass.display());
    let text = edited(
        &contrib().join("example.env"),
        &[
            ("ORE_PATHS=\"/home /etc\"", &paths),
            ("ORE_ARCHIVE=/mnt/backup/ore", &archive),
            ("ORE_PASSPHRASE_FILE=/etc/ore/passphrase", &pass_line),
        ],
    );
    std::fs::write(&env, text).expect("write");
    let cache = d.path().join("cache");
    let cron = edited(
        &contrib().join("cron/ore"),
        &[
            ("/etc/ore/home.env", &env.display().to_string()),
            ("/usr/local/bin/ore", &bin("ore").display().to_string()),
            (
                "XDG_CACHE_HOME=/var/cache",
                &format!("XDG_CACHE_HOME={}", cache.display()),
            ),
        ],
    );
    let jobs: Vec<&str> = cron
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_once("root").expect("a user field").1.trim())
        .collect();
    assert_eq!(jobs.len(), 2, "{cron}");
    let run = |job: &str| {
        let r = Command::new("/bin/sh")
            .args(["-c", job])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("sh runs");
        assert!(r.status.success(), "{job}: {r:?}");
    };
    // The backend dates tag values to the second, and `--prune` never splits a second
    // between a value it expires and one it keeps: the runs are a second apart, as scheduled
    // runs are (hours).
    let a_second = || std::thread::sleep(std::time::Duration::from_millis(1100));
    run(jobs[0]);
    std::fs::write(a.join("f"), b"changed").expect("write");
    a_second();
    run(jobs[0]);
    let log = o.run(&["log", "home"]).expect(0, "log").stdout;
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(
        log.contains(&format!("{} {}", a.display(), b.display())),
        "{log}"
    );
    assert!(
        cache.join("ore").is_dir(),
        "the file cache went where the line says"
    );
    a_second();
    run(jobs[1]);
    let log = o.run(&["log", "home"]).expect(0, "log").stdout;
    assert_eq!(
        log.lines().count(),
        1,
        "--keep-daily 7 keeps a day's newest: {log}"
    );
    let gc = o.run(&["gc"]).expect(0, "gc").stdout;
    assert!(
        !gc.contains("held only by the reflog"),
        "--prune freed it: {gc}"
    );
}
