//! Issue 22, finding 2: an admin command that finds damage exits non-zero and carries it in
//! its JSON's `problems` array (PROTOCOL.md §6, "admin"); one that finds none, or only
//! informs, exits 0. Every backend program, through the real binaries, on damaged archives.

use ore_tests::ore::{scratch, Ore, Run};
use ore_tests::{bin, quote, shell_quote};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `ore-admin ID WORDS... [--json]`.
fn admin(id: &str, words: &[&str], json: bool) -> Run {
    let mut c = Command::new(bin("ore-admin"));
    c.arg(id).args(words).stdin(Stdio::null());
    if json {
        c.arg("--json");
    }
    Run::of(c.output().expect("ore-admin runs"))
}

/// `ore-admin ID` reading `script` as its prompt's commands.
fn prompt(id: &str, script: &str) -> Run {
    let mut child = Command::new(bin("ore-admin"))
        .arg(id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ore-admin runs");
    let mut input = child.stdin.take().expect("its standard input");
    input
        .write_all(script.as_bytes())
        .expect("the script is written");
    drop(input);
    Run::of(child.wait_with_output().expect("ore-admin ends"))
}

/// The `problems` of a `--json` answer; panics when the answer has no such array.
fn problems(r: &Run) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", r.stdout, r.stderr));
    let Some(list) = v["problems"].as_array() else {
        panic!("no problems array in {v}");
    };
    list.iter()
        .map(|p| p.as_str().expect("a problem is a string").to_string())
        .collect()
}

/// A source tree of a few files of incompressible bytes (blocks worth damaging).
fn tree(root: &Path) {
    std::fs::create_dir_all(root).expect("source dir");
    for i in 0..6u8 {
        let mut data = vec![0u8; 40_000];
        blake3::Hasher::new()
            .update(&[i])
            .finalize_xof()
            .fill(&mut data);
        std::fs::write(root.join(format!("f{i}")), data).expect("source file");
    }
}

/// Flips a byte in the middle of the payload of the largest block record in `dir`'s first log.
fn damage_a_block_record(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("archive dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("log-"))
        })
        .collect();
    logs.sort();
    let log = logs.first().expect("a log").clone();
    let mut b = std::fs::read(&log).expect("the log");
    let (mut at, mut best) = (0, (0, 0));
    while at + 49 <= b.len() && b[at..at + 4] == *b"OSL\x02" {
        let len = u32::from_le_bytes(b[at + 5..at + 9].try_into().expect("4 bytes")) as usize;
        if b[at + 4] == 1 && len > best.1 {
            best = (at, len);
        }
        at += 49 + len;
    }
    assert!(
        best.1 > 1000,
        "a block record to damage in {}",
        log.display()
    );
    b[best.0 + 49 + best.1 / 2] ^= 0xff;
    std::fs::write(&log, b).expect("the damaged log");
    log
}

#[test]
fn a_splitlog_verify_that_finds_a_damaged_record_exits_1_and_lists_it_in_its_json() {
    let d = scratch();
    let dir = d.path().join("archive");
    let id = format!("backend-splitlog {}", quote(&dir));
    let o = Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    tree(&d.path().join("src"));
    o.snapshot("t", &d.path().join("src"));

    let clean = admin(&id, &["verify"], true).expect(0, "verify of a sound archive");
    assert_eq!(problems(&clean), Vec::<String>::new());

    let log = damage_a_block_record(&dir);
    let found = admin(&id, &["verify"], true).expect(1, "verify of a damaged archive");
    let list = problems(&found);
    assert!(!list.is_empty(), "{}", found.stdout);
    assert!(
        list.iter()
            .any(|p| p.contains("log") && p.contains("offset")),
        "each problem names its log and offset: {list:?} ({})",
        log.display()
    );
    // The text answer exits 1 as well, and lists them.
    let text = admin(&id, &["verify"], false).expect(1, "verify, text");
    assert!(text.stdout.contains("problem"), "{}", text.stdout);
    // Informing commands still exit 0 on the damaged archive.
    admin(&id, &["stats"], true).expect(0, "stats only informs");
    admin(&id, &["info"], true).expect(0, "info only informs");
}

