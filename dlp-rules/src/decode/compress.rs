//! Request `Content-Encoding` (gzip, deflate, br or zstd; one of them) decoded as a stream.
//! Input is pushed in small slices and output drained after each, so memory stays bounded; a body
//! that inflates past the size or ratio limit is refused (an error), never passed unscanned.

use std::io::Write;

use flate2::write::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

use crate::error::DlpError;

/// Input slice fed to a decoder at a time; with deflate's 1032:1 maximum this bounds one burst
/// of output to about 4 MiB.
const SLICE: usize = 4096;
/// Output one slice may produce before it counts as a bomb on its own.
const SLICE_OUTPUT_CAP: usize = 8 << 20;
/// zstd window cap (2^23 = 8 MiB): larger windows are refused rather than allocated.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Decompression limits. A body is refused when its decoded size exceeds `max_output`, or exceeds
/// both `ratio_floor` and `max_ratio` times the compressed bytes seen so far.
#[derive(Debug, Clone, Copy)]
pub struct DecompressLimits {
    pub max_output: u64,
    pub max_ratio: u64,
    pub ratio_floor: u64,
}

impl Default for DecompressLimits {
    fn default() -> Self {
        DecompressLimits {
            max_output: 256 << 20,
            max_ratio: 100,
            ratio_floor: 4 << 20,
        }
    }
}

