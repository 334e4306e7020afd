//! The object store as backend-s3 uses it: a handful of async calls over an OpenDAL
//! [`Operator`], each turning the store's answers into Ore's — "missing" and "refused by a
//! condition" as values, everything else as an error that names the archive and the object.
//!
//! Why this layer: the rest of the crate reasons about conditional writes (`If-None-Match: *`,
//! `If-Match: ETAG`) and about what a 404 means. A 404 for an object is an answer; a 404 for
//! the bucket (`NoSuchBucket`) is a broken configuration, and reading it as "no such block"
//! would make a mistyped bucket look like an empty archive. So that distinction lives here,
//! once. Requests that fail for a passing reason (503 SlowDown, a reset connection) are
//! retried with jittered backoff by OpenDAL's retry layer, and every request has a timeout, so
//! no failure of the store turns into a hang.

use crate::requests::{Kind, Requests};
use futures::TryStreamExt;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};
use protocol::{Error, ErrorCode, Result};
use std::future::IntoFuture;
use std::time::Duration;

mod down;

/// An S3 operator for the store, before its layers.
fn operator(
    e: &Endpoint,
    archive: &str,
) -> Result<opendal::OperatorBuilder<impl opendal::raw::Access>> {
    let mut b = opendal::services::S3::default()
        .bucket(&e.location.bucket)
        .root(&format!("/{}", e.location.prefix))
        .region(&e.region)
        .access_key_id(&e.credentials.access_key_id)
        .secret_access_key(&e.credentials.secret_access_key)
        .disable_config_load()
        .disable_ec2_metadata();
    if let Some(t) = &e.credentials.session_token {
        b = b.session_token(t);
    }
    if let Some(url) = &e.endpoint {
        b = b.endpoint(url);
    }
    Operator::new(b).map_err(|err| {
        Error::backend(
            ErrorCode::InvalidArgument,
            format!("{archive}: cannot configure the S3 client: {err}"),
        )
    })
}

/// How to reach the store.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub location: crate::config::Location,
    /// `None`: AWS's own endpoint for the region.
    pub endpoint: Option<String>,
    pub region: String,
    pub credentials: crate::config::Credentials,
}

/// An archive's objects, addressed relative to its prefix.
#[derive(Clone)]
pub(crate) struct Store {
    op: Operator,
    /// The same store without retries: for reads while it is known to be down (`down`).
    once: Operator,
    /// Whether a read found the store gone (no answer after its retries).
    down: std::sync::Arc<down::Down>,
    /// `s3://BUCKET/PREFIX`, for messages.
    pub(crate) archive: String,
    /// Requests made, by kind.
    pub(crate) requests: std::sync::Arc<Requests>,
    /// Tags are kept as records in `tag-log/` (the format object says so), not as objects
    /// moved by compare-and-swap.
    pub(crate) tag_log: bool,
    /// The archive's layout (1 or 2): in layout 1, removal records are in `deleted/`, apart
    /// from the index objects, and finding both takes two listings.
    pub(crate) layout: u8,
    /// Values of this process's tag moves waiting to be kept together (`tag_history`).
    pub(crate) gathered: std::sync::Arc<crate::tag_history::Gathered>,
    /// The tag objects this process last read or wrote, with their ETags (`tag_cache`).
    pub(crate) tag_cache: std::sync::Arc<crate::tag_cache::Cache>,
    /// Copies of immutable index and removal objects on this machine (`local`).
    pub(crate) local: std::sync::Arc<crate::local::LocalCopies>,
}

/// An object's bytes and the ETag they were read with.
pub(crate) struct Tagged {
    pub data: Vec<u8>,
    pub etag: String,
}

