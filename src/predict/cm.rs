//! Context-mixing bit predictor for bytes the language model does not code: raw segments of
//! text chunks, binary chunks, and every chunk in fast mode.
//!
//! In the family of lpaq/paq8, written for this format: each byte is coded as 8 binary
//! decisions, most significant bit first. Order-0 and order-1 contexts index direct tables;
//! orders 2, 3, 4 and 6, a word context and a sparse (skip one byte) context are hashed into
//! 64-byte slots, one per context and nibble, 2-way associative with a check word. Every cell
//! is an adaptive probability with a hit count (learning rate 1/(n + 1.5) until the count
//! saturates). A match model predicts the bit of the byte that followed the last occurrence of
//! the current 6-byte context. Two gated linear mixers in the logistic domain combine the
//! predictions; two APM/SSE stages refine the result.
//!
//! Everything is integer arithmetic with wrapping hashes, so encoder and decoder compute the
//! same probabilities on every machine. Changing any constant here changes the coded stream:
//! such a change needs a new byte-model identifier in the container.

/// log2 of the slots in each hashed context table: the container records the largest a chunk
/// may use, within these bounds.
pub use crate::container::{MAX_TABLE_BITS, MIN_TABLE_BITS};

/// Table size for a chunk with `raw_bytes` bytes to model: about one slot per four bytes
/// (each byte touches two slots per table, many of them shared), within the archive's maximum.
pub fn table_bits_for(raw_bytes: u64, max_table_bits: u8) -> u8 {
    let log2 = 64 - raw_bytes.saturating_sub(1).leading_zeros() as u8; // ceil(log2)
    log2.saturating_sub(2).clamp(
        MIN_TABLE_BITS,
        max_table_bits.clamp(MIN_TABLE_BITS, MAX_TABLE_BITS),
    )
}

/// Hashed context tables: orders 2, 3, 4, 6, word, sparse, and two record (column) contexts.
const N_HASHED: usize = 8;
/// Mixer inputs: order 0, order 1, the hashed ones, match, bias.
const N_INPUTS: usize = 2 + N_HASHED + 2;
const MATCH_INPUT: usize = 2 + N_HASHED;
const BIAS_INPUT: usize = MATCH_INPUT + 1;

/// Shortest match the match model looks up, in bytes.
const MATCH_MIN: usize = 6;
/// Longest match length it verifies backwards when it finds a candidate.
const MATCH_VERIFY: usize = 32;
const MATCH_BUCKETS: usize = 32;

/// Record detection: distances 4..=1024 are scored on every 8th byte and the record length
/// re-chosen every 4096 bytes.
const RECORD_MIN: usize = 4;
const RECORD_MAX: usize = 1024;
const RECORD_SAMPLE: usize = 8;
const RECORD_DECIDE: usize = 4096;
const RECORD_DECAY: usize = 32 * RECORD_DECIDE;

/// Count limits of the adaptive cells: low orders stay nearly stationary, high orders adapt.
const LIMIT_LOW: u32 = 1023;
const LIMIT_HIGH: u32 = 255;
/// Mixer learning rate (error × rate, then >> 10) and initial weight (1.0 = 65536).
const MIXER_RATE: i32 = 5;
const MIXER_INIT: i32 = 1 << 14;
/// APM adaptation shift.
const APM_RATE: u32 = 6;

/// A cell: probability of a 1 in the top 22 bits, hit count in the low 10.
const CELL_INIT: u32 = 1 << 31;
const COUNT_MASK: u32 = 1023;

/// 4096 / (1 + e^(-x/256)) at x = -2048, -1920, …, 2048 (rounded).
const SQUASH_POINTS: [i32; 33] = [
    1, 2, 4, 6, 10, 17, 27, 45, 74, 120, 194, 311, 488, 747, 1102, 1546, 2048, 2550, 2994, 3349,
    3608, 3785, 3902, 3976, 4022, 4051, 4069, 4079, 4086, 4090, 4092, 4094, 4095,
];

/// Logistic function on the stretch scale: x in [-2047, 2047] → probability in (0, 4096).
#[inline]
fn squash(x: i32) -> i32 {
    if x > 2047 {
        return 4095;
    }
    if x < -2047 {
        return 1;
    }
    let w = x & 127;
    let i = ((x >> 7) + 16) as usize;
    (SQUASH_POINTS[i] * (128 - w) + SQUASH_POINTS[i + 1] * w + 64) >> 7
}

