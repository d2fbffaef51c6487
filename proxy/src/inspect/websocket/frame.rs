//! RFC 6455 framing: header parsing, unmasking, close frames, and boundary tracking — the
//! byte-level half of the WebSocket relay, kept apart from the scanning and relaying logic.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::limits::SPLICE_BUFFER;

pub(super) const OP_CONTINUATION: u8 = 0x0;
pub(super) const OP_TEXT: u8 = 0x1;
pub(super) const OP_BINARY: u8 = 0x2;
pub(super) const OP_CLOSE: u8 = 0x8;
pub(super) const OP_PING: u8 = 0x9;
pub(super) const OP_PONG: u8 = 0xA;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) fin: bool,
    pub(super) rsv: u8,
    pub(super) opcode: u8,
    pub(super) mask: Option<[u8; 4]>,
    pub(super) len: u64,
    pub(super) header_len: usize,
}

/// Parses the header at the start of `buf`; `None` until all of it has arrived.
pub(super) fn parse_header(buf: &[u8]) -> Option<Header> {
    let (b0, b1) = (*buf.first()?, *buf.get(1)?);
    let (len, mut at) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let mask = if b1 & 0x80 != 0 {
        let key: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(key)
    } else {
        None
    };
    Some(Header {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0x7,
        opcode: b0 & 0x0f,
        mask,
        len,
        header_len: at,
    })
}

pub(super) fn unmask(data: &mut [u8], key: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// A close frame; masked (with `mask`) when it goes to the server.
pub(super) fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend(reason.bytes().filter(u8::is_ascii).take(123));
    let mut frame = vec![0x80 | OP_CLOSE, payload.len() as u8];
    if let Some(key) = mask {
        frame[1] |= 0x80;
        frame.extend_from_slice(&key);
        unmask(&mut payload, key);
    }
    frame.extend_from_slice(&payload);
    frame
}

/// Accumulates client bytes and cuts them into whole frames (original bytes, still masked).
#[derive(Default)]
pub(super) struct FrameReader {
    pub(super) buf: BytesMut,
}

impl FrameReader {
    pub(super) async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> std::io::Result<usize> {
        self.buf.reserve(SPLICE_BUFFER);
        r.read_buf(&mut self.buf).await
    }

    /// The next whole frame, once `admit` accepted its header (it may run more than once per
    /// frame while the payload arrives).
    pub(super) fn next<E>(
        &mut self,
        admit: impl FnOnce(&Header) -> Result<(), E>,
    ) -> Result<Option<(Header, Bytes)>, E> {
        let Some(h) = parse_header(&self.buf) else {
            return Ok(None);
        };
        admit(&h)?;
        let total = usize::try_from(h.len)
            .unwrap_or(usize::MAX)
            .saturating_add(h.header_len);
        if self.buf.len() < total {
            return Ok(None);
        }
        Ok(Some((h, self.buf.split_to(total).freeze())))
    }
}

/// Tracks server frame boundaries in a raw byte stream without buffering payloads.
#[derive(Default)]
pub(super) struct Boundary {
    pub(super) head: Vec<u8>,
    pub(super) remaining: u64,
}

impl Boundary {
    pub(super) fn at_boundary(&self) -> bool {
        self.head.is_empty() && self.remaining == 0
    }

    /// Consumes `data` (all of it, or with `stop` only up to the next frame boundary) and
    /// returns how many bytes were consumed.
    pub(super) fn advance(&mut self, data: &[u8], stop: bool) -> usize {
        let mut i = 0;
        loop {
            if (stop && self.at_boundary()) || i == data.len() {
                return i;
            }
            if self.remaining > 0 {
                let left = data.len() - i;
                let take = usize::try_from(self.remaining).map_or(left, |r| r.min(left));
                i += take;
                self.remaining -= take as u64;
                continue;
            }
            self.head.push(data[i]);
            i += 1;
            if let Some(h) = parse_header(&self.head) {
                self.remaining = h.len;
                self.head.clear();
            }
        }
    }
}
