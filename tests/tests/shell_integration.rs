//! What a user sets up once in their shell: completion scripts and manual pages generated from
//! the command line's own definition, loaded by the real shells and `man`, and the passphrase
//! and config coming from the environment variables restic users reach for
//! (`ORE_PASSPHRASE_FILE`, `ORE_PASSPHRASE_COMMAND`, `ORE_CONFIG`).

use ore_tests::ore::{scratch, Ore, Run};
use std::process::Command;

fn ore(args: &[&str]) -> Run {
    Run::of(
        Command::new(ore_tests::bin("ore"))
            .args(args)
            .env_remove("ORE_PASSPHRASE")
            .output()
            .expect("ore runs"),
    )
}

/// Runs `shell` with `args`; the shell must be installed (`.ci/run` installs zsh and fish).
fn shell(shell: &str, args: &[&str]) -> Run {
    let out = Command::new(shell).args(args).output().unwrap_or_else(|e| {
        panic!("{shell} must be installed for this test (apt-get install {shell}): {e}")
    });
    Run::of(out)
}

#[test]
fn bash_completes_commands_and_their_options_from_the_generated_script() {
    let d = scratch();
    let script = d.path().join("ore.bash");
    std::fs::write(
        &script,
        ore(&["completions", "bash"])
            .expect(0, "completions")
            .stdout,
    )
    .expect("write the script");
    // Load it, then ask the completion function what follows `ore sn` and `ore snapshot --ex`.
    let probe = format!(
        "source {}; complete -p ore; \
         COMP_WORDS=(ore sn); COMP_CWORD=1; _ore ore sn ore; echo \"words: ${{COMPREPLY[*]}}\"; \
         COMP_WORDS=(ore snapshot --ex); COMP_CWORD=2; _ore ore --ex snapshot; \
         echo \"options: ${{COMPREPLY[*]}}\"",
        script.display()
    );
    let r = shell("bash", &["-c", &probe]).expect(0, "bash loads the script");
    assert!(r.stdout.contains("-F _ore ore"), "{r:?}");
    assert!(r.stdout.contains("words: snapshot"), "{r:?}");
    assert!(r.stdout.contains("options: --exclude"), "{r:?}");
}

#[test]
fn zsh_and_fish_load_their_generated_scripts() {
    let d = scratch();
    let zsh = d.path().join("_ore");
    std::fs::write(&zsh, ore(&["completions", "zsh"]).expect(0, "zsh").stdout).expect("write");
    let text = std::fs::read_to_string(&zsh).expect("read");
    assert!(text.starts_with("#compdef ore"), "{text:.200}");
    assert!(text.contains("snapshot") && text.contains("--passphrase-file"));
    shell("zsh", &["-n", zsh.to_str().expect("utf-8")]).expect(0, "zsh parses the script");
    let fish = d.path().join("ore.fish");
    std::fs::write(
        &fish,
        ore(&["completions", "fish"]).expect(0, "fish").stdout,
    )
    .expect("write");
    shell("fish", &["--no-execute", fish.to_str().expect("utf-8")])
        .expect(0, "fish parses the script");
    // And answers a completion with it loaded.
    let r = shell(
        "fish",
        &[
            "-c",
            &format!("source {}; complete -C 'ore resto'", fish.display()),
        ],
    )
    .expect(0, "fish completes");
    assert!(r.stdout.contains("restore"), "{r:?}");
}

