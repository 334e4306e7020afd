//! Golden bytes: every kind byte and the field order of every body, pinned.
//!
//! If one of these fails, the wire format changed. Kind bytes and field orders are never
//! changed; a new field or message needs a new protocol version (see PROTOCOL.md).

use protocol::message::{AdminRequest, Hello, RemoveTag, Request, Response, SetTag, Welcome};
use protocol::{AdminOutput, AttachPoint, BackendInfo, CasOutcome, ErrorCode, Key, Level, Stats};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn key(b: u8) -> Key {
    Key([b; 32])
}

fn requests() -> Vec<(Request, String)> {
    let k1 = "11".repeat(32);
    vec![
        (
            Request::Hello(Hello {
                min_version: 1,
                max_version: 2,
                client: "ore".into(),
            }),
            "0600000001".to_string() + "01" + "02" + "03" + "6f7265",
        ),
        (
            Request::Put {
                key: key(0x11),
                data: b"abc".to_vec().into(),
            },
            format!("2300000010{k1}616263"),
        ),
        (Request::Get(key(0x11)), format!("2000000011{k1}")),
        (
            Request::Exists(vec![key(0x11)]),
            "2100000012".to_string() + "01" + &k1,
        ),
        (Request::Remove(vec![]), "010000001300".to_string()),
        (
            Request::List {
                after: Some(key(0x11)),
                limit: 300,
            },
            "2300000014".to_string() + "01" + &k1 + "ac02",
        ),
        (
            Request::List {
                after: None,
                limit: 5,
            },
            "02000000140005".to_string(),
        ),
        (Request::GetTag("t".into()), "02000000200174".to_string()),
        (
            Request::SetTag(SetTag {
                name: "t".into(),
                expected: Some(b"a".to_vec()),
                value: b"b".to_vec(),
            }),
            "0700000021".to_string() + "0174" + "010161" + "0162",
        ),
        (
            Request::RemoveTag(RemoveTag {
                name: "t".into(),
                expected: None,
            }),
            "0300000022".to_string() + "0174" + "00",
        ),
        (Request::ListTags, "0000000023".to_string()),
        (Request::Flush, "0000000030".to_string()),
        (Request::Stats, "0000000031".to_string()),
        (
            Request::Admin(AdminRequest {
                command: "info".into(),
                args: vec!["x".into()],
            }),
            "0800000032".to_string() + "04696e666f" + "01" + "0178",
        ),
        (Request::AttachPoint, "0000000033".to_string()),
        (Request::Close, "000000003f".to_string()),
    ]
}

fn responses() -> Vec<(Response, String)> {
    let info = BackendInfo {
        server: "s".into(),
        description: "d".into(),
        max_block_size: 128,
        writable: true,
        can_remove: false,
        can_list: true,
        admin_commands: vec!["help".into()],
    };
    vec![
        (
            Response::Welcome(Welcome { version: 1, info }),
            "1000000081".to_string()
                + "01"
                + "0173"
                + "0164"
                + "8001"
                + "01"
                + "00"
                + "01"
                + "01"
                + "0468656c70",
        ),
        (
            Response::Error {
                code: ErrorCode::TooLarge,
                message: "no".into(),
            },
            "0400000082".to_string() + "04" + "026e6f",
        ),
        (
            Response::Log {
                level: Level::Warning,
                message: "w".into(),
            },
            "0300000083".to_string() + "02" + "0177",
        ),
        (Response::Ok, "0000000090".to_string()),
        (
            Response::Data(b"xyz".to_vec()),
            "030000009178797a".to_string(),
        ),
        (Response::Missing, "0000000092".to_string()),
        (
            Response::Presence(vec![true, false]),
            "03000000930201 00".replace(' ', ""),
        ),
        (
            Response::Keys {
                keys: vec![key(0x22)],
                more: true,
            },
            "2200000094".to_string() + "01" + &"22".repeat(32) + "01",
        ),
        (Response::Tag(None), "010000009500".to_string()),
        (
            Response::Tag(Some(b"v".to_vec())),
            "0300000095010176".to_string(),
        ),
        (
            Response::TagSet(CasOutcome::Done),
            "010000009600".to_string(),
        ),
        (
            Response::TagSet(CasOutcome::Conflict {
                current: Some(b"v".to_vec()),
            }),
            "040000009601010176".to_string(),
        ),
        (
            Response::Tags(vec![("a".into(), b"b".to_vec())]),
            "050000009701016101 62".replace(' ', ""),
        ),
        (
            Response::Stats(Stats {
                blocks: Some(3),
                bytes: None,
                tags: Some(1),
            }),
            "0500000098".to_string() + "0103" + "00" + "0101",
        ),
        (
            Response::Admin(AdminOutput {
                text: "t".into(),
                json: "1".into(),
            }),
            "0400000099".to_string() + "0174" + "0131",
        ),
        (
            Response::AttachPoint(AttachPoint {
                socket: "/s".into(),
                ticket: vec![0xab, 0xcd],
            }),
            "060000009a".to_string() + "022f73" + "02abcd",
        ),
        (Response::Goodbye, "000000009f".to_string()),
    ]
}

#[test]
fn requests_are_pinned() {
    for (req, expect) in requests() {
        assert_eq!(hex(&req.to_frame_bytes()), expect, "{req:?}");
    }
}

#[test]
fn responses_are_pinned() {
    for (resp, expect) in responses() {
        assert_eq!(hex(&resp.to_frame_bytes()), expect, "{resp:?}");
    }
}

#[test]
fn kind_bytes_are_pinned() {
    use protocol::message::kind::*;
    let kinds = [
        (HELLO, 0x01),
        (PUT, 0x10),
        (GET, 0x11),
        (EXISTS, 0x12),
        (REMOVE, 0x13),
        (LIST, 0x14),
        (GET_TAG, 0x20),
        (SET_TAG, 0x21),
        (REMOVE_TAG, 0x22),
        (LIST_TAGS, 0x23),
        (FLUSH, 0x30),
        (STATS, 0x31),
        (ADMIN, 0x32),
        (ATTACH_POINT, 0x33),
        (CLOSE, 0x3f),
        (WELCOME, 0x81),
        (ERROR, 0x82),
        (LOG, 0x83),
        (OK, 0x90),
        (DATA, 0x91),
        (MISSING, 0x92),
        (PRESENCE, 0x93),
        (KEYS, 0x94),
        (TAG, 0x95),
        (TAG_SET, 0x96),
        (TAGS, 0x97),
        (STATS_REPLY, 0x98),
        (ADMIN_REPLY, 0x99),
        (ATTACH_POINT_REPLY, 0x9a),
        (GOODBYE, 0x9f),
    ];
    for (got, want) in kinds {
        assert_eq!(got, want);
    }
    assert_eq!(protocol::frame::MAGIC, *b"\x8fORE\r\n\x1a\n");
}

#[test]
fn golden_frames_decode_back() {
    for (req, expect) in requests() {
        let bytes = unhex(&expect);
        let f = protocol::frame::read_frame(&mut &bytes[..], u32::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(Request::decode(f).unwrap(), req);
    }
    for (resp, expect) in responses() {
        let bytes = unhex(&expect);
        let f = protocol::frame::read_frame(&mut &bytes[..], u32::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(Response::decode(f).unwrap(), resp);
    }
}