impl Store {
    pub(crate) fn new(e: &Endpoint) -> Result<Store> {
        let archive = e.location.display();
        let op = operator(e, &archive)?
            .layer(
                RetryLayer::new()
                    .with_max_times(5)
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(5))
                    .with_jitter(),
            )
            .layer(TimeoutLayer::new().with_timeout(Duration::from_secs(60)))
            .finish();
        let once = operator(e, &archive)?
            .layer(TimeoutLayer::new().with_timeout(Duration::from_secs(60)))
            .finish();
        let local =
            crate::local::LocalCopies::new(e.endpoint.as_deref().unwrap_or(&e.region), &archive);
        Ok(Store {
            op,
            once,
            down: Default::default(),
            archive,
            requests: Default::default(),
            tag_log: false,
            layout: 2,
            gathered: Default::default(),
            tag_cache: Default::default(),
            local: std::sync::Arc::new(local),
        })
    }

    fn fail(&self, what: &str, path: &str, e: &opendal::Error) -> Error {
        let code = if unreachable(e) {
            ErrorCode::Unavailable
        } else {
            ErrorCode::Io
        };
        Error::backend(
            code,
            format!("{}: {what} {path}: {}", self.archive, describe(e)),
        )
    }

    /// Whether a NotFound is about the object (an answer) rather than the bucket (an error).
    fn missing(&self, what: &str, path: &str, e: &opendal::Error) -> Result<()> {
        if e.kind() == ErrorKind::NotFound && !bucket_missing(e) {
            Ok(())
        } else {
            Err(self.fail(what, path, e))
        }
    }

    /// Creates `path` only if it does not exist: `true` when written, `false` when the store
    /// refused because it exists.
    pub(crate) async fn put_new(
        &self,
        path: &str,
        data: impl Into<opendal::Buffer>,
    ) -> Result<bool> {
        self.requests.count(Kind::Put);
        match self.op.write_with(path, data).if_not_exists(true).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => Ok(false),
            Err(e) => Err(self.fail("creating", path, &e)),
        }
    }

    /// Replaces `path` only if its ETag is still `etag`: `false` when refused.
    pub(crate) async fn put_if_match(&self, path: &str, data: Vec<u8>, etag: &str) -> Result<bool> {
        Ok(self
            .put_conditional(path, data, Some(etag))
            .await?
            .is_some())
    }

    /// Writes `path` if it does not exist (`etag` `None`) or if its ETag is still `etag`:
    /// `None` when refused, else the new object's ETag if the store gave one.
    pub(crate) async fn put_conditional(
        &self,
        path: &str,
        data: Vec<u8>,
        etag: Option<&str>,
    ) -> Result<Option<Option<String>>> {
        self.requests.count(Kind::Put);
        let written = match etag {
            None => self.op.write_with(path, data).if_not_exists(true).await,
            Some(e) => self.op.write_with(path, data).if_match(e).await,
        };
        match written {
            Ok(m) => Ok(Some(m.etag().map(str::to_string))),
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound && etag.is_some() => {
                self.missing("replacing", path, &e).map(|()| None)
            }
            Err(e) => Err(self.fail(
                if etag.is_some() {
                    "replacing"
                } else {
                    "creating"
                },
                path,
                &e,
            )),
        }
    }

    /// Whether `path` still has ETag `etag`, by one GET with `If-None-Match` (answered 304
    /// when it has): `Some(true)` unchanged, `Some(false)` changed, `None` gone.
    pub(crate) async fn unchanged(&self, path: &str, etag: &str) -> Result<Option<bool>> {
        self.requests.count(Kind::Get);
        match self.op.read_with(path).if_none_match(etag).await {
            Ok(_) => Ok(Some(false)),
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => Ok(Some(true)),
            Err(e) => self.missing("reading", path, &e).map(|()| None),
        }
    }

    /// Writes `path` without conditions.
    pub(crate) async fn put(&self, path: &str, data: Vec<u8>) -> Result<()> {
        self.requests.count(Kind::Put);
        self.op
            .write(path, data)
            .await
            .map(|_| ())
            .map_err(|e| self.fail("writing", path, &e))
    }

    /// The bytes of `path`, or `None` when it does not exist.
    pub(crate) async fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.read(path, None).await
    }

    /// `len` bytes of `path` from `offset`, or `None` when the object does not exist.
    pub(crate) async fn get_range(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>> {
        if len == 0 {
            return Ok(self.head(path).await?.map(|_| Vec::new()));
        }
        self.read(path, Some(offset..offset + len)).await
    }

    /// What a GET of `path` (of `range`, if given) read, or `None` when the object does not
    /// exist. While the store is known to be down, one try and no retries (`down`).
    async fn read(
        &self,
        path: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Option<Vec<u8>>> {
        self.requests.count(Kind::Get);
        let request = |down| {
            let mut request = self.operator(down).read_with(path);
            if let Some(r) = range {
                request = request.range(r);
            }
            request.into_future()
        };
        match self.down.unless_down(request).await {
            Ok(Ok(b)) => {
                self.down.clear();
                Ok(Some(b.to_vec()))
            }
            Ok(Err(e)) => self.read_failed(path, &e).map(|()| None),
            Err(why) => Err(self.given_up(path, &why)),
        }
    }

    /// The operator for a read: without retries while the store is known to be down.
    fn operator(&self, down: bool) -> &Operator {
        if down {
            &self.once
        } else {
            &self.op
        }
    }

    /// A failed read: `Ok` when the object is missing; else the error, after marking the
    /// store down when no answer came at all.
    fn read_failed(&self, path: &str, e: &opendal::Error) -> Result<()> {
        if down::no_answer(e) {
            self.down.mark(self.fail("reading", path, e).to_string());
        } else {
            self.down.clear();
        }
        self.missing("reading", path, e)
    }

    /// The error of a read given up because another found the store down (`why`).
    fn given_up(&self, path: &str, why: &str) -> Error {
        Error::backend(
            ErrorCode::Unavailable,
            format!(
                "{}: reading {path}: not waited for: the store stopped answering ({why})",
                self.archive
            ),
        )
    }

    /// Copies `len` bytes of `path` from `offset` into `out` as they arrive (so a large range
    /// is never held whole in memory): `false` when the object does not exist.
    pub(crate) async fn get_range_into(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        out: &mut std::fs::File,
    ) -> Result<bool> {
        use std::io::Write;
        self.requests.count(Kind::Get);
        let stream = |down| async move {
            let reader = self.operator(down).reader_with(path).await?;
            reader.into_bytes_stream(offset..offset + len).await
        };
        let mut stream = match self.down.unless_down(stream).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return self.read_failed(path, &e).map(|()| false),
            Err(why) => return Err(self.given_up(path, &why)),
        };
        let mut written = 0u64;
        while let Some(chunk) = stream.try_next().await.map_err(|e| {
            Error::backend(
                ErrorCode::Io,
                format!("{}: reading {path}: {e}", self.archive),
            )
        })? {
            // A store that sends more than was asked for (a hostile or broken one) is cut
            // off before its bytes can fill the disk.
            if written + chunk.len() as u64 > len {
                return Err(Error::backend(
                    ErrorCode::Corrupt,
                    format!(
                        "{}: {path} sent more than the {len} bytes asked for from {offset}",
                        self.archive
                    ),
                ));
            }
            out.write_all(&chunk).map_err(|e| {
                Error::io(
                    format!("{}: keeping {path} in a scratch file", self.archive),
                    e,
                )
            })?;
            written += chunk.len() as u64;
        }
        if written != len {
            return Err(Error::backend(
                ErrorCode::Corrupt,
                format!(
                    "{}: {path} gave {written} bytes from {offset} where {len} were asked for",
                    self.archive
                ),
            ));
        }
        Ok(true)
    }

    /// The bytes of `path` with their ETag (a HEAD, then a GET that must match it; read
    /// again when the object changed in between).
    pub(crate) async fn get_tagged(&self, path: &str) -> Result<Option<Tagged>> {
        for _ in 0..100 {
            let Some(etag) = self.etag(path).await? else {
                return Ok(None);
            };
            self.requests.count(Kind::Get);
            match self.op.read_with(path).if_match(&etag).await {
                Ok(b) => {
                    return Ok(Some(Tagged {
                        data: b.to_vec(),
                        etag,
                    }))
                }
                Err(e) if e.kind() == ErrorKind::ConditionNotMatch => continue,
                Err(e) => self.missing("reading", path, &e)?,
            }
        }
        Err(Error::backend(
            ErrorCode::Io,
            format!(
                "{}: {path} changed on every one of 100 reads; giving up",
                self.archive
            ),
        ))
    }

    async fn etag(&self, path: &str) -> Result<Option<String>> {
        self.requests.count(Kind::Head);
        match self.op.stat(path).await {
            Ok(m) => Ok(Some(m.etag().unwrap_or_default().to_string())),
            Err(e) => self.missing("looking up", path, &e).map(|()| None),
        }
    }

    /// When the store dated `path` (its Last-Modified), or `None` when it does not exist.
    pub(crate) async fn modified(&self, path: &str) -> Result<Option<std::time::SystemTime>> {
        self.requests.count(Kind::Head);
        match self.op.stat(path).await {
            Ok(m) => Ok(Some(
                m.last_modified().map_or(std::time::UNIX_EPOCH, Into::into),
            )),
            Err(e) => self.missing("looking up", path, &e).map(|()| None),
        }
    }

    /// The size of `path`, or `None` when it does not exist.
    pub(crate) async fn head(&self, path: &str) -> Result<Option<u64>> {
        self.requests.count(Kind::Head);
        match self.op.stat(path).await {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) => self.missing("looking up", path, &e).map(|()| None),
        }
    }

    /// Deletes `path` (a missing object is fine).
    pub(crate) async fn delete(&self, path: &str) -> Result<()> {
        self.requests.count(Kind::Delete);
        self.op
            .delete(path)
            .await
            .map_err(|e| self.fail("deleting", path, &e))
    }

    /// Up to `limit` object names (relative to `dir`, which ends in '/') after `after`, in
    /// ascending order, and whether more follow. `recursive` lists below sub-directories too.
    pub(crate) async fn list(
        &self,
        dir: &str,
        after: Option<&str>,
        limit: usize,
        recursive: bool,
    ) -> Result<(Vec<String>, bool)> {
        let mut out = Vec::new();
        let more = self
            .walk(dir, after, recursive, |name, _| {
                if out.len() == limit {
                    return false;
                }
                out.push(name.to_string());
                true
            })
            .await?;
        Ok((out, more))
    }

    /// Every object name below `dir` with the time the store gave it (its LastModified).
    pub(crate) async fn list_timed(
        &self,
        dir: &str,
    ) -> Result<Vec<(String, std::time::SystemTime)>> {
        let mut out = Vec::new();
        self.walk(dir, None, true, |name, entry| {
            let time = entry
                .metadata()
                .last_modified()
                .map_or(std::time::UNIX_EPOCH, Into::into);
            out.push((name.to_string(), time));
            true
        })
        .await?;
        Ok(out)
    }

    /// Lists the objects below `dir` after `after` in one listing, handing each one's name
    /// (relative to `dir`) and entry to `each` until it says to stop: `true` when it did.
    async fn walk(
        &self,
        dir: &str,
        after: Option<&str>,
        recursive: bool,
        mut each: impl FnMut(&str, &opendal::Entry) -> bool,
    ) -> Result<bool> {
        self.requests.count(Kind::List);
        let mut l = self.op.lister_with(dir).recursive(recursive);
        if let Some(a) = after {
            l = l.start_after(&format!("{dir}{a}"));
        }
        let mut lister = l.await.map_err(|e| self.fail("listing", dir, &e))?;
        while let Some(entry) = lister
            .try_next()
            .await
            .map_err(|e| self.fail("listing", dir, &e))?
        {
            let Some(name) = object_name(entry.path(), dir) else {
                continue;
            };
            if !each(name, &entry) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every object name below `dir`.
    pub(crate) async fn list_all(&self, dir: &str) -> Result<Vec<String>> {
        Ok(self.list(dir, None, usize::MAX, true).await?.0)
    }
}

/// Requests run at once by one operation over many objects (reading index objects, tags,
/// history records): enough to hide each request's latency, few enough not to flood the store.
const AT_ONCE: usize = 64;

/// Runs `futures` with at most [`AT_ONCE`] in flight; the results in their order.
pub(crate) async fn at_most<T>(
    futures: impl IntoIterator<Item = impl std::future::Future<Output = Result<T>>>,
) -> Result<Vec<T>> {
    use futures::StreamExt;
    futures::stream::iter(futures)
        .buffered(AT_ONCE)
        .try_collect()
        .await
}

fn bucket_missing(e: &opendal::Error) -> bool {
    e.to_string().contains("NoSuchBucket")
}

/// The value of `field: "..."` in OpenDAL's rendering of an S3 error.
fn field<'a>(text: &'a str, field: &str) -> Option<&'a str> {
    let start = text.find(&format!("{field}: \""))? + field.len() + 3;
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// One sentence for a failed request: what the store said (its error code and message), or
/// why no answer came, without the request's headers that OpenDAL's rendering carries.
/// Whether `e` means the store was not reached or kept refusing (after the retries): no
/// request got through, or every answer was "slow down" or a timeout. Reported as
/// `unavailable`, so that a frontend does not take it for damage to the block it asked for.
fn unreachable(e: &opendal::Error) -> bool {
    if e.kind() == ErrorKind::RateLimited {
        return true;
    }
    let text = e.to_string();
    e.kind() == ErrorKind::Unexpected
        && [
            "send http request",
            "timeout reached",
            "SlowDown",
            "ServiceUnavailable",
        ]
        .iter()
        .any(|m| text.contains(m))
}

