//! Where zstd blocks end in a compressed stream. A zstd decoder cannot emit any of a compressed
//! block until the whole block (up to 128 KiB decoded) has arrived, unlike inflate and brotli,
//! which emit as they go. So "the decoder has been flushed and its output cleared" does not
//! clear the raw bytes of a block still arriving: they may hold the start of a secret coded as
//! Huffman literals that a receiver could decode from the partial block. A raw zstd prefix is
//! therefore released only up to the last complete block, which this walker finds from the
//! frame format (RFC 8878) without decoding anything. It also tells whether the stream ended on
//! a frame boundary: the decoder's `flush` does not, and a truncated frame must be refused.

/// Progress through a sequence of zstd (and skippable) frames.
#[derive(Debug, Clone)]
pub(crate) struct ZstdFrames {
    state: State,
    /// Header bytes gathered for the current fixed-size field.
    field: [u8; 4],
    got: usize,
    /// Checksum flag of the frame being walked.
    checksum: bool,
    offset: u64,
    /// Offset just past the last complete block, frame or skippable frame.
    boundary: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames: the next 4 bytes are a magic number.
    Magic,
    /// The frame header descriptor byte.
    Descriptor,
    /// `n` more frame-header bytes (window, dictionary id, content size).
    Skip { left: u64, then: After },
    /// The 3-byte block header.
    BlockHeader,
    /// A skippable frame's 4-byte size.
    SkippableSize,
    /// Not a zstd stream: no boundary past this point is known.
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// End of the frame header: blocks follow.
    Blocks,
    /// End of a block that is not the last.
    Block,
    /// End of the last block: the checksum (if any) follows, then the frame ends.
    LastBlock,
    /// End of a frame (its checksum, or a skippable frame's content).
    Frame,
}

const ZSTD_MAGIC: u32 = 0xFD2F_B528;
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

impl Default for ZstdFrames {
    fn default() -> Self {
        ZstdFrames {
            state: State::Magic,
            field: [0; 4],
            got: 0,
            checksum: false,
            offset: 0,
            boundary: 0,
        }
    }
}

impl ZstdFrames {
    /// Raw bytes up to the end of the last complete block or frame.
    pub fn boundary(&self) -> u64 {
        self.boundary
    }

