//! `ore explore`: a shell over the archive's tree of tags, snapshots and files
//! ([`ore::core::vtree`]). On a terminal it edits lines, keeps history and completes names with Tab;
//! otherwise it reads commands from standard input, one per line, so it can be scripted.

use crate::browse::long_line;
use crate::{out, Done, Env};
use anyhow::{anyhow, bail, Result};
use ore::core::entry::EntryKind;
use ore::core::util::{format_time, human_bytes, show};
use ore::core::vtree::{VNode, VTree};
use std::cell::RefCell;
use std::io::IsTerminal;
use std::rc::Rc;

/// The longest command read from standard input: a path of 4,096 bytes and then some. Input
/// that never ends a line (`ore explore < /dev/zero`) is refused, not gathered.
const MAX_LINE: usize = 64 * 1024;

/// Where the shell is: the names from `/` down, with their nodes.
type Cwd = Vec<(Vec<u8>, VNode)>;

const HELP: &str = "\
ls [-l] [PATH]     list a directory (tags at /, snapshots in a tag, files in a snapshot)
cd [PATH]          change directory (.., absolute and relative paths, symlinks followed)
pwd                where you are
cat PATH           print a file
get PATH [DEST]    extract a file or directory, with its metadata (default: ./NAME)
info [PATH]        the snapshot's properties, comment, counts and warnings
find PATTERN       names below here matching PATTERN (glob: *.conf, **/bin/*)
help               this text
exit               leave (also quit, or end of input)
";

struct Shell<'r> {
    tree: VTree<'r>,
    cwd: Rc<RefCell<Cwd>>,
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

impl Shell<'_> {
    fn top(stack: &Cwd) -> VNode {
        stack.last().map_or(VNode::Root, |(_, n)| n.clone())
    }

    /// Resolves `path` from the current directory. Symlinks inside a snapshot are followed
    /// when `follow` (always for components before the last).
    fn resolve(&self, path: &str, follow: bool) -> Result<Cwd> {
        let mut stack = if path.starts_with('/') {
            Vec::new()
        } else {
            self.cwd.borrow().clone()
        };
        let comps: Vec<&str> = split(path).collect();
        self.walk(&mut stack, &comps, follow, 0)?;
        Ok(stack)
    }

    fn walk(&self, stack: &mut Cwd, comps: &[&str], follow: bool, hops: u32) -> Result<()> {
        for (i, c) in comps.iter().enumerate() {
            if *c == ".." {
                stack.pop();
                continue;
            }
            let node = Shell::top(stack);
            let child = self
                .tree
                .child(&node, c.as_bytes())?
                .ok_or_else(|| anyhow!("{c}: no such file or directory"))?;
            let last = i + 1 == comps.len();
            if let VNode::Entry { entry, .. } = &child {
                if let EntryKind::Symlink { target } = &entry.kind {
                    if follow || !last {
                        if hops > 40 {
                            bail!("{c}: too many levels of symbolic links");
                        }
                        let t = String::from_utf8_lossy(target).into_owned();
                        if t.starts_with('/') {
                            // Absolute targets are taken from the snapshot's root.
                            stack.truncate(2);
                        }
                        let tc: Vec<&str> = split(&t).collect();
                        // Never above the snapshot's root.
                        let floor = 2.min(stack.len());
                        let mut sub = stack.split_off(floor);
                        self.walk_floor(stack, &mut sub, &tc, hops + 1)?;
                        stack.extend(sub);
                        continue;
                    }
                }
            }
            stack.push((c.as_bytes().to_vec(), child));
        }
        Ok(())
    }

    /// Walks a symlink's target below the snapshot root `base` (`rel` is the part of the
    /// stack below that root).
    fn walk_floor(&self, base: &Cwd, rel: &mut Cwd, comps: &[&str], hops: u32) -> Result<()> {
        let mut full = base.clone();
        full.append(rel);
        let floor = base.len();
        for c in comps {
            if *c == ".." {
                if full.len() > floor {
                    full.pop();
                }
                continue;
            }
            self.walk(&mut full, &[c], true, hops)?;
        }
        *rel = full.split_off(floor);
        Ok(())
    }

    fn pwd(stack: &Cwd) -> String {
        if stack.is_empty() {
            return "/".into();
        }
        stack.iter().map(|(n, _)| format!("/{}", show(n))).collect()
    }

    fn ls(&self, args: &[&str]) -> Result<()> {
        let long = args.contains(&"-l");
        let path = args
            .iter()
            .find(|a| !a.starts_with('-'))
            .copied()
            .unwrap_or(".");
        let stack = self.resolve(path, true)?;
        let node = Shell::top(&stack);
        if !node.is_dir() {
            if let VNode::Entry { entry, .. } = &node {
                return out(&(if long {
                    long_line(entry, &show(&entry.name))
                } else {
                    format!("{}\n", show(&entry.name))
                }));
            }
        }
        for (name, child) in self.tree.list(&node)? {
            let n = show(&name);
            let line = match (&child, long) {
                (_, false) => format!("{n}{}\n", if child.is_dir() { "/" } else { "" }),
                (VNode::Tag(t), true) => {
                    let c = self.tree.chain(t)?;
                    format!(
                        "tag  {:>5} snapshot(s), newest {}  {n}\n",
                        c.len(),
                        c.first()
                            .map_or(String::new(), |s| format_time(s.snapshot.time))
                    )
                }
                (
                    VNode::Entry {
                        key, path, entry, ..
                    },
                    true,
                ) if path.is_empty() => {
                    let s = self
                        .tree
                        .snapshot_of(&child)?
                        .ok_or_else(|| anyhow!("{n}: gone"))?;
                    let _ = entry;
                    format!(
                        "snapshot {}  {}@{}  {} files  {:>9}  {n}{}\n",
                        &key.to_hex()[..12],
                        s.snapshot.user,
                        s.snapshot.host,
                        s.snapshot.stats.files,
                        human_bytes(s.snapshot.stats.bytes),
                        if n == ore::core::vtree::CURRENT {
                            format!(" -> {}", s.name)
                        } else {
                            String::new()
                        }
                    )
                }
                (VNode::Entry { entry, .. }, true) => long_line(entry, &n),
                (VNode::Root, true) => format!("{n}\n"),
            };
            out(&line)?;
        }
        Ok(())
    }

    fn cat(&self, path: &str) -> Result<()> {
        let stack = self.resolve(path, true)?;
        let node = Shell::top(&stack);
        let e = self.tree.resolve_hardlink(&node)?;
        let EntryKind::File { content, .. } = &e.kind else {
            bail!("{path}: not a file");
        };
        crate::browse::write_contents(self.tree.repo, content)
    }

    fn get(&self, path: &str, dest: Option<&str>) -> Result<()> {
        let stack = self.resolve(path, false)?;
        let node = Shell::top(&stack);
        let VNode::Entry {
            path: inner, entry, ..
        } = &node
        else {
            bail!("{path}: only files and directories inside a snapshot can be extracted");
        };
        let snap = self
            .tree
            .snapshot_of(&node)?
            .ok_or_else(|| anyhow!("{path}: no snapshot"))?;
        let dest = match dest {
            Some(d) => std::path::PathBuf::from(d),
            None => default_dest(path, &entry.name)?,
        };
        let o = ore::commands::restore::restore(
            self.tree.repo,
            &snap.snapshot,
            inner,
            &dest,
            &ore::commands::restore::RestoreOptions::default(),
        )?;
        // Each warning was shown as it happened (through the log).
        eprintln!(
            "{} file(s), {} written to {}",
            o.files,
            human_bytes(o.bytes),
            dest.display()
        );
        if o.incomplete || o.not_restored > 0 {
            bail!(
                "get: {} is incomplete (see the warnings above)",
                dest.display()
            );
        }
        Ok(())
    }

    fn info(&self, path: &str) -> Result<()> {
        let stack = self.resolve(path, true)?;
        let node = Shell::top(&stack);
        let Some(s) = self.tree.snapshot_of(&node)? else {
            if let VNode::Tag(t) = &node {
                let c = self.tree.chain(t)?;
                return out(&format!("tag {t}: {} snapshot(s)\n", c.len()));
            }
            bail!("info: go into a snapshot first (or give a path inside one)");
        };
        let snap = &s.snapshot;
        let st = &snap.stats;
        let mut text = format!(
            "snapshot  {}\nname      {}/{}\ntime      {}\nhost      {}\nuser      {}\npaths     {}\nprevious  {}\n",
            s.key,
            snap.tag,
            s.name,
            format_time(snap.time),
            snap.host,
            snap.user,
            snap.paths.iter().map(|p| show(p)).collect::<Vec<_>>().join(", "),
            snap.previous.first().map_or("none".to_string(), |k| k.to_hex()),
        );
        if !snap.comment.is_empty() {
            text.push_str(&format!("comment   {}\n", snap.comment));
        }
        text.push_str(&format!(
            "contents  {} files, {} dirs, {} other, {}\nstored    {} files read, {} new blocks, {} new ({} stored), {:.1} s\nwarnings  {}\n",
            st.files,
            st.dirs,
            st.other,
            human_bytes(st.bytes),
            st.files_read,
            st.new_blocks,
            human_bytes(st.new_bytes),
            human_bytes(st.stored_bytes),
            st.duration_ms as f64 / 1000.0,
            snap.warnings_total
        ));
        for w in &snap.warnings {
            text.push_str(&format!("  {}: {}\n", show(&w.path), w.message));
        }
        out(&text)
    }

    fn find(&self, pattern: &str) -> Result<()> {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(pattern.contains('/'))
            .build()
            .map_err(|e| anyhow!("find: bad pattern {pattern:?}: {e}"))?
            .compile_matcher();
        let start = self.cwd.borrow().clone();
        let base = Shell::pwd(&start);
        let prefix = if base == "/" {
            "/".to_string()
        } else {
            format!("{base}/")
        };
        self.find_in(
            &Shell::top(&start),
            "",
            &glob,
            pattern.contains('/'),
            &prefix,
        )
    }

    /// Prints the matches below `node` in order, each directory before what it holds. The
    /// directories being listed are kept on a stack of their own rather than recursing (a
    /// crafted snapshot nested a hundred thousand deep overflowed the stack); the tree refuses
    /// to list past the depth any walk of a snapshot goes (`ore::core::depth`).
    fn find_in(
        &self,
        node: &VNode,
        rel: &str,
        glob: &globset::GlobMatcher,
        whole: bool,
        prefix: &str,
    ) -> Result<()> {
        let listing = |node: &VNode| -> Result<_> {
            let tag = matches!(node, VNode::Tag(_));
            Ok((self.tree.list(node)?.into_iter(), tag))
        };
        let mut open = vec![(listing(node)?, rel.to_string())];
        while let Some(((children, in_tag), rel)) = open.last_mut() {
            let Some((name, child)) = children.next() else {
                open.pop();
                continue;
            };
            let n = show(&name);
            if *in_tag && n == ore::core::vtree::CURRENT {
                continue;
            }
            let p = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            if glob.is_match(if whole { p.as_str() } else { n.as_str() }) {
                out(&format!("{prefix}{p}\n"))?;
            }
            if child.is_dir() {
                open.push((listing(&child)?, p));
            }
        }
        Ok(())
    }

    /// Runs one command line; `Ok(false)` to leave.
    fn run(&self, line: &str) -> Result<bool> {
        let words = shell_words::split(line).map_err(|e| anyhow!("{e}"))?;
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        match args.as_slice() {
            [] => {}
            ["exit" | "quit"] => return Ok(false),
            ["help" | "?"] => out(HELP)?,
            ["pwd"] => out(&format!("{}\n", Shell::pwd(&self.cwd.borrow())))?,
            ["cd"] => self.cwd.borrow_mut().clear(),
            ["cd", path] => {
                let stack = self.resolve(path, true)?;
                if !Shell::top(&stack).is_dir() {
                    bail!("cd: {path}: not a directory");
                }
                *self.cwd.borrow_mut() = stack;
            }
            ["ls", rest @ ..] => self.ls(rest)?,
            ["cat", path] => self.cat(path)?,
            ["get", path] => self.get(path, None)?,
            ["get", path, dest] => self.get(path, Some(dest))?,
            ["info"] => self.info(".")?,
            ["info", path] => self.info(path)?,
            ["find", pattern] => self.find(pattern)?,
            [cmd, ..] => bail!("{cmd}: unknown command or wrong arguments (try `help`)"),
        }
        Ok(true)
    }
}

/// Tab completion of names.
struct Helper<'a, 'r> {
    shell: &'a Shell<'r>,
}

impl rustyline::completion::Completer for Helper<'_, '_> {
    type Candidate = rustyline::completion::Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Self::Candidate>)> {
        let start = line[..pos].rfind(' ').map_or(0, |i| i + 1);
        let word = &line[start..pos];
        if start == 0 {
            let cmds = [
                "ls", "cd", "pwd", "cat", "get", "info", "find", "help", "exit",
            ];
            let c = cmds
                .iter()
                .filter(|c| c.starts_with(word))
                .map(|c| rustyline::completion::Pair {
                    display: c.to_string(),
                    replacement: format!("{c} "),
                })
                .collect();
            return Ok((0, c));
        }
        let (dir, prefix) = match word.rfind('/') {
            Some(i) => (&word[..=i], &word[i + 1..]),
            None => ("", word),
        };
        let Ok(stack) = self
            .shell
            .resolve(if dir.is_empty() { "." } else { dir }, true)
        else {
            return Ok((pos, Vec::new()));
        };
        let Ok(list) = self.shell.tree.list(&Shell::top(&stack)) else {
            return Ok((pos, Vec::new()));
        };
        let c = list
            .into_iter()
            .map(|(n, node)| (show(&n), node.is_dir()))
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(n, d)| rustyline::completion::Pair {
                replacement: format!("{dir}{n}{}", if d { "/" } else { "" }),
                display: n,
            })
            .collect();
        Ok((start, c))
    }
}

impl rustyline::hint::Hinter for Helper<'_, '_> {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Helper<'_, '_> {}
impl rustyline::validate::Validator for Helper<'_, '_> {}
impl rustyline::Helper for Helper<'_, '_> {}

pub fn explore(env: &Env, tag: Option<String>) -> Result<Done> {
    let repo = env.open()?;
    let shell = Shell {
        tree: VTree::new(&repo, tag),
        cwd: Rc::new(RefCell::new(Vec::new())),
    };
    shell.tree.tags()?;
    let mut failed = false;
    if !std::io::stdin().is_terminal() {
        let (mut input, mut line, mut number) = (std::io::stdin().lock(), Vec::new(), 0u64);
        loop {
            number += 1;
            match ore::core::util::read_line_capped(&mut input, MAX_LINE, &mut line) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => bail!("standard input, line {number}: {e}"),
            }
            let Ok(line) = std::str::from_utf8(&line) else {
                eprintln!("standard input, line {number}: not UTF-8, skipped");
                failed = true;
                continue;
            };
            match shell.run(line.trim()) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    eprintln!("{e:#}");
                    failed = true;
                }
            }
        }
        return Ok(if failed { Done::Warnings } else { Done::Clean });
    }
    let mut ed = rustyline::Editor::<Helper, rustyline::history::DefaultHistory>::new()?;
    ed.set_helper(Some(Helper { shell: &shell }));
    let history = ore::core::filecache::default_dir().map(|d| d.join("explore-history"));
    if let Some(h) = &history {
        let _ = ed.load_history(h);
    }
    eprintln!("exploring {} (type `help`)", env.archive_id()?);
    loop {
        let prompt = format!("ore:{}> ", Shell::pwd(&shell.cwd.borrow()));
        match ed.readline(&prompt) {
            Ok(line) => {
                let _ = ed.add_history_entry(line.as_str());
                match shell.run(line.trim()) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => eprintln!("{e:#}"),
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = &history {
        if let Some(d) = h.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let _ = ed.save_history(h);
    }
    Ok(Done::Clean)
}

pub fn mount(env: &Env, mountpoint: &std::path::Path, tag: Option<String>) -> Result<Done> {
    if !mountpoint.is_dir() {
        bail!("{}: not a directory to mount on", mountpoint.display());
    }
    let repo = env.open()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    if !env.global.quiet {
        eprintln!(
            "mounted {} on {} (read-only); Ctrl-C or `fusermount3 -u {}` to unmount",
            env.archive_id()?,
            mountpoint.display(),
            mountpoint.display()
        );
    }
    ore::commands::mount::mount(std::sync::Arc::new(repo), mountpoint, tag, &stop)?;
    Ok(Done::Clean)
}

/// Where `get PATH` without a destination writes: a name in the current directory, the one the
/// snapshot gives the entry — which must be one plain name (a crafted snapshot once named its
/// root `/tmp/x/pwned`, and `get` wrote there).
fn default_dest(path: &str, name: &[u8]) -> Result<std::path::PathBuf> {
    let name = if name.is_empty() {
        &b"snapshot"[..]
    } else {
        name
    };
    if name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        bail!(
            "get {path}: the snapshot names it `{}`, which is not a plain file name; \
             give a destination (get PATH DEST)",
            ore::core::util::show(name)
        );
    }
    Ok(std::path::PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(name.to_vec()),
    ))
}
