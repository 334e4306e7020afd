//! The traps a new user fell into (issue 26, items 10–13), each run through the real `ore` and
//! `ore-admin`: archive paths with spaces or without a `/` are paths, in `-a` and in the config
//! file; a refused or mistaken command leaves nothing behind; `--exclude` with an absolute path
//! excludes it; and the default restore leaves what exists alone, saying so once.

use ore_tests::ore::{scratch, Ore, Run};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every name under `dir` (relative, sorted) with its size and mode, or an empty list when
/// `dir` does not exist: what a command must leave as it was.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let m = e.path().symlink_metadata().unwrap();
            if m.is_dir() {
                todo.push(e.path());
            }
            let rel = e.path().strip_prefix(dir).unwrap().to_path_buf();
            out.push((rel, m.len(), m.mode()));
        }
    }
    out.sort();
    out
}

/// `ore ARGS` in directory `cwd`, with no `-a`: the archive comes from the config file `config`.
fn ore_with_config(ore: &Ore, cwd: &Path, config: &Path, args: &[&str]) -> Run {
    let out = Command::new(ore_tests::bin("ore"))
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(cwd)
        .env("ORE_PASSPHRASE", &ore.passphrase)
        .env("XDG_CACHE_HOME", &ore.cache)
        .env_remove("ORE_ARCHIVE")
        .env_remove("ORE_FAULT")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ore runs");
    Run::of(out)
}

/// `ore -a ARCHIVE ARGS` in directory `cwd`.
fn ore_in(archive: &str, cwd: &Path, args: &[&str]) -> Run {
    let ore = Ore::new(archive);
    Run::of(ore.cmd(args).current_dir(cwd).output().expect("ore runs"))
}

/// A config file in `dir` naming `archive` (TOML-escaped), returned by path.
fn config_naming(dir: &Path, archive: &str) -> PathBuf {
    let path = dir.join("config.toml");
    let escaped = archive.replace('\\', "\\\\").replace('"', "\\\"");
    std::fs::write(&path, format!("archive = \"{escaped}\"\n")).unwrap();
    path
}

/// A small tree to snapshot.
fn small_tree(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), b"alpha").unwrap();
    std::fs::write(src.join("sub/b"), b"beta").unwrap();
    src
}

#[test]
fn an_archive_path_with_spaces_is_a_path_through_a_and_through_the_config_file() {
    let d = scratch();
    let src = small_tree(d.path());
    let parent = d.path().join("my backups");
    std::fs::create_dir(&parent).unwrap();
    let archive = parent.join("ore").display().to_string();
    // Init of a path that does not exist yet, whose parent does.
    let ore = Ore::new(archive.clone());
    ore.run(&["init"])
        .expect(0, "init of a new path with a space");
    assert!(parent.join("ore/metadata.db").is_file());
    ore.snapshot("t", &src);
    // The config file's `archive =`, the same rule.
    let config = config_naming(d.path(), &archive);
    let r = ore_with_config(&ore, d.path(), &config, &["tags"]).expect(0, "tags via config");
    assert!(r.stdout.starts_with("t\t"), "{}", r.stdout);
    // A command line naming the same directory, quoted, still starts its program.
    let cmd = format!(
        "{} {}",
        ore_tests::quote(&ore_tests::bin("backend-splitlog")),
        ore_tests::shell_quote(&archive)
    );
    let r = ore_in(&cmd, d.path(), &["tags"]).expect(0, "tags via a quoted command line");
    assert!(r.stdout.starts_with("t\t"), "{}", r.stdout);
}