    /// Whether the bytes so far end exactly after a whole frame (or there were none).
    pub fn at_frame_end(&self) -> bool {
        self.state == State::Magic && self.got == 0
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if let State::Skip { left, then } = self.state {
                let n = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
                data = &data[n..];
                self.offset += n as u64;
                let left = left - n as u64;
                self.state = if left > 0 {
                    State::Skip { left, then }
                } else {
                    self.after(then)
                };
                continue;
            }
            if self.state == State::Invalid {
                return;
            }
            self.field[self.got] = data[0];
            self.got += 1;
            self.offset += 1;
            data = &data[1..];
            if self.got == self.field_len() {
                self.got = 0;
                self.state = self.parse_field();
            }
        }
    }

    fn field_len(&self) -> usize {
        match self.state {
            State::Magic | State::SkippableSize => 4,
            State::Descriptor => 1,
            State::BlockHeader => 3,
            State::Skip { .. } | State::Invalid => 1,
        }
    }

    fn parse_field(&mut self) -> State {
        let f = self.field;
        match self.state {
            State::Magic => {
                let magic = u32::from_le_bytes(f);
                if magic == ZSTD_MAGIC {
                    State::Descriptor
                } else if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
                    State::SkippableSize
                } else {
                    State::Invalid
                }
            }
            State::SkippableSize => self.skip(u64::from(u32::from_le_bytes(f)), After::Frame),
            State::Descriptor => {
                let d = f[0];
                let single_segment = d & 0x20 != 0;
                self.checksum = d & 0x04 != 0;
                let window = u64::from(!single_segment);
                let dict = [0, 1, 2, 4][usize::from(d & 0x03)];
                let content_size = match d >> 6 {
                    0 => u64::from(single_segment),
                    1 => 2,
                    2 => 4,
                    _ => 8,
                };
                self.skip(window + dict + content_size, After::Blocks)
            }
            State::BlockHeader => {
                let h = u32::from(f[0]) | u32::from(f[1]) << 8 | u32::from(f[2]) << 16;
                let last = h & 1 != 0;
                let size = u64::from(h >> 3);
                let body = match (h >> 1) & 0x03 {
                    0 | 2 => size,
                    1 => 1,
                    _ => return State::Invalid,
                };
                let then = if last { After::LastBlock } else { After::Block };
                self.skip(body, then)
            }
            State::Skip { .. } | State::Invalid => State::Invalid,
        }
    }

    fn skip(&mut self, left: u64, then: After) -> State {
        if left == 0 {
            self.after(then)
        } else {
            State::Skip { left, then }
        }
    }

    fn after(&mut self, then: After) -> State {
        match then {
            After::Blocks => State::BlockHeader,
            After::Block => {
                self.boundary = self.offset;
                State::BlockHeader
            }
            After::LastBlock => {
                self.boundary = self.offset;
                if self.checksum {
                    self.checksum = false;
                    State::Skip {
                        left: 4,
                        then: After::Frame,
                    }
                } else {
                    self.after(After::Frame)
                }
            }
            After::Frame => {
                self.boundary = self.offset;
                State::Magic
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// zstd-compresses `data` (level 3) with the content checksum on, in one or more frames.
    fn compress(data: &[u8], checksum: bool) -> Vec<u8> {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_checksum(checksum).unwrap();
        std::io::Write::write_all(&mut enc, data).unwrap();
        enc.finish().unwrap()
    }

    fn text(n: usize) -> Vec<u8> {
        let mut x = 7u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b"the quick brown fox jumps over lazy dogs 0123456789\n"[(x % 52) as usize]
            })
            .collect()
    }

    /// Bytes a decoder emits for each prefix, flushed, as the scanner drives it.
    fn decoded_after(z: &[u8], prefix: usize) -> usize {
        let mut d = zstd::stream::write::Decoder::new(Vec::new()).unwrap();
        let _ = std::io::Write::write_all(&mut d, &z[..prefix]);
        let _ = std::io::Write::flush(&mut d);
        d.get_ref().len()
    }

    #[test]
    fn whole_frames_end_on_a_boundary_and_truncated_ones_do_not() {
        for checksum in [false, true] {
            let mut z = compress(&text(300_000), checksum);
            z.extend(compress(b"second frame", checksum));
            let mut w = ZstdFrames::default();
            w.feed(&z);
            assert!(w.at_frame_end());
            assert_eq!(w.boundary(), z.len() as u64);
            for cut in [1, 3, 4, 5, z.len() / 2, z.len() - 1] {
                let mut w = ZstdFrames::default();
                w.feed(&z[..cut]);
                assert!(!w.at_frame_end(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn skippable_frames_are_walked_over() {
        let mut z = vec![0x50, 0x2A, 0x4D, 0x18, 5, 0, 0, 0];
        z.extend_from_slice(b"ghp_x");
        let body = compress(b"{\"ok\":true}", false);
        z.extend_from_slice(&body);
        let mut w = ZstdFrames::default();
        for b in &z {
            w.feed(std::slice::from_ref(b));
        }
        assert!(w.at_frame_end());
        assert_eq!(w.boundary(), z.len() as u64);
    }

    /// Why the walker exists: of a compressed block, the decoder emits nothing until the block
    /// is whole, so whatever it emits for a prefix it had already emitted at the boundary
    /// before it (checked every 97 bytes of a compressible stream). What the scanner relies on
    /// is only that a release point is a block end paired with the output seen by then, which
    /// holds whatever the decoder emits early.
    #[test]
    fn nothing_past_the_boundary_has_been_decoded() {
        let z = compress(&text(400_000), true);
        let mut w = ZstdFrames::default();
        let step = 97;
        let mut fed = 0;
        while fed < z.len() {
            let next = (fed + step).min(z.len());
            w.feed(&z[fed..next]);
            fed = next;
            let at_boundary = decoded_after(&z, w.boundary() as usize);
            assert_eq!(
                decoded_after(&z, fed),
                at_boundary,
                "a prefix of {fed} decodes to more than its boundary {}",
                w.boundary()
            );
        }
    }

    /// Incompressible input is stored in raw blocks; the walker still finds every block end,
    /// and the boundary never runs ahead of the bytes fed.
    #[test]
    fn raw_blocks_of_incompressible_input_are_walked() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let z = compress(&noise, false);
        let mut w = ZstdFrames::default();
        let mut boundaries = 0;
        let mut last = 0;
        for (i, chunk) in z.chunks(1000).enumerate() {
            w.feed(chunk);
            assert!(w.boundary() <= ((i + 1) * 1000) as u64);
            if w.boundary() > last {
                boundaries += 1;
                last = w.boundary();
            }
        }
        assert!(w.at_frame_end());
        assert!(boundaries >= 2, "several 128 KiB blocks: {boundaries}");
    }

    #[test]
    fn a_stream_that_is_not_zstd_has_no_boundary() {
        let mut w = ZstdFrames::default();
        w.feed(b"not zstd at all, just text");
        assert_eq!(w.boundary(), 0);
        assert!(!w.at_frame_end());
    }
}
