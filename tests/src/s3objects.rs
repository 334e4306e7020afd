//! The objects of an archive on the test cluster, seen with OpenDAL directly rather than
//! through backend-s3: what a test checks of the layout (LAYOUT.md) must not rest on the code
//! under test, and a test that plants or removes objects acts as another client of the store.

use crate::seaweed::{Cluster, ACCESS_KEY, BUCKET, SECRET_KEY};
use opendal::Operator;
use std::future::IntoFuture;

/// An OpenDAL operator on the cluster's bucket under `root`, with the gateway's credentials.
pub fn operator(c: &Cluster, root: &str) -> Operator {
    Operator::new(
        opendal::services::S3::default()
            .bucket(BUCKET)
            .root(&format!("/{root}"))
            .region("us-east-1")
            .endpoint(&c.endpoint())
            .access_key_id(ACCESS_KEY)
            .secret_access_key(SECRET_KEY)
            .disable_config_load()
            .disable_ec2_metadata(),
    )
    .expect("operator")
    .finish()
}

/// A runtime for OpenDAL's futures.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The names of the objects under `dir` (e.g. `packs/`) and its subdirectories, relative to
/// the operator's root.
pub fn objects(op: &Operator, dir: &str) -> Vec<String> {
    rt().block_on(op.list_with(dir).recursive(true).into_future())
        .expect("list")
        .into_iter()
        .map(|e| e.path().to_string())
        .filter(|p| !p.ends_with('/'))
        .collect()
}

/// Deletes each of `paths`.
pub fn delete(op: &Operator, paths: &[String]) {
    let rt = rt();
    for p in paths {
        rt.block_on(op.delete(p)).expect("delete");
    }
}

/// Writes `bytes` as the object `path`, as any client of the store may.
pub fn put(op: &Operator, path: &str, bytes: Vec<u8>) {
    rt().block_on(op.write(path, bytes)).expect("put");
}

/// `writers` processes, each with its own connection to `id`, each raise the decimal counter
/// in tag `counter` by one `each` times through compare-and-swap (reading again after every
/// conflict); returns when all are done. With no move lost the counter ends at
/// `writers * each`.
pub fn count_up_together(id: &str, writers: usize, each: usize) {
    use connect::Client;
    use protocol::{Backend, CasOutcome};
    std::thread::scope(|s| {
        for _ in 0..writers {
            s.spawn(move || {
                let b = Client::connect(id).expect("a writer's own backend-s3 process");
                let mut done = 0;
                while done < each {
                    let cur = b.get_tag("counter").expect("get");
                    let n: u64 = cur
                        .as_deref()
                        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                        .unwrap_or(0);
                    let next = (n + 1).to_string();
                    let moved = b.set_tag("counter", cur.as_deref(), next.as_bytes());
                    if moved.expect("set") == CasOutcome::Done {
                        done += 1;
                    }
                }
            });
        }
    });
}
