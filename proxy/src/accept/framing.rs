//! Request-smuggling guard for HTTP/1 client connections.
//!
//! hyper resolves framing ambiguities on its own (it drops `Content-Length` when
//! `Transfer-Encoding` is present and folds duplicate equal lengths), so by the time a request
//! reaches us the evidence is gone. This reader watches the raw bytes as hyper reads them,
//! follows message framing (heads, Content-Length and chunked bodies), and marks the connection
//! poisoned when a head carries both framings or a repeated Content-Length. Handlers refuse
//! every request on a poisoned connection: a client that sends such a head is either broken or
//! attacking, and fail-closed is the answer to both.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use memchr::memmem::Finder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::limits::MAX_HEADER_BYTES;

/// The delimiters' searchers, built once: `memmem::find` builds one per call, which cost more
/// than the search of a request head.
static HEAD_END: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\r\n\r\n"));
static CRLF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\r\n"));

/// Shared between the reader and the request handlers of one connection.
#[derive(Debug, Clone, Default)]
pub struct Poison(Arc<AtomicBool>);

impl Poison {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[derive(Debug)]
enum State {
    Head(Vec<u8>),
    Body(u64),
    ChunkSize(Vec<u8>),
    ChunkData(u64),
    ChunkCrlf(u8),
    Trailers(Vec<u8>),
    /// Tunnel, upgrade, or something hyper will reject itself: stop looking.
    Done,
}

/// Follows HTTP/1 framing over a byte stream.
#[derive(Debug)]
pub struct Framing {
    state: State,
    poison: Poison,
}

impl Framing {
    pub fn new(poison: Poison) -> Self {
        Framing {
            state: State::Head(Vec::new()),
            poison,
        }
    }

    pub fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let used = self.step(bytes);
            bytes = &bytes[used..];
        }
    }

    /// Consumes a prefix of `bytes`, returning how much.
    fn step(&mut self, bytes: &[u8]) -> usize {
        match &mut self.state {
            State::Done => bytes.len(),
            // A whole head in one read (the usual case) is parsed where it lies, not copied.
            State::Head(buf) if buf.is_empty() => match HEAD_END.find(bytes) {
                Some(i) => {
                    let used = i + 4;
                    self.state = if used > MAX_HEADER_BYTES + 4 {
                        State::Done
                    } else {
                        self.after_head(&bytes[..used])
                    };
                    used
                }
                None => {
                    buf.extend_from_slice(bytes);
                    if buf.len() > MAX_HEADER_BYTES + 4 {
                        self.state = State::Done;
                    }
                    bytes.len()
                }
            },
            State::Head(buf) => {
                let (used, complete) = take_until(buf, bytes, &HEAD_END);
                if buf.len() > MAX_HEADER_BYTES + 4 {
                    self.state = State::Done;
                } else if complete {
                    let head = std::mem::take(buf);
                    self.state = self.after_head(&head);
                }
                used
            }
            State::Body(left) | State::ChunkData(left) => {
                let n = (*left).min(bytes.len() as u64);
                *left -= n;
                if *left == 0 {
                    self.state = match self.state {
                        State::ChunkData(_) => State::ChunkCrlf(2),
                        _ => State::Head(Vec::new()),
                    };
                }
                n as usize
            }
            State::ChunkCrlf(left) => {
                let n = (*left as usize).min(bytes.len());
                *left -= n as u8;
                if *left == 0 {
                    self.state = State::ChunkSize(Vec::new());
                }
                n
            }
            State::ChunkSize(line) => {
                let (used, complete) = take_until(line, bytes, &CRLF);
                if line.len() > 1024 {
                    self.state = State::Done;
                } else if complete {
                    self.state = match httparse::parse_chunk_size(line) {
                        Ok(httparse::Status::Complete((_, 0))) => State::Trailers(Vec::new()),
                        Ok(httparse::Status::Complete((_, size))) => State::ChunkData(size),
                        _ => State::Done,
                    };
                }
                used
            }
            State::Trailers(buf) => {
                let (used, complete) = take_until(buf, bytes, &CRLF);
                if buf.len() > MAX_HEADER_BYTES {
                    self.state = State::Done;
                } else if complete {
                    let empty = buf.len() == 2;
                    buf.clear();
                    if empty {
                        self.state = State::Head(Vec::new());
                    }
                }
                used
            }
        }
    }

    fn after_head(&self, head: &[u8]) -> State {
        // Uninitialised slots: `[EMPTY_HEADER; 128]` was a 4 KiB memset per request.
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; 128];
        let mut req = httparse::Request::new(&mut []);
        let parsed = req.parse_with_uninit_headers(head, &mut headers);
        if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
            return State::Done;
        }
        let mut lengths = 0;
        let mut length = None;
        let mut chunked = false;
        let mut upgrade = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                lengths += 1;
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        if (lengths > 0 && chunked) || lengths > 1 {
            self.poison.set();
            return State::Done;
        }
        if req.method == Some("CONNECT") || upgrade {
            State::Done
        } else if chunked {
            State::ChunkSize(Vec::new())
        } else {
            match length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head(Vec::new()),
            }
        }
    }
}

