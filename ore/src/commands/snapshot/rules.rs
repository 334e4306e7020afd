//! What a snapshot leaves out: `--exclude` patterns, `.oreignore` files and config rules.
//!
//! `--exclude` patterns and `.oreignore` lines use gitignore syntax; an `.oreignore` applies to
//! its directory and everything below, the deepest file that matches a path decides, and a `!`
//! line re-includes what a shallower one excluded. An `--exclude` pattern written as an
//! absolute path below the snapshotted directory means that path, as a config `glob` does
//! (gitignore syntax alone would anchor it at the directory and silently match nothing). Config rules are small predicates over a
//! path and its metadata that can be combined with `not`, `and` and `or`.

use crate::core::error::{Error, Result};
use crate::core::fsys::Stat;
use crate::core::util::{parse_duration, parse_size};
use globset::{Glob, GlobMatcher};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

/// The name of per-directory ignore files.
pub const IGNORE_FILE: &str = ".oreignore";

/// A rule as written in the config file, e.g.
/// `{ and = [ { name = "target" }, { not = { modified_within = "30d" } } ] }`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// Glob over the whole path (`**` crosses directories).
    Glob(String),
    /// Glob over the last component only.
    Name(String),
    /// Regular files larger than this (`100M`, `2G`).
    LargerThan(String),
    /// Modified less than this long ago (`7d`, `12h`).
    ModifiedWithin(String),
    Not(Box<Rule>),
    And(Vec<Rule>),
    Or(Vec<Rule>),
}

/// A compiled rule.
#[derive(Clone, Debug)]
enum Matcher {
    Glob(GlobMatcher),
    Name(GlobMatcher),
    LargerThan(u64),
    ModifiedWithin(i64),
    Not(Box<Matcher>),
    And(Vec<Matcher>),
    Or(Vec<Matcher>),
}

fn glob(s: &str) -> Result<GlobMatcher> {
    Glob::new(s)
        .map(|g| g.compile_matcher())
        .map_err(|e| Error::Usage(format!("bad glob `{s}` in an exclude rule: {e}")))
}

fn empty(which: &str, matches: &str) -> Error {
    Error::Usage(format!(
        "an `{which}` rule with no rules inside (it would match {matches}); give it at least one"
    ))
}

impl Rule {
    fn compile(&self) -> Result<Matcher> {
        Ok(match self {
            Rule::Glob(g) => Matcher::Glob(glob(g)?),
            Rule::Name(g) => Matcher::Name(glob(g)?),
            Rule::LargerThan(s) => Matcher::LargerThan(
                parse_size(s).ok_or_else(|| Error::Usage(format!("bad size `{s}` in a larger_than rule")))?,
            ),
            Rule::ModifiedWithin(s) => Matcher::ModifiedWithin(
                parse_duration(s).ok_or_else(|| Error::Usage(format!("bad duration `{s}` in a modified_within rule (like 30s, 15m, 12h, 7d, 2w, 1y)")))?,
            ),
            Rule::Not(r) => Matcher::Not(Box::new(r.compile()?)),
            // An empty `and` holds for every path and an empty `or` for none: either is a
            // mistake (a rule list left empty), never what was meant.
            Rule::And(rs) if rs.is_empty() => return Err(empty("and", "every path")),
            Rule::Or(rs) if rs.is_empty() => return Err(empty("or", "no path")),
            Rule::And(rs) => Matcher::And(rs.iter().map(Rule::compile).collect::<Result<_>>()?),
            Rule::Or(rs) => Matcher::Or(rs.iter().map(Rule::compile).collect::<Result<_>>()?),
        })
    }
}

impl Matcher {
    fn matches(&self, path: &Path, md: &Stat, now: i64) -> bool {
        match self {
            Matcher::Glob(g) => g.is_match(path),
            Matcher::Name(g) => path.file_name().is_some_and(|n| g.is_match(n)),
            Matcher::LargerThan(n) => md.is_file() && md.size > *n,
            Matcher::ModifiedWithin(secs) => now - md.mtime.div_euclid(1_000_000_000) < *secs,
            Matcher::Not(m) => !m.matches(path, md, now),
            Matcher::And(ms) => ms.iter().all(|m| m.matches(path, md, now)),
            Matcher::Or(ms) => ms.iter().any(|m| m.matches(path, md, now)),
        }
    }
}

