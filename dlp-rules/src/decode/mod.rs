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
    /// Where each `%` of the parent landed in the view (a decoded `%XX` or a `%` kept as is),
    /// ascending: whether a stretch of the view came from parent bytes holding a `%` is then a
    /// search in this short list instead of mapping the stretch back.
    percents: Vec<u32>,
}

impl PosMap {
    pub fn clear_from(&mut self, parent_start: usize) {
        self.points.clear();
        self.points.push((0, to_u32(parent_start)));
        self.percents.clear();
    }

    /// Records that a parent `%` landed at view position `view` (called in ascending order).
    pub fn push_percent(&mut self, view: usize) {
        self.percents.push(to_u32(view));
    }

    /// Whether the parent bytes behind view positions `start..end` hold a `%` (as recorded by
    /// `push_percent`). The same as searching `parent[map(start)..map(end)]`: a `%` that landed
    /// at `v` maps to itself, and `map` is monotonic, so `v` is in `start..end` exactly when the
    /// `%` is in the mapped stretch.
    pub fn percent_in(&self, start: usize, end: usize) -> bool {
        let i = self.percents.partition_point(|&p| (p as usize) < start);
        self.percents.get(i).is_some_and(|&p| (p as usize) < end)
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