/// Inverse of [`squash`]: a 12-bit probability → stretch scale, built from `squash` itself so
/// both directions agree exactly.
static STRETCH: [i16; 4096] = build_stretch();

const fn build_stretch() -> [i16; 4096] {
    let mut table = [0i16; 4096];
    let mut next = 0usize;
    let mut x = -2047i32;
    while x <= 2047 {
        // const-fn copy of `squash`
        let w = x & 127;
        let i = ((x >> 7) + 16) as usize;
        let v = ((SQUASH_POINTS[i] * (128 - w) + SQUASH_POINTS[i + 1] * w + 64) >> 7) as usize;
        while next <= v {
            table[next] = x as i16;
            next += 1;
        }
        x += 1;
    }
    while next < 4096 {
        table[next] = 2047;
        next += 1;
    }
    table
}

#[inline]
fn stretch(p12: u32) -> i32 {
    i32::from(STRETCH[p12 as usize & 4095])
}

/// 65536 / (n + 1.5), the learning rate of a cell seen n times.
static RECIPROCALS: [u32; 1024] = build_reciprocals();

const fn build_reciprocals() -> [u32; 1024] {
    let mut t = [0u32; 1024];
    let mut n = 0;
    while n < 1024 {
        t[n] = (2 * 65536) / (2 * n as u32 + 3);
        n += 1;
    }
    t
}

/// Moves a cell's probability toward `bit` and counts the hit.
#[inline]
fn train_cell(cell: &mut u32, bit: u32, limit: u32) {
    let n = *cell & COUNT_MASK;
    let p = i64::from(*cell >> 10);
    let target = if bit != 0 { (1i64 << 22) - 1 } else { 0 };
    let p = p + (((target - p) * i64::from(RECIPROCALS[n as usize])) >> 16);
    *cell = ((p as u32) << 10) | (n + u32::from(n < limit));
}

#[inline]
fn cell_p12(cell: u32) -> u32 {
    cell >> 20
}

/// One 64-byte line of a hashed table: a check word and 15 cells, one per partial nibble.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Slot([u32; 16]);

const EMPTY_SLOT: Slot = {
    let mut s = [CELL_INIT; 16];
    s[0] = 0;
    Slot(s)
};

/// Asks for a slot's cache line ahead of use (a hint only: results never depend on it).
#[inline]
fn prefetch(slot: &Slot) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint that cannot fault, and the pointer comes from a reference.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (slot as *const Slot).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

