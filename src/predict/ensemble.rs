//! The token ensemble: cheap online models over a chunk's own token history — a match model
//! (the token that followed the last occurrence of the current context) and token n-grams of
//! orders 1–3 (the chunk's own phrases) — mixed with the LLM's distribution by weights learned
//! as the chunk goes, one weight set per match-length bucket and set of components that can
//! predict; from token model id 2 on, the LLM's logits first get a per-token bias learned by
//! gradient descent on each token's code length (the document's own vocabulary and the
//! model's systematic errors on it).
//!
//! Everything between logits and the CDF is integer or plain IEEE `f32`/`f64` arithmetic (+, −,
//! ×, ÷, casts) in a fixed order, so encoder and decoder compute the same bits on every machine
//! (DESIGN.md's determinism rules); each id's constants are part of the format.

use std::collections::HashMap;

use crate::container::TokenModelKind;
use crate::entropy::quantize::{
    scale_weights, softmax_weights, subtract_scaled_weights, weights_to_cdf_with, Quantizer,
};

/// The ensemble's design for a recorded token model, `None` for the bare softmax.
fn design(kind: TokenModelKind) -> Option<Design> {
    match kind {
        TokenModelKind::Bare => None,
        TokenModelKind::Ensemble => Some(ENSEMBLE),
        TokenModelKind::BiasedEnsemble => Some(BIASED_ENSEMBLE),
    }
}

/// Tokens of context that start a match, and the longest match length counted.
const MATCH_MIN: usize = 2;
const MATCH_MAX: u32 = 32;
/// The most n-gram orders (contexts of 1, 2 and 3 previous tokens), and so the most
/// components: the LLM, the match model, one n-gram model per order. Orders 4–6 were measured
/// with the bias on alice29.txt's first 40 KB: 0.01% fewer bits, not worth their tables.
pub const MAX_ORDERS: usize = 3;
const COMPONENTS: usize = 2 + MAX_ORDERS;
/// Mixer weight sets: one per match-length bucket (none, 2–7, 8–15, 16+) and set of
/// components that can predict (bit k for component k + 1). Selecting them by the LLM's top
/// probability as well (2, 4 or 8 buckets) was measured: 0.01% more bits.
const MATCH_BUCKETS: usize = 4;
const MIXERS: usize = MATCH_BUCKETS << (COMPONENTS - 1);
const MIN_WEIGHT: f64 = 1e-4;
/// Bounds of the switch's belief in the mixture, so either side can win back.
const MIN_BELIEF: f64 = 1e-6;
/// Fixed-point scale of the mixed weights (their sum stays below 2^58, as the CDF builder
/// requires, for any vocabulary up to 2^23 symbols).
const MIXED_SCALE: f64 = (1u64 << 50) as f64;

/// The parts and learning rates of a token ensemble. An archive names its design by
/// [`TokenModelKind`] id, so a kind's design is part of the format; other designs exist only
/// to be measured (`examples/ensemble_lab.rs`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Design {
    /// N-gram contexts of 1 to `orders` previous tokens (0: none).
    pub orders: usize,
    /// Whether the match model takes part.
    pub matches: bool,
    /// Learning rate of the mixer's online EM step. Measured offline on alice29.txt for id 1:
    /// rates 0.01–0.02 best, 0.005 and 0.05 slightly worse.
    pub mix_rate: f64,
    /// Learning rate of the per-token bias added to the LLM's logits (0: none).
    pub bias_rate: f64,
}

/// Token model id 1.
const ENSEMBLE: Design = Design {
    orders: 3,
    matches: true,
    mix_rate: 0.02,
    bias_rate: 0.0,
};