#[test]
fn a_directory_named_without_a_slash_is_an_archive_path_not_a_program() {
    let d = scratch();
    let src = small_tree(d.path());
    std::fs::create_dir(d.path().join("a2")).unwrap();
    ore_in("a2", d.path(), &["init"]).expect(0, "init of `a2`, a directory here");
    assert!(d.path().join("a2/metadata.db").is_file());
    let r = ore_in("a2", d.path(), &["snapshot", "t", src.to_str().unwrap()]);
    r.expect(0, "snapshot into `a2`");
    // `./a2` is the same archive, and so is `a2` from the config file.
    let r = ore_in("./a2", d.path(), &["tags"]).expect(0, "tags of ./a2");
    assert!(r.stdout.starts_with("t\t"), "{}", r.stdout);
    let config = config_naming(d.path(), "a2");
    let r = ore_with_config(&Ore::new("unused"), d.path(), &config, &["tags"]);
    let r = r.expect(0, "tags of `a2` via the config file");
    assert!(r.stdout.starts_with("t\t"), "{}", r.stdout);
    // A relative path to a new archive, one word with a `/`, is a path for init too.
    ore_in("./new/deeper", d.path(), &["init"]).expect(0, "init of ./new/deeper");
    assert!(d.path().join("new/deeper/metadata.db").is_file());
    // A word that names no directory here is still a program.
    // A word that names no directory here is still a program, and the error says how to
    // write a new archive's path instead.
    let r = ore_in("no-such-program-here", d.path(), &["init"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("write ./no-such-program-here"),
        "{}",
        r.stderr
    );
    assert!(!d.path().join("no-such-program-here").exists());
}

#[test]
fn a_config_archive_under_home_may_be_written_with_a_tilde() {
    let d = scratch();
    let src = small_tree(d.path());
    let ore = Ore::new(d.path().join("my ore").display().to_string());
    ore.run(&["init"]).expect(0, "init");
    ore.snapshot("t", &src);
    let config = config_naming(d.path(), "~/my ore");
    let elsewhere = d.path().join("src");
    let out = Command::new(ore_tests::bin("ore"))
        .args(["--config", config.to_str().unwrap(), "tags"])
        .current_dir(&elsewhere)
        .env("HOME", d.path())
        .env("ORE_PASSPHRASE", &ore.passphrase)
        .env("XDG_CACHE_HOME", &ore.cache)
        .env_remove("ORE_ARCHIVE")
        .output()
        .unwrap();
    let r = Run::of(out).expect(0, "tags via `~/my ore` in the config file");
    assert!(r.stdout.starts_with("t\t"), "{}", r.stdout);
    assert!(
        !elsewhere.join("~").exists(),
        "no directory named ~ was made"
    );
}

#[test]
fn a_refused_init_leaves_the_directory_as_it_was() {
    let d = scratch();
    let home = d.path().join("home");
    std::fs::create_dir_all(home.join("Documents")).unwrap();
    std::fs::write(home.join("notes"), b"mine").unwrap();
    let before = listing(&home);
    for archive in [
        home.display().to_string(),
        format!("backend-splitlog {}", ore_tests::quote(&home)),
        format!("backend-fs {}", ore_tests::quote(&home)),
    ] {
        let r = Ore::new(archive.clone()).run(&["init"]);
        assert_eq!(r.code, 1, "init of {archive} was not refused: {}", r.stderr);
        assert!(r.stderr.contains("notes") || r.stderr.contains("not empty"));
        assert_eq!(listing(&home), before, "init of {archive} left something");
    }
}

#[test]
fn reading_commands_on_an_empty_or_missing_directory_create_nothing() {
    let d = scratch();
    let src = small_tree(d.path());
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let missing = d.path().join("missing");
    for dir in [&empty, &missing] {
        for archive in [
            dir.display().to_string(),
            format!("backend-splitlog {}", ore_tests::quote(dir)),
            format!("backend-fs {}", ore_tests::quote(dir)),
        ] {
            let ore = Ore::new(archive.clone());
            for args in [
                &["tags"][..],
                &["log", "t"],
                &["snapshot", "t", src.to_str().unwrap()],
                &["gc"],
            ] {
                let r = ore.run(args);
                assert_eq!(r.code, 1, "{args:?} on {archive}: {}", r.stderr);
                assert_eq!(listing(dir), vec![], "{args:?} on {archive} left files");
                assert_eq!(dir.exists(), dir == &empty, "{args:?} on {archive}");
            }
        }
    }
    // Only init creates the archive, and then it is one.
    let ore = Ore::new(empty.display().to_string());
    ore.run(&["init"]).expect(0, "init");
    ore.snapshot("t", &src);
}

#[test]
fn admin_commands_on_a_mistyped_archive_create_nothing_and_say_so() {
    let d = scratch();
    let typo = d.path().join("typo");
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for dir in [&typo, &empty] {
        for archive in [
            format!("backend-fs {}", ore_tests::quote(dir)),
            format!("backend-splitlog {}", ore_tests::quote(dir)),
            dir.display().to_string(),
        ] {
            for command in ["help", "info", "stats"] {
                let out = Command::new(ore_tests::bin("ore-admin"))
                    .args([&archive, command])
                    .output()
                    .unwrap();
                let r = Run::of(out);
                assert_eq!(r.code, 1, "{command} on {archive}: {}", r.stdout);
                assert!(
                    r.stderr
                        .contains(&format!("no archive at {}", dir.display())),
                    "{command} on {archive}: {}",
                    r.stderr
                );
                assert_eq!(listing(dir), vec![], "{command} on {archive} left files");
                assert_eq!(dir.exists(), dir == &empty);
            }
        }
    }
}

/// Restores the newest snapshot of `t` to `dest` and says whether `rel` is there.
fn restored_has(ore: &Ore, dest: &Path, rel: &str) -> bool {
    ore.restore("t", dest).expect(0, "restore");
    dest.join(rel).exists()
}

#[test]
fn an_exclude_given_as_an_absolute_path_leaves_out_that_directory() {
    let d = scratch();
    let (ore, _archive) = Ore::local();
    let src = small_tree(d.path());
    std::fs::create_dir(src.join("Documents")).unwrap();
    std::fs::write(src.join("Documents/secret"), b"private").unwrap();
    let pattern = src.join("Documents").display().to_string();
    ore.run(&[
        "snapshot",
        "t",
        src.to_str().unwrap(),
        "--exclude",
        &pattern,
    ])
    .expect(0, "snapshot");
    assert!(!restored_has(&ore, &d.path().join("one"), "Documents"));
    assert!(d.path().join("one/sub/b").is_file(), "the rest is saved");
    // Snapshotted by a relative name, the same.
    let r = Run::of(
        ore.cmd(&["snapshot", "t", "src", "--exclude", &pattern])
            .current_dir(d.path())
            .output()
            .unwrap(),
    );
    r.expect(0, "snapshot of a relative path");
    assert!(!restored_has(&ore, &d.path().join("two"), "Documents"));
    // A `/` that does not begin with the snapshotted directory is anchored at it, as in
    // .gitignore.
    ore.run(&[
        "snapshot",
        "t",
        src.to_str().unwrap(),
        "--exclude",
        "/Documents",
    ])
    .expect(0, "snapshot");
    assert!(!restored_has(&ore, &d.path().join("three"), "Documents"));
}

#[test]
fn an_exclude_given_as_an_absolute_glob_leaves_out_what_it_matches() {
    let d = scratch();
    let (ore, _archive) = Ore::local();
    let src = small_tree(d.path());
    std::fs::write(src.join("sub/c.tmp"), b"scratch").unwrap();
    std::fs::create_dir(src.join("build")).unwrap();
    std::fs::write(src.join("build/out"), b"made").unwrap();
    // A glob inside the snapshotted directory's own path, and one below it.
    let dirs = format!("{}/*/build", d.path().display());
    let files = format!("{}/**/*.tmp", src.display());
    ore.run(&[
        "snapshot",
        "t",
        src.to_str().unwrap(),
        "--exclude",
        &dirs,
        "--exclude",
        &files,
    ])
    .expect(0, "snapshot");
    let dest = d.path().join("dest");
    assert!(!restored_has(&ore, &dest, "build"));
    assert!(!dest.join("sub/c.tmp").exists());
    assert!(dest.join("sub/b").is_file() && dest.join("a").is_file());
}

/// A path's mode bits and mtime in whole seconds.
fn mode_and_mtime(p: &Path) -> (u32, i64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.mode() & 0o7777, m.mtime())
}

