//! backend-s3's command line, kept in the library so that one definition serves twice: the
//! program parses it to serve an archive on stdin and stdout, and `ore` parses the same words
//! to open the archive in its own process when an identifier starts with `s3://` (see
//! `connect`). Both then accept the same options, with the same meaning and the same errors.

use crate::config::{resolve, Location};
use crate::{Endpoint, S3Backend, S3Options};
use ore_util::flags::AccessFlags;
use protocol::{Error, ErrorCode, Result};
use std::path::PathBuf;

/// Serve an Ore archive kept in an S3-compatible object store.
///
/// Speaks the Ore backend protocol on stdin and stdout; it is started by `ore` or `ore-admin`
/// from an archive identifier such as "backend-s3 s3://my-bucket/ore --endpoint
/// http://127.0.0.1:8333". The archive is created when the prefix holds no objects.
/// Credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials (profile
/// AWS_PROFILE or default) or --credentials-file, never from the identifier.
///
/// --append-only and --read-only limit only what goes through this program: a host holding
/// the store's credentials can use them with any S3 client. To limit a backup host, run
/// backend-s3 as an ssh forced command on another host that holds them.
#[derive(clap::Parser, Debug)]
#[command(name = "backend-s3", version)]
pub struct Args {
    /// The archive: s3://BUCKET/PREFIX.
    pub location: String,
    /// The store's URL (default: AWS S3 for the region).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The region to sign for (default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// An AWS-style credentials file (INI with aws_access_key_id / aws_secret_access_key).
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,
    /// The profile to use in the credentials file (default: AWS_PROFILE, else default).
    #[arg(long)]
    pub profile: Option<String>,
    #[command(flatten)]
    pub access: AccessFlags,
    /// Largest block accepted, in bytes (kept in the archive's format object when creating).
    #[arg(long, value_name = "BYTES")]
    pub max_block_size: Option<u32>,
    /// Repack only packs whose dead share (removed blocks, duplicate copies) is at least
    /// this, 0 to 1, even when gc asks for less: a repack reads and writes every live byte of
    /// the pack again.
    #[arg(long, value_name = "SHARE", default_value_t = crate::DEFAULT_REPACK_THRESHOLD)]
    pub repack_threshold: f64,
    /// Local scratch space for packs read whole (a restore reads most of every pack, in an
    /// order unrelated to the packs'): SIZE like 1GiB or 500MB, 0 to read blocks only through
    /// read-ahead. Scratch files are unnamed temporary files in TMPDIR, gone when the process
    /// ends.
    #[arg(long, value_name = "SIZE", default_value = "1GiB")]
    pub spill: bytesize::ByteSize,
    /// Act as if the store ignored conditional writes (for tests of that path).
    #[arg(long, hide = true)]
    pub assume_unconditional: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Args {
    /// The arguments `words` give (the program's own name not among them), or clap's message
    /// saying what is wrong with them.
    pub fn from_words(words: &[String]) -> std::result::Result<Args, clap::Error> {
        use clap::Parser;
        Args::try_parse_from(std::iter::once("backend-s3".to_string()).chain(words.iter().cloned()))
    }

    /// Opens (or, in an empty prefix, creates) the archive these arguments name. The access
    /// flags are not applied here: the caller serves or wraps the backend with them.
    pub fn open(&self) -> Result<S3Backend> {
        let invalid = |m: String| Error::backend(ErrorCode::InvalidArgument, m);
        let location = Location::parse(&self.location).map_err(|e| invalid(e.to_string()))?;
        if !(0.0..=1.0).contains(&self.repack_threshold) {
            return Err(invalid(format!(
                "--repack-threshold {} is not a share between 0 and 1",
                self.repack_threshold
            )));
        }
        let credentials = resolve(self.credentials_file.as_deref(), self.profile.as_deref())
            .map_err(|e| invalid(format!("opening the archive {}: {e}", location.display())))?;
        let region = self
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        S3Backend::open(
            Endpoint {
                location,
                endpoint: self.endpoint.clone(),
                region,
                credentials,
            },
            S3Options {
                max_block_size: self.max_block_size,
                read_only: self.access.read_only,
                assume_unconditional: self.assume_unconditional,
                repack_threshold: Some(self.repack_threshold),
                spill_limit: Some(self.spill.as_u64()),
            },
        )
    }
}
