//! Fuzzes the whole server loop: a valid greeting and hello, then arbitrary bytes, served by
//! the in-memory backend. The server must answer or close, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::frame::MAGIC;
use protocol::message::{Hello, Request};
use protocol::serve;
use testkit::MemoryBackend;

fuzz_target!(|data: &[u8]| {
    let mut input = MAGIC.to_vec();
    input.extend(
        Request::Hello(Hello {
            min_version: 1,
            max_version: 1,
            client: "fuzz".into(),
        })
        .to_frame_bytes(),
    );
    input.extend_from_slice(data);
    let backend = MemoryBackend::new(1 << 16);
    let _ = serve(&backend, std::io::Cursor::new(input), std::io::sink());
});