fn describe(e: &opendal::Error) -> String {
    let text = e.to_string();
    if bucket_missing(e) {
        return "the bucket does not exist".into();
    }
    let said = match (field(&text, "code"), field(&text, "message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => {
            // Why no answer came: the chain of causes (e.g. "error sending request for url
            // (...): client error (Connect): tcp connect error: Connection refused").
            let mut causes = Vec::new();
            let mut next = std::error::Error::source(e);
            while let Some(c) = next {
                causes.push(c.to_string());
                next = c.source();
            }
            causes.dedup();
            if causes.is_empty() {
                text.clone()
            } else {
                causes.join(": ")
            }
        }
    };
    match e.kind() {
        ErrorKind::PermissionDenied => {
            format!("access denied (check the credentials and the bucket's policy): {said}")
        }
        ErrorKind::RateLimited => format!("the store kept asking to slow down: {said}"),
        _ if e.is_persistent() => format!("{said} (still failing after retries)"),
        _ => said,
    }
}

/// The name below `dir` of a listed path, or `None` for `dir` itself and for directories
/// (which a listing of a store with real directories may return).
fn object_name<'a>(path: &'a str, dir: &str) -> Option<&'a str> {
    path.strip_prefix(dir)
        .filter(|name| !name.is_empty() && !name.ends_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_that_cannot_be_reached_is_unavailable_not_a_failed_read() {
        let refused = opendal::Error::new(ErrorKind::Unexpected, "send http request");
        assert!(unreachable(&refused));
        let slow = opendal::Error::new(ErrorKind::RateLimited, "SlowDown");
        assert!(unreachable(&slow));
        let timeout = opendal::Error::new(ErrorKind::Unexpected, "operation timeout reached");
        assert!(unreachable(&timeout));
        let denied = opendal::Error::new(ErrorKind::PermissionDenied, "AccessDenied");
        assert!(!unreachable(&denied));
        let short = opendal::Error::new(ErrorKind::Unexpected, "reader got too little data");
        assert!(!unreachable(&short));
    }
}
