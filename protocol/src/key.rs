//! Block keys and tag names.
//!
//! A backend never computes keys: the frontend names each block with a 32-byte keyed hash and
//! the backend stores the bytes under that name. Keys are therefore opaque fixed-size values
//! here; they print as 64 lowercase hex digits. Tag names are validated in one place so that
//! every backend accepts exactly the same set (and can use them as file names safely).

use crate::error::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Length of a block key in bytes.
pub const KEY_LEN: usize = 32;

/// The name of a stored block.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key(pub [u8; KEY_LEN]);

impl Key {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A key from exactly 32 bytes, or `None`.
    pub fn from_slice(bytes: &[u8]) -> Option<Key> {
        <[u8; KEY_LEN]>::try_from(bytes).ok().map(Key)
    }

    /// The key as 64 lowercase hex digits, written into one buffer: `hex::encode` collects
    /// them a `char` at a time, which was 15% of a mount's CPU while `find` listed a million
    /// objects by key.
    pub fn to_hex(&self) -> String {
        let mut out = vec![0u8; 2 * KEY_LEN];
        // Cannot fail: the buffer holds exactly two digits for each byte.
        hex::encode_to_slice(self.0, &mut out).expect("two hex digits a byte");
        String::from_utf8(out).expect("hex digits are ASCII")
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.to_hex())
    }
}

impl FromStr for Key {
    type Err = Error;

    fn from_str(s: &str) -> Result<Key> {
        let bad = || {
            Error::backend(
                ErrorCode::InvalidArgument,
                format!("`{s}` is not a block key (64 hex digits)"),
            )
        };
        let mut out = [0u8; KEY_LEN];
        hex::decode_to_slice(s, &mut out).map_err(|_| bad())?;
        Ok(Key(out))
    }
}

/// Longest tag name in bytes.
pub const MAX_TAG_NAME: usize = 200;
/// Largest tag value in bytes.
pub const MAX_TAG_VALUE: usize = 4096;

/// Checks a tag name against the rules of PROTOCOL.md: 1 to 200 bytes of UTF-8, no `/`, no NUL
/// or other control characters, and not starting with `.` (so names are safe as file names).
pub fn check_tag_name(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_TAG_NAME {
        Some("it is longer than 200 bytes")
    } else if name.starts_with('.') {
        Some("it starts with `.`")
    } else if name.contains('/') {
        Some("it contains `/`")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::backend(
            ErrorCode::InvalidArgument,
            format!("invalid tag name {:?}: {why}", shown(name)),
        )),
        None => Ok(()),
    }
}

/// A name as it may be echoed in a message: whole up to [`MAX_TAG_NAME`] bytes, else its
/// beginning and its length, so that a name of many kilobytes does not fill the screen.
pub fn shown(name: &str) -> String {
    if name.len() <= MAX_TAG_NAME {
        return name.to_string();
    }
    let mut end = 40;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &name[..end], name.len())
}

/// Checks the size of a tag value.
pub fn check_tag_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_TAG_VALUE {
        return Err(Error::backend(
            ErrorCode::InvalidArgument,
            format!(
                "tag value of {} bytes is larger than the limit of {MAX_TAG_VALUE}",
                value.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let k = Key([0xab; 32]);
        assert_eq!(k.to_hex().len(), 64);
        assert_eq!(k.to_hex().parse::<Key>().unwrap(), k);
        assert!("zz".parse::<Key>().is_err());
        assert!("g".repeat(64).parse::<Key>().is_err());
    }

    #[test]
    fn tag_names() {
        assert!(check_tag_name("home").is_ok());
        assert!(check_tag_name("laptop:home-2026 ü").is_ok());
        for bad in ["", ".x", "a/b", "a\nb", "a\0b", &"x".repeat(201)] {
            assert!(check_tag_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
