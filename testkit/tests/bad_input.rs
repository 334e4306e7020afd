//! Bad input on both sides of a connection: each case gives one clear error, never a panic, a
//! hang or an allocation of a claimed size.

use connect::{Client, ClientOptions};
use protocol::frame::{read_frame, write_frame, MAGIC};
use protocol::message::{kind, Hello, Request, Response};
use protocol::{Backend, ErrorCode, Key};
use std::io::Write;
use std::process::{Command, Stdio};

fn memory() -> &'static str {
    env!("CARGO_BIN_EXE_backend-memory")
}

/// Runs backend-memory on `input`, returns (answers after its greeting, exit success).
fn raw_session(input: &[u8]) -> (Vec<Response>, bool, String) {
    let mut child = Command::new(memory())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(&out.stdout[..8], &MAGIC, "the server greets first");
    let mut rest = &out.stdout[8..];
    let mut answers = Vec::new();
    while let Some(f) = read_frame(&mut rest, u32::MAX).expect("server output is well framed") {
        answers.push(Response::decode(f).unwrap());
    }
    (
        answers,
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn hello(min: u16, max: u16) -> Vec<u8> {
    let mut v = MAGIC.to_vec();
    v.extend(
        Request::Hello(Hello {
            min_version: min,
            max_version: max,
            client: "test".into(),
        })
        .to_frame_bytes(),
    );
    v
}

fn error_of(r: &Response) -> (ErrorCode, String) {
    match r {
        Response::Error { code, message } => (*code, message.clone()),
        other => panic!("expected an error answer, got {other:?}"),
    }
}

#[test]
fn wrong_magic_is_refused_with_an_error_frame() {
    let (answers, ok, stderr) = raw_session(b"GET / HTTP/1.1\r\n\r\n");
    assert!(!ok, "the server exits with failure");
    let (code, msg) = error_of(&answers[0]);
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("GET / HTTP"), "{msg}");
    assert!(
        stderr.contains("does not speak the Ore protocol"),
        "{stderr}"
    );
}

#[test]
fn version_mismatch_names_both_ranges() {
    let (answers, ok, _) = raw_session(&hello(5, 9));
    assert!(!ok);
    let (code, msg) = error_of(&answers[0]);
    assert_eq!(code, ErrorCode::VersionMismatch);
    assert!(msg.contains("5–9") && msg.contains("1–1"), "{msg}");
}

#[test]
fn first_message_must_be_hello() {
    let mut input = MAGIC.to_vec();
    input.extend(Request::Flush.to_frame_bytes());
    let (answers, ok, _) = raw_session(&input);
    assert!(!ok);
    assert!(error_of(&answers[0]).1.contains("must be hello"));
}

#[test]
fn unknown_kinds_and_malformed_bodies_get_error_answers_and_the_connection_goes_on() {
    let mut input = hello(1, 1);
    write_frame(&mut input, 0x70, &[b"??"]).unwrap();
    write_frame(&mut input, kind::OK, &[]).unwrap(); // an answer kind sent as a request
    write_frame(&mut input, kind::EXISTS, &[&[0xff, 0xff, 0xff]]).unwrap();
    write_frame(&mut input, kind::GET, &[b"short"]).unwrap();
    write_frame(&mut input, kind::FLUSH, &[b"x"]).unwrap();
    write_frame(&mut input, kind::HELLO, &[&[1, 1, 0]]).unwrap();
    input.extend(Request::Get(Key([7; 32])).to_frame_bytes());
    input.extend(Request::Close.to_frame_bytes());
    let (answers, ok, _) = raw_session(&input);
    assert!(ok, "a clean close after bad requests is still a clean exit");
    assert!(matches!(answers[0], Response::Welcome(_)));
    assert_eq!(error_of(&answers[1]).0, ErrorCode::UnknownKind);
    assert!(error_of(&answers[1]).1.contains("0x70"));
    assert_eq!(error_of(&answers[2]).0, ErrorCode::UnknownKind);
    assert_eq!(error_of(&answers[3]).0, ErrorCode::BadRequest);
    assert!(error_of(&answers[4]).1.contains("32-byte key"));
    assert_eq!(error_of(&answers[5]).0, ErrorCode::BadRequest);
    assert!(error_of(&answers[6]).1.contains("only be sent once"));
    assert_eq!(answers[7], Response::Missing);
    assert_eq!(answers[8], Response::Goodbye);
    assert_eq!(answers.len(), 9);
}

#[test]
fn oversized_length_closes_without_allocating() {
    let mut input = hello(1, 1);
    input.extend([0xf0, 0xff, 0xff, 0xff, kind::PUT]);
    let (answers, ok, stderr) = raw_session(&input);
    assert!(!ok);
    assert!(error_of(&answers[1]).1.contains("more than the limit"));
    assert!(stderr.contains("more than the limit"), "{stderr}");
}

#[test]
fn torn_frame_is_an_error_not_a_hang() {
    let mut input = hello(1, 1);
    let put = Request::Put {
        key: Key([1; 32]),
        data: vec![9; 1000].into(),
    }
    .to_frame_bytes();
    input.extend(&put[..500]);
    let (answers, ok, stderr) = raw_session(&input);
    assert!(!ok);
    assert!(error_of(&answers[1]).1.contains("torn frame"));
    assert!(stderr.contains("torn frame"), "{stderr}");
}

#[test]
fn clean_eof_between_frames_is_a_clean_close() {
    let mut input = hello(1, 1);
    input.extend(Request::Flush.to_frame_bytes());
    let (answers, ok, _) = raw_session(&input);
    assert!(ok);
    assert_eq!(answers[1], Response::Ok);
}

fn connect_err(id: &str) -> String {
    match Client::connect(id) {
        Ok(_) => panic!("connecting to {id:?} succeeded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_program_is_named() {
    let e = connect_err("backend-does-not-exist /tmp/x");
    assert!(e.contains("archive `backend-does-not-exist /tmp/x`"), "{e}");
    assert!(e.contains("cannot start `backend-does-not-exist`"), "{e}");
    assert!(e.contains("PATH"), "{e}");
}

#[test]
fn program_that_exits_at_once_is_reported_with_its_status() {
    let e = connect_err("sh -c 'exit 3'");
    assert!(e.contains("exited with status 3 before answering"), "{e}");
}

#[test]
fn program_that_prints_junk_is_not_taken_for_a_backend() {
    let e = connect_err("echo Usage: some-other-program");
    assert!(e.contains("does not speak the Ore protocol"), "{e}");
    assert!(e.contains("Usage: some-other-program"), "{e}");
}

#[test]
fn unbalanced_quotes_in_identifier() {
    let e = connect_err("backend-memory 'oops");
    assert!(e.contains("not a valid command line"), "{e}");
}

fn with_fault(fault: &str) -> Client {
    let opts = ClientOptions {
        env: vec![("ORE_FAULT".into(), fault.into())],
        ..Default::default()
    };
    Client::connect_with(memory(), opts).unwrap()
}

#[test]
fn backend_killed_mid_request_fails_every_pending_request_and_names_the_archive() {
    let c = with_fault("kill,after=3");
    for i in 0..3u8 {
        c.put(Key([i; 32]), b"x").unwrap();
    }
    // Pipeline several requests: the first kills the backend, all must fail, none may hang.
    let tickets: Vec<_> = (10..20u8)
        .map(|i| c.start_put(Key([i; 32]), vec![1; 10]))
        .collect();
    for t in tickets {
        let e = t.wait().unwrap_err().to_string();
        assert!(e.contains(memory()), "{e}");
        assert!(e.contains("killed by signal 9"), "{e}");
    }
    let e = c.get(Key([0; 32])).unwrap_err().to_string();
    assert!(
        e.contains("killed by signal 9"),
        "later requests fail at once: {e}"
    );
}

#[test]
fn injected_errors_hit_only_the_chosen_operation() {
    let c = with_fault("error,after=1,op=put");
    c.put(Key([1; 32]), b"a").unwrap();
    let e = c.put(Key([2; 32]), b"b").unwrap_err();
    assert_eq!(e.code(), ErrorCode::Injected);
    assert_eq!(c.get(Key([1; 32])).unwrap().as_deref(), Some(&b"a"[..]));
    assert_eq!(
        c.get(Key([2; 32])).unwrap(),
        None,
        "a failed put stored nothing"
    );
}

#[test]
fn kill_after_point_runs_the_operation_but_never_answers() {
    let c = with_fault("kill,after=0,op=set-tag,point=after");
    assert!(c.set_tag("t", None, b"v").is_err());
}

#[test]
fn bad_fault_setting_is_reported_by_the_backend() {
    let opts = ClientOptions {
        env: vec![("ORE_FAULT".into(), "explode".into())],
        ..Default::default()
    };
    let e = match Client::connect_with(memory(), opts) {
        Ok(_) => panic!("accepted a bad ORE_FAULT"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("exited with status 1"), "{e}");
}

/// Regression: the server held answers in its buffer while blocking on the rest of a partly
/// received request, and a client waiting for those answers before sending the rest deadlocked
/// (seen as a hang of two pipelining threads sharing one client).
#[test]
fn regression_answers_are_not_held_back_behind_a_partial_request() {
    let mut child = Command::new(memory())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut input = hello(1, 1);
    input.extend(Request::Get(Key([3; 32])).to_frame_bytes());
    let put = Request::Put {
        key: Key([4; 32]),
        data: vec![5; 4000].into(),
    }
    .to_frame_bytes();
    input.extend(&put[..100]);
    stdin.write_all(&input).unwrap();
    stdin.flush().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut magic = [0u8; 8];
        std::io::Read::read_exact(&mut stdout, &mut magic).unwrap();
        let mut answers = Vec::new();
        for _ in 0..2 {
            let f = read_frame(&mut stdout, u32::MAX).unwrap().unwrap();
            answers.push(Response::decode(f).unwrap());
        }
        tx.send(answers).unwrap();
    });
    let answers = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the answer to the complete request arrives while the next one is partial");
    assert_eq!(answers[1], Response::Missing);
    stdin.write_all(&put[100..]).unwrap();
    drop(stdin);
    let _ = child.wait();
}