#[test]
fn man_pages_are_written_for_every_command_and_read_by_man() {
    let d = scratch();
    let page = ore(&["man"]).expect(0, "man").stdout;
    assert!(page.contains(".TH ore 1"), "{page:.300}");
    let dir = d.path().join("man1");
    let listed = ore(&["man", "--dir", dir.to_str().expect("utf-8")]).expect(0, "man --dir");
    for name in ["ore.1", "ore-snapshot.1", "ore-restore.1", "ore-key-add.1"] {
        assert!(
            dir.join(name).is_file(),
            "{name} written: {}",
            listed.stdout
        );
        assert!(
            listed.stdout.contains(name),
            "{name} listed: {}",
            listed.stdout
        );
    }
    let shown = Run::of(
        Command::new("man")
            .arg("-l")
            .arg(dir.join("ore-snapshot.1"))
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .output()
            .expect("man must be installed for this test (apt-get install man-db)"),
    )
    .expect(0, "man shows the page");
    assert!(
        shown.stdout.contains("ore-snapshot") && shown.stdout.contains("--exclude"),
        "{shown:?}"
    );
}

#[test]
fn completions_and_man_pages_need_no_config_archive_or_passphrase() {
    // A broken config file must not stop a user from setting up their shell.
    let d = scratch();
    let config = d.path().join("broken.toml");
    std::fs::write(&config, "this is = = not toml").expect("write");
    let r = Run::of(
        Command::new(ore_tests::bin("ore"))
            .args(["completions", "bash"])
            .env("ORE_CONFIG", &config)
            .output()
            .expect("ore runs"),
    )
    .expect(0, "completions with a broken config");
    assert!(r.stdout.contains("_ore"));
}

#[test]
fn the_passphrase_comes_from_ore_passphrase_file_or_ore_passphrase_command() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    let file = d.path().join("pass");
    std::fs::write(&file, "correct horse\n").expect("write");
    let with = |k: &str, v: &str, args: &[&str]| {
        Run::of(
            o.cmd(args)
                .env_remove("ORE_PASSPHRASE")
                .env(k, v)
                .output()
                .expect("ore runs"),
        )
    };
    with(
        "ORE_PASSPHRASE_FILE",
        file.to_str().expect("utf-8"),
        &["init"],
    )
    .expect(0, "init");
    let src = d.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("a"), b"x").expect("write");
    let src = src.to_str().expect("utf-8");
    with(
        "ORE_PASSPHRASE_COMMAND",
        "echo 'correct horse'",
        &["snapshot", "t", src],
    )
    .expect(0, "snapshot with the command's passphrase");
    // A wrong one is refused, and a command that fails fails the run, naming it.
    let r = with("ORE_PASSPHRASE_COMMAND", "echo wrong", &["tags"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("passphrase"), "{r:?}");
    let r = with("ORE_PASSPHRASE_COMMAND", "exit 7", &["tags"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("exit 7") || r.stderr.contains("exit status: 7"),
        "{r:?}"
    );
    // The flag wins over the variable.
    let r = Run::of(
        o.cmd(&["--passphrase-file", file.to_str().expect("utf-8"), "tags"])
            .env_remove("ORE_PASSPHRASE")
            .env("ORE_PASSPHRASE_COMMAND", "echo wrong")
            .output()
            .expect("ore runs"),
    )
    .expect(0, "tags with the file named on the command line");
    assert!(r.stdout.contains('t'), "{r:?}");
}

#[test]
fn ore_config_names_the_config_file_and_a_missing_one_is_an_error_naming_it() {
    let d = scratch();
    let arch = d.path().join("arch");
    let o = Ore::new(arch.display().to_string());
    o.run(&["init"]).expect(0, "init");
    let config = d.path().join("elsewhere.toml");
    std::fs::write(
        &config,
        format!("archive = {:?}\n", arch.display().to_string()),
    )
    .expect("write");
    let tags = |config: &std::path::Path| {
        Run::of(
            Command::new(ore_tests::bin("ore"))
                .arg("tags")
                .env("ORE_CONFIG", config)
                .env("ORE_PASSPHRASE", &o.passphrase)
                .env("XDG_CACHE_HOME", &o.cache)
                .env_remove("ORE_ARCHIVE")
                .output()
                .expect("ore runs"),
        )
    };
    tags(&config).expect(0, "the archive from the file ORE_CONFIG names");
    let missing = d.path().join("missing.toml");
    let r = tags(&missing);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("missing.toml"), "{r:?}");
}