/// The fixed rules of one snapshot run.
#[derive(Debug)]
pub struct Rules {
    config: Vec<Matcher>,
    patterns: Vec<String>,
    now: i64,
}

impl Rules {
    /// Compiles `--exclude` patterns and config rules.
    pub fn new(patterns: &[String], config: &[Rule]) -> Result<Rules> {
        // Check the patterns now, so a typo is an error before anything is read.
        let mut b = GitignoreBuilder::new("/");
        for p in patterns {
            b.add_line(None, p)
                .map_err(|e| Error::Usage(format!("bad --exclude pattern `{p}`: {e}")))?;
        }
        b.build()
            .map_err(|e| Error::Usage(format!("bad --exclude pattern: {e}")))?;
        Ok(Rules {
            config: config
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    r.compile().map_err(|e| match e {
                        Error::Usage(m) => {
                            Error::Usage(format!("exclude rule {} in the config: {m}", i + 1))
                        }
                        other => other,
                    })
                })
                .collect::<Result<_>>()?,
            patterns: patterns.to_vec(),
            now: crate::core::util::now_ns() / 1_000_000_000,
        })
    }

    /// The `--exclude` patterns as an ignore list rooted at a snapshot path (absolute, as the
    /// snapshot resolves it). A pattern that is an absolute path below `root` is made relative
    /// to it first (see [`below_root`]).
    pub fn root_ignore(&self, root: &Path) -> Result<Gitignore> {
        let mut b = GitignoreBuilder::new(root);
        for p in &self.patterns {
            let below = below_root(p, root);
            b.add_line(None, below.as_deref().unwrap_or(p))
                .map_err(|e| Error::Usage(format!("bad --exclude pattern `{p}`: {e}")))?;
        }
        b.build()
            .map_err(|e| Error::Usage(format!("bad --exclude pattern: {e}")))
    }

    /// Whether a config rule excludes `path`.
    pub fn config_excludes(&self, path: &Path, md: &Stat) -> bool {
        self.config.iter().any(|m| m.matches(path, md, self.now))
    }

    /// Whether the entry at `path` is left out: by the ignore lists in force there (see
    /// [`ignores_in`]) or by a config rule.
    pub fn excludes(&self, ignores: &[Gitignore], path: &Path, md: &Stat) -> bool {
        ignored(ignores, path, md.is_dir()) || self.config_excludes(path, md)
    }
}

/// `pattern` anchored at `root` instead of at `/`, when it is an absolute path (or glob) below
/// `root`: its leading components match `root`'s, one by one (globs allowed, `**` not), and
/// more follow. So `--exclude /home/u/Documents` or `--exclude '/home/*/.cache'`, given while
/// snapshotting `/home/u`, become `/Documents` and `/.cache` — as a config `glob` would match
/// them — where gitignore syntax alone would look for `/home/u/home/u/Documents`. A leading
/// `/` that does not start with `root`'s path keeps its gitignore meaning: anchored at the
/// snapshot's root (`--exclude /target`). `None` when the pattern stays as it is.
fn below_root(pattern: &str, root: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let (negated, body) = match pattern.strip_prefix('!') {
        Some(rest) => ("!", rest),
        None => ("", pattern),
    };
    if !body.starts_with('/') || !root.is_absolute() {
        return None;
    }
    let parts: Vec<&str> = body.split('/').filter(|c| !c.is_empty()).collect();
    let dirs: Vec<&[u8]> = root
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.as_bytes()),
            _ => None,
        })
        .collect();
    if parts.len() <= dirs.len() {
        return None;
    }
    for (part, dir) in parts.iter().zip(&dirs) {
        let one = Glob::new(part).ok()?.compile_matcher();
        if part.contains("**") || !one.is_match(Path::new(std::ffi::OsStr::from_bytes(dir))) {
            return None;
        }
    }
    let slash = if body.ends_with('/') { "/" } else { "" };
    Some(format!(
        "{negated}/{}{slash}",
        parts[dirs.len()..].join("/")
    ))
}

