//! Property tests for the worker -> controller path: whatever bytes a worker writes on its
//! channel, `read_frame` + `decode_events` never panic, always terminate, and fail with an
//! error that says what is wrong. Same path as the `cargo fuzz` target in `fuzz/`
//! (`frame_decode`), which needs nightly; this is the check that runs in CI.

use proptest::prelude::*;
use xdist_core::frame::{read_frame, write_frame, FrameError, MAX_FRAME_LEN};
use xdist_core::protocol::decode_events;

/// What the controller's channel reader does with a byte stream: frames until the first
/// error, each frame decoded. Returns (batches decoded, events in them, the error that
/// ended the stream).
fn drain(bytes: &[u8]) -> (usize, usize, Vec<String>) {
    let mut r = bytes;
    let mut buf = Vec::new();
    let mut batches = 0;
    let mut events = 0;
    let mut errors = Vec::new();
    // Every successful frame consumes at least its 4-byte header: this terminates.
    for _ in 0..=bytes.len() / 4 + 1 {
        match read_frame(&mut r, &mut buf) {
            Ok(()) => match decode_events(&buf) {
                Ok(evs) => {
                    batches += 1;
                    events += evs.len();
                }
                Err(e) => {
                    errors.push(e.to_string());
                    break;
                }
            },
            Err(FrameError::Closed) => break,
            Err(e) => {
                errors.push(e.to_string());
                break;
            }
        }
    }
    assert!(r.len() <= bytes.len());
    for e in &errors {
        assert!(!e.trim().is_empty(), "an error without a message");
    }
    (batches, events, errors)
}

fn framed(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        write_frame(&mut out, p).unwrap();
    }
    out
}

/// Well-formed event batches, as a worker sends them.
fn valid_batch() -> impl Strategy<Value = Vec<u8>> {
    let event = prop_oneof![
        (0usize..1000, 0.0f64..100.0).prop_map(|(i, d)| format!(r#"{{"t":"done","i":{i},"d":{d}}}"#)),
        (0usize..1000).prop_map(|i| format!(r#"{{"t":"logstart","i":{i}}}"#)),
        prop::collection::vec("[a-z_/.:\\[\\]0-9]{1,20}", 0..5).prop_map(|ids| {
            let ids: Vec<String> = ids.iter().map(|s| format!("{s:?}")).collect();
            format!(r#"{{"t":"collectionfinish","ids":[{}]}}"#, ids.join(","))
        }),
        (0usize..1000).prop_map(|i| format!(
            r#"{{"t":"report","i":{i},"w":"call","o":"passed","c":"passed","l":".","W":"PASSED","d":0.1}}"#
        )),
        prop::collection::vec(0usize..100, 0..4)
            .prop_map(|v| format!(r#"{{"t":"unscheduled","indices":{v:?}}}"#)),
        "[ -~]{0,40}".prop_map(|s| format!(r#"{{"t":"internal_error","text":{s:?}}}"#)),
    ];
    prop::collection::vec(event, 0..6).prop_map(|evs| format!("[{}]", evs.join(",")).into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary bytes: never a panic, always an end.
    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        drain(&bytes);
    }

    /// Arbitrary payloads inside well-formed frames: each one decodes or fails cleanly.
    #[test]
    fn random_payloads(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..256), 0..8)) {
        let bytes = framed(&payloads);
        let (batches, _, errors) = drain(&bytes);
        prop_assert!(batches + errors.len() <= payloads.len());
    }

    /// Valid batches cut anywhere: every complete frame before the cut decodes; the cut
    /// frame is reported as truncated (or the stream just ends at a frame boundary).
    #[test]
    fn truncations(batches in prop::collection::vec(valid_batch(), 1..6), cut in any::<prop::sample::Index>()) {
        let bytes = framed(&batches);
        let (n, _, errors) = drain(&bytes);
        prop_assert_eq!(n, batches.len());
        prop_assert!(errors.is_empty(), "{:?}", errors);

        let at = cut.index(bytes.len() + 1);
        let (n, _, errors) = drain(&bytes[..at]);
        // Frame boundaries before the cut.
        let mut ends = Vec::new();
        let mut pos = 0;
        for b in &batches {
            pos += 4 + b.len();
            ends.push(pos);
        }
        let complete = ends.iter().filter(|&&e| e <= at).count();
        prop_assert_eq!(n, complete);
        if ends.contains(&at) || at == 0 {
            prop_assert!(errors.is_empty(), "{:?}", errors);
        } else {
            prop_assert_eq!(errors.len(), 1);
            prop_assert!(errors[0].contains("closed in the middle of a frame"), "{}", &errors[0]);
        }
    }

    /// One byte of a valid stream changed: no panic, and what decodes still decodes.
    #[test]
    fn flipped_byte(batches in prop::collection::vec(valid_batch(), 1..4), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = framed(&batches);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        drain(&bytes);
    }

    /// Headers claiming more than the limit are refused before anything is allocated for
    /// them, whatever follows.
    #[test]
    fn oversized_headers(len in (MAX_FRAME_LEN as u64 + 1)..=u32::MAX as u64, rest in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = (len as u32).to_be_bytes().to_vec();
        bytes.extend(rest);
        let mut r = &bytes[..];
        let mut buf = Vec::new();
        match read_frame(&mut r, &mut buf) {
            Err(FrameError::Oversized(n)) => prop_assert_eq!(n as u64, len),
            other => prop_assert!(false, "{:?}", other),
        }
        prop_assert!(buf.capacity() < 1024);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let payload = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bytes = framed(&[payload.into_bytes()]);
    let (n, _, errors) = drain(&bytes);
    assert_eq!(n, 0);
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn largest_allowed_header_with_short_body_is_truncated() {
    let mut bytes = (MAX_FRAME_LEN as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(b"[]");
    let (_, _, errors) = drain(&bytes);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("closed in the middle of a frame"));
}
