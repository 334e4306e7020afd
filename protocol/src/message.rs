//! Every message of the protocol, its kind byte, and its body encoding.
//!
//! Kind bytes are the contract: they are only ever appended, never renumbered or reused, and the
//! golden-bytes tests in `tests/golden.rs` pin each one with its field order. Requests use kinds
//! below 0x80 and answers 0x80 and above, so a frame sent the wrong way is caught at once.
//! Bodies are postcard, except for the hot paths (put, get and the data answer), whose bodies
//! are raw bytes so a block is never copied through a serializer.

use crate::backend::{AdminOutput, AttachPoint, BackendInfo, CasOutcome, Stats};
use crate::error::{Error, ErrorCode, Result};
use crate::frame::{self, Frame};
use crate::key::{Key, KEY_LEN};
use serde::{Deserialize, Serialize};
use std::io::Write;

/// Kind bytes. Append only.
pub mod kind {
    pub const HELLO: u8 = 0x01;
    pub const PUT: u8 = 0x10;
    pub const GET: u8 = 0x11;
    pub const EXISTS: u8 = 0x12;
    pub const REMOVE: u8 = 0x13;
    pub const LIST: u8 = 0x14;
    pub const GET_TAG: u8 = 0x20;
    pub const SET_TAG: u8 = 0x21;
    pub const REMOVE_TAG: u8 = 0x22;
    pub const LIST_TAGS: u8 = 0x23;
    pub const FLUSH: u8 = 0x30;
    pub const STATS: u8 = 0x31;
    pub const ADMIN: u8 = 0x32;
    pub const ATTACH_POINT: u8 = 0x33;
    pub const CLOSE: u8 = 0x3f;

    pub const WELCOME: u8 = 0x81;
    pub const ERROR: u8 = 0x82;
    pub const LOG: u8 = 0x83;
    pub const OK: u8 = 0x90;
    pub const DATA: u8 = 0x91;
    pub const MISSING: u8 = 0x92;
    pub const PRESENCE: u8 = 0x93;
    pub const KEYS: u8 = 0x94;
    pub const TAG: u8 = 0x95;
    pub const TAG_SET: u8 = 0x96;
    pub const TAGS: u8 = 0x97;
    pub const STATS_REPLY: u8 = 0x98;
    pub const ADMIN_REPLY: u8 = 0x99;
    pub const ATTACH_POINT_REPLY: u8 = 0x9a;
    pub const GOODBYE: u8 = 0x9f;
}

/// The client's opening message: the range of protocol versions it speaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub min_version: u16,
    pub max_version: u16,
    /// Who is connecting, for the server's logs ("ore 0.1.0").
    pub client: String,
}

/// The server's answer to a hello it accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The version the server picked from the client's range.
    pub version: u16,
    pub info: BackendInfo,
}

/// Severity of a log message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// A request from client to server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Hello(Hello),
    Put { key: Key, data: Payload },
    Get(Key),
    Exists(Vec<Key>),
    Remove(Vec<Key>),
    List { after: Option<Key>, limit: u32 },
    GetTag(String),
    SetTag(SetTag),
    RemoveTag(RemoveTag),
    ListTags,
    Flush,
    Stats,
    Admin(AdminRequest),
    AttachPoint,
    Close,
}

/// A block's bytes inside a received frame body, without copying them out of it (the body
/// starts with the key; a 16 MiB block is not moved to drop 32 bytes).
#[derive(Clone, Debug, Default)]
pub struct Payload {
    buf: Vec<u8>,
    start: usize,
}

impl Payload {
    /// The bytes as an owned vector (copies only when the payload does not start at 0).
    pub fn into_vec(self) -> Vec<u8> {
        if self.start == 0 {
            self.buf
        } else {
            self.buf[self.start..].to_vec()
        }
    }
}

impl From<Vec<u8>> for Payload {
    fn from(buf: Vec<u8>) -> Payload {
        Payload { buf, start: 0 }
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        **self == **other
    }
}