/// Token model id 2: id 1 with the bias. Measured on alice29.txt's first 40 KB (bits of
/// the ideal code, against id 1): rate 0.003 −0.5%, 0.01 −1.1%, 0.03 −1.8%, 0.1 −2.6%,
/// 0.15 and 0.2 −2.7%, 0.3 −2.6%, 0.5 −1.9%, 1 +0.4%. Momentum 0.5 or 0.9 only rescales the
/// rate; per-token Adagrad rates did worse (−1.5% at best); extra bias rows chosen by a hash
/// of the previous token gained 0.15% with 1,024 rows (200 MB per chunk), nothing with 16.
const BIASED_ENSEMBLE: Design = Design {
    bias_rate: 0.15,
    ..ENSEMBLE
};

impl std::str::FromStr for Design {
    type Err = String;

    /// `orders=2,matches=0,mix=0.02,bias=0.1`; fields not named keep id 2's values.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut d = BIASED_ENSEMBLE;
        for field in s.split(',').filter(|f| !f.is_empty()) {
            let (name, value) = field
                .split_once('=')
                .ok_or_else(|| format!("{field}: expected NAME=VALUE"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{field}: {e}");
            match name {
                "orders" => d.orders = value.parse().map_err(|e| bad(&e))?,
                "matches" => d.matches = value.parse::<u8>().map_err(|e| bad(&e))? != 0,
                "mix" => d.mix_rate = value.parse().map_err(|e| bad(&e))?,
                "bias" => d.bias_rate = value.parse().map_err(|e| bad(&e))?,
                _ => return Err(format!("{name}: unknown design field")),
            }
        }
        if d.orders > MAX_ORDERS {
            return Err(format!("{s}: at most {MAX_ORDERS} orders"));
        }
        Ok(d)
    }
}

/// Tokens seen after one context, in order of first appearance, and their total.
#[derive(Default)]
struct Followers {
    counts: Vec<(u32, u32)>,
    total: u32,
}

impl Followers {
    fn count(&self, token: u32) -> u32 {
        self.counts
            .iter()
            .find(|&&(t, _)| t == token)
            .map_or(0, |&(_, c)| c)
    }

    fn add(&mut self, token: u32) {
        match self.counts.iter_mut().find(|(t, _)| *t == token) {
            Some((_, c)) => *c += 1,
            None => self.counts.push((token, 1)),
        }
        self.total += 1;
    }
}

pub struct TokenModel {
    /// The softmax alone (token model 0): the design is unused.
    bare: bool,
    design: Design,
    quantizer: Quantizer,
    /// The LLM's fixed-point weights for the current step, their sum, and the mixed weights.
    llm: Vec<u64>,
    llm_sum: u64,
    mixed: Vec<u64>,
    /// The learned per-token bias of the LLM's logits.
    bias: Vec<f32>,
    history: Vec<u32>,
    /// The position after the last occurrence of each pair of tokens.
    match_table: HashMap<u64, u32>,
    /// Index in `history` of the token the match predicts, and the match's length (0: none).
    match_at: usize,
    match_len: u32,
    /// Followers of each context of 1 to `orders` tokens (see [`context_key`]).
    ngrams: HashMap<u128, Followers>,
    weights: Vec<[f64; COMPONENTS]>,
    /// The switch: the posterior belief that the mixture predicts better than the LLM alone
    /// (a Bayesian mixture of the two, updated by each token's probability under each). It
    /// bounds what the ensemble can lose against the bare LLM to about one bit per chunk,
    /// which matters on short inputs, where the mixer has not learned yet (measured offline
    /// on the start of alice29.txt: +0.34% without it after 500 tokens, +0.04% with it).
    belief: f64,
    /// This step's mixer, the match's prediction and each order's context key.
    mixer: usize,
    predicted: Option<u32>,
    contexts: [Option<u128>; MAX_ORDERS],
}

impl TokenModel {
    pub fn new(kind: TokenModelKind) -> Self {
        match design(kind) {
            Some(design) => Self::with_design(design),
            None => Self {
                bare: true,
                weights: Vec::new(),
                ..Self::with_design(ENSEMBLE)
            },
        }
    }

