//! Append-only and read-only access, as every backend program offers it.

use protocol::{Access, Backend, CasOutcome, ErrorCode, Key, Restricted};
use testkit::conformance::test_key;
use testkit::MemoryBackend;

#[test]
fn append_only_adds_and_moves_tags_but_never_destroys() {
    let b = Restricted::new(MemoryBackend::new(1 << 20), Access::AppendOnly);
    let info = b.info();
    assert!(info.writable && !info.can_remove);
    assert!(info.description.contains("append-only"));
    b.put(test_key(1), b"x").unwrap();
    // Tags hold block keys (a value that is not one is refused: see the tagrules module).
    let (v1, v2) = (test_key(1).to_hex(), test_key(2).to_hex());
    let (v1, v2) = (v1.as_bytes(), v2.as_bytes());
    assert_eq!(
        b.set_tag("t", None, b"v1").unwrap_err().code(),
        ErrorCode::ReadOnly
    );
    assert_eq!(b.set_tag("t", None, v1).unwrap(), CasOutcome::Done);
    assert_eq!(b.set_tag("t", Some(v1), v2).unwrap(), CasOutcome::Done);
    let e = b.remove(&[test_key(1)]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ReadOnly);
    assert!(
        e.to_string()
            .contains("append-only: removing blocks refused"),
        "{e}"
    );
    assert_eq!(
        b.remove_tag("t", None).unwrap_err().code(),
        ErrorCode::ReadOnly
    );
    assert_eq!(b.get(test_key(1)).unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(b.get_tag("t").unwrap().as_deref(), Some(v2));
    // Reading admin commands work; changing ones are refused and the allowed ones named.
    b.admin("help", &[]).unwrap();
    let e = b
        .admin("log", &["info".into(), "x".into()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not allowed") && e.contains("tag-history"),
        "{e}"
    );
}

#[test]
fn read_only_refuses_every_change() {
    let b = Restricted::new(MemoryBackend::new(1 << 20), Access::ReadOnly);
    assert!(!b.info().writable);
    assert_eq!(
        b.put(test_key(1), b"x").unwrap_err().code(),
        ErrorCode::ReadOnly
    );
    assert_eq!(
        b.start_put(test_key(1), b"x".to_vec())
            .wait()
            .unwrap_err()
            .code(),
        ErrorCode::ReadOnly
    );
    assert_eq!(
        b.set_tag("t", None, b"v").unwrap_err().code(),
        ErrorCode::ReadOnly
    );
    assert_eq!(b.get(test_key(1)).unwrap(), None);
    assert_eq!(b.list_tags().unwrap(), vec![]);
}

#[test]
fn full_access_changes_nothing() {
    let b = Restricted::new(MemoryBackend::new(1 << 20), Access::Full);
    testkit::conformance::run(&b);
}

#[test]
fn puts_through_an_append_only_connection_are_recorded_and_the_owners_are_not() {
    use protocol::provenance::{parse_page, UNVOUCHED};
    use std::sync::Arc;
    let store = Arc::new(MemoryBackend::new(1 << 20));
    let laptop = Restricted::new(store.clone(), Access::AppendOnly);
    let owner = Restricted::new(store.clone(), Access::Full);
    owner.put(Key([1; 32]), b"owner's").unwrap();
    laptop.put(Key([1; 32]), b"garbage").unwrap();
    laptop.put(Key([2; 32]), b"garbage").unwrap();
    laptop
        .start_put(Key([3; 32]), b"garbage".to_vec())
        .wait()
        .unwrap();
    owner.put(Key([4; 32]), b"owner's").unwrap();
    let (keys, more) = parse_page(&laptop.admin(UNVOUCHED, &[]).unwrap().json).unwrap();
    assert_eq!((keys, more), (vec![Key([2; 32]), Key([3; 32])], false));
    assert_eq!(store.get(Key([1; 32])).unwrap().unwrap(), b"owner's");
    assert!(laptop.admin("vouch", &[Key([2; 32]).to_hex()]).is_err());
    owner.admin("vouch", &[Key([2; 32]).to_hex()]).unwrap();
    let (keys, _) = parse_page(&owner.admin(UNVOUCHED, &[]).unwrap().json).unwrap();
    assert_eq!(keys, vec![Key([3; 32])]);
}
