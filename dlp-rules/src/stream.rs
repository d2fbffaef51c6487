//! Streaming body scanner. A body arrives in chunks (h1 chunks, h2 DATA frames, WebSocket
//! frames); the scanner keeps a bounded sliding buffer (an overlap `tail` plus up to one
//! segment of new bytes), runs the one-shot scan over it, and reports how many input bytes can
//! no longer be part of any future finding: the proxy forwards only those.
//!
//! Exactly-once acceptance: a match is accepted in the round where its end first lies at least
//! `margin` bytes before the buffer end (or at finish). `tail >= margin + longest match`, so the
//! match and its context are whole in that round and were not whole before; any chunking
//! therefore yields the same findings as scanning the body in one piece.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::decode::compress::{DecompressLimits, Decompressor};
use std::collections::HashMap;

use crate::decode::zstd_frames::ZstdFrames;
use crate::engine::{Engine, EXPANSION};
use crate::error::DlpError;
use crate::finding::{Finding, Location};
use crate::prefilter::Target;

/// New bytes gathered before a scan round. Bigger rounds amortise the re-scanned overlap (~25 KiB
/// with the current packs; with a 52 KiB one: 27% extra work at 192 KiB, 13% at 384 KiB).
const SEGMENT_TRIGGER: usize = 384 << 10;
/// Most new bytes in one round; with the tail this bounds the buffer.
const SEGMENT_MAX: usize = 448 << 10;
/// Buffered bytes past which the window takes its whole bound (`Window::push`).
const GROW_WHOLE: usize = 64 << 10;
/// Findings reported per body and rule (or known secret). The cap is per rule, not per body,
/// because what a caller decides depends on which rules were found: a per-rule `warn`, or a
/// host exempt from the rules but not from known secrets, must still see the one finding that
/// blocks after a run of ones that do not (a body-wide cap of 64 let a known secret through
/// behind 64 rule matches). Bounded: rules times this.
const MAX_FINDINGS_PER_RULE: u8 = 16;
/// The `encoding` of a finding in the raw bytes of a compressed body.
const UNDECODED: &str = "undecoded";
/// Compressed-offset checkpoints kept (older ones are merged, which only delays release).
const MAX_CHECKPOINTS: usize = 1024;

/// What the body is, from the request headers.
#[derive(Debug, Clone)]
pub struct BodyContext {
    pub content_encoding: Option<String>,
    pub content_type: Option<String>,
    pub location: Location,
    pub limits: DecompressLimits,
}

impl BodyContext {
    pub fn body() -> BodyContext {
        BodyContext {
            content_encoding: None,
            content_type: None,
            location: Location::Body,
            limits: DecompressLimits::default(),
        }
    }
    pub fn websocket_message() -> BodyContext {
        BodyContext {
            location: Location::WebSocketMessage,
            ..BodyContext::body()
        }
    }
    pub fn with_content_encoding(mut self, v: impl Into<String>) -> BodyContext {
        self.content_encoding = Some(v.into());
        self
    }
    pub fn with_content_type(mut self, v: impl Into<String>) -> BodyContext {
        self.content_type = Some(v.into());
        self
    }
}

/// Result of one `feed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Findings completed by this chunk.
    pub findings: Vec<Finding>,
    /// Total input bytes (from the start of the body, as received) that may be forwarded.
    /// Monotonic; never covers a byte of any finding, past or future.
    pub releasable: u64,
}

/// Sliding-window scanner over a (decompressed) byte stream.
#[derive(Debug)]
struct Window {
    buf: Vec<u8>,
    buf_start: u64,
    unscanned: usize,
    tail: usize,
    margin: u64,
    accepted_to: u64,
    released: u64,
    first_finding: Option<u64>,
    reported: HashMap<Target, u8>,
    form: bool,
    trigger: usize,
    segment_max: usize,
}

impl Window {
    fn new(engine: &Engine, form: bool) -> Window {
        let span = engine.max_match * EXPANSION + 64;
        Window {
            buf: Vec::new(),
            buf_start: 0,
            unscanned: 0,
            tail: 2 * span,
            margin: span as u64,
            accepted_to: 0,
            released: 0,
            first_finding: None,
            reported: HashMap::new(),
            form,
            trigger: SEGMENT_TRIGGER.max(2 * span),
            segment_max: SEGMENT_MAX.max(2 * span),
        }
    }

    fn capacity(&self) -> usize {
        self.tail + self.segment_max
    }

