//! [`Backend`] for [`Client`]: each operation as a request, and the answer it must get.
//!
//! An answer of another kind than the one a request calls for is a protocol error naming the
//! archive; so is a listing page that says more keys follow but holds none (it would pass for
//! the end of the listing, and gc would sweep by the keys it never showed).

use super::Client;
use protocol::backend::{
    AdminOutput, AttachPoint, Backend, BackendInfo, CasOutcome, Stats, Ticket,
};
use protocol::error::{Error, Result};
use protocol::message::{AdminRequest, RemoveTag, Request, Response, SetTag};
use protocol::Key;

fn ok(r: Response) -> Result<(), Response> {
    match r {
        Response::Ok => Ok(()),
        o => Err(o),
    }
}

fn cas(r: Response) -> Result<CasOutcome, Response> {
    match r {
        Response::TagSet(o) => Ok(o),
        o => Err(o),
    }
}

impl Backend for Client {
    fn info(&self) -> BackendInfo {
        self.info.clone()
    }

    fn put(&self, key: Key, data: &[u8]) -> Result<()> {
        self.start_put(key, data.to_vec()).wait()
    }

    fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
        self.start_get(key).wait()
    }

    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
        self.start_exists(keys.to_vec()).wait()
    }

    fn remove(&self, keys: &[Key]) -> Result<()> {
        self.call(Request::Remove(keys.to_vec()), ok).wait()
    }

    fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        let archive = self.shared.archive.clone();
        self.call(Request::List { after, limit }, |r| match r {
            Response::Keys { keys, more } => Ok((keys, more)),
            o => Err(o),
        })
        .wait()
        .and_then(|(keys, more)| {
            // A page that promises more but holds nothing gives no place to go on from: taken
            // as the end, it would pass for a short listing (and gc would sweep by it).
            if more && keys.is_empty() {
                return Err(Error::Connection {
                    archive,
                    message: "protocol error: a listing page said more keys follow but held none"
                        .into(),
                });
            }
            Ok((keys, more))
        })
    }

    fn get_tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.call(Request::GetTag(name.to_string()), |r| match r {
            Response::Tag(v) => Ok(v),
            o => Err(o),
        })
        .wait()
    }

    fn set_tag(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<CasOutcome> {
        let req = Request::SetTag(SetTag {
            name: name.to_string(),
            expected: expected.map(<[u8]>::to_vec),
            value: value.to_vec(),
        });
        self.call(req, cas).wait()
    }

    fn remove_tag(&self, name: &str, expected: Option<&[u8]>) -> Result<CasOutcome> {
        let req = Request::RemoveTag(RemoveTag {
            name: name.to_string(),
            expected: expected.map(<[u8]>::to_vec),
        });
        self.call(req, cas).wait()
    }

    fn list_tags(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.call(Request::ListTags, |r| match r {
            Response::Tags(t) => Ok(t),
            o => Err(o),
        })
        .wait()
    }

    fn flush(&self) -> Result<()> {
        self.call(Request::Flush, ok).wait()
    }

    fn stats(&self) -> Result<Stats> {
        self.call(Request::Stats, |r| match r {
            Response::Stats(s) => Ok(s),
            o => Err(o),
        })
        .wait()
    }

    fn admin(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        let req = Request::Admin(AdminRequest {
            command: command.to_string(),
            args: args.to_vec(),
        });
        self.call(req, |r| match r {
            Response::Admin(a) => Ok(a),
            o => Err(o),
        })
        .wait()
    }

    fn attach_point(&self) -> Result<AttachPoint> {
        self.start_attach_point().wait()
    }

    fn pipelines(&self) -> bool {
        true
    }

    fn start_put(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        self.call(
            Request::Put {
                key,
                data: data.into(),
            },
            ok,
        )
    }

    fn start_get(&self, key: Key) -> Ticket<Option<Vec<u8>>> {
        self.call(Request::Get(key), |r| match r {
            Response::Data(d) => Ok(Some(d)),
            Response::Missing => Ok(None),
            o => Err(o),
        })
    }

    fn start_exists(&self, keys: Vec<Key>) -> Ticket<Vec<bool>> {
        let n = keys.len();
        // An answer with the wrong number of entries is a broken peer, not an answer.
        self.call(Request::Exists(keys), move |r| match r {
            Response::Presence(v) if v.len() == n => Ok(v),
            o => Err(o),
        })
    }
}