impl Eq for Payload {}

/// Body of a set-tag request: compare-and-swap from `expected` (`None`: must not exist).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetTag {
    pub name: String,
    pub expected: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// Body of a remove-tag request: removes only if the tag holds `expected` (`None`: any value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveTag {
    pub name: String,
    pub expected: Option<Vec<u8>>,
}

/// Body of an admin request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRequest {
    pub command: String,
    pub args: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct ListBody {
    after: Option<Key>,
    limit: u32,
}

#[derive(Serialize, Deserialize)]
struct ErrorBody {
    code: u16,
    message: String,
}

#[derive(Serialize, Deserialize)]
struct LogBody {
    level: Level,
    message: String,
}

#[derive(Serialize, Deserialize)]
struct KeysBody {
    keys: Vec<Key>,
    more: bool,
}

/// An answer (or log message) from server to client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Welcome(Welcome),
    Error { code: ErrorCode, message: String },
    Log { level: Level, message: String },
    Ok,
    Data(Vec<u8>),
    Missing,
    Presence(Vec<bool>),
    Keys { keys: Vec<Key>, more: bool },
    Tag(Option<Vec<u8>>),
    TagSet(CasOutcome),
    Tags(Vec<(String, Vec<u8>)>),
    Stats(Stats),
    Admin(AdminOutput),
    AttachPoint(AttachPoint),
    Goodbye,
}

fn pc<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing plain data structs into a Vec cannot fail.
    postcard::to_stdvec(v).unwrap_or_default()
}

fn unpc<'a, T: Deserialize<'a>>(kind: u8, body: &'a [u8]) -> Result<T> {
    postcard::from_bytes(body).map_err(|e| {
        Error::backend(
            ErrorCode::BadRequest,
            format!("malformed body for message kind {kind:#04x}: {e}"),
        )
    })
}

fn key_body(kind: u8, body: &[u8]) -> Result<Key> {
    Key::from_slice(body).ok_or_else(|| {
        Error::backend(
            ErrorCode::BadRequest,
            format!(
                "message kind {kind:#04x} must carry a 32-byte key, got {} bytes",
                body.len()
            ),
        )
    })
}

impl Request {
    /// The kind byte of this request.
    pub fn kind(&self) -> u8 {
        match self {
            Request::Hello(_) => kind::HELLO,
            Request::Put { .. } => kind::PUT,
            Request::Get(_) => kind::GET,
            Request::Exists(_) => kind::EXISTS,
            Request::Remove(_) => kind::REMOVE,
            Request::List { .. } => kind::LIST,
            Request::GetTag(_) => kind::GET_TAG,
            Request::SetTag(_) => kind::SET_TAG,
            Request::RemoveTag(_) => kind::REMOVE_TAG,
            Request::ListTags => kind::LIST_TAGS,
            Request::Flush => kind::FLUSH,
            Request::Stats => kind::STATS,
            Request::Admin(_) => kind::ADMIN,
            Request::AttachPoint => kind::ATTACH_POINT,
            Request::Close => kind::CLOSE,
        }
    }

