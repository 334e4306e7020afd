//! Errors of the protocol crate.
//!
//! Policy: every failure a backend reports travels as an [`ErrorCode`] plus a human message, so
//! a frontend can act on the code (retry, stop, report) without parsing text, and a user always
//! sees a sentence that names what went wrong. Failures of the connection itself (the stream
//! broke the spec, the child died, I/O failed) are separate variants, and the client adds the
//! archive identifier to their message so a user can tell which of several backends failed.

use std::fmt;

/// Stable error codes carried by an error reply. Codes are only ever appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request could not be decoded, or broke a rule of the protocol.
    BadRequest,
    /// The request's kind byte is not one this server knows.
    UnknownKind,
    /// The two sides share no protocol version.
    VersionMismatch,
    /// A block is larger than the server's maximum block size.
    TooLarge,
    /// The operation is not offered by this backend (see the welcome's capabilities).
    NotSupported,
    /// The archive refuses writes (write-protected, read-only or append-only access).
    ReadOnly,
    /// The backend's storage failed (disk full, permission denied, ...).
    Io,
    /// Stored data failed its integrity check; it is never served.
    Corrupt,
    /// An argument is invalid (a bad tag name, a malformed admin argument, ...).
    InvalidArgument,
    /// An admin command failed or does not exist.
    Admin,
    /// An error produced by fault injection (testing aid, see PROTOCOL.md).
    Injected,
    /// The archive is locked by another process.
    Locked,
    /// A bug or unexpected state inside the backend.
    Internal,
    /// The backend's own store could not be reached or kept refusing (a network failure, a
    /// store that stopped answering or answers "slow down"): a failure of the connection to
    /// the data, saying nothing about any block.
    Unavailable,
    /// A code this side does not know (sent by a newer peer).
    Other(u16),
}

impl ErrorCode {
    /// The code's number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 1,
            ErrorCode::UnknownKind => 2,
            ErrorCode::VersionMismatch => 3,
            ErrorCode::TooLarge => 4,
            ErrorCode::NotSupported => 5,
            ErrorCode::ReadOnly => 6,
            ErrorCode::Io => 7,
            ErrorCode::Corrupt => 8,
            ErrorCode::InvalidArgument => 9,
            ErrorCode::Admin => 10,
            ErrorCode::Injected => 11,
            ErrorCode::Locked => 12,
            ErrorCode::Internal => 13,
            ErrorCode::Unavailable => 14,
            ErrorCode::Other(n) => n,
        }
    }

    /// The code for a number read from the wire.
    pub fn from_u16(n: u16) -> ErrorCode {
        match n {
            1 => ErrorCode::BadRequest,
            2 => ErrorCode::UnknownKind,
            3 => ErrorCode::VersionMismatch,
            4 => ErrorCode::TooLarge,
            5 => ErrorCode::NotSupported,
            6 => ErrorCode::ReadOnly,
            7 => ErrorCode::Io,
            8 => ErrorCode::Corrupt,
            9 => ErrorCode::InvalidArgument,
            10 => ErrorCode::Admin,
            11 => ErrorCode::Injected,
            12 => ErrorCode::Locked,
            13 => ErrorCode::Internal,
            14 => ErrorCode::Unavailable,
            n => ErrorCode::Other(n),
        }
    }

    /// A short lowercase name, used in messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::UnknownKind => "unknown-kind",
            ErrorCode::VersionMismatch => "version-mismatch",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::NotSupported => "not-supported",
            ErrorCode::ReadOnly => "read-only",
            ErrorCode::Io => "io",
            ErrorCode::Corrupt => "corrupt",
            ErrorCode::InvalidArgument => "invalid-argument",
            ErrorCode::Admin => "admin",
            ErrorCode::Injected => "injected",
            ErrorCode::Locked => "locked",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Other(_) => "other",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Other(n) => write!(f, "error code {n}"),
            c => f.write_str(c.name()),
        }
    }
}

/// Everything that can go wrong in the protocol crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error answer: the backend (or this side, acting as one) refused or failed an operation.
    #[error("{message}")]
    Backend { code: ErrorCode, message: String },
    /// The byte stream broke the protocol: bad magic, torn frame, oversized length, bad body.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection to a backend failed; the message names the archive identifier.
    #[error("archive `{archive}`: {message}")]
    Connection { archive: String, message: String },
    /// Local I/O failed. The cause is part of the message and not also a `source`, so an
    /// error chain printed whole (`{:#}`) does not say it twice.
    #[error("{context}: {cause}")]
    Io {
        context: String,
        cause: std::io::Error,
    },
}

impl Error {
    /// A backend error with a code and a message.
    pub fn backend(code: ErrorCode, message: impl Into<String>) -> Error {
        Error::Backend {
            code,
            message: message.into(),
        }
    }

    /// An I/O error with a sentence saying what was being done (and to which file).
    pub fn io(context: impl Into<String>, cause: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            cause,
        }
    }

    /// The code this error is sent with when a server answers with it.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Backend { code, .. } => *code,
            Error::Protocol(_) => ErrorCode::BadRequest,
            Error::Connection { .. } => ErrorCode::Io,
            Error::Io { .. } => ErrorCode::Io,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_pinned() {
        for n in 0..40u16 {
            assert_eq!(ErrorCode::from_u16(n).to_u16(), n);
        }
        assert_eq!(ErrorCode::Corrupt.to_u16(), 8);
        assert_eq!(ErrorCode::Internal.to_u16(), 13);
        assert_eq!(ErrorCode::Unavailable.to_u16(), 14);
    }
}
