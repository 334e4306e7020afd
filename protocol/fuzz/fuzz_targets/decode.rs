//! Fuzzes the frame reader and both message decoders with arbitrary byte streams: no input may
//! panic, hang or allocate more than the frame limit; whatever decodes must re-encode to the
//! same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::frame::{read_frame, Frame, MAX_FRAME_BODY};
use protocol::message::{Request, Response};

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    while let Ok(Some(frame)) = read_frame(&mut input, MAX_FRAME_BODY) {
        check(frame);
    }
});

fn check(frame: Frame) {
    let original = frame.clone();
    if let Ok(req) = Request::decode(frame.clone()) {
        let again = read_frame(&mut &req.to_frame_bytes()[..], MAX_FRAME_BODY)
            .expect("re-encoded request reads back")
            .expect("re-encoded request is a frame");
        assert_eq!(again.kind, original.kind);
        assert_eq!(Request::decode(again).expect("re-encoded request decodes"), req);
    }
    if let Ok(resp) = Response::decode(frame) {
        let again = read_frame(&mut &resp.to_frame_bytes()[..], MAX_FRAME_BODY)
            .expect("re-encoded answer reads back")
            .expect("re-encoded answer is a frame");
        assert_eq!(again.kind, original.kind);
        assert_eq!(Response::decode(again).expect("re-encoded answer decodes"), resp);
    }
}