#[test]
fn the_default_restore_leaves_existing_directories_and_files_alone_and_says_so_once() {
    use std::os::unix::fs::PermissionsExt;
    let (ore, d) = Ore::local();
    let src = small_tree(d.path());
    std::fs::write(src.join("sub/c"), b"gamma").unwrap();
    ore.snapshot("t", &src);
    // What is there: the top and `sub`, 0700 and from 2020, and two of sub's three files.
    let dest = d.path().join("dest");
    std::fs::create_dir_all(dest.join("sub")).unwrap();
    std::fs::write(dest.join("sub/b"), b"local b").unwrap();
    std::fs::write(dest.join("sub/c"), b"local c").unwrap();
    const Y2020: i64 = 1_600_000_000;
    for p in [dest.join("sub"), dest.clone()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        ore_tests::trees::set_mtime(&p, Y2020 * 1_000_000_000);
    }
    let r = ore
        .restore("t", &dest)
        .expect(3, "existing files left: a warning");
    assert_eq!(mode_and_mtime(&dest), (0o700, Y2020), "the top changed");
    assert_eq!(
        mode_and_mtime(&dest.join("sub")),
        (0o700, Y2020),
        "sub changed"
    );
    assert_eq!(std::fs::read(dest.join("sub/b")).unwrap(), b"local b");
    assert_eq!(
        std::fs::read(dest.join("a")).unwrap(),
        b"alpha",
        "what is missing comes"
    );
    assert_eq!(r.stderr.matches("left alone").count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("2 existing files left alone")
            && r.stderr
                .contains("use --overwrite if-changed to update them"),
        "{}",
        r.stderr
    );
    // Asked to, it updates them: files and directories as the snapshot has them.
    ore.run(&[
        "restore",
        "t",
        dest.to_str().unwrap(),
        "--overwrite",
        "if-changed",
    ])
    .expect(0, "if-changed");
    assert_eq!(std::fs::read(dest.join("sub/b")).unwrap(), b"beta");
    assert_eq!(
        mode_and_mtime(&dest.join("sub")),
        mode_and_mtime(&src.join("sub"))
    );
}