    /// An ensemble of any design; archives only ever use those of a [`TokenModelKind`].
    pub fn with_design(design: Design) -> Self {
        let mut initial = [0.1 / (COMPONENTS - 1) as f64; COMPONENTS];
        initial[0] = 0.9;
        Self {
            bare: false,
            design,
            quantizer: Quantizer::new(),
            llm: Vec::new(),
            llm_sum: 0,
            mixed: Vec::new(),
            bias: Vec::new(),
            history: Vec::new(),
            match_table: HashMap::new(),
            match_at: 0,
            match_len: 0,
            ngrams: HashMap::new(),
            weights: vec![initial; MIXERS],
            belief: 0.5,
            mixer: 0,
            predicted: None,
            contexts: [None; MAX_ORDERS],
        }
    }

    /// The CDF for the next token from the LLM's `logits`.
    pub fn predict(&mut self, logits: &[f32], cdf: &mut Vec<u32>) {
        if self.bare {
            self.quantizer.logits_to_cdf(logits, cdf);
            return;
        }
        let n = logits.len();
        let bias = (self.design.bias_rate > 0.0).then(|| {
            self.bias.resize(n, 0.0);
            &self.bias[..]
        });
        self.llm_sum = softmax_weights(logits, bias, &mut self.llm);
        self.predicted = (self.design.matches && self.match_len > 0)
            .then(|| self.history[self.match_at])
            .filter(|&t| (t as usize) < n);
        let h = self.history.len();
        for order in 1..=self.design.orders {
            self.contexts[order - 1] = (h >= order)
                .then(|| context_key(&self.history[h - order..]))
                .filter(|k| self.ngrams.contains_key(k));
        }
        let mut active = 0usize;
        if self.predicted.is_some() {
            active |= 1;
        }
        for (k, c) in self.contexts.iter().enumerate() {
            if c.is_some() {
                active |= 2 << k;
            }
        }
        let bucket = match (self.predicted, self.match_len) {
            (None, _) => 0,
            (_, 0..8) => 1,
            (_, 8..16) => 2,
            _ => 3,
        };
        self.mixer = bucket << (COMPONENTS - 1) | active;
        // The switch folds the bare LLM into the mixture's LLM weight.
        let mut w = self.active_weights().map(|x| x * self.belief);
        w[0] += 1.0 - self.belief;
        // Each product is at most w[0] * MIXED_SCALE <= 2^50, within scale_weights' bound.
        let llm_factor = w[0] * MIXED_SCALE / self.llm_sum.max(1) as f64;
        let mut totals = scale_weights(&self.llm, llm_factor, &mut self.mixed);
        let mut raise = |mixed: &mut [u64], t: usize, add: u64| {
            mixed[t] += add;
            totals.raised(t, add, mixed[t]);
        };
        if let Some(t) = self.predicted {
            raise(&mut self.mixed, t as usize, (w[1] * MIXED_SCALE) as u64);
        }
        for (k, key) in self.contexts.iter().enumerate() {
            let Some(f) = key.and_then(|key| self.ngrams.get(&key)) else {
                continue;
            };
            let factor = w[2 + k] * MIXED_SCALE / f64::from(f.total);
            for &(t, c) in &f.counts {
                if (t as usize) < n {
                    raise(&mut self.mixed, t as usize, (f64::from(c) * factor) as u64);
                }
            }
        }
        weights_to_cdf_with(&self.mixed, totals, cdf);
    }

    /// This step's mixer weights over the components that can predict now, summing to 1.
    fn active_weights(&self) -> [f64; COMPONENTS] {
        let mut w = self.weights[self.mixer];
        let mut sum = w[0];
        for (k, x) in w.iter_mut().enumerate().skip(1) {
            if self.mixer & (1 << (k - 1)) == 0 {
                *x = 0.0;
            }
            sum += *x;
        }
        w.map(|x| x / sum)
    }

