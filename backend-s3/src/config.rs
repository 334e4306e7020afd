//! Where an archive lives and how to sign requests to it: the identifier `s3://BUCKET/PREFIX`
//! and the credentials, which come only from the usual places.
//!
//! Identifiers show up in process lists, logs, shell histories and Ore's own config files, so
//! they never carry a secret: an identifier with `user:secret@` in it is refused, not
//! accepted quietly. Credentials are read, in this order, from `--credentials-file` (with
//! `--profile` or `AWS_PROFILE`, else `default`), from `~/.aws/credentials` when `--profile`
//! names a profile, from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`),
//! and last from the `AWS_PROFILE` (or `default`) profile of `~/.aws/credentials`
//! (`AWS_SHARED_CREDENTIALS_FILE` moves that file). Nothing else is consulted — no instance
//! metadata service, which would make a machine without credentials hang instead of failing.

use std::path::{Path, PathBuf};

/// What is wrong with an identifier or the credentials.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0:?} is not an S3 archive identifier: it must look like s3://BUCKET/PREFIX")]
    NotS3(String),
    #[error("the identifier {0} carries credentials (not shown here); they never go in an identifier (it shows up in process lists and logs): use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or --credentials-file")]
    SecretInIdentifier(String),
    #[error("bucket name {0:?} is not valid: 3 to 63 lowercase letters, digits, '.' or '-'")]
    BadBucket(String),
    #[error("prefix {0:?} is not valid: no empty, '.' or '..' parts")]
    BadPrefix(String),
    #[error("reading the credentials file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the credentials file {path} has no profile [{profile}] with aws_access_key_id and aws_secret_access_key")]
    NoProfile { path: PathBuf, profile: String },
    #[error("no credentials for the object store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, add a profile to ~/.aws/credentials, or give --credentials-file")]
    NoCredentials,
}

/// A parsed `s3://BUCKET/PREFIX`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    /// Empty, or parts joined by '/' and ending in '/'.
    pub prefix: String,
}

impl Location {
    pub fn parse(id: &str) -> Result<Location, ConfigError> {
        let rest = id
            .strip_prefix("s3://")
            .ok_or_else(|| ConfigError::NotS3(id.to_string()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if let Some((_, after)) = bucket.rsplit_once('@') {
            let shown = format!("s3://***@{after}/{prefix}");
            return Err(ConfigError::SecretInIdentifier(shown));
        }
        if bucket.contains(':') {
            return Err(ConfigError::SecretInIdentifier("s3://***".into()));
        }
        let ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !ok {
            return Err(ConfigError::BadBucket(bucket.to_string()));
        }
        let trimmed = prefix.trim_end_matches('/');
        let mut out = String::new();
        if !trimmed.is_empty() {
            for part in trimmed.split('/') {
                if part.is_empty() || part == "." || part == ".." {
                    return Err(ConfigError::BadPrefix(prefix.to_string()));
                }
                out.push_str(part);
                out.push('/');
            }
        }
        Ok(Location {
            bucket: bucket.to_string(),
            prefix: out,
        })
    }

    /// `s3://BUCKET/PREFIX` as people should see it.
    pub fn display(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Keys to sign requests with, and where they came from (for `info`; never the secret).
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials({} from {})",
            self.access_key_id, self.source
        )
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn shared_file() -> Option<PathBuf> {
    env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".aws/credentials")))
}

/// Finds the credentials (see the module documentation for the order).
pub fn resolve(file: Option<&Path>, profile: Option<&str>) -> Result<Credentials, ConfigError> {
    let named = profile.map(str::to_string).or_else(|| env("AWS_PROFILE"));
    if let Some(path) = file {
        return from_file(path, named.as_deref().unwrap_or("default"));
    }
    if let Some(p) = profile {
        let path = shared_file().ok_or(ConfigError::NoCredentials)?;
        return from_file(&path, p);
    }
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: env("AWS_SESSION_TOKEN"),
            source: "the environment (AWS_ACCESS_KEY_ID)".into(),
        });
    }
    match shared_file() {
        Some(path) if path.is_file() => from_file(&path, named.as_deref().unwrap_or("default")),
        _ => Err(ConfigError::NoCredentials),
    }
}

/// The profile `profile` of an INI credentials file.
pub fn from_file(path: &Path, profile: &str) -> Result<Credentials, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (mut id, mut secret, mut token) = (None, None, None);
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            inside = name == profile || name.strip_prefix("profile ") == Some(profile);
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = Some(v.trim().to_string());
            match k.trim() {
                "aws_access_key_id" => id = v,
                "aws_secret_access_key" => secret = v,
                "aws_session_token" => token = v,
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: token,
            source: format!("profile [{profile}] of {}", path.display()),
        }),
        _ => Err(ConfigError::NoProfile {
            path: path.to_path_buf(),
            profile: profile.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_parse_and_secrets_in_them_are_refused() {
        let l = Location::parse("s3://ore-bucket/a/b/").expect("valid");
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("ore-bucket", "a/b/")
        );
        assert_eq!(
            Location::parse("s3://ore-bucket").expect("valid").prefix,
            ""
        );
        assert!(matches!(
            Location::parse("s3://key:secret@ore-bucket/x"),
            Err(ConfigError::SecretInIdentifier(_))
        ));
        assert!(matches!(
            Location::parse("s3://Bad_Bucket/x"),
            Err(ConfigError::BadBucket(_))
        ));
        assert!(matches!(
            Location::parse("s3://ore-b/a/../b"),
            Err(ConfigError::BadPrefix(_))
        ));
        assert!(matches!(
            Location::parse("/tmp/x"),
            Err(ConfigError::NotS3(_))
        ));
    }

    #[test]
    fn a_profile_is_read_from_an_ini_file() {
        let dir = std::env::temp_dir().join(format!("ore-s3-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("credentials");
        std::fs::write(
            &f,
            "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[other]\n# note\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=E\n",
        )
        .expect("write");
        let c = from_file(&f, "other").expect("other");
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("C", Some("E"))
        );
        assert_eq!(
            from_file(&f, "default").expect("default").secret_access_key,
            "B"
        );
        assert!(matches!(
            from_file(&f, "none"),
            Err(ConfigError::NoProfile { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
