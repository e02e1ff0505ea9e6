//! Length-prefixed framing for the controller/worker channel.
//!
//! A frame is a 4-byte big-endian payload length followed by the payload. The channel is any
//! byte stream (a pipe pair, a socket, an SSH session), so framing is the only structure the
//! transport adds. Frames larger than [`MAX_FRAME_LEN`] are refused: a worker that sends one
//! is broken or hostile, and the controller must not allocate for it.

use std::io::{self, Read, Write};

/// Largest payload accepted in one frame (64 MiB).
pub const MAX_FRAME_LEN: usize = 64 * 1024 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("channel closed")]
    Closed,
    #[error("channel closed in the middle of a frame ({got} of {want} bytes)")]
    Truncated { got: usize, want: usize },
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    Oversized(usize),
    /// The reader timed out (`TimedOut`/`WouldBlock`) inside a frame: its sender stopped
    /// writing in the middle of it, and the rest may never come.
    #[error("no progress in the middle of a frame ({got} of {want} bytes)")]
    Stalled { got: usize, want: usize },
    #[error("failed to read from the channel: {0}")]
    Io(#[from] io::Error),
}

/// Writes one frame and flushes.
pub fn write_frame<W: Write>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

/// Reads one frame into `buf` (cleared first). Returns `FrameError::Closed` on a clean end of
/// stream before the first header byte. A reader that times out (`TimedOut`/`WouldBlock`)
/// is waited on again between frames and is `FrameError::Stalled` inside one.
pub fn read_frame<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> Result<(), FrameError> {
    let mut header = [0u8; 4];
    let got = read_full(r, &mut header, true)?;
    if got == 0 {
        return Err(FrameError::Closed);
    }
    if got < 4 {
        return Err(FrameError::Truncated { got, want: 4 });
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::Oversized(len));
    }
    buf.clear();
    buf.resize(len, 0);
    let got = read_full(r, buf, false)?;
    if got < len {
        return Err(FrameError::Truncated { got, want: len });
    }
    Ok(())
}

/// Reads until `buf` is full or the stream ends; returns the number of bytes read. A
/// timeout before the first byte is waited out when `idle_ok` (no frame started yet).
fn read_full<R: Read>(r: &mut R, buf: &mut [u8], idle_ok: bool) -> Result<usize, FrameError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                if idle_ok && filled == 0 {
                    continue;
                }
                return Err(FrameError::Stalled {
                    got: filled,
                    want: buf.len(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        write_frame(&mut out, b"hello").unwrap();
        write_frame(&mut out, b"").unwrap();
        let mut r = &out[..];
        let mut buf = Vec::new();
        read_frame(&mut r, &mut buf).unwrap();
        assert_eq!(buf, b"hello");
        read_frame(&mut r, &mut buf).unwrap();
        assert!(buf.is_empty());
        assert!(matches!(
            read_frame(&mut r, &mut buf),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn truncated_and_oversized() {
        let mut r: &[u8] = &[0, 0, 0, 9, b'a'];
        let mut buf = Vec::new();
        assert!(matches!(
            read_frame(&mut r, &mut buf),
            Err(FrameError::Truncated { got: 1, want: 9 })
        ));
        let mut r: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut r, &mut buf),
            Err(FrameError::Truncated { got: 2, want: 4 })
        ));
        let mut r: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut r, &mut buf),
            Err(FrameError::Oversized(_))
        ));
    }

    /// Yields its chunks in turn, a timeout in place of each `None`, then the end.
    struct Timing(std::collections::VecDeque<Option<Vec<u8>>>);

    impl Read for Timing {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            match self.0.pop_front() {
                None => Ok(0),
                Some(None) => Err(io::ErrorKind::TimedOut.into()),
                Some(Some(mut chunk)) => {
                    let n = chunk.len().min(out.len());
                    out[..n].copy_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        self.0.push_front(Some(chunk.split_off(n)));
                    }
                    Ok(n)
                }
            }
        }
    }

    #[test]
    fn timeouts_between_frames_wait_inside_a_frame_stall() {
        let frame = |p: &[u8]| {
            let mut v = (p.len() as u32).to_be_bytes().to_vec();
            v.extend_from_slice(p);
            v
        };
        let mut buf = Vec::new();
        // Idle before a frame: waited out, however often.
        let mut r = Timing(vec![None, None, Some(frame(b"ok")), None].into());
        read_frame(&mut r, &mut buf).unwrap();
        assert_eq!(buf, b"ok");
        // Every cut point inside a frame, header or body: a timeout there is a stall.
        let whole = frame(b"hello");
        for cut in 1..whole.len() {
            let chunks = vec![
                Some(whole[..cut].to_vec()),
                None,
                Some(whole[cut..].to_vec()),
            ];
            let mut r = Timing(chunks.into());
            let (got, want) = if cut < 4 { (cut, 4) } else { (cut - 4, 5) };
            match read_frame(&mut r, &mut buf) {
                Err(FrameError::Stalled { got: g, want: w }) => assert_eq!((g, w), (got, want)),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }
}