/// A `Write` sink that refuses to grow past a cap, so a decoder cannot balloon memory inside one
/// `write` call.
#[derive(Debug, Default)]
struct Sink {
    buf: Vec<u8>,
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > SLICE_OUTPUT_CAP {
            return Err(std::io::Error::other("decompressed burst over cap"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Stage {
    Gzip(MultiGzDecoder<Sink>),
    /// HTTP "deflate" is zlib-wrapped by the RFC, raw by some clients: sniffed from 2 bytes.
    DeflateSniff(Vec<u8>),
    Zlib(ZlibDecoder<Sink>),
    Deflate(DeflateDecoder<Sink>),
    Brotli(Box<brotli::DecompressorWriter<Sink>>),
    /// The flag: whether any input was written (an empty stream has no frame to finish).
    Zstd(zstd::stream::write::Decoder<'static, Sink>, bool),
}

impl Stage {
    fn name(&self) -> &'static str {
        match self {
            Stage::Gzip(_) => "gzip",
            Stage::DeflateSniff(_) | Stage::Zlib(_) | Stage::Deflate(_) => "deflate",
            Stage::Brotli(_) => "br",
            Stage::Zstd(..) => "zstd",
        }
    }

    fn new(coding: &str) -> Result<Option<Stage>, DlpError> {
        Ok(Some(match coding {
            "identity" | "" => return Ok(None),
            "gzip" | "x-gzip" => Stage::Gzip(MultiGzDecoder::new(Sink::default())),
            "deflate" => Stage::DeflateSniff(Vec::new()),
            "br" => Stage::Brotli(Box::new(brotli::DecompressorWriter::new(
                Sink::default(),
                4096,
            ))),
            "zstd" => {
                let mut d = zstd::stream::write::Decoder::new(Sink::default())?;
                d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                Stage::Zstd(d, false)
            }
            other => return Err(DlpError::UnsupportedEncoding(other.to_string())),
        }))
    }

    /// Writes `input`; what came out is left in the sink (`output`).
    fn push(&mut self, input: &[u8]) -> std::io::Result<()> {
        if let Stage::DeflateSniff(head) = self {
            head.extend_from_slice(input);
            if head.len() < 2 {
                return Ok(());
            }
            let head = std::mem::take(head);
            let (cmf, flg) = (head[0], head[1]);
            let zlib = cmf & 0x0F == 8 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0;
            *self = if zlib {
                Stage::Zlib(ZlibDecoder::new(Sink::default()))
            } else {
                Stage::Deflate(DeflateDecoder::new(Sink::default()))
            };
            return self.push(&head);
        }
        match self {
            Stage::Gzip(d) => d.write_all(input).and_then(|()| d.flush()),
            Stage::Zlib(d) => d.write_all(input).and_then(|()| d.flush()),
            Stage::Deflate(d) => d.write_all(input).and_then(|()| d.flush()),
            Stage::Brotli(d) => d.write_all(input).and_then(|()| d.flush()),
            Stage::Zstd(d, wrote) => {
                *wrote |= !input.is_empty();
                d.write_all(input).and_then(|()| d.flush())
            }
            Stage::DeflateSniff(_) => Ok(()),
        }
    }

    /// Ends the stream; the rest of the output is left in the sink.
    fn finish(&mut self) -> std::io::Result<()> {
        match self {
            Stage::Gzip(d) => d.try_finish(),
            Stage::Zlib(d) => d.try_finish(),
            Stage::Deflate(d) => d.try_finish(),
            Stage::Brotli(d) => d.close(),
            // `do_finish` fails unless the input ended on a whole frame; `flush` alone let a
            // truncated frame (whose last block was never decoded, so never scanned) pass.
            Stage::Zstd(d, true) => d.do_finish(),
            Stage::Zstd(_, false) => Ok(()),
            Stage::DeflateSniff(head) if head.is_empty() => Ok(()),
            Stage::DeflateSniff(_) => Err(std::io::Error::other("truncated deflate stream")),
        }
    }

    /// The decoded bytes not yet taken. Drained with `clear`, so the buffer keeps its capacity
    /// from slice to slice (taking it made every slice regrow it from empty, copying as it grew).
    fn output(&mut self) -> Option<&mut Vec<u8>> {
        match self {
            Stage::Gzip(d) => Some(&mut d.get_mut().buf),
            Stage::Zlib(d) => Some(&mut d.get_mut().buf),
            Stage::Deflate(d) => Some(&mut d.get_mut().buf),
            Stage::Brotli(d) => Some(&mut d.get_mut().buf),
            Stage::Zstd(d, _) => Some(&mut d.get_mut().buf),
            Stage::DeflateSniff(_) => None,
        }
    }
}

/// A decoder's error: its own output cap (a bomb within one slice), or corrupt data.
fn decode_error(encoding: &'static str, e: std::io::Error) -> DlpError {
    if e.to_string().contains("over cap") {
        DlpError::DecompressionLimit("output burst over cap")
    } else {
        DlpError::Decode {
            encoding,
            msg: e.to_string(),
        }
    }
}

/// The decoder for one body (one coding: stacked ones are refused, see `new`).
pub(crate) struct Decompressor {
    stage: Stage,
    limits: DecompressLimits,
    total_in: u64,
    total_out: u64,
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor")
            .field("stage", &self.stage.name())
            .field("total_in", &self.total_in)
            .finish()
    }
}

impl Decompressor {
    /// `None` when the header names no (or only identity) coding.
    pub fn new(
        content_encoding: &str,
        limits: DecompressLimits,
    ) -> Result<Option<Decompressor>, DlpError> {
        let mut stages = Vec::new();
        for coding in content_encoding.split(',').rev() {
            if let Some(s) = Stage::new(&coding.trim().to_ascii_lowercase())? {
                stages.push(s);
            }
        }
        // One coding at most. Every layer's container has fields that decode to nothing (gzip
        // FNAME, zstd skippable frames): the outer layer's are seen in the raw bytes, an inner
        // layer's in no scanned stream at all, and an inner zstd hides its block ends. No HTTP
        // client stacks request codings.
        if stages.len() > 1 {
            return Err(DlpError::UnsupportedEncoding(format!(
                "stacked codings ({content_encoding}); send one"
            )));
        }
        Ok(stages.pop().map(|stage| Decompressor {
            stage,
            limits,
            total_in: 0,
            total_out: 0,
        }))
    }

    /// Whether the body is zstd (whose block ends `decode::zstd_frames` tracks).
    pub fn is_zstd(&self) -> bool {
        matches!(self.stage, Stage::Zstd(..))
    }

    /// The coding's name.
    pub fn label(&self) -> String {
        self.stage.name().to_string()
    }

    /// Feeds compressed bytes; `out` receives decoded bytes in bounded pieces.
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut dyn FnMut(&[u8]) -> Result<(), DlpError>,
    ) -> Result<(), DlpError> {
        for slice in input.chunks(SLICE) {
            self.total_in += slice.len() as u64;
            let name = self.stage.name();
            self.stage.push(slice).map_err(|e| decode_error(name, e))?;
            self.emit(out)?;
        }
        Ok(())
    }

    pub fn finish(
        &mut self,
        out: &mut dyn FnMut(&[u8]) -> Result<(), DlpError>,
    ) -> Result<(), DlpError> {
        let name = self.stage.name();
        self.stage.finish().map_err(|e| decode_error(name, e))?;
        self.emit(out)
    }

    /// Hands what the decoder produced to `out` (after the limits) and empties the sink.
    fn emit(&mut self, out: &mut dyn FnMut(&[u8]) -> Result<(), DlpError>) -> Result<(), DlpError> {
        let Some(produced) = self.stage.output() else {
            return Ok(());
        };
        self.total_out += produced.len() as u64;
        let l = self.limits;
        if self.total_out > l.max_output {
            return Err(DlpError::DecompressionLimit("decoded body over size limit"));
        }
        if self.total_out > l.ratio_floor
            && self.total_out > l.max_ratio.saturating_mul(self.total_in.max(1))
        {
            return Err(DlpError::DecompressionLimit("compression ratio over limit"));
        }
        if produced.is_empty() {
            return Ok(());
        }
        let r = out(produced);
        produced.clear();
        r
    }
}
