//! The byte model of format version 1 (byte model id 1), kept so that version-1 archives still
//! decode: order-0, order-1 and hashed order-2 counts blended into one integer distribution
//! over 256 byte values. Version 2 replaced it with context mixing (`predict::cm`).
//!
//! Integer-only, so encoder and decoder agree on every machine. Its context is the chunk's
//! previous two bytes, text bytes included.

/// Hashed order-2 contexts (each holds 256 counts).
const ORDER2_CONTEXTS: usize = 1 << 12;
/// Counts are halved when one reaches this, so the model keeps adapting.
const COUNT_LIMIT: u16 = 1 << 12;
/// Weight of an order's count relative to order 0.
const ORDER1_WEIGHT: u64 = 4;
const ORDER2_WEIGHT: u64 = 16;
/// Weight every byte gets regardless of counts, so unseen bytes stay codable and cheap enough.
const BASE_WEIGHT: u64 = 1;
/// Count added per occurrence.
const INCREMENT: u16 = 2;

pub struct Order2Model {
    order0: Vec<u16>,
    order1: Vec<u16>,
    order2: Vec<u16>,
    prev1: u8,
    prev2: u8,
    weights: Vec<u64>,
}

impl Default for Order2Model {
    fn default() -> Self {
        Self::new()
    }
}

impl Order2Model {
    pub fn new() -> Self {
        Self {
            order0: vec![0; 256],
            order1: vec![0; 256 * 256],
            order2: Vec::new(), // allocated on first use: most chunks have few raw bytes
            prev1: 0,
            prev2: 0,
            weights: vec![0; 256],
        }
    }

    fn order2_base(&self) -> usize {
        let h = (u32::from(self.prev2) << 8 | u32::from(self.prev1)).wrapping_mul(0x9E37_79B1);
        ((h >> 20) as usize % ORDER2_CONTEXTS) * 256
    }

    /// Integer weights for the next byte, in `weights()` afterwards.
    pub fn predict(&mut self) -> &[u64] {
        if self.order2.is_empty() {
            self.order2 = vec![0; ORDER2_CONTEXTS * 256];
        }
        let o1 = usize::from(self.prev1) * 256;
        let o2 = self.order2_base();
        for b in 0..256 {
            self.weights[b] = BASE_WEIGHT
                + u64::from(self.order0[b])
                + ORDER1_WEIGHT * u64::from(self.order1[o1 + b])
                + ORDER2_WEIGHT * u64::from(self.order2[o2 + b]);
        }
        &self.weights
    }

    /// Learns that `byte` followed the current context, then moves the context on.
    pub fn update(&mut self, byte: u8) {
        let b = usize::from(byte);
        let o1 = usize::from(self.prev1) * 256;
        let o2 = self.order2_base();
        bump(&mut self.order0[..], b);
        bump(&mut self.order1[o1..o1 + 256], b);
        if !self.order2.is_empty() {
            bump(&mut self.order2[o2..o2 + 256], b);
        }
        self.observe(byte);
    }

    /// Moves the context on without learning (bytes coded by another model).
    pub fn observe(&mut self, byte: u8) {
        self.prev2 = self.prev1;
        self.prev1 = byte;
    }
}

fn bump(counts: &mut [u16], b: usize) {
    counts[b] += INCREMENT;
    if counts[b] >= COUNT_LIMIT {
        for c in counts.iter_mut() {
            *c >>= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_repeating_pattern() {
        let mut m = Order2Model::new();
        let pattern = b"abcabcabc";
        for _ in 0..50 {
            for &b in pattern {
                m.predict();
                m.update(b);
            }
        }
        // After "...ab", 'c' must dominate.
        let w = m.predict().to_vec();
        let total: u64 = w.iter().sum();
        assert!(w[b'a' as usize] * 2 > total, "after 'c' comes 'a'");
    }
}
