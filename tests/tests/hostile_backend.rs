//! A backend that breaks the protocol, on purpose or by a bug: a welcome with a version that
//! was not offered, a program that only echoes, a listing page that promises more and holds
//! nothing, log frames for ever, a frame over the limit, stderr with no end of line. `ore`
//! must refuse each at once with an error that says what went wrong, never wait for ever, and
//! never hold more memory than a line. The backends are real programs (`hostile-backend`, a
//! shell script), started by the real `ore`.

use ore_tests::measure::run_measured;
use ore_tests::ore::{scratch, Ore};
use ore_tests::sshd::Sshd;
use ore_tests::{bin, quote, shell_quote};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn hostile(args: &str) -> String {
    format!("{} {args}", quote(&bin("hostile-backend")))
}

#[test]
fn a_welcome_with_a_version_that_was_not_offered_is_refused_naming_both() {
    let r = Ore::new(hostile("version 7"))
        .run(&["tags"])
        .expect(1, "tags");
    assert!(
        r.stderr.contains("version 7") && r.stderr.contains("offered versions 1 to 1"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_program_that_echoes_what_it_is_sent_is_said_not_to_speak_the_protocol() {
    let r = Ore::new("cat").run(&["tags"]).expect(1, "tags");
    assert!(
        r.stderr.contains("archive `cat`")
            && r.stderr.contains("does not speak the Ore protocol")
            && !r.stderr.contains("unknown answer kind"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_listing_page_that_promises_more_and_holds_nothing_is_a_protocol_error() {
    let d = scratch();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f"), b"some bytes").unwrap();
    let store = d.path().join("store");
    let fs = Ore::fs(&store);
    fs.snapshot("t", &data);
    let inner = format!("{} {}", quote(&bin("backend-fs")), quote(&store));
    let mut liar = Ore::new(hostile(&format!("empty-page {}", shell_quote(&inner))));
    liar.passphrase = fs.passphrase.clone();
    let r = liar.run(&["gc", "--dry-run"]).expect(1, "gc --dry-run");
    assert!(
        r.stderr
            .contains("listing page said more keys follow but held none"),
        "{}",
        r.stderr
    );
    // Nothing was lost: the archive is whole.
    fs.run(&["check"]).expect(0, "check");
}

#[test]
fn a_backend_that_only_sends_log_frames_is_given_up_after_the_timeout() {
    let o = Ore::new(hostile("endless-logs"));
    let mut cmd = o.cmd(&["--timeout", "2", "tags"]);
    cmd.env("ORE_DEBUG", "");
    let m = run_measured(cmd, Duration::from_secs(30));
    assert_eq!(m.run.code, 1, "{}", m.run.stderr);
    assert!(m.took < Duration::from_secs(15), "took {:?}", m.took);
    assert!(
        m.run.stderr.contains("sent nothing for 2 s"),
        "{}",
        m.run.stderr
    );
}

#[test]
fn a_megabyte_log_message_or_error_from_a_backend_is_cut_not_shown_whole() {
    let r = Ore::new(hostile("long-messages"))
        .run(&["tags"])
        .expect(1, "tags");
    assert!(
        r.stderr.len() < 20_000,
        "{} bytes of stderr",
        r.stderr.len()
    );
    assert_eq!(
        r.stderr
            .matches("[cut: 995904 more bytes left out]")
            .count(),
        2,
        "{}",
        r.stderr
    );
}

#[test]
fn a_backend_that_sends_a_frame_over_the_limit_is_stopped_at_once() {
    let o = Ore::new(hostile("over-limit"));
    let m = run_measured(o.cmd(&["tags"]), Duration::from_secs(60));
    assert_eq!(m.run.code, 1, "{}", m.run.stderr);
    assert!(
        m.run.stderr.contains("more than the limit"),
        "{}",
        m.run.stderr
    );
    assert!(m.took < Duration::from_secs(10), "took {:?}", m.took);
}

#[test]
fn a_backend_writing_stderr_with_no_end_of_line_costs_no_more_than_a_line() {
    let d = scratch();
    let store = d.path().join("store");
    Ore::fs(&store);
    // 300 MB of stderr in one line, then a real backend.
    let script = format!(
        "head -c 300000000 /dev/zero | tr '\\0' x >&2; exec {} {}",
        quote(&bin("backend-fs")),
        quote(&store)
    );
    let o = Ore::new(format!("sh -c {}", shell_quote(&script)));
    let m = run_measured(o.cmd(&["tags"]), Duration::from_secs(120));
    assert_eq!(
        m.run.code,
        0,
        "{}",
        &m.run.stderr[..m.run.stderr.len().min(2000)]
    );
    assert!(m.peak_kib < 100 << 10, "peak {} KiB", m.peak_kib);
    assert!(
        m.run.stderr.len() < 20_000,
        "{} bytes of stderr",
        m.run.stderr.len()
    );
    assert!(
        m.run
            .stderr
            .contains("[cut: the line goes on past 4096 bytes]")
            && m.run
                .stderr
                .contains("[cut: 299995904 more bytes of that line were left out]"),
        "{}",
        &m.run.stderr[m.run.stderr.len().saturating_sub(500)..]
    );
}

#[test]
fn a_remote_host_writing_stderr_with_no_end_of_line_through_ssh_costs_no_more_than_a_line() {
    let sshd = Sshd::start(None);
    let d = scratch();
    let store = d.path().join("store");
    Ore::fs(&store);
    let script = d.path().join("flood.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nhead -c 200000000 /dev/zero | tr '\\0' x >&2\nexec {} {}\n",
            quote(&bin("backend-fs")),
            quote(&store)
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = Ore::new(sshd.identifier(&quote(&script)));
    let m = run_measured(o.cmd(&["tags"]), Duration::from_secs(120));
    let tail = &m.run.stderr[m.run.stderr.len().saturating_sub(500)..];
    assert_eq!(m.run.code, 0, "{tail}");
    assert!(m.peak_kib < 100 << 10, "peak {} KiB", m.peak_kib);
    assert!(
        m.run.stderr.len() < 20_000,
        "{} bytes of stderr",
        m.run.stderr.len()
    );
    assert!(
        m.run
            .stderr
            .contains("ssh: [cut: 199995904 more bytes of that line were left out]"),
        "{tail}"
    );
}

/// A passphrase command (a password manager, a script) is a program like a backend: a
/// passphrase in ore's environment, here the new one of `ore key add`, is not handed to it.
#[test]
fn passphrases_are_not_passed_on_to_passphrase_commands() {
    let (o, d) = Ore::local();
    let env = d.path().join("env");
    let command = format!("env > {}; echo {}", quote(&env), shell_quote(&o.passphrase));
    let mut cmd = o.cmd(&["--passphrase-command", &command, "key", "add"]);
    cmd.env_remove("ORE_PASSPHRASE")
        .env("ORE_NEW_PASSPHRASE", "another secret");
    ore_tests::ore::Run::of(cmd.output().unwrap()).expect(0, "key add");
    let seen = std::fs::read_to_string(&env).unwrap();
    assert!(
        seen.contains("XDG_CACHE_HOME="),
        "the command saw no environment: {seen}"
    );
    assert!(!seen.contains("ORE_NEW_PASSPHRASE"), "{seen}");
    assert!(!seen.contains("another secret"), "{seen}");
}

#[test]
fn passphrases_are_not_passed_on_to_backend_programs() {
    let d = scratch();
    let store = d.path().join("store");
    let env = d.path().join("env");
    let script = format!(
        "env > {}; exec {} {}",
        quote(&env),
        quote(&bin("backend-fs")),
        quote(&store)
    );
    let o = Ore::new(format!("sh -c {}", shell_quote(&script)));
    let mut cmd = o.cmd(&["init"]);
    // Where a passphrase comes from is kept from it too: a command can hold the secret itself.
    cmd.env("ORE_NEW_PASSPHRASE", "another secret").env(
        "ORE_PASSPHRASE_COMMAND",
        format!("echo {}", shell_quote(&o.passphrase)),
    );
    ore_tests::ore::Run::of(cmd.output().unwrap()).expect(0, "init");
    let seen = std::fs::read_to_string(&env).unwrap();
    assert!(
        seen.contains("XDG_CACHE_HOME="),
        "the script saw no environment: {seen}"
    );
    assert!(!seen.contains("ORE_PASSPHRASE"), "{seen}");
    assert!(
        !seen.contains(&o.passphrase) && !seen.contains("another secret"),
        "{seen}"
    );
}
