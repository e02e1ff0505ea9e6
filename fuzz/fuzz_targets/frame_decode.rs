//! Arbitrary bytes on a worker's channel, through what the controller's reader does with
//! them: `read_frame` until the first error, `decode_events` on every frame. Must never
//! panic, hang or allocate for an oversized header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdist_core::frame::{read_frame, FrameError};
use xdist_core::protocol::decode_events;

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    let mut buf = Vec::new();
    loop {
        match read_frame(&mut r, &mut buf) {
            Ok(()) => {
                if let Err(e) = decode_events(&buf) {
                    assert!(!e.to_string().is_empty());
                    break;
                }
            }
            Err(FrameError::Closed) => break,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                break;
            }
        }
    }
});