    fn push(
        &mut self,
        engine: &Engine,
        mut data: &[u8],
        loc: &Location,
        label: &str,
        out: &mut Vec<Finding>,
    ) {
        while !data.is_empty() {
            let room = self.capacity() - self.buf.len();
            let take = room.min(data.len());
            // A body past `GROW_WHOLE` is given the whole bound at once. Growing by doubling
            // allocated past the bound (512 KiB for a 451 KiB bound) and copied what it held at
            // each step; small bodies keep small buffers. (Its time was within noise: an A/B of
            // `scan_bench` on 1 MiB bodies moved by under 1 %.)
            let want = self.buf.len() + take;
            if want > self.buf.capacity() && want > GROW_WHOLE {
                self.buf.reserve_exact(self.capacity() - self.buf.len());
            }
            self.buf.extend_from_slice(&data[..take]);
            self.unscanned += take;
            data = &data[take..];
            if self.unscanned >= self.trigger || self.buf.len() >= self.capacity() {
                self.round(engine, false, loc, label, out);
            }
        }
    }

    fn round(
        &mut self,
        engine: &Engine,
        last: bool,
        loc: &Location,
        label: &str,
        out: &mut Vec<Finding>,
    ) {
        let end = self.buf_start + self.buf.len() as u64;
        let hi = if last {
            u64::MAX
        } else {
            end.saturating_sub(self.margin)
        };
        if self.unscanned > 0 || last {
            let mut hits = Vec::new();
            engine.scan_view(&self.buf, self.form, &mut hits);
            for h in hits {
                let hit_end = self.buf_start + h.end as u64;
                if hit_end <= self.accepted_to || hit_end > hi {
                    continue;
                }
                let start = self.buf_start + h.start as u64;
                self.first_finding = Some(self.first_finding.map_or(start, |f| f.min(start)));
                let reported = self.reported.entry(h.target).or_default();
                if *reported < MAX_FINDINGS_PER_RULE {
                    *reported += 1;
                    out.push(engine.finding(h, loc, self.buf_start, label));
                }
            }
            self.accepted_to = self.accepted_to.max(hi);
        }
        self.unscanned = 0;
        let keep_from = if last {
            end
        } else {
            end.saturating_sub(self.tail as u64).max(self.buf_start)
        };
        let drop = (keep_from - self.buf_start) as usize;
        self.buf.drain(..drop);
        self.buf_start = keep_from;
        let cleared = self.first_finding.map_or(keep_from, |f| f.min(keep_from));
        self.released = self.released.max(cleared);
    }
}

/// Scans one request body or WebSocket message as it streams.
#[derive(Debug)]
pub struct BodyScanner {
    engine: Arc<Engine>,
    location: Location,
    decomp: Option<Decompressor>,
    label: String,
    win: Window,
    /// Compressed bodies only: the raw bytes scanned as they are. Container fields that decode
    /// to nothing (gzip FNAME/FCOMMENT/FEXTRA, zstd skippable frames, brotli metadata) reach the
    /// receiver verbatim without ever appearing in the decoded stream.
    raw_win: Option<Window>,
    /// Where zstd blocks end, for a zstd body (see `decode::zstd_frames`).
    zstd: Option<ZstdFrames>,
    raw_in: u64,
    decoded_in: u64,
    /// `(raw bytes fed, decoded bytes produced by then)`, for compressed bodies.
    checkpoints: VecDeque<(u64, u64)>,
    raw_released: u64,
    finished: bool,
}

