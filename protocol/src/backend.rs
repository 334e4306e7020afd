//! The `Backend` trait: what every store of blocks and tags promises.
//!
//! One trait serves three roles: a real store (backend-fs, backend-splitlog) implements it, a
//! proxy (backend-cache, backend-replicated) implements it by calling other backends, and the
//! child-process `Client` (in the `connect` crate) implements it by talking to a backend
//! program. So the frontend, the `serve` loop and the conformance suite are written once
//! against this trait.
//!
//! The rules in these doc comments are the rules of PROTOCOL.md; the conformance suite checks
//! each of them.

use crate::error::{Error, ErrorCode, Result};
use crate::frame::MAX_BLOCK_LIMIT;
use crate::key::Key;
use serde::{Deserialize, Serialize};

/// What a backend says about itself in the welcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// Program and version, e.g. `backend-fs 0.1.0`.
    pub server: String,
    /// One line: what the archive is and where it lives.
    pub description: String,
    /// Largest block `put` accepts, in bytes (at most 64 MiB).
    pub max_block_size: u32,
    /// Puts and tag changes are accepted.
    pub writable: bool,
    /// `remove` is offered.
    pub can_remove: bool,
    /// `list` is offered.
    pub can_list: bool,
    /// Names of the admin commands (each is explained by the `help` admin command).
    pub admin_commands: Vec<String>,
}

/// Result of a compare-and-swap on a tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CasOutcome {
    /// The tag held the expected value and now holds the new one (or is gone, for removal).
    Done,
    /// The tag did not hold the expected value; nothing changed. `current` is what it holds.
    Conflict { current: Option<Vec<u8>> },
}

/// Counters a backend reports; `None` where it cannot tell cheaply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub blocks: Option<u64>,
    pub bytes: Option<u64>,
    pub tags: Option<u64>,
}

/// Where a further connection may join the process serving this one (see `share`): the unix
/// socket it listens on, as a path on the backend's machine, and the ticket to show there.
/// The ticket admits a connection with the access of the one it was issued to, no more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachPoint {
    pub socket: String,
    pub ticket: Vec<u8>,
}

/// The answer to an admin command: text for people and JSON for scripts.
///
/// An answer reports damage when its JSON is an object whose top-level `problems` field is a
/// non-empty array, one element per problem found (PROTOCOL.md §6, "admin"). The rule lives in
/// the JSON rather than in a new field of the message, so that it crosses the wire unchanged
/// and older peers pass it through; [`AdminOutput::problems`] reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminOutput {
    pub text: String,
    /// A JSON document (as text); `null` when the command has nothing structured to say.
    pub json: String,
}

/// The top-level JSON field that lists the damage an admin command found.
pub const PROBLEMS: &str = "problems";

/// Problems an answer names one by one at most; one more entry counts the rest, so that an
/// archive that lost everything does not make an answer too large to send.
pub const MAX_PROBLEMS_LISTED: usize = 1000;

impl AdminOutput {
    pub fn new(text: impl Into<String>, json: serde_json::Value) -> AdminOutput {
        AdminOutput {
            text: text.into(),
            json: json.to_string(),
        }
    }

    /// The answer of a command that looks for damage: `json` (an object) gets the `problems`
    /// array, empty when nothing was found, and the text ends with the list (both at most
    /// [`MAX_PROBLEMS_LISTED`] entries and a count of the rest).
    pub fn checked(
        text: impl Into<String>,
        mut json: serde_json::Value,
        problems: &[String],
    ) -> AdminOutput {
        let mut listed = problems.to_vec();
        if listed.len() > MAX_PROBLEMS_LISTED {
            let more = listed.len() - MAX_PROBLEMS_LISTED;
            listed.truncate(MAX_PROBLEMS_LISTED);
            listed.push(format!("and {more} more problem(s) not listed"));
        }
        let problems = &listed;
        let mut text = text.into();
        if !problems.is_empty() {
            text.push_str(&format!("{} problem(s):\n", problems.len()));
            for p in problems {
                text.push_str(&format!("  {p}\n"));
            }
        }
        if let Some(o) = json.as_object_mut() {
            o.insert(PROBLEMS.into(), serde_json::json!(problems));
        }
        AdminOutput::new(text, json)
    }