    /// The operation's name, as used by fault injection and in messages.
    pub fn op_name(&self) -> &'static str {
        op_name(self.kind())
    }

    /// Writes the request as one frame (not flushed).
    pub fn write_to<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        let k = self.kind();
        match self {
            Request::Put { key, data } => frame::write_frame(w, k, &[&key.0, &data[..]]),
            Request::Get(key) => frame::write_frame(w, k, &[&key.0]),
            _ => frame::write_frame(w, k, &[&self.small_body()]),
        }
    }

    fn small_body(&self) -> Vec<u8> {
        match self {
            Request::Hello(h) => pc(h),
            Request::Exists(keys) | Request::Remove(keys) => pc(keys),
            Request::List { after, limit } => pc(&ListBody {
                after: *after,
                limit: *limit,
            }),
            Request::GetTag(name) => pc(name),
            Request::SetTag(s) => pc(s),
            Request::RemoveTag(r) => pc(r),
            Request::Admin(a) => pc(a),
            Request::ListTags
            | Request::Flush
            | Request::Stats
            | Request::AttachPoint
            | Request::Close => Vec::new(),
            Request::Put { .. } | Request::Get(_) => Vec::new(),
        }
    }

    /// Encodes the request as a complete frame.
    pub fn to_frame_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        // Writing to a Vec only fails for bodies over the frame limit, which `decode` refuses too.
        let _ = self.write_to(&mut v);
        v
    }

    /// Decodes a request frame. Errors carry the code the server answers with.
    pub fn decode(f: Frame) -> Result<Request> {
        let Frame { kind: k, body } = f;
        Ok(match k {
            kind::HELLO => Request::Hello(unpc(k, &body)?),
            kind::PUT => {
                if body.len() < KEY_LEN {
                    return Err(Error::backend(
                        ErrorCode::BadRequest,
                        format!("put body of {} bytes is shorter than a key", body.len()),
                    ));
                }
                let key = key_body(k, &body[..KEY_LEN])?;
                let data = Payload {
                    buf: body,
                    start: KEY_LEN,
                };
                Request::Put { key, data }
            }
            kind::GET => Request::Get(key_body(k, &body)?),
            kind::EXISTS => Request::Exists(unpc(k, &body)?),
            kind::REMOVE => Request::Remove(unpc(k, &body)?),
            kind::LIST => {
                let b: ListBody = unpc(k, &body)?;
                Request::List {
                    after: b.after,
                    limit: b.limit,
                }
            }
            kind::GET_TAG => Request::GetTag(unpc(k, &body)?),
            kind::SET_TAG => Request::SetTag(unpc(k, &body)?),
            kind::REMOVE_TAG => Request::RemoveTag(unpc(k, &body)?),
            kind::LIST_TAGS => empty(k, &body, Request::ListTags)?,
            kind::FLUSH => empty(k, &body, Request::Flush)?,
            kind::STATS => empty(k, &body, Request::Stats)?,
            kind::ADMIN => Request::Admin(unpc(k, &body)?),
            kind::ATTACH_POINT => empty(k, &body, Request::AttachPoint)?,
            kind::CLOSE => empty(k, &body, Request::Close)?,
            other => {
                return Err(Error::backend(
                    ErrorCode::UnknownKind,
                    format!("unknown request kind {other:#04x}"),
                ))
            }
        })
    }
}

fn empty<T>(k: u8, body: &[u8], v: T) -> Result<T> {
    if body.is_empty() {
        Ok(v)
    } else {
        Err(Error::backend(
            ErrorCode::BadRequest,
            format!(
                "message kind {k:#04x} has no body, got {} bytes",
                body.len()
            ),
        ))
    }
}

/// The operation name of a request kind ("put", "get", ...).
pub fn op_name(k: u8) -> &'static str {
    match k {
        kind::HELLO => "hello",
        kind::PUT => "put",
        kind::GET => "get",
        kind::EXISTS => "exists",
        kind::REMOVE => "remove",
        kind::LIST => "list",
        kind::GET_TAG => "get-tag",
        kind::SET_TAG => "set-tag",
        kind::REMOVE_TAG => "remove-tag",
        kind::LIST_TAGS => "list-tags",
        kind::FLUSH => "flush",
        kind::STATS => "stats",
        kind::ADMIN => "admin",
        kind::ATTACH_POINT => "attach-point",
        kind::CLOSE => "close",
        _ => "unknown",
    }
}