impl BodyScanner {
    pub(crate) fn new(engine: Arc<Engine>, ctx: BodyContext) -> Result<BodyScanner, DlpError> {
        let decomp = match ctx.content_encoding.as_deref() {
            Some(ce) => Decompressor::new(ce, ctx.limits)?,
            None => None,
        };
        let form = ctx.content_type.as_deref().is_some_and(|t| {
            t.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        let label = decomp.as_ref().map(Decompressor::label).unwrap_or_default();
        let win = Window::new(&engine, form);
        let raw_win = decomp.as_ref().map(|_| Window::new(&engine, false));
        let zstd = decomp
            .as_ref()
            .is_some_and(Decompressor::is_zstd)
            .then(ZstdFrames::default);
        Ok(BodyScanner {
            engine,
            location: ctx.location,
            decomp,
            label,
            win,
            raw_win,
            zstd,
            raw_in: 0,
            decoded_in: 0,
            checkpoints: VecDeque::new(),
            raw_released: 0,
            finished: false,
        })
    }

    /// Scans the next chunk. On error (bomb, corrupt compressed data) the body must be refused.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Progress, DlpError> {
        if self.finished {
            return Err(DlpError::Finished);
        }
        let mut findings = Vec::new();
        self.raw_in += chunk.len() as u64;
        match self.decomp.as_mut() {
            None => self.win.push(
                &self.engine,
                chunk,
                &self.location,
                &self.label,
                &mut findings,
            ),
            Some(d) => {
                let (engine, win, loc, label) =
                    (&self.engine, &mut self.win, &self.location, &self.label);
                let mut produced = 0u64;
                d.feed(chunk, &mut |out| {
                    produced += out.len() as u64;
                    win.push(engine, out, loc, label, &mut findings);
                    Ok(())
                })?;
                if let Some(raw) = self.raw_win.as_mut() {
                    raw.push(engine, chunk, loc, UNDECODED, &mut findings);
                }
                self.decoded_in += produced;
                let cleared_raw = match self.zstd.as_mut() {
                    Some(z) => {
                        z.feed(chunk);
                        z.boundary()
                    }
                    None => self.raw_in,
                };
                self.checkpoints.push_back((cleared_raw, self.decoded_in));
                if self.checkpoints.len() > MAX_CHECKPOINTS {
                    // Dropping the oldest point only makes release wait for a later one.
                    self.checkpoints.pop_front();
                }
            }
        }
        Ok(Progress {
            findings,
            releasable: self.releasable(),
        })
    }

    /// Ends the body: scans what is held back. With no finding ever, all input is releasable.
    pub fn finish(&mut self) -> Result<Progress, DlpError> {
        if self.finished {
            return Err(DlpError::Finished);
        }
        self.finished = true;
        let mut findings = Vec::new();
        if let Some(d) = self.decomp.as_mut() {
            let (engine, win, loc, label) =
                (&self.engine, &mut self.win, &self.location, &self.label);
            d.finish(&mut |out| {
                win.push(engine, out, loc, label, &mut findings);
                Ok(())
            })?;
            if self.zstd.as_ref().is_some_and(|z| !z.at_frame_end()) {
                return Err(DlpError::Decode {
                    encoding: "zstd",
                    msg: "the body does not end on a whole frame".into(),
                });
            }
        }
        if let Some(raw) = self.raw_win.as_mut() {
            raw.round(&self.engine, true, &self.location, UNDECODED, &mut findings);
        }
        self.win.round(
            &self.engine,
            true,
            &self.location,
            &self.label,
            &mut findings,
        );
        if !self.has_findings() {
            self.raw_released = self.raw_in;
            self.win.released = self.win.released.max(self.decoded_in);
        }
        Ok(Progress {
            findings,
            releasable: self.releasable(),
        })
    }

    /// Total input bytes safe to forward so far (see `Progress::releasable`).
    pub fn releasable(&mut self) -> u64 {
        if self.decomp.is_none() {
            return self.win.released;
        }
        // Compressed input: a raw prefix is released only once everything it decodes to has been
        // cleared (the decoders are flushed after every chunk, so nothing decodable is pending).
        while let Some(&(raw, decoded)) = self.checkpoints.front() {
            if decoded > self.win.released {
                break;
            }
            self.raw_released = self.raw_released.max(raw);
            self.checkpoints.pop_front();
        }
        // ... and its raw bytes have been cleared as bytes too.
        match &self.raw_win {
            Some(raw) => self.raw_released.min(raw.released),
            None => self.raw_released,
        }
    }

    /// Whether any finding was reported (the proxy blocks on the first).
    pub fn has_findings(&self) -> bool {
        self.win.first_finding.is_some()
            || self
                .raw_win
                .as_ref()
                .is_some_and(|w| w.first_finding.is_some())
    }

    /// Bytes held in the scan buffer (for memory-bound tests and metrics).
    pub fn buffered(&self) -> usize {
        self.win.buf.len() + self.raw_win.as_ref().map_or(0, |w| w.buf.len())
    }

    /// Bytes allocated for the scan buffers: never more than `buffer_bound()`, and small for a
    /// small body.
    pub fn reserved(&self) -> usize {
        self.win.buf.capacity() + self.raw_win.as_ref().map_or(0, |w| w.buf.capacity())
    }

    /// Test hook: scan after every `trigger` new bytes, at most `segment_max` per round (the
    /// defaults, 64 KiB and 256 KiB, make small test bodies finish in one round).
    #[doc(hidden)]
    pub fn set_segment(&mut self, trigger: usize, segment_max: usize) {
        for w in std::iter::once(&mut self.win).chain(self.raw_win.as_mut()) {
            w.trigger = trigger.max(1);
            w.segment_max = segment_max.max(1);
        }
    }

    /// Upper bound on `buffered()` for this engine.
    pub fn buffer_bound(&self) -> usize {
        self.win.capacity() + self.raw_win.as_ref().map_or(0, Window::capacity)
    }
}

impl Engine {
    /// A streaming scanner for one body. Errors on an unsupported `Content-Encoding`.
    pub fn body_scanner(self: &Arc<Self>, ctx: BodyContext) -> Result<BodyScanner, DlpError> {
        BodyScanner::new(Arc::clone(self), ctx)
    }
}