#[test]
fn the_admin_prompt_exits_1_at_the_end_when_a_command_reported_damage() {
    let d = scratch();
    let dir = d.path().join("archive");
    let id = format!("backend-splitlog {}", quote(&dir));
    let o = Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    tree(&d.path().join("src"));
    o.snapshot("t", &d.path().join("src"));
    prompt(&id, "verify\nstats\n").expect(0, "a prompt on a sound archive");

    damage_a_block_record(&dir);
    let r = prompt(&id, "verify\nstats\ninfo\n").expect(1, "a prompt that found damage");
    assert!(r.stderr.contains("reported damage"), "{}", r.stderr);
    // Commands after the one that found damage still ran.
    assert!(
        r.stdout.contains("backend-splitlog archive"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_cache_passes_its_inner_archives_verify_problems_through_and_exits_1() {
    let d = scratch();
    let inner = d.path().join("inner");
    let inner_id = format!("backend-splitlog {}", quote(&inner));
    let id = format!(
        "backend-cache {} {}",
        quote(&d.path().join("cache.db")),
        shell_quote(&inner_id)
    );
    let o = Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    tree(&d.path().join("src"));
    o.snapshot("t", &d.path().join("src"));
    assert_eq!(
        problems(&admin(&id, &["verify"], true).expect(0, "sound")),
        Vec::<String>::new()
    );
    damage_a_block_record(&inner);
    let r = admin(&id, &["verify"], true).expect(1, "verify through the cache");
    assert!(!problems(&r).is_empty(), "{}", r.stdout);
}

#[test]
fn a_block_deleted_behind_a_caches_back_is_found_by_check_which_exits_1_and_forgets_it() {
    let d = scratch();
    let inner = d.path().join("inner");
    let id = format!(
        "backend-cache {} {}",
        quote(&d.path().join("cache.db")),
        shell_quote(&format!("backend-fs {}", quote(&inner)))
    );
    let o = Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    tree(&d.path().join("src"));
    o.snapshot("t", &d.path().join("src"));
    let clean = admin(&id, &["check"], true).expect(0, "check of a sound cache");
    assert_eq!(problems(&clean), Vec::<String>::new());

    let victim = block_files(&inner).pop().expect("a block file");
    std::fs::remove_file(&victim).expect("delete a block behind the cache");
    let key = victim
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let r = admin(&id, &["check"], true).expect(1, "check after the deletion");
    let list = problems(&r);
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(
        list[0].contains(&key),
        "the problem names the block: {list:?}"
    );
    // Forgotten: the next check is clean (a snapshot asks the archive about it again).
    admin(&id, &["check"], true).expect(0, "check after forgetting");
}

/// Every block file of a backend-fs archive.
fn block_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("blocks")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("blocks dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_backend_fs_verify_finds_a_deleted_reflog_and_a_misplaced_block_and_exits_1() {
    let d = scratch();
    let dir = d.path().join("fs");
    let id = format!("backend-fs {}", quote(&dir));
    let o = Ore::fs(&dir);
    tree(&d.path().join("src"));
    o.snapshot("t", &d.path().join("src"));
    let clean = admin(&id, &["verify"], true).expect(0, "verify of a sound archive");
    assert_eq!(problems(&clean), Vec::<String>::new());

    std::fs::remove_file(dir.join("tags/ore:reflog")).expect("delete the reflog's tag file");
    let r = admin(&id, &["verify"], true).expect(1, "verify without the reflog");
    let list = problems(&r);
    assert!(
        list.iter().any(|p| p.contains("tag ore:reflog is missing")),
        "{list:?}"
    );

    // A block file moved out of its own directory cannot be found by `get`.
    let victim = block_files(&dir).pop().expect("a block file");
    let elsewhere = dir.join("blocks/00/00");
    std::fs::create_dir_all(&elsewhere).expect("another fan-out directory");
    let moved = elsewhere.join(victim.file_name().expect("name"));
    std::fs::rename(&victim, &moved).expect("move a block");
    let r = admin(&id, &["verify"], false).expect(1, "verify, text");
    assert!(
        r.stdout.contains(&moved.display().to_string()) && r.stdout.contains("own directory"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_backend_fs_tag_removed_through_the_backend_stays_clean_after_its_history_expires() {
    let d = scratch();
    let dir = d.path().join("fs");
    let id = format!("backend-fs {}", quote(&dir));
    {
        let b = ore::core::archive::open_single(&id).expect("open backend-fs");
        b.set_tag("gone", None, b"v1").expect("set");
    }
    // A value the tag had long ago, which the expiry below forgets.
    let hist = dir.join("tag-history/gone");
    let newer = std::fs::read_to_string(&hist).expect("its history");
    std::fs::write(&hist, format!("1000000000 set 7630\n{newer}")).expect("an old value");
    {
        let b = ore::core::archive::open_single(&id).expect("open backend-fs");
        b.remove_tag("gone", None).expect("remove");
    }
    admin(&id, &["expire-tag-history", "3600"], true).expect(0, "expire the old value");
    let r = admin(&id, &["verify"], true).expect(0, "a removed tag is not a missing one");
    assert_eq!(problems(&r), Vec::<String>::new());
}

#[test]
fn a_replicated_scrub_that_repairs_a_damaged_copy_exits_1_and_the_next_scrub_exits_0() {
    let d = scratch();
    let dirs: Vec<PathBuf> = (0..2).map(|i| d.path().join(format!("m{i}"))).collect();
    let id = format!("backend-replicated {}", quote(&d.path().join("state.db")));
    for m in &dirs {
        let member = format!("backend-splitlog {}", quote(m));
        admin(&id, &["add", &member, "--trust", "50"], true).expect(0, "add a member");
    }
    let o = Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    tree(&d.path().join("src"));
    o.snapshot("t", &d.path().join("src"));
    let clean = admin(&id, &["scrub", "--read"], true).expect(0, "scrub of a sound archive");
    assert_eq!(problems(&clean), Vec::<String>::new());

    damage_a_block_record(&dirs[0]);
    let r = admin(&id, &["scrub", "--read"], true).expect(1, "scrub that finds damage");
    let list = problems(&r);
    assert!(
        list.iter()
            .any(|p| p.contains("is damaged on member 1") && p.contains("repaired")),
        "{list:?}"
    );
    // Repaired: the next scrub finds nothing, and stats (which only informs) exits 0.
    let again = admin(&id, &["scrub", "--read"], true).expect(0, "the next scrub");
    assert_eq!(problems(&again), Vec::<String>::new());
    admin(&id, &["stats"], true).expect(0, "stats only informs");
    admin(&id, &["members"], true).expect(0, "members only informs");
}

#[test]
fn a_replicated_rereplicate_after_a_lost_member_names_the_lost_copies_and_exits_1() {
    let d = scratch();
    let dirs: Vec<PathBuf> = (0..3).map(|i| d.path().join(format!("m{i}"))).collect();
    let id = format!("backend-replicated {}", quote(&d.path().join("state.db")));
    for m in &dirs {
        let member = format!("backend-splitlog {}", quote(m));
        admin(&id, &["add", &member, "--trust", "50"], true).expect(0, "add a member");
    }
    let o = Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    tree(&d.path().join("src"));
    o.snapshot("t", &d.path().join("src"));
    std::fs::remove_dir_all(&dirs[0]).expect("lose a member's directory");
    let r = admin(&id, &["rereplicate"], true).expect(1, "rereplicate after a loss");
    let list = problems(&r);
    assert!(
        list.iter()
            .any(|p| p.contains("member 1") && p.contains("does not have the copy")),
        "{list:?}"
    );
    let again = admin(&id, &["rereplicate"], true).expect(0, "the next rereplicate");
    assert_eq!(problems(&again), Vec::<String>::new());
}

#[test]
fn informing_admin_commands_of_every_backend_exit_0_without_problems() {
    let d = scratch();
    let mut ids: Vec<String> = ore_tests::programs::every_backend_program(d.path())
        .into_iter()
        .map(|(full, _)| full)
        .collect();
    ids.push(format!(
        "backend-splitlog {}",
        quote(&d.path().join("splitlog"))
    ));
    // Only `ore init` creates an archive: before it, admin commands find none.
    for id in &ids {
        Ore::new(id.clone())
            .run(&["init", "--no-encryption"])
            .expect(0, &format!("init {id}"));
    }
    ids.push(quote(&bin("backend-memory")));
    for id in &ids {
        for c in ["help", "info", "stats"] {
            let r = admin(id, &[c], true).expect(0, &format!("{id}: {c}"));
            assert!(
                !r.stdout.contains("\"problems\""),
                "{id}: {c} only informs: {}",
                r.stdout
            );
        }
    }
}