    /// Learns from the token that was coded after the last [`TokenModel::predict`].
    pub fn update(&mut self, token: u32) {
        if self.bare {
            return;
        }
        // The mixer: an online EM step towards the components that gave the token more
        // probability than the mixture did.
        let mut p = [0.0; COMPONENTS];
        p[0] = self.llm.get(token as usize).map_or(0.0, |&x| x as f64) / self.llm_sum.max(1) as f64;
        p[1] = f64::from(u8::from(self.predicted == Some(token)));
        for (k, key) in self.contexts.iter().enumerate() {
            if let Some(f) = key.and_then(|key| self.ngrams.get(&key)) {
                p[2 + k] = f64::from(f.count(token)) / f64::from(f.total);
            }
        }
        let active = self.active_weights();
        let mut mix = 0.0;
        for k in 0..COMPONENTS {
            mix += active[k] * p[k];
        }
        let (for_mix, for_llm) = (self.belief * mix, (1.0 - self.belief) * p[0]);
        if for_mix + for_llm > 0.0 {
            self.belief = (for_mix / (for_mix + for_llm)).clamp(MIN_BELIEF, 1.0 - MIN_BELIEF);
        }
        if mix > 0.0 {
            let w = &mut self.weights[self.mixer];
            let mut sum = 0.0;
            for k in 0..COMPONENTS {
                if active[k] > 0.0 {
                    let target = active[k] * p[k] / mix;
                    w[k] = active[k] + self.design.mix_rate * (target - active[k]);
                    if w[k] < MIN_WEIGHT {
                        w[k] = MIN_WEIGHT;
                    }
                    sum += w[k];
                }
            }
            // Inactive components keep their weights for when they can predict again.
            let inactive: f64 = (0..COMPONENTS)
                .filter(|&k| active[k] == 0.0)
                .map(|k| w[k])
                .sum();
            for k in 0..COMPONENTS {
                if active[k] > 0.0 {
                    w[k] = w[k] / sum * (1.0 - inactive);
                }
            }
        }
        // The bias: a step down the gradient of the token's code length under the biased
        // softmax, which is its probability minus one for the token and the probability
        // for every other.
        if self.design.bias_rate > 0.0 {
            let step = self.design.bias_rate / self.llm_sum.max(1) as f64;
            subtract_scaled_weights(&mut self.bias, &self.llm, step);
            if let Some(b) = self.bias.get_mut(token as usize) {
                *b += self.design.bias_rate as f32;
            }
        }
        // The n-grams, then the match model: extend the match, or look for one ending here.
        let h = self.history.len();
        for order in 1..=self.design.orders.min(h) {
            self.ngrams
                .entry(context_key(&self.history[h - order..]))
                .or_default()
                .add(token);
        }
        if self.match_len > 0 && self.history[self.match_at] == token {
            self.match_len = (self.match_len + 1).min(MATCH_MAX);
            self.match_at += 1;
        } else {
            self.match_len = 0;
        }
        self.history.push(token);
        let h = self.history.len();
        if h >= MATCH_MIN {
            let key = pair_key(&self.history[h - MATCH_MIN..]);
            if self.match_len == 0 {
                if let Some(&candidate) = self.match_table.get(&key) {
                    let candidate = candidate as usize;
                    let len = (1..=candidate.min(MATCH_MAX as usize))
                        .take_while(|&k| self.history[candidate - k] == self.history[h - k])
                        .count();
                    if len >= MATCH_MIN {
                        self.match_len = len as u32;
                        self.match_at = candidate;
                    }
                }
            }
            self.match_table.insert(key, h as u32);
        }
    }
}

/// Exact key of a context of 1 to 3 tokens (its length in the top bits).
fn context_key(context: &[u32]) -> u128 {
    context
        .iter()
        .fold(context.len() as u128, |k, &t| k << 32 | u128::from(t))
}

fn pair_key(pair: &[u32]) -> u64 {
    u64::from(pair[0]) << 32 | u64::from(pair[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cost in bits of coding `tokens` under flat logits with the ensemble.
    fn cost(kind: TokenModelKind, tokens: &[u32]) -> f64 {
        let logits = vec![0.0f32; 64];
        let mut m = TokenModel::new(kind);
        let mut cdf = Vec::new();
        let mut bits = 0.0;
        for &t in tokens {
            m.predict(&logits, &mut cdf);
            let f = cdf[t as usize + 1] - cdf[t as usize];
            bits += 24.0 - f64::from(f).log2();
            m.update(t);
        }
        bits
    }

    #[test]
    fn repeats_get_cheap_and_bare_is_the_softmax() {
        let phrase: Vec<u32> = (0..20).map(|i| (i * 7 % 64) as u32).collect();
        let tokens: Vec<u32> = phrase.iter().cycle().take(400).copied().collect();
        let bare = cost(TokenModelKind::Bare, &tokens);
        assert!((bare - 400.0 * 6.0).abs() < 1.0, "bare: {bare}");
        let mixed = cost(TokenModelKind::Ensemble, &tokens);
        assert!(mixed < bare / 4.0, "ensemble {mixed} vs bare {bare}");
    }

    /// Tokens drawn with a skewed frequency and no order the n-grams could use: only the bias
    /// can learn that some tokens are common.
    #[test]
    fn bias_learns_the_document_vocabulary() {
        let mut state = 12345u32;
        let tokens: Vec<u32> = (0..2000)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let r = state >> 16 & 0xff;
                if r < 192 {
                    r % 4
                } else {
                    4 + r % 60
                }
            })
            .collect();
        let plain = cost(TokenModelKind::Ensemble, &tokens);
        let biased = cost(TokenModelKind::BiasedEnsemble, &tokens);
        assert!(biased < plain * 0.92, "biased {biased} vs plain {plain}");
    }

    #[test]
    fn designs_parse_and_bad_ones_are_refused() {
        let d: Design = "orders=2,matches=0,bias=0".parse().unwrap();
        assert_eq!((d.orders, d.matches, d.bias_rate), (2, false, 0.0));
        assert_eq!("".parse::<Design>(), Ok(BIASED_ENSEMBLE));
        assert!("orders=4".parse::<Design>().is_err());
        assert!("speed=1".parse::<Design>().is_err());
        assert!("bias".parse::<Design>().is_err());
    }

    /// CRC32 of every CDF each token model gives over 80 steps of a vocabulary that spans
    /// three parts, with shaped logits (NaN and -inf among them) and repeating tokens, so the
    /// bias, the n-grams and the match model all act. The value pins the format: any change to
    /// the arithmetic between logits and CDF (a faster loop included) must leave it alone.
    #[test]
    fn cdfs_are_pinned() {
        let n = 70_001;
        let mut seeded = crate::seeded::Seeded::new(0x5eed_1234);
        let mut next = move || seeded.bits(31) as u32;
        let phrase: Vec<u32> = (0..13).map(|_| next() % n as u32).collect();
        let steps: Vec<(u32, Vec<f32>)> = (0..80)
            .map(|i| {
                let token = if i % 3 == 0 {
                    next() % n as u32
                } else {
                    phrase[i % 13]
                };
                let mut logits: Vec<f32> = (0..n)
                    .map(|_| (next() % 4000) as f32 / 100.0 - 30.0)
                    .collect();
                logits[token as usize] += 8.0;
                logits[(next() as usize) % n] = f32::NAN;
                logits[(next() as usize) % n] = f32::NEG_INFINITY;
                (token, logits)
            })
            .collect();
        let crc = |kind| {
            let mut m = TokenModel::new(kind);
            let mut hasher = crc32fast::Hasher::new();
            let mut cdf = Vec::new();
            for (token, logits) in &steps {
                m.predict(logits, &mut cdf);
                for c in &cdf {
                    hasher.update(&c.to_le_bytes());
                }
                m.update(*token);
            }
            hasher.finalize()
        };
        let got = [
            crc(TokenModelKind::Bare),
            crc(TokenModelKind::Ensemble),
            crc(TokenModelKind::BiasedEnsemble),
        ];
        assert_eq!(got, [0x4fa9_cdc9, 0xa62d_11f4, 0x70ed_375d], "{got:#010x?}");
    }
}