impl Response {
    pub fn kind(&self) -> u8 {
        match self {
            Response::Welcome(_) => kind::WELCOME,
            Response::Error { .. } => kind::ERROR,
            Response::Log { .. } => kind::LOG,
            Response::Ok => kind::OK,
            Response::Data(_) => kind::DATA,
            Response::Missing => kind::MISSING,
            Response::Presence(_) => kind::PRESENCE,
            Response::Keys { .. } => kind::KEYS,
            Response::Tag(_) => kind::TAG,
            Response::TagSet(_) => kind::TAG_SET,
            Response::Tags(_) => kind::TAGS,
            Response::Stats(_) => kind::STATS_REPLY,
            Response::Admin(_) => kind::ADMIN_REPLY,
            Response::AttachPoint(_) => kind::ATTACH_POINT_REPLY,
            Response::Goodbye => kind::GOODBYE,
        }
    }

    /// An error answer for `e`.
    pub fn error(e: &Error) -> Response {
        Response::Error {
            code: e.code(),
            message: e.to_string(),
        }
    }

    /// Writes the answer as one frame (not flushed).
    pub fn write_to<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        let k = self.kind();
        let small = match self {
            Response::Data(d) => return frame::write_frame(w, k, &[d]),
            Response::Welcome(x) => pc(x),
            Response::Error { code, message } => pc(&ErrorBody {
                code: code.to_u16(),
                message: message.clone(),
            }),
            Response::Log { level, message } => pc(&LogBody {
                level: *level,
                message: message.clone(),
            }),
            Response::Presence(v) => pc(v),
            Response::Keys { keys, more } => pc(&KeysBody {
                keys: keys.clone(),
                more: *more,
            }),
            Response::Tag(v) => pc(v),
            Response::TagSet(o) => pc(o),
            Response::Tags(t) => pc(t),
            Response::Stats(s) => pc(s),
            Response::Admin(a) => pc(a),
            Response::AttachPoint(a) => pc(a),
            Response::Ok | Response::Missing | Response::Goodbye => Vec::new(),
        };
        frame::write_frame(w, k, &[&small])
    }

    /// Encodes the answer as a complete frame.
    pub fn to_frame_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        let _ = self.write_to(&mut v);
        v
    }

    /// Decodes an answer frame.
    pub fn decode(f: Frame) -> Result<Response> {
        let Frame { kind: k, body } = f;
        let bad = |e: Error| Error::Protocol(e.to_string());
        Ok(match k {
            kind::WELCOME => Response::Welcome(unpc(k, &body).map_err(bad)?),
            kind::ERROR => {
                let b: ErrorBody = unpc(k, &body).map_err(bad)?;
                Response::Error {
                    code: ErrorCode::from_u16(b.code),
                    message: b.message,
                }
            }
            kind::LOG => {
                let b: LogBody = unpc(k, &body).map_err(bad)?;
                Response::Log {
                    level: b.level,
                    message: b.message,
                }
            }
            kind::OK => empty(k, &body, Response::Ok).map_err(bad)?,
            kind::DATA => Response::Data(body),
            kind::MISSING => empty(k, &body, Response::Missing).map_err(bad)?,
            kind::PRESENCE => Response::Presence(unpc(k, &body).map_err(bad)?),
            kind::KEYS => {
                let b: KeysBody = unpc(k, &body).map_err(bad)?;
                Response::Keys {
                    keys: b.keys,
                    more: b.more,
                }
            }
            kind::TAG => Response::Tag(unpc(k, &body).map_err(bad)?),
            kind::TAG_SET => Response::TagSet(unpc(k, &body).map_err(bad)?),
            kind::TAGS => Response::Tags(unpc(k, &body).map_err(bad)?),
            kind::STATS_REPLY => Response::Stats(unpc(k, &body).map_err(bad)?),
            kind::ADMIN_REPLY => Response::Admin(unpc(k, &body).map_err(bad)?),
            kind::ATTACH_POINT_REPLY => Response::AttachPoint(unpc(k, &body).map_err(bad)?),
            kind::GOODBYE => empty(k, &body, Response::Goodbye).map_err(bad)?,
            other => return Err(Error::Protocol(format!("unknown answer kind {other:#04x}"))),
        })
    }
}
