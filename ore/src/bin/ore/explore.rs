//! `ore explore`: a shell over the archive's tree of tags, snapshots and files
//! ([`ore::core::vtree`]). On a terminal it edits lines, keeps history and completes names with Tab;
//! otherwise it reads commands from standard input, one per line, so it can be scripted.
//!
//! This file is the shell: reading lines, completion and printing. Where it is and what each
//! command reads from the archive is `ore::commands::explore`; `get` is a restore
//! (`ore::commands::restore`). `ore mount` is here too, for its signals and messages.

use crate::browse::long_line;
use crate::{out, summary, Done, Env};
use anyhow::{anyhow, bail, Result};
use ore::commands::explore::{About, Explorer, Info, Listed};
use ore::core::util::{format_time, human_bytes, show};
use ore::core::vtree::VNode;
use std::io::IsTerminal;

/// The longest command read from standard input: a path of 4,096 bytes and then some. Input
/// that never ends a line (`ore explore < /dev/zero`) is refused, not gathered.
const MAX_LINE: usize = 64 * 1024;

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
    x: Explorer<'r>,
}

impl Shell<'_> {
    fn ls(&self, args: &[&str]) -> Result<()> {
        let long = args.contains(&"-l");
        let path = args
            .iter()
            .find(|a| !a.starts_with('-'))
            .copied()
            .unwrap_or(".");
        let children = match self.x.list(path)? {
            Listed::One(entry) => {
                return out(&(if long {
                    long_line(&entry, &show(&entry.name))
                } else {
                    format!("{}\n", show(&entry.name))
                }));
            }
            Listed::Many(children) => children,
        };
        for (name, child) in children {
            let n = show(&name);
            let line = if long {
                self.long_line(&n, &child)?
            } else {
                format!("{n}{}\n", if child.is_dir() { "/" } else { "" })
            };
            out(&line)?;
        }
        Ok(())
    }

    /// One line of `ls -l` for `child`, named `n`.
    fn long_line(&self, n: &str, child: &VNode) -> Result<String> {
        Ok(match self.x.about(n, child)? {
            About::Tag { snapshots, newest } => format!(
                "tag  {snapshots:>5} snapshot(s), newest {}  {n}\n",
                newest.map_or(String::new(), format_time)
            ),
            About::Snapshot { key, named: s } => format!(
                "{} {}  {}@{}  {} files  {:>9}  {n}{}\n",
                match self.x.tree().object_of(child) {
                    Some(_) => "object  ",
                    None => "snapshot",
                },
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
            ),
            About::Entry(entry) => long_line(&entry, n),
            About::Root => format!("{n}\n"),
        })
    }

    fn cat(&self, path: &str) -> Result<()> {
        let content = self.x.file(path)?;
        crate::browse::write_contents(self.x.tree().repo, &content)
    }

    fn get(&self, path: &str, dest: Option<&str>) -> Result<()> {
        let x = self.x.extract(path, dest)?;
        let o = ore::commands::restore::restore(
            self.x.tree().repo,
            &x.snapshot,
            &x.inner,
            &x.dest,
            &ore::commands::restore::RestoreOptions::default(),
        )?;
        // Each warning was shown as it happened (through the log).
        eprintln!(
            "{} file(s), {} written to {}",
            o.files,
            human_bytes(o.bytes),
            x.dest.display()
        );
        if o.incomplete || o.not_restored > 0 {
            bail!(
                "get: {} is incomplete (see the warnings above)",
                x.dest.display()
            );
        }
        Ok(())
    }

    fn info(&self, path: &str) -> Result<()> {
        let s = match self.x.info(path)? {
            Info::Tag { tag, snapshots } => {
                return out(&format!("tag {tag}: {snapshots} snapshot(s)\n"));
            }
            Info::ArchiveTag {
                tag,
                objects,
                current,
            } => {
                return out(&format!(
                    "archive tag {tag}: {current} current object(s), {objects} with the versions they replaced\n"
                ));
            }
            Info::Snapshot(s) => s,
            Info::Object { tag, key, object } => {
                return out(&crate::archival::object_text(&tag, &key, &object));
            }
        };
        let snap = &s.snapshot;
        let mut text = format!(
            "snapshot  {}\nname      {}/{}\ntime      {}\nhost      {}\nuser      {}\npaths     {}\nprevious  {}\n",
            s.key,
            snap.tag,
            s.name,
            format_time(snap.time),
            snap.host,
            snap.user,
            snap.paths.iter().map(|p| show(p)).collect::<Vec<_>>().join(", "),
            s.previous.map_or("none".to_string(), |k| k.to_hex()),
        );
        if !snap.comment.is_empty() {
            text.push_str(&format!("comment   {}\n", snap.comment));
        }
        let st = &snap.stats;
        text.push_str(&format!(
            "contents  {}\nstored    {} files read, {}, {:.1} s\nwarnings  {}\n",
            summary::contents(st),
            st.files_read,
            summary::stored(st),
            st.duration_ms as f64 / 1000.0,
            snap.warnings_total
        ));
        for w in &snap.warnings {
            text.push_str(&format!("  {}: {}\n", show(&w.path), w.message));
        }
        out(&text)
    }

    fn find(&self, pattern: &str) -> Result<()> {
        for hit in self.x.find(pattern)? {
            out(&format!("{}\n", hit?))?;
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
            ["pwd"] => out(&format!("{}\n", self.x.pwd()))?,
            ["cd"] => self.x.cd(None)?,
            ["cd", path] => self.x.cd(Some(path))?,
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
        let Ok(names) = self
            .shell
            .x
            .names_in(if dir.is_empty() { "." } else { dir })
        else {
            return Ok((pos, Vec::new()));
        };
        let c = names
            .into_iter()
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
        x: Explorer::new(&repo, tag),
    };
    shell.x.tree().tags()?;
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
        let prompt = format!("ore:{}> ", shell.x.pwd());
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
