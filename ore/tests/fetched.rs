//! How a failed read of one block is reported: damage to that block (the run goes on and
//! lists it), or a failure to reach the archive (the run stops with the backend's error).

use ore::core::block::Kind;
use ore::core::repo::{fetched, is_damage};
use protocol::{Error, ErrorCode, Key};

fn backend_error(code: ErrorCode) -> Error {
    Error::backend(
        code,
        "s3://bucket/ore/: reading packs/p: connection refused",
    )
}

#[test]
fn a_store_that_cannot_be_reached_is_not_reported_as_a_damaged_block() {
    // Regression: backend-s3 answered a refused connection to its store with `io`, which a
    // restore reported as "block ... is corrupt: the backend could not read it".
    let e = fetched(
        Err(backend_error(ErrorCode::Unavailable)),
        Key([1; 32]),
        Kind::Chunk,
    )
    .expect_err("an error");
    assert!(!is_damage(&e), "reported as damage: {e}");
    assert!(e.to_string().contains("connection refused"), "{e}");
}

#[test]
fn a_block_its_storage_could_not_read_is_still_damage() {
    let e = fetched(Err(backend_error(ErrorCode::Io)), Key([1; 32]), Kind::Chunk)
        .expect_err("an error");
    assert!(is_damage(&e), "not reported as damage: {e}");
}