    /// The damage this answer reports: each element of its JSON's top-level `problems` array
    /// (a string as it is, anything else as JSON text). Empty for an answer that reports none,
    /// whatever else it says, and for JSON that is not an object or does not parse.
    pub fn problems(&self) -> Vec<String> {
        let Ok(serde_json::Value::Object(o)) = serde_json::from_str(&self.json) else {
            return Vec::new();
        };
        match o.get(PROBLEMS) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|p| match p {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl Stats {
    /// The answer to a `stats` admin command for these counters.
    pub fn admin_output(&self) -> AdminOutput {
        let show = |v: Option<u64>| v.map_or_else(|| "unknown".to_string(), |n| n.to_string());
        AdminOutput::new(
            format!(
                "blocks: {}\nbytes:  {}\ntags:   {}\n",
                show(self.blocks),
                show(self.bytes),
                show(self.tags)
            ),
            serde_json::to_value(self).unwrap_or_default(),
        )
    }
}

/// One admin command a backend offers: its name, its arguments and a line of help.
#[derive(Clone, Copy, Debug)]
pub struct AdminCommand {
    pub name: &'static str,
    pub args: &'static str,
    pub help: &'static str,
}

/// The `help` admin answer for a list of commands.
pub fn admin_help(server: &str, commands: &[AdminCommand]) -> AdminOutput {
    let width = commands
        .iter()
        .map(|c| c.name.len() + c.args.len() + 1)
        .max()
        .unwrap_or(0);
    let mut text = format!("Admin commands of {server}:\n");
    for c in commands {
        let usage = if c.args.is_empty() {
            c.name.to_string()
        } else {
            format!("{} {}", c.name, c.args)
        };
        text.push_str(&format!("  {usage:width$}  {}\n", c.help));
    }
    let json = commands
        .iter()
        .map(|c| serde_json::json!({"name": c.name, "args": c.args, "help": c.help}))
        .collect();
    AdminOutput::new(text, serde_json::Value::Array(json))
}

/// The error for an admin command a backend does not have.
pub fn unknown_admin(command: &str, commands: &[AdminCommand]) -> Error {
    let names: Vec<&str> = commands.iter().map(|c| c.name).collect();
    Error::backend(
        ErrorCode::Admin,
        format!(
            "unknown admin command `{command}`; this backend has: {}",
            names.join(", ")
        ),
    )
}

/// The names of a list of admin commands, for [`BackendInfo::admin_commands`].
pub fn admin_names(commands: &[AdminCommand]) -> Vec<String> {
    commands.iter().map(|c| c.name.to_string()).collect()
}

/// Refuses a block larger than `max` with the `TooLarge` code.
pub fn check_block_size(key: &Key, len: usize, max: u32) -> Result<()> {
    if len > max as usize || len > MAX_BLOCK_LIMIT as usize {
        return Err(Error::backend(
            ErrorCode::TooLarge,
            format!("block {key} has {len} bytes, more than this backend's maximum of {max}"),
        ));
    }
    Ok(())
}

/// The error for an operation the backend does not offer.
pub fn not_supported(op: &str, server: &str) -> Error {
    Error::backend(
        ErrorCode::NotSupported,
        format!("{server} does not offer `{op}`"),
    )
}

/// An answer that may still be on its way: returned by the `start_*` methods, which let one
/// thread keep many requests in flight. [`Ticket::wait`] blocks until the answer is there.
#[must_use = "a ticket must be waited on to learn whether the operation succeeded"]
pub struct Ticket<T>(TicketInner<T>);

type Waiter<T> = Box<dyn FnOnce() -> Result<T> + Send>;

enum TicketInner<T> {
    Ready(Result<T>),
    Pending(Waiter<T>),
}

impl<T> Ticket<T> {
    /// A ticket whose answer is already known.
    pub fn ready(r: Result<T>) -> Ticket<T> {
        Ticket(TicketInner::Ready(r))
    }

    /// A ticket whose answer is produced by `wait`, which may block.
    pub fn pending(wait: impl FnOnce() -> Result<T> + Send + 'static) -> Ticket<T> {
        Ticket(TicketInner::Pending(Box::new(wait)))
    }

    /// The answer if it is already known, or the ticket back.
    pub fn try_ready(self) -> std::result::Result<Result<T>, Ticket<T>> {
        match self.0 {
            TicketInner::Ready(r) => Ok(r),
            pending => Err(Ticket(pending)),
        }
    }

    /// A ticket for `f` applied to this ticket's answer (ready at once when this one is).
    pub fn map<U>(self, f: impl FnOnce(T) -> U + Send + 'static) -> Ticket<U>
    where
        T: 'static,
    {
        match self.0 {
            TicketInner::Ready(r) => Ticket::ready(r.map(f)),
            TicketInner::Pending(w) => Ticket::pending(move || w().map(f)),
        }
    }

    /// Blocks until the answer is there.
    pub fn wait(self) -> Result<T> {
        match self.0 {
            TicketInner::Ready(r) => r,
            TicketInner::Pending(f) => f(),
        }
    }
}

/// The admin command with which a backend that does not keep provenance itself (a proxy, the
/// child-process client) has the store it talks to record a block as stored by a restricted
/// connection ([`crate::provenance::MARK`]; defined here, where the trait's default uses it, so
/// that the trait does not depend on the module built on it).
pub const MARK_UNVOUCHED: &str = "mark-unvouched";

/// A store of blocks and tags. All methods take `&self` and may be called from many threads at
/// once; operations issued by one thread take effect in the order it issued them.
pub trait Backend: Send + Sync {
    /// Who the backend is and what it can do. Cheap; called once per connection by `serve`.
    fn info(&self) -> BackendInfo;

    /// Stores `data` under `key`. Idempotent and never overwrites: if `key` is already stored,
    /// this succeeds and leaves the stored bytes as they were. Blocks larger than
    /// `max_block_size` are refused with `TooLarge`; a backend that is not writable refuses with
    /// `ReadOnly`. Success means "accepted": durable only after a later [`flush`](Self::flush).
    fn put(&self, key: Key, data: &[u8]) -> Result<()>;

    /// The bytes stored under `key`, or `Ok(None)` if there is no such block. A missing block is
    /// an answer, not an error. Data that fails the backend's own integrity check is an error
    /// with code `Corrupt`, never returned.
    fn get(&self, key: Key) -> Result<Option<Vec<u8>>>;

    /// For a batch of keys, whether each is stored (answers in the order of `keys`).
    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>>;

    /// Removes the blocks; keys that are not stored are ignored. Only where `can_remove`;
    /// otherwise `NotSupported`.
    fn remove(&self, keys: &[Key]) -> Result<()> {
        let _ = keys;
        Err(not_supported("remove", &self.info().server))
    }

    /// Up to `limit` stored keys in ascending byte order, all greater than `after`; `true` when
    /// more keys follow. Only where `can_list`; otherwise `NotSupported`.
    fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        let _ = (after, limit);
        Err(not_supported("list", &self.info().server))
    }

    /// The value of a tag, or `None` if it does not exist.
    fn get_tag(&self, name: &str) -> Result<Option<Vec<u8>>>;

    /// Atomic compare-and-swap: sets the tag to `value` only if it currently holds `expected`
    /// (`None`: only if it does not exist). Otherwise nothing changes and the answer is
    /// [`CasOutcome::Conflict`] with the current value.
    fn set_tag(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<CasOutcome>;

    /// Removes a tag if it holds `expected` (`None`: whatever it holds, and a missing tag is
    /// fine). A mismatch is a [`CasOutcome::Conflict`].
    fn remove_tag(&self, name: &str, expected: Option<&[u8]>) -> Result<CasOutcome>;

    /// Every tag and its value, sorted by name.
    fn list_tags(&self) -> Result<Vec<(String, Vec<u8>)>>;

    /// A durability barrier: returns only when everything acknowledged before it (blocks, tag
    /// changes, removals) is on stable storage.
    fn flush(&self) -> Result<()>;

    /// Counters about the store.
    fn stats(&self) -> Result<Stats>;

    /// Runs an admin command. Every backend answers `help` and `info`. Unknown commands are an
    /// error with code `Admin`.
    fn admin(&self, command: &str, args: &[String]) -> Result<AdminOutput>;

    /// Whether the `start_*` methods return before the operation is done (a client of another
    /// process, a proxy in front of one). `serve` then keeps many puts, gets and exists in
    /// flight through them; for a backend that works in place it spreads runs of puts over
    /// threads instead.
    fn pipelines(&self) -> bool {
        false
    }

    /// Whether an `exists` waits on another process or machine, so that a writer should ask
    /// without waiting for the answer and read on (the snapshot's deferral). A backend that
    /// pipelines but answers `exists` from what it holds in memory says no: deferring its
    /// answers only piled up read data (backend-s3 in process: 81–85 MB at the peak without
    /// deferral against 109–120 MB with it, and faster).
    fn exists_waits(&self) -> bool {
        self.pipelines()
    }

    /// Starts a put and returns at once where the backend can pipeline (the child-process
    /// client does); others finish it before returning.
    fn start_put(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        Ticket::ready(self.put(key, &data))
    }

    /// Starts a get; see [`start_put`](Self::start_put).
    fn start_get(&self, key: Key) -> Ticket<Option<Vec<u8>>> {
        Ticket::ready(self.get(key))
    }

    /// Starts an exists batch; see [`start_put`](Self::start_put).
    fn start_exists(&self, keys: Vec<Key>) -> Ticket<Vec<bool>> {
        Ticket::ready(self.exists(&keys))
    }

    /// [`put`](Self::put) for a connection with restricted access: the backend also records
    /// that a restricted connection stored the block, when this put newly stores it, until the
    /// owner vouches for it (see `provenance`). Every store keeps that record with the
    /// block, so that no crash leaves the block without it. The default, for proxies and the
    /// child-process client, records a block that is not stored yet with the `mark-unvouched`
    /// admin command and then stores it (one more round trip per new block; recorded first,
    /// so that a crash between the two leaves at worst a record of a block that is not there).
    fn put_restricted(&self, key: Key, data: &[u8]) -> Result<()> {
        if self.exists(&[key])?.first() != Some(&true) {
            self.admin(MARK_UNVOUCHED, &[key.to_hex()])?;
        }
        self.put(key, data)
    }

    /// Starts a [`put_restricted`](Self::put_restricted); see [`start_put`](Self::start_put).
    fn start_put_restricted(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        Ticket::ready(self.put_restricted(key, &data))
    }

    /// Where a further connection to this archive may join the process that serves this one,
    /// without starting a program of its own (PROTOCOL.md §5). Only a backend program that
    /// shares its archive offers one; proxies never do (a connection joining the store behind
    /// a proxy would bypass it). Otherwise `NotSupported`.
    fn attach_point(&self) -> Result<AttachPoint> {
        Err(not_supported("attach-point", &self.info().server))
    }
}

impl<B: Backend + ?Sized> Backend for std::sync::Arc<B> {
    fn info(&self) -> BackendInfo {
        (**self).info()
    }
    fn put(&self, key: Key, data: &[u8]) -> Result<()> {
        (**self).put(key, data)
    }
    fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
        (**self).get(key)
    }
    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
        (**self).exists(keys)
    }
    fn remove(&self, keys: &[Key]) -> Result<()> {
        (**self).remove(keys)
    }
    fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        (**self).list(after, limit)
    }
    fn get_tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
        (**self).get_tag(name)
    }
    fn set_tag(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<CasOutcome> {
        (**self).set_tag(name, expected, value)
    }
    fn remove_tag(&self, name: &str, expected: Option<&[u8]>) -> Result<CasOutcome> {
        (**self).remove_tag(name, expected)
    }
    fn list_tags(&self) -> Result<Vec<(String, Vec<u8>)>> {
        (**self).list_tags()
    }
    fn flush(&self) -> Result<()> {
        (**self).flush()
    }
    fn stats(&self) -> Result<Stats> {
        (**self).stats()
    }
    fn admin(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        (**self).admin(command, args)
    }
    fn attach_point(&self) -> Result<AttachPoint> {
        (**self).attach_point()
    }
    fn pipelines(&self) -> bool {
        (**self).pipelines()
    }
    fn exists_waits(&self) -> bool {
        (**self).exists_waits()
    }
    fn start_put(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        (**self).start_put(key, data)
    }
    fn put_restricted(&self, key: Key, data: &[u8]) -> Result<()> {
        (**self).put_restricted(key, data)
    }
    fn start_put_restricted(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        (**self).start_put_restricted(key, data)
    }
    fn start_get(&self, key: Key) -> Ticket<Option<Vec<u8>>> {
        (**self).start_get(key)
    }
    fn start_exists(&self, keys: Vec<Key>) -> Ticket<Vec<bool>> {
        (**self).start_exists(keys)
    }
}
