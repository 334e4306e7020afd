//! Property tests: every message survives encoding and decoding unchanged, and no byte string
//! makes the decoder panic.

use proptest::collection::vec;
use proptest::prelude::*;
use protocol::frame::{read_frame, MAX_FRAME_BODY};
use protocol::message::{AdminRequest, Hello, RemoveTag, Request, Response, SetTag, Welcome};
use protocol::{AdminOutput, BackendInfo, CasOutcome, ErrorCode, Key, Level, Stats};

fn key() -> impl Strategy<Value = Key> {
    any::<[u8; 32]>().prop_map(Key)
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..300)
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), ".*").prop_map(|(a, b, c)| Request::Hello(Hello {
            min_version: a,
            max_version: b,
            client: c
        })),
        (key(), bytes()).prop_map(|(key, data)| Request::Put {
            key,
            data: data.into()
        }),
        key().prop_map(Request::Get),
        vec(key(), 0..20).prop_map(Request::Exists),
        vec(key(), 0..20).prop_map(Request::Remove),
        (proptest::option::of(key()), any::<u32>())
            .prop_map(|(after, limit)| Request::List { after, limit }),
        ".*".prop_map(Request::GetTag),
        (".*", proptest::option::of(bytes()), bytes()).prop_map(|(name, expected, value)| {
            Request::SetTag(SetTag {
                name,
                expected,
                value,
            })
        }),
        (".*", proptest::option::of(bytes()))
            .prop_map(|(name, expected)| Request::RemoveTag(RemoveTag { name, expected })),
        Just(Request::ListTags),
        Just(Request::Flush),
        Just(Request::Stats),
        (".*", vec(".*", 0..4))
            .prop_map(|(command, args)| Request::Admin(AdminRequest { command, args })),
        Just(Request::Close),
    ]
}

fn level() -> impl Strategy<Value = Level> {
    prop_oneof![
        Just(Level::Debug),
        Just(Level::Info),
        Just(Level::Warning),
        Just(Level::Error)
    ]
}

fn response() -> impl Strategy<Value = Response> {
    let info = (
        ".*",
        ".*",
        any::<u32>(),
        any::<[bool; 3]>(),
        vec(".*", 0..4),
    )
        .prop_map(
            |(server, description, max_block_size, f, admin_commands)| BackendInfo {
                server,
                description,
                max_block_size,
                writable: f[0],
                can_remove: f[1],
                can_list: f[2],
                admin_commands,
            },
        );
    let opt_u64 = || proptest::option::of(any::<u64>());
    prop_oneof![
        (any::<u16>(), info)
            .prop_map(|(version, info)| Response::Welcome(Welcome { version, info })),
        (any::<u16>(), ".*").prop_map(|(c, message)| Response::Error {
            code: ErrorCode::from_u16(c),
            message
        }),
        (level(), ".*").prop_map(|(level, message)| Response::Log { level, message }),
        Just(Response::Ok),
        bytes().prop_map(Response::Data),
        Just(Response::Missing),
        vec(any::<bool>(), 0..100).prop_map(Response::Presence),
        (vec(key(), 0..10), any::<bool>()).prop_map(|(keys, more)| Response::Keys { keys, more }),
        proptest::option::of(bytes()).prop_map(Response::Tag),
        prop_oneof![
            Just(CasOutcome::Done),
            proptest::option::of(bytes()).prop_map(|current| CasOutcome::Conflict { current })
        ]
        .prop_map(Response::TagSet),
        vec((".*", bytes()), 0..5).prop_map(Response::Tags),
        (opt_u64(), opt_u64(), opt_u64()).prop_map(|(blocks, bytes, tags)| Response::Stats(
            Stats {
                blocks,
                bytes,
                tags
            }
        )),
        (".*", ".*").prop_map(|(text, json)| Response::Admin(AdminOutput { text, json })),
        Just(Response::Goodbye),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(req in request()) {
        let bytes = req.to_frame_bytes();
        let f = read_frame(&mut &bytes[..], MAX_FRAME_BODY).unwrap().unwrap();
        prop_assert_eq!(Request::decode(f).unwrap(), req);
    }

    #[test]
    fn responses_round_trip(resp in response()) {
        let bytes = resp.to_frame_bytes();
        let f = read_frame(&mut &bytes[..], MAX_FRAME_BODY).unwrap().unwrap();
        prop_assert_eq!(Response::decode(f).unwrap(), resp);
    }

    #[test]
    fn pipelined_streams_decode_in_order(reqs in vec(request(), 0..20)) {
        let mut stream = Vec::new();
        for r in &reqs {
            stream.extend(r.to_frame_bytes());
        }
        let mut input = &stream[..];
        let mut back = Vec::new();
        while let Some(f) = read_frame(&mut input, MAX_FRAME_BODY).unwrap() {
            back.push(Request::decode(f).unwrap());
        }
        prop_assert_eq!(back, reqs);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..200)) {
        let mut input = &data[..];
        while let Ok(Some(f)) = read_frame(&mut input, 1 << 16) {
            let _ = Request::decode(f.clone());
            let _ = Response::decode(f);
        }
    }
}