/// Appends bytes to `buf` up to and including the first `delim`; returns (consumed, found).
/// A delimiter may straddle the previous chunk (its start already in `buf`), so those few
/// candidates are checked first; within the chunk, memchr's substring search does the walk.
fn take_until(buf: &mut Vec<u8>, bytes: &[u8], finder: &Finder<'static>) -> (usize, bool) {
    let delim = finder.needle();
    let n = delim.len();
    // `k` delimiter bytes in this chunk, `n - k` already at the end of `buf`: ends earliest.
    for k in 1..n.min(bytes.len() + 1) {
        let (head, tail) = delim.split_at(n - k);
        if buf.ends_with(head) && bytes.starts_with(tail) {
            buf.extend_from_slice(&bytes[..k]);
            return (k, true);
        }
    }
    match finder.find(bytes) {
        Some(i) => {
            buf.extend_from_slice(&bytes[..i + n]);
            (i + n, true)
        }
        None => {
            buf.extend_from_slice(bytes);
            (bytes.len(), false)
        }
    }
}

pin_project_lite::pin_project! {
    /// An IO whose inbound bytes pass through a [`Framing`] observer.
    pub struct Guarded<T> {
        #[pin]
        inner: T,
        framing: Framing,
    }
}

impl<T> Guarded<T> {
    pub fn new(inner: T, poison: Poison) -> Self {
        Guarded {
            inner,
            framing: Framing::new(poison),
        }
    }
}

impl<T: AsyncRead> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let r = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            this.framing.observe(&buf.filled()[before..]);
        }
        r
    }
}

impl<T: AsyncWrite> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poisoned(stream: &[u8], split: usize) -> bool {
        let poison = Poison::default();
        let mut f = Framing::new(poison.clone());
        f.observe(&stream[..split]);
        f.observe(&stream[split..]);
        poison.is_set()
    }

    #[test]
    fn flags_cl_te_and_duplicate_cl_at_any_split() {
        let cl_te = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let dup =
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
        for s in 0..cl_te.len() {
            assert!(poisoned(cl_te, s), "split {s}");
        }
        for s in 0..dup.len() {
            assert!(poisoned(dup, s), "split {s}");
        }
    }

    #[test]
    fn bodies_that_look_like_heads_do_not_poison() {
        // A clean chunked request whose body contains header-like text, then a clean CL request.
        let body = "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let stream = format!(
            "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
            body.len(),
            body.len()
        );
        for s in 0..stream.len() {
            assert!(!poisoned(stream.as_bytes(), s), "split {s}");
        }
    }

    /// The byte-at-a-time definition `take_until` must agree with.
    fn take_until_reference(buf: &mut Vec<u8>, bytes: &[u8], delim: &[u8]) -> (usize, bool) {
        for (i, &b) in bytes.iter().enumerate() {
            buf.push(b);
            if buf.ends_with(delim) {
                return (i + 1, true);
            }
        }
        (bytes.len(), false)
    }

    #[test]
    fn take_until_matches_the_bytewise_definition_at_every_split() {
        let inputs: [&[u8]; 5] = [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest",
            b"\r\n\r\n",
            b"a\r\r\n\r\r\n\r\n\r\nb",
            b"\r\n\r",
            b"no delimiter here",
        ];
        for finder in [&*HEAD_END, &*CRLF] {
            let delim = finder.needle();
            for input in inputs {
                for split in 0..=input.len() {
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    let (first, second) = input.split_at(split);
                    let ra = take_until(&mut a, first, finder);
                    let rb = take_until_reference(&mut b, first, delim);
                    assert_eq!((ra, &a), (rb, &b), "{input:?} split {split}");
                    if !ra.1 {
                        let ra = take_until(&mut a, second, finder);
                        let rb = take_until_reference(&mut b, second, delim);
                        assert_eq!((ra, &a), (rb, &b), "{input:?} split {split} (second)");
                    }
                }
            }
        }
    }

    /// One request of a generated pipeline: its framing, body, and whether its head is
    /// ambiguous (CL+TE, or CL twice).
    fn request(kind: u8, body: &[u8], chunk: usize, bad: bool) -> Vec<u8> {
        let mut out = b"POST /p HTTP/1.1\r\nHost: x\r\n".to_vec();
        let chunked = kind % 2 == 1;
        if chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            if bad {
                out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            for piece in body.chunks(chunk.max(1)) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            let cl = format!("Content-Length: {}\r\n", body.len());
            out.extend_from_slice(cl.as_bytes());
            if bad {
                out.extend_from_slice(cl.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
        }
        out
    }

    proptest::proptest! {
        /// Pipelines of clean and ambiguous requests, bodies that may hold header-like text,
        /// fed in arbitrary pieces: poisoned exactly when some head is ambiguous.
        #[test]
        fn pipelines_in_any_pieces_poison_exactly_when_a_head_is_ambiguous(
            reqs in proptest::collection::vec(
                (0u8..2, proptest::collection::vec(proptest::sample::select(
                    b"ab\r\n:0 Content-Length: 1Transfer-Encoding".to_vec()), 0..40),
                 1usize..9, proptest::bool::weighted(0.2)),
                1..4),
            cuts in proptest::collection::vec(proptest::num::usize::ANY, 0..6),
        ) {
            let mut stream = Vec::new();
            let mut any_bad = false;
            for (kind, body, chunk, bad) in &reqs {
                stream.extend(request(*kind, body, *chunk, *bad));
                any_bad |= *bad;
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            points.sort_unstable();
            let poison = Poison::default();
            let mut f = Framing::new(poison.clone());
            let mut at = 0;
            for p in points.into_iter().chain([stream.len()]) {
                f.observe(&stream[at..p]);
                at = p;
            }
            proptest::prop_assert_eq!(poison.is_set(), any_bad);
        }
    }

    #[test]
    fn a_later_smuggled_head_is_still_seen() {
        let stream = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(poisoned(stream, 10));
    }
}