#[test]
fn a_rerun_finishes_the_directories_an_interrupted_restore_made_but_leaves_others_alone() {
    use std::os::unix::fs::PermissionsExt;
    let (ore, d) = Ore::local();
    let src = small_tree(d.path());
    std::fs::create_dir(src.join("other")).unwrap();
    ore.snapshot("t", &src);
    // As a restore stopped before finishing them leaves its directories: sticky and private
    // (mode 1700), some of their files there. `other` was there before, 0700.
    let dest = d.path().join("dest");
    std::fs::create_dir_all(dest.join("sub")).unwrap();
    std::fs::create_dir_all(dest.join("other")).unwrap();
    std::fs::write(dest.join("sub/b"), b"beta").unwrap();
    std::fs::set_permissions(dest.join("sub"), std::fs::Permissions::from_mode(0o1700)).unwrap();
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o1700)).unwrap();
    std::fs::set_permissions(dest.join("other"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let other = mode_and_mtime(&dest.join("other"));
    ore.restore("t", &dest).expect(3, "one existing file left");
    assert_eq!(
        mode_and_mtime(&dest.join("sub")),
        mode_and_mtime(&src.join("sub"))
    );
    assert_eq!(
        mode_and_mtime(&dest),
        mode_and_mtime(&src),
        "the top is finished too"
    );
    assert_eq!(
        mode_and_mtime(&dest.join("other")),
        other,
        "`other` was left alone"
    );
}

#[test]
fn excludes_hold_when_several_paths_are_snapshotted() {
    // Regression: with more than one path, every --exclude was ignored.
    let d = scratch();
    let (ore, _archive) = Ore::local();
    let src = small_tree(d.path());
    let more = d.path().join("more");
    std::fs::create_dir_all(more.join("cache")).unwrap();
    std::fs::write(more.join("cache/c"), b"cached").unwrap();
    std::fs::write(more.join("x.o"), b"object").unwrap();
    std::fs::write(more.join("keep"), b"kept").unwrap();
    let cache = more.join("cache").display().to_string();
    ore.run(&[
        "snapshot",
        "t",
        src.to_str().unwrap(),
        more.to_str().unwrap(),
        "--exclude",
        "*.o",
        "--exclude",
        &cache,
        "--exclude",
        "/src/sub",
    ])
    .expect(0, "snapshot of two paths");
    let dest = d.path().join("dest");
    assert!(!restored_has(&ore, &dest, "more/x.o"));
    assert!(!dest.join("more/cache").exists(), "the absolute path");
    assert!(
        !dest.join("src/sub").exists(),
        "anchored at the made-up root"
    );
    assert!(dest.join("more/keep").is_file() && dest.join("src/a").is_file());
}