#[inline]
fn hash2(a: u64, b: u64) -> u64 {
    let h = (a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    h ^ (h >> 32)
}

/// Adaptive probability map (SSE): refines a probability under a small context by
/// interpolating between 33 learned points on the stretch scale.
struct Apm {
    table: Vec<u16>,
    index: usize,
}

impl Apm {
    fn new(contexts: usize) -> Self {
        let mut table = Vec::with_capacity(contexts * 33);
        for _ in 0..contexts {
            for j in 0..33 {
                table.push((squash((j - 16) * 128) * 16) as u16);
            }
        }
        Self { table, index: 0 }
    }

    /// `p12` refined under `ctx`, as a 16-bit probability.
    #[inline]
    fn refine(&mut self, p12: i32, ctx: usize) -> u32 {
        let s = stretch(p12 as u32) + 2048;
        let lo = (s >> 7) as usize;
        let w = (s & 127) as u32;
        let base = ctx * 33 + lo;
        self.index = base + (w >> 6) as usize;
        (u32::from(self.table[base]) * (128 - w) + u32::from(self.table[base + 1]) * w) >> 7
    }

    #[inline]
    fn train(&mut self, bit: u32) {
        let target = if bit != 0 { 65535 } else { 0 };
        let v = i32::from(self.table[self.index]);
        self.table[self.index] = (v + ((target - v) >> APM_RATE)) as u16;
    }
}

/// A set of mixer weight vectors, one per selector context.
struct Mixer {
    weights: Vec<[i32; N_INPUTS]>,
    selected: usize,
    dot: i32,
    p12: i32,
}

impl Mixer {
    fn new(contexts: usize) -> Self {
        Self {
            weights: vec![[MIXER_INIT; N_INPUTS]; contexts],
            selected: 0,
            dot: 0,
            p12: 2048,
        }
    }

    #[inline]
    fn mix(&mut self, x: &[i32; N_INPUTS], ctx: usize) -> i32 {
        self.selected = ctx;
        let w = &self.weights[ctx];
        let mut dot = 0i64;
        for i in 0..N_INPUTS {
            dot += i64::from(x[i]) * i64::from(w[i]);
        }
        self.dot = (dot >> 16).clamp(-2047, 2047) as i32;
        self.p12 = squash(self.dot);
        self.dot
    }

    #[inline]
    fn train(&mut self, x: &[i32; N_INPUTS], bit: u32) {
        let err = ((bit as i32) << 12) - self.p12;
        let err = err * MIXER_RATE;
        let w = &mut self.weights[self.selected];
        for i in 0..N_INPUTS {
            w[i] = w[i].wrapping_add((x[i] * err) >> 12);
        }
    }
}

/// The byte predictor. Feed it bits with [`ContextMixingModel::update`]; [`ContextMixingModel::p1`] is always the
/// probability that the next bit is 1.
pub struct ContextMixingModel {
    history: Vec<u8>,
    /// Bits of the current byte so far, behind a leading 1 (1 at a byte boundary).
    c0: u32,
    bit_pos: u32,
    /// Bits of the current nibble so far, behind a leading 1.
    nibble: usize,
    /// Last eight whole bytes, most recent in the low byte.
    c8: u64,
    word: u64,
    record: RecordFinder,

    order0: Vec<u32>,
    order1: Vec<u32>,
    slots: Vec<Slot>,
    slot_mask: usize,
    context_hash: [u64; N_HASHED],
    /// Slot (absolute index into `slots`) of each hashed context for the current nibble.
    current_slot: [usize; N_HASHED],

    match_table: Vec<u32>,
    match_mask: usize,
    match_ptr: usize,
    match_len: usize,
    match_cells: Vec<u32>,
    /// Cell used for this bit, if the match model predicted.
    match_cell: Option<usize>,

    inputs: [i32; N_INPUTS],
    mixer_by_partial: Mixer,
    mixer_by_previous: Mixer,
    apm_order0: Apm,
    apm_order1: Apm,
    p12: i32,
    p16: u32,
}

impl ContextMixingModel {
    /// A fresh model whose hashed tables have `2^table_bits` slots each (64 bytes per slot).
    pub fn new(table_bits: u8) -> Self {
        let bits = table_bits.clamp(MIN_TABLE_BITS, MAX_TABLE_BITS);
        let slots_per_table = 1usize << bits;
        let match_entries = 1usize << (bits + 2).min(MAX_TABLE_BITS + 2);
        let mut cm = Self {
            history: Vec::new(),
            c0: 1,
            bit_pos: 0,
            nibble: 1,
            c8: 0,
            word: 0,
            record: RecordFinder::new(),
            order0: vec![CELL_INIT; 256],
            order1: vec![CELL_INIT; 256 * 256],
            slots: vec![EMPTY_SLOT; slots_per_table * N_HASHED],
            slot_mask: slots_per_table - 1,
            context_hash: [0; N_HASHED],
            current_slot: [0; N_HASHED],
            match_table: vec![0; match_entries],
            match_mask: match_entries - 1,
            match_ptr: 0,
            match_len: 0,
            match_cells: vec![CELL_INIT; MATCH_BUCKETS * 2],
            match_cell: None,
            inputs: [0; N_INPUTS],
            mixer_by_partial: Mixer::new(256),
            mixer_by_previous: Mixer::new(256 * 4),
            apm_order0: Apm::new(256),
            apm_order1: Apm::new(1 << 16),
            p12: 2048,
            p16: 1 << 15,
        };
        cm.hash_contexts();
        cm.select_slots();
        cm.predict();
        cm
    }

    /// P(next bit = 1) in units of 2^-16, within [32, 65504].
    #[inline]
    pub fn p1(&self) -> u32 {
        self.p16
    }

    /// Learns `bit` (0 or 1) and prepares the next prediction.
    pub fn update(&mut self, bit: u32) {
        let bit = bit & 1;
        self.train(bit);
        self.c0 = (self.c0 << 1) | bit;
        self.nibble = (self.nibble << 1) | bit as usize;
        self.bit_pos += 1;
        if self.bit_pos == 8 {
            self.end_byte((self.c0 & 255) as u8);
            self.select_slots();
        } else if self.bit_pos == 4 {
            self.select_slots();
        } else if self.bit_pos == 3 {
            // The next nibble's slots are one of two sets: fetch both while bit 4 is coded.
            for c0 in [self.c0 << 1, self.c0 << 1 | 1] {
                for i in 0..N_HASHED {
                    let (a, _) = self.slot_pair(i, hash2(self.context_hash[i], u64::from(c0)));
                    prefetch(&self.slots[a]);
                }
            }
        }
        self.predict();
    }

    fn train(&mut self, bit: u32) {
        let c0 = self.c0 as usize;
        train_cell(&mut self.order0[c0], bit, LIMIT_LOW);
        let prev = (self.c8 & 255) as usize;
        train_cell(&mut self.order1[prev << 8 | c0], bit, LIMIT_LOW);
        for i in 0..N_HASHED {
            let limit = if i < 2 { LIMIT_LOW } else { LIMIT_HIGH };
            train_cell(
                &mut self.slots[self.current_slot[i]].0[self.nibble],
                bit,
                limit,
            );
        }
        if let Some(c) = self.match_cell {
            train_cell(&mut self.match_cells[c], bit, LIMIT_LOW);
        }
        self.mixer_by_partial.train(&self.inputs, bit);
        self.mixer_by_previous.train(&self.inputs, bit);
        self.apm_order0.train(bit);
        self.apm_order1.train(bit);
    }

    fn end_byte(&mut self, byte: u8) {
        self.history.push(byte);
        self.c8 = (self.c8 << 8) | u64::from(byte);
        self.c0 = 1;
        self.bit_pos = 0;
        if byte.is_ascii_alphabetic() {
            self.word = hash2(self.word, u64::from(byte.to_ascii_lowercase()));
        } else if self.word != 0 {
            self.word = 0;
        }
        // Hash the next contexts first and start fetching their slots, then do the other
        // bookkeeping while the memory system works.
        self.hash_contexts();
        for i in 0..N_HASHED {
            let (a, _) = self.slot_pair(i, self.context_hash[i]);
            prefetch(&self.slots[a]);
        }
        self.update_match(byte);
        self.record.update(&self.history);
    }

    /// The byte `records` record lengths back, or 0 before the data starts.
    fn above(&self, back: usize) -> u64 {
        let pos = self.history.len();
        if back == 0 || back > pos {
            0
        } else {
            u64::from(self.history[pos - back])
        }
    }

    fn update_match(&mut self, byte: u8) {
        let pos = self.history.len();
        if self.match_ptr > 0 {
            // After a miss the pointer moves on anyway: tables and records often differ in one
            // byte and then continue as before (LZ's repeated offset).
            if self.history[self.match_ptr] == byte {
                self.match_len = (self.match_len + 1).min(65535);
            } else {
                self.match_len = 0;
            }
            self.match_ptr += 1;
        }
        if pos < MATCH_MIN {
            return;
        }
        let key = self.c8 & 0xFFFF_FFFF_FFFF;
        let slot = (hash2(key, 7) as usize) & self.match_mask;
        if self.match_len < MATCH_MIN {
            let candidate = self.match_table[slot] as usize;
            if candidate > 0 && candidate < pos {
                let mut len = 0;
                while len < MATCH_VERIFY
                    && len < candidate
                    && self.history[candidate - 1 - len] == self.history[pos - 1 - len]
                {
                    len += 1;
                }
                if len >= MATCH_MIN {
                    self.match_len = len;
                    self.match_ptr = candidate;
                }
            }
        }
        self.match_table[slot] = pos as u32;
    }

    /// Context hashes for the next byte.
    fn hash_contexts(&mut self) {
        let c8 = self.c8;
        let (r1, r2) = (self.record.len, self.record.second);
        let contexts = [
            c8 & 0xFFFF,
            c8 & 0xFF_FFFF,
            c8 & 0xFFFF_FFFF,
            c8 & 0xFFFF_FFFF_FFFF,
            hash2(self.word, c8 & 0xFF),
            c8 & 0xFF_FF00,
            hash2(
                self.above(r1) << 8 | self.above(2 * r1),
                (r1 as u64) << 16 | c8 & 0xFF,
            ),
            hash2(self.above(r1) << 8 | self.above(r2), (r1 << 16 | r2) as u64),
        ];
        for (i, &c) in contexts.iter().enumerate() {
            self.context_hash[i] = hash2(c, i as u64 + 1);
        }
    }

    /// The two slots (same 128-byte pair) where table `i` keeps the context hashed to `h`.
    #[inline]
    fn slot_pair(&self, i: usize, h: u64) -> (usize, usize) {
        let base = i * (self.slot_mask + 1);
        let a = base + ((h >> 40) as usize & self.slot_mask);
        (a, a ^ 1)
    }

    /// Finds (or claims) each hashed context's slot for the nibble about to be coded.
    fn select_slots(&mut self) {
        self.nibble = 1;
        for i in 0..N_HASHED {
            let h = if self.bit_pos == 0 {
                self.context_hash[i]
            } else {
                hash2(self.context_hash[i], u64::from(self.c0))
            };
            let check = (h as u32) | 1;
            let (a, b) = self.slot_pair(i, h);
            self.current_slot[i] = if self.slots[a].0[0] == check {
                a
            } else if self.slots[b].0[0] == check {
                b
            } else {
                // Replace the slot whose first cell has seen fewer bits.
                let victim = if self.slots[a].0[1] & COUNT_MASK <= self.slots[b].0[1] & COUNT_MASK {
                    a
                } else {
                    b
                };
                self.slots[victim] = EMPTY_SLOT;
                self.slots[victim].0[0] = check;
                victim
            };
        }
    }

    fn match_bucket(&self) -> usize {
        let len = self.match_len;
        if len < 16 {
            len
        } else if len < 32 {
            16 + (len - 16) / 2
        } else {
            (24 + (len - 32) / 16).min(MATCH_BUCKETS - 1)
        }
    }

    fn predict(&mut self) {
        let c0 = self.c0 as usize;
        let prev = (self.c8 & 255) as usize;
        let bucket = self.match_bucket();
        let x = &mut self.inputs;
        x[0] = stretch(cell_p12(self.order0[c0]));
        x[1] = stretch(cell_p12(self.order1[prev << 8 | c0]));
        for i in 0..N_HASHED {
            x[2 + i] = stretch(cell_p12(self.slots[self.current_slot[i]].0[self.nibble]));
        }
        self.match_cell = None;
        x[MATCH_INPUT] = 0;
        let mut match_state = 0;
        if self.match_ptr > 0 {
            let expected = u32::from(self.history[self.match_ptr]) | 256;
            if expected >> (8 - self.bit_pos) == self.c0 {
                let bit = ((expected >> (7 - self.bit_pos)) & 1) as usize;
                let cell = bucket * 2 + bit;
                self.match_cell = Some(cell);
                x[MATCH_INPUT] = stretch(cell_p12(self.match_cells[cell]));
                match_state = 1
                    + usize::from(self.match_len >= MATCH_MIN)
                    + usize::from(self.match_len >= 32);
            }
        }
        x[BIAS_INPUT] = 256;
        let s1 = self.mixer_by_partial.mix(x, c0);
        let s2 = self.mixer_by_previous.mix(x, prev << 2 | match_state);
        self.p12 = squash((s1 + s2) >> 1);
        let a0 = self.apm_order0.refine(self.p12, c0);
        let a1 = self.apm_order1.refine(self.p12, prev << 8 | c0);
        let p = ((self.p12 as u32) * 16 + a0 + 2 * a1 + 2) >> 2;
        self.p16 = p.clamp(32, 65504);
    }
}

/// Finds the record length of tabular data: the distance, among 4..=1024, at which bytes most
/// often repeat, counted on every 8th byte, re-chosen every 4096 bytes, counts halved every
/// 128 KiB. A distance is taken only when it stands clearly above the average, so text mostly
/// keeps none. The runner-up (not a neighbour of the best) gives a second, 2-D context: tables
/// often repeat at two periods (kppkn.gtb: 64 and 512).
struct RecordFinder {
    /// Hits per distance, reversed: `hits[k]` counts distance `RECORD_MAX - k`.
    hits: Vec<u16>,
    /// Current record length (0: none found), and the runner-up.
    len: usize,
    second: usize,
}

impl RecordFinder {
    fn new() -> Self {
        Self {
            hits: vec![0; RECORD_MAX],
            len: 0,
            second: 0,
        }
    }

    /// Notes the last byte of `history`.
    fn update(&mut self, history: &[u8]) {
        let pos = history.len();
        if !pos.is_multiple_of(RECORD_SAMPLE) || pos <= RECORD_MAX {
            return;
        }
        let byte = history[pos - 1];
        let window = &history[pos - 1 - RECORD_MAX..pos - 1];
        for (hit, &b) in self.hits.iter_mut().zip(window) {
            *hit += u16::from(b == byte);
        }
        if !pos.is_multiple_of(RECORD_DECIDE) {
            return;
        }
        let total: u64 = self.hits.iter().map(|&h| u64::from(h)).sum();
        // The two best distances, the second not a neighbour of the first.
        let mut best = (0u16, 0usize);
        for distance in RECORD_MIN..=RECORD_MAX {
            let h = self.hits[RECORD_MAX - distance];
            if h > best.0 {
                best = (h, distance);
            }
        }
        let mut second = (0u16, 0usize);
        for distance in RECORD_MIN..=RECORD_MAX {
            let h = self.hits[RECORD_MAX - distance];
            if h > second.0 && distance.abs_diff(best.1) > 1 {
                second = (h, distance);
            }
        }
        // Significant: above twice the mean hit count, and at least 1 in 8 samples.
        let mean = total / RECORD_MAX as u64;
        let samples = (RECORD_DECIDE / RECORD_SAMPLE) as u64;
        let significant = |h: u16| u64::from(h) > 2 * mean && u64::from(h) * 8 > samples;
        self.len = if significant(best.0) { best.1 } else { 0 };
        self.second = if significant(second.0) { second.1 } else { 0 };
        if pos.is_multiple_of(RECORD_DECAY) {
            for h in &mut self.hits {
                *h >>= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ideal code length of `data` under the model, in bits.
    fn cost_bits(data: &[u8], table_bits: u8) -> f64 {
        let mut cm = ContextMixingModel::new(table_bits);
        let mut bits = 0.0;
        for &b in data {
            for k in (0..8).rev() {
                let bit = u32::from(b >> k) & 1;
                let p1 = f64::from(cm.p1()) / 65536.0;
                bits -= if bit == 1 { p1 } else { 1.0 - p1 }.log2();
                cm.update(bit);
            }
        }
        bits
    }

    #[test]
    fn table_sizes() {
        assert_eq!(table_bits_for(0, 18), MIN_TABLE_BITS);
        assert_eq!(table_bits_for(5, 18), MIN_TABLE_BITS);
        assert_eq!(table_bits_for(256 * 1024, 18), 16);
        assert_eq!(table_bits_for(256 * 1024 + 1, 18), 17);
        assert_eq!(table_bits_for(1 << 30, 18), 18);
        assert_eq!(table_bits_for(1 << 30, 99), MAX_TABLE_BITS);
    }

    #[test]
    fn squash_and_stretch_agree() {
        for p in 1..4095u32 {
            let back = squash(stretch(p));
            assert!((back - p as i32).abs() <= 40, "p {p} → {back}");
        }
        assert_eq!(squash(0), 2048);
        assert!(squash(-2047) >= 1 && squash(2047) <= 4095);
    }

    #[test]
    fn learns_repetition_and_text() {
        let pattern: Vec<u8> = b"the quick brown fox jumps over the lazy dog. "
            .iter()
            .copied()
            .cycle()
            .take(20_000)
            .collect();
        let bpb = cost_bits(&pattern, 12) / pattern.len() as f64;
        assert!(bpb < 0.05, "repetitive text at {bpb} bits per byte");
    }

    #[test]
    fn random_bytes_cost_about_eight_bits() {
        let data = crate::seeded::Seeded::new(0x1234_5678_9abc_def0).bytes(20_000);
        let bpb = cost_bits(&data, 12) / data.len() as f64;
        assert!(bpb < 8.1, "random data at {bpb} bits per byte");
    }

    /// The model's probabilities are part of the format: any change to them shows here (and
    /// must come with a new byte-model identifier).
    #[test]
    fn probabilities_are_pinned() {
        let data = b"abracadabra, abracadabra!\x00\x01\x02 column\tvalue\n";
        let mut model = ContextMixingModel::new(10);
        let mut hasher = crc32fast::Hasher::new();
        for &byte in data.iter().cycle().take(3000) {
            for k in (0..8).rev() {
                hasher.update(&model.p1().to_le_bytes());
                model.update(u32::from(byte >> k) & 1);
            }
        }
        let got = hasher.finalize();
        assert_eq!(got, 0x25b8_8e03, "{got:#010x}");
    }
}
