//! Deterministic inputs for the differential tests (vector vs scalar, fast path vs bytewise
//! reference): an LCG, since only reproducibility matters, not statistical quality.

pub(crate) struct Lcg(u64);

impl Lcg {
    pub(crate) fn new(seed: u64) -> Lcg {
        Lcg(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1);
        self.0
    }

    /// One element of `from`, uniformly.
    pub(crate) fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() >> 33) as usize % from.len()]
    }

    /// `len` bytes of `common`, each one of `rare` instead with probability 1/`every`: runs of
    /// every length, broken at random places.
    pub(crate) fn sparse(&mut self, len: usize, every: u64, rare: &[u8], common: &[u8]) -> Vec<u8> {
        (0..len)
            .map(|_| {
                if (self.next() >> 40).is_multiple_of(every) {
                    self.pick(rare)
                } else {
                    self.pick(common)
                }
            })
            .collect()
    }
}
