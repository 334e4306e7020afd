//! Archive tags when another run changes the tag between the moment a run reads it and the
//! moment it moves it, and what `ore check` and `ore reset` make of a tag's head.
//!
//! The races are made exact, not hoped for: the run under test works in this process, over
//! the real archive seen through [`Hooked`], which runs the other `ore` process to its end
//! just before the first compare-and-swap of the tag. So the run under test always loses
//! the race and must work its changes out again from the head the other run stored.

use ore::core::archival::{parse_set, Value};
use ore_tests::archival::{found, import, props_json, tree};
use ore_tests::ore::Ore;
use protocol::{AdminOutput, Backend, BackendInfo, CasOutcome, Key, Stats};
use std::sync::{Arc, Mutex};

type Hook = Box<dyn FnOnce() + Send>;

/// The archive's backend, running `hook` once: just before the first move of `tag`, or
/// before the first put larger than `put_over` bytes.
struct Hooked {
    inner: Arc<dyn Backend>,
    tag: Option<String>,
    put_over: Option<usize>,
    hook: Mutex<Option<Hook>>,
}

impl Hooked {
    fn fire(&self) {
        let hook = self.hook.lock().expect("hook").take();
        if let Some(h) = hook {
            h();
        }
    }
}

impl Backend for Hooked {
    fn info(&self) -> BackendInfo {
        self.inner.info()
    }
    fn put(&self, key: Key, data: &[u8]) -> protocol::Result<()> {
        if self.put_over.is_some_and(|n| data.len() > n) {
            self.fire();
        }
        self.inner.put(key, data)
    }
    fn get(&self, key: Key) -> protocol::Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn exists(&self, keys: &[Key]) -> protocol::Result<Vec<bool>> {
        self.inner.exists(keys)
    }
    fn remove(&self, keys: &[Key]) -> protocol::Result<()> {
        self.inner.remove(keys)
    }
    fn list(&self, after: Option<Key>, limit: u32) -> protocol::Result<(Vec<Key>, bool)> {
        self.inner.list(after, limit)
    }
    fn get_tag(&self, name: &str) -> protocol::Result<Option<Vec<u8>>> {
        self.inner.get_tag(name)
    }
    fn set_tag(
        &self,
        name: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> protocol::Result<CasOutcome> {
        if self.tag.as_deref() == Some(name) {
            self.fire();
        }
        self.inner.set_tag(name, expected, value)
    }
    fn remove_tag(&self, name: &str, expected: Option<&[u8]>) -> protocol::Result<CasOutcome> {
        self.inner.remove_tag(name, expected)
    }
    fn list_tags(&self) -> protocol::Result<Vec<(String, Vec<u8>)>> {
        self.inner.list_tags()
    }
    fn flush(&self) -> protocol::Result<()> {
        self.inner.flush()
    }
    fn stats(&self) -> protocol::Result<Stats> {
        self.inner.stats()
    }
    fn admin(&self, command: &str, args: &[String]) -> protocol::Result<AdminOutput> {
        self.inner.admin(command, args)
    }
}

/// The archive of `ore`, opened in this process through a backend that runs `ore ARGS`
/// (the other run) to its end just before the first move of `tag`.
fn losing_to(ore: &Ore, tag: &str, args: &[&str]) -> ore::Repo {
    let other = ore.cmd(args);
    open(ore, Some(tag.to_string()), None, other)
}

fn open(
    ore: &Ore,
    tag: Option<String>,
    put_over: Option<usize>,
    mut other: std::process::Command,
) -> ore::Repo {
    let inner = ore::core::archive::open_existing(&ore.archive).expect("archive");
    let hook: Hook = Box::new(move || {
        let out = other.output().expect("the other run starts");
        assert!(
            out.status.success(),
            "the other run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let backend = Arc::new(Hooked {
        inner,
        tag,
        put_over,
        hook: Mutex::new(Some(hook)),
    });
    open_over(ore, backend)
}

/// The archive of `ore`, opened in this process through `backend`.
fn open_over(ore: &Ore, backend: Arc<dyn Backend>) -> ore::Repo {
    let pass = ore.passphrase.clone();
    ore::Repo::open(backend, &ore.archive, &|_| Ok(pass.as_bytes().to_vec())).expect("open")
}

/// A `backend-fs` archive, which processes share (a splitlog archive is served by the one
/// process that holds its lock, and the other run would wait for this one).
fn archive() -> (Ore, tempfile::TempDir) {
    let d = ore_tests::ore::scratch();
    let dir = d.path().join("archive");
    std::fs::create_dir(&dir).expect("mkdir");
    (Ore::fs(&dir), d)
}

/// What `ore tags` says of archive tag `tag`.
fn counted(ore: &Ore, tag: &str) -> String {
    let tags = ore.run(&["tags"]).expect(0, "tags").stdout;
    let line = tags
        .lines()
        .find(|l| l.starts_with(tag))
        .unwrap_or_else(|| panic!("no {tag} in {tags}"));
    format!("{line}\n")
}

#[test]
fn a_new_version_racing_a_forget_of_its_object_files_nothing_and_says_so() {
    let (ore, d) = archive();
    tree(&d.path().join("a"), &[("f", "alpha")]);
    let a = import(
        &ore,
        &[
            "work",
            d.path().join("a").to_str().unwrap(),
            "--set",
            "title=Alpha",
        ],
    );
    let repo = losing_to(&ore, "work", &["forget", "work", "--where", "title=alpha"]);
    let set = [parse_set("comment=v2").expect("a setting")];
    let err = ore::commands::import::reprop(&repo, &a, &set)
        .expect_err("its object was forgotten meanwhile")
        .to_string();
    assert!(err.contains("another run forgot it meanwhile"), "{err}");
    assert!(
        found(&ore, "work", "title=alpha").is_empty(),
        "the forgotten object did not come back"
    );
    assert!(counted(&ore, "work").contains("0 object(s)\n"));
    ore.run(&["check"]).expect(0, "check");
}

#[test]
fn a_new_version_racing_another_new_version_of_the_same_object_files_nothing_and_says_so() {
    let (ore, d) = archive();
    tree(&d.path().join("a"), &[("f", "alpha")]);
    let a = import(
        &ore,
        &[
            "work",
            d.path().join("a").to_str().unwrap(),
            "--set",
            "title=Alpha",
        ],
    );
    let repo = losing_to(&ore, "work", &["props", &a, "--set", "comment=theirs"]);
    let set = [parse_set("comment=mine").expect("a setting")];
    let err = ore::commands::import::reprop(&repo, &a, &set)
        .expect_err("the object was replaced meanwhile")
        .to_string();
    assert!(
        err.contains("was replaced by another run meanwhile"),
        "{err}"
    );
    // One current version, theirs: the history did not fork.
    let current = found(&ore, "work", "title=alpha");
    assert_eq!(current.len(), 1, "{current:?}");
    assert_eq!(props_json(&ore, &current[0])["props"]["comment"], "theirs");
    assert!(err.contains(&current[0]), "names the newest version: {err}");
    assert!(
        counted(&ore, "work").contains("1 object(s) (+1 replaced)"),
        "{}",
        counted(&ore, "work")
    );
    ore.run(&["check"]).expect(0, "check");
}

#[test]
fn a_forget_racing_the_same_forget_keeps_the_head_s_counts_true() {
    let (ore, d) = archive();
    for (name, tags) in [
        ("keep", "tags=keep"),
        ("s1", "tags=scratch"),
        ("s2", "tags=scratch"),
    ] {
        tree(&d.path().join(name), &[("f", name)]);
        import(
            &ore,
            &["work", d.path().join(name).to_str().unwrap(), "--set", tags],
        );
    }
    let repo = losing_to(&ore, "work", &["forget", "work", "--where", "tags:scratch"]);
    let query = ore::core::query::parse("tags:scratch").expect("query");
    ore::commands::import::forget_where(&repo, "work", &query, false).expect("forget");
    assert_eq!(found(&ore, "work", "tags:keep").len(), 1);
    assert!(
        counted(&ore, "work").contains("1 object(s)\n"),
        "{}",
        counted(&ore, "work")
    );
    ore.run(&["check"]).expect(0, "check");
}

#[test]
fn an_import_racing_another_import_keeps_both_and_counts_both() {
    let (ore, d) = archive();
    tree(&d.path().join("a"), &[("f", "alpha")]);
    tree(&d.path().join("b"), &[("f", "beta")]);
    tree(&d.path().join("c"), &[("f", "gamma")]);
    import(&ore, &["work", d.path().join("a").to_str().unwrap()]);
    let b = d.path().join("b");
    let repo = losing_to(&ore, "work", &["import", "work", b.to_str().unwrap()]);
    // Another path than the tag holds: the same one is not filed twice (`import::again`).
    let opts = ore::commands::import::ImportOptions {
        tag: "work".into(),
        paths: vec![d.path().join("c")],
        extract: true,
        ..Default::default()
    };
    let done = ore::commands::import::import(&repo, &opts).expect("import");
    assert!(done.raced, "the other run moved the tag first");
    for name in ["a", "b", "c"] {
        assert_eq!(
            found(&ore, "work", &format!("name={name}")).len(),
            1,
            "{name}"
        );
    }
    assert!(
        counted(&ore, "work").contains("3 object(s)\n"),
        "{}",
        counted(&ore, "work")
    );
    ore.run(&["check"]).expect(0, "check");
}

#[test]
fn an_import_giving_a_new_key_another_type_than_a_racing_import_gave_it_files_nothing() {
    let (ore, d) = archive();
    tree(&d.path().join("a"), &[("f", "alpha")]);
    tree(&d.path().join("b"), &[("f", "beta")]);
    import(&ore, &["work", d.path().join("a").to_str().unwrap()]);
    let b = d.path().join("b");
    let repo = losing_to(
        &ore,
        "work",
        &[
            "import",
            "work",
            b.to_str().unwrap(),
            "--set",
            "rating:int=4",
        ],
    );
    let opts = ore::commands::import::ImportOptions {
        tag: "work".into(),
        paths: vec![d.path().join("a")],
        set: vec![parse_set("rating:text=great").expect("a setting")],
        ..Default::default()
    };
    let err = ore::commands::import::import(&repo, &opts)
        .expect_err("rating became an integer meanwhile")
        .to_string();
    assert!(err.contains("`rating` is an int property"), "{err}");
    assert!(err.contains("nothing was filed"), "{err}");
    assert_eq!(found(&ore, "work", "rating>=4").len(), 1);
    // The tag knows rating as an integer now: a text value of it is refused in a query too.
    let r = ore
        .run(&["search", "work", "rating=great"])
        .expect(1, "a text rating");
    assert!(r.stderr.contains("not an integer"), "{}", r.stderr);
    assert!(
        counted(&ore, "work").contains("2 object(s)\n"),
        "{}",
        counted(&ore, "work")
    );
    ore.run(&["check"]).expect(0, "check");
}

#[test]
fn a_file_changed_while_it_is_imported_gives_no_properties_from_contents_the_archive_does_not_hold()
{
    let (ore, d) = archive();
    let photo = d.path().join("photo.jpg");
    let padded = |camera: &str, extra: usize| {
        let mut b =
            ore_tests::media::jpeg("2019:07:01 10:00:00", camera, "One", [1, 0, 0], [2, 0, 0]);
        b.extend(ore_tests::trees::bytes(7, (8 << 20) + extra));
        b
    };
    std::fs::write(&photo, padded("Stored", 0)).expect("write");
    // Once the photo's first chunk is on its way to the archive, another photo takes its name
    // (the import reads on from the file it opened).
    let (from, to) = (d.path().join("next.jpg"), photo.clone());
    std::fs::write(&from, padded("Replaced", 4096)).expect("write");
    let mut other = std::process::Command::new("mv");
    other.arg(&from).arg(&to);
    let repo = open(&ore, None, Some(256 << 10), other);
    let opts = ore::commands::import::ImportOptions {
        tag: "photos".into(),
        paths: vec![photo.clone()],
        extract: true,
        ..Default::default()
    };
    let done = ore::commands::import::import(&repo, &opts).expect("import");
    let said: Vec<&str> = done.warnings.iter().map(|w| w.message.as_str()).collect();
    assert!(
        said.iter()
            .any(|m| m.contains("changed while it was imported")),
        "{said:?}"
    );
    let (key, object) = &done.objects[0];
    assert_eq!(object.prop("camera"), None, "{:?}", object.props);
    assert_eq!(
        object.prop("size"),
        Some(&Value::Int(padded("Stored", 0).len() as i64))
    );
    // What is stored is the first photo.
    let out = d.path().join("out");
    ore.restore(&key.to_hex(), &out).expect(0, "restore");
    assert_eq!(
        std::fs::read(out.join("photo.jpg")).expect("restored"),
        padded("Stored", 0)
    );
}

#[test]
fn check_names_a_head_whose_counts_are_not_its_index_s() {
    let (ore, d) = archive();
    tree(&d.path().join("a"), &[("f", "alpha")]);
    import(&ore, &["work", d.path().join("a").to_str().unwrap()]);
    let repo = open_plain(&ore);
    let (old, mut head) = ore::core::objects::head_of(&repo, "work")
        .expect("head")
        .expect("an archive tag");
    head.objects += 5;
    let plain = ore::core::entry::encode(&head);
    let (new, _) = repo
        .put_block(ore::core::block::Kind::Head, &plain)
        .expect("put");
    assert!(repo.move_tag("work", Some(old), new, "test").expect("move"));
    let r = ore.run(&["check"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains("counts 6 objects (1 current), and its index holds 1 (1 current)"),
        "{said}"
    );
}

#[test]
fn reset_moves_an_archive_tag_only_to_one_of_its_own_earlier_heads() {
    let (ore, d) = archive();
    tree(&d.path().join("a"), &[("f", "alpha")]);
    tree(&d.path().join("b"), &[("f", "beta")]);
    import(&ore, &["work", d.path().join("a").to_str().unwrap()]);
    let repo = open_plain(&ore);
    let first = repo.tag("work").expect("tag").expect("work").to_hex();
    import(&ore, &["work", d.path().join("b").to_str().unwrap()]);
    let snap = ore.snapshot("home", &d.path().join("a"));
    // A snapshot is no target for an archive tag: its objects would be left to gc.
    let r = ore.run(&["reset", "work", &snap]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("work is an archive tag"), "{}", r.stderr);
    // Nor is an archive head one for a snapshot tag.
    let r = ore.run(&["reset", "home", &first[..12]]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("home is a snapshot tag"), "{}", r.stderr);
    // An earlier head of its own, by the key the reflog shows, undoes the second import.
    let log = ore.run(&["reflog", "work"]).expect(0, "reflog").stdout;
    assert!(log.contains(&first[..12]), "{log}");
    ore.run(&["reset", "work", &first[..12]]).expect(0, "reset");
    assert_eq!(found(&ore, "work", "name=a").len(), 1);
    assert!(found(&ore, "work", "name=b").is_empty());
    assert!(counted(&ore, "work").contains("1 object(s)\n"));
    ore.run(&["check"]).expect(0, "check");
}

fn open_plain(ore: &Ore) -> ore::Repo {
    open_over(
        ore,
        ore::core::archive::open_existing(&ore.archive).expect("archive"),
    )
}
