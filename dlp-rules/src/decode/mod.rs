//! Decoding layers. Each turns a byte view into a derived view plus a position map back to its
//! parent, so a finding in decoded bytes is reported (and held back) at raw offsets.

pub(crate) mod base64;
pub(crate) mod compress;
pub(crate) mod escape;
pub(crate) mod hex;
pub(crate) mod zstd_frames;

/// Maps positions in a derived view to its parent. Between checkpoints the two advance in step;
/// each checkpoint `(view, parent)` records where they re-align after an escape or a skipped
/// line break. Decoding only shrinks (every escape is longer than its output), so a position inside
/// an escape's output maps inside the escape.
#[derive(Debug, Default, Clone)]
pub(crate) struct PosMap {
    points: Vec<(u32, u32)>,
}

impl PosMap {
    pub fn clear_from(&mut self, parent_start: usize) {
        self.points.clear();
        self.points.push((0, to_u32(parent_start)));
    }

    pub fn push(&mut self, view: usize, parent: usize) {
        self.points.push((to_u32(view), to_u32(parent)));
    }

    /// The checkpoints `(view, parent)`, the first one at the start of the view.
    pub fn points(&self) -> &[(u32, u32)] {
        &self.points
    }

    /// Parent position of view position `v` (works for exclusive ends too).
    pub fn map(&self, v: usize) -> usize {
        let v32 = to_u32(v);
        let i = self.points.partition_point(|p| p.0 <= v32);
        let (cv, cp) = self.points[i.saturating_sub(1)];
        cp as usize + (v - cv as usize)
    }
}

fn to_u32(n: usize) -> u32 {
    // Views are bounded by the streaming segment size (well under 4 GiB); saturate defensively.
    u32::try_from(n).unwrap_or(u32::MAX)
}
