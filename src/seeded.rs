//! The one seeded generator of the tests and benchmarks: the same numbers on every machine, so
//! a failure reproduces and a pinned result stays pinned. Not for anything that is coded.

/// Knuth's MMIX linear congruential generator; its high bits are the good ones, so every
/// output is taken from the top of the state.
#[derive(Clone, Debug)]
pub struct Seeded {
    state: u64,
}

impl Seeded {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The top `bits` bits (1 to 64) of the next state.
    pub fn bits(&mut self, bits: u32) -> u64 {
        debug_assert!((1..=64).contains(&bits));
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.state >> (64 - bits)
    }

    /// A value in `0..n` (`n` > 0; the slight bias of a modulus does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.bits(64) % n
    }

    /// A value in [0, 1) with 24 bits of precision.
    pub fn unit(&mut self) -> f32 {
        self.bits(24) as f32 / (1u32 << 24) as f32
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.bits(8) as u8).collect()
    }
}