/// The ignore lists in force inside directory `dir`, whose entries are `names`: its parent's,
/// `parent`, and its own `.oreignore` when it has one. An `.oreignore` that does not parse
/// counts for nothing, and its message is returned for a warning.
pub fn ignores_in(
    dir: &Path,
    names: &[Vec<u8>],
    parent: &Arc<Vec<Gitignore>>,
) -> (Arc<Vec<Gitignore>>, Option<String>) {
    if !names.iter().any(|n| n.as_slice() == IGNORE_FILE.as_bytes()) {
        return (parent.clone(), None);
    }
    let (own, bad) = match read_ignore_file(dir) {
        Ok(gi) => (gi, None),
        Err(msg) => (Gitignore::empty(), Some(msg)),
    };
    let mut lists = (**parent).clone();
    lists.push(own);
    (Arc::new(lists), bad)
}

/// Reads the `.oreignore` of `dir`. A file that does not parse becomes a warning message.
fn read_ignore_file(dir: &Path) -> std::result::Result<Gitignore, String> {
    let mut b = GitignoreBuilder::new(dir);
    if let Some(e) = b.add(dir.join(IGNORE_FILE)) {
        return Err(format!("{IGNORE_FILE}: {e}"));
    }
    b.build().map_err(|e| format!("{IGNORE_FILE}: {e}"))
}

/// Decides with a stack of ignore lists, deepest last: the deepest list that says anything
/// about `path` wins.
fn ignored(stack: &[Gitignore], path: &Path, is_dir: bool) -> bool {
    for gi in stack.iter().rev() {
        let m = gi.matched(path, is_dir);
        if m.is_ignore() {
            return true;
        }
        if m.is_whitelist() {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rules_parse_and_combine() {
        #[derive(Deserialize)]
        struct C {
            exclude: Vec<Rule>,
        }
        let c: C = toml::from_str(
            r#"exclude = [ { name = "*.tmp" }, { and = [ { name = "big*" }, { larger_than = "1k" } ] }, { not = { glob = "/keep/**" } } ]"#,
        )
        .unwrap();
        let r = Rules::new(&[], &c.exclude).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("bigsmall");
        std::fs::write(&small, b"x").unwrap();
        let big = dir.path().join("bigbig");
        std::fs::write(&big, vec![0u8; 2048]).unwrap();
        let md_small = crate::core::fsys::stat_path(&small, false).unwrap();
        let md_big = crate::core::fsys::stat_path(&big, false).unwrap();
        assert!(r.config_excludes(Path::new("/keep/a.tmp"), &md_small));
        assert!(!r.config_excludes(Path::new("/keep/bigsmall"), &md_small));
        assert!(r.config_excludes(Path::new("/keep/bigbig"), &md_big));
        assert!(r.config_excludes(Path::new("/other/x"), &md_small));
        assert!(Rules::new(&[], &[Rule::LargerThan("huge".into())]).is_err());
    }

    #[test]
    fn absolute_patterns_below_the_root_are_anchored_at_it() {
        let root = Path::new("/home/u");
        for (pattern, becomes) in [
            ("/home/u/Documents", Some("/Documents")),
            ("/home/u/Documents/", Some("/Documents/")),
            ("!/home/u/Documents/keep", Some("!/Documents/keep")),
            ("/home/*/.cache", Some("/.cache")),
            ("/home/u/**/*.o", Some("/**/*.o")),
            ("/target", None),
            ("/home/u", None),
            ("/home/v/Documents", None),
            ("/**/x", None),
            ("Documents", None),
        ] {
            assert_eq!(below_root(pattern, root).as_deref(), becomes, "{pattern}");
        }
        assert_eq!(below_root("/x/y", Path::new("/")).as_deref(), Some("/x/y"));
    }

    #[test]
    fn an_empty_and_or_or_is_refused_naming_the_rule_wherever_it_is_nested() {
        let ok = Rule::Name("*.o".into());
        for (rules, which) in [
            (
                vec![Rule::And(vec![])],
                "exclude rule 1 in the config: an `and`",
            ),
            (
                vec![ok.clone(), Rule::Or(vec![])],
                "exclude rule 2 in the config: an `or`",
            ),
            (
                vec![Rule::Not(Box::new(Rule::And(vec![
                    ok.clone(),
                    Rule::Or(vec![]),
                ])))],
                "exclude rule 1 in the config: an `or`",
            ),
        ] {
            let e = Rules::new(&[], &rules).unwrap_err().to_string();
            assert!(e.contains(which), "{e}");
        }
        assert!(Rules::new(&[], &[Rule::And(vec![ok])]).is_ok());
    }
}
