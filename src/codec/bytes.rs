//! The raw-byte model of one chunk, as the archive header names it, and how its bytes go
//! through the chunk's range-coder stream.
//!
//! Format version 2 codes each raw byte as eight binary decisions under the context-mixing
//! model; it sees only the chunk's raw bytes, so its tables are sized by their count. Version 1
//! coded whole bytes under the order-2 count blend, which also followed the text bytes'
//! context; it is kept so that version-1 archives still decode.

use crate::container::ByteModelKind;
use crate::entropy::quantize::weights_to_cdf;
use crate::entropy::range::{SymbolDecoder, SymbolEncoder};
use crate::error::Result;
use crate::predict::cm::{self, ContextMixingModel};
use crate::predict::order2::Order2Model;

/// -log2(p / 4096) for p = 0..=4096 (p = 0 priced as p = 1): the cost of a coded bit, to
/// 12 bits of its probability.
fn bit_costs() -> &'static [f32; 4097] {
    static TABLE: std::sync::OnceLock<[f32; 4097]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0f32; 4097];
        for (p, c) in t.iter_mut().enumerate() {
            *c = (12.0 - (p.max(1) as f64).log2()) as f32;
        }
        t
    })
}

pub enum ByteModel {
    Order2 {
        model: Order2Model,
        cdf: Vec<u32>,
    },
    ContextMixing(Box<ContextMixingModel>),
    /// A chunk without raw bytes needs no model.
    Unused,
}

impl ByteModel {
    /// The model for a chunk with `raw_bytes` raw bytes.
    pub fn new(kind: ByteModelKind, raw_bytes: u64) -> Self {
        match kind {
            _ if raw_bytes == 0 => ByteModel::Unused,
            ByteModelKind::Order2 => ByteModel::Order2 {
                model: Order2Model::new(),
                cdf: Vec::new(),
            },
            ByteModelKind::ContextMixing { max_table_bits } => ByteModel::ContextMixing(Box::new(
                ContextMixingModel::new(cm::table_bits_for(raw_bytes, max_table_bits)),
            )),
        }
    }

    /// Codes `byte`; returns its approximate cost in bits, for the encoder's choices only (0 for
    /// the version-1 model, which the encoder no longer uses).
    pub fn encode(&mut self, byte: u8, coder: &mut SymbolEncoder) -> Result<f64> {
        let mut cost = 0.0;
        match self {
            ByteModel::Order2 { model, cdf } => {
                weights_to_cdf(model.predict(), cdf);
                coder.encode(usize::from(byte), cdf)?;
                model.update(byte);
            }
            ByteModel::ContextMixing(cm) => {
                let costs = bit_costs();
                for k in (0..8).rev() {
                    let bit = u32::from(byte >> k) & 1;
                    let p1 = cm.p1();
                    let p = if bit == 1 { p1 } else { 65536 - p1 };
                    cost += f64::from(costs[(p >> 4) as usize]);
                    coder.encode_bit(bit, p1)?;
                    cm.update(bit);
                }
            }
            ByteModel::Unused => {
                return Err(crate::Error::Internal(
                    "raw byte in a chunk without any".into(),
                ))
            }
        }
        Ok(cost)
    }

    pub fn decode(&mut self, coder: &mut SymbolDecoder, chunk: usize) -> Result<u8> {
        match self {
            ByteModel::Order2 { model, cdf } => {
                weights_to_cdf(model.predict(), cdf);
                let b = coder.decode(cdf, chunk)? as u8;
                model.update(b);
                Ok(b)
            }
            ByteModel::ContextMixing(cm) => {
                let mut byte = 0u32;
                for _ in 0..8 {
                    let bit = coder.decode_bit(cm.p1(), chunk)?;
                    cm.update(bit);
                    byte = (byte << 1) | bit;
                }
                Ok(byte as u8)
            }
            ByteModel::Unused => Err(crate::Error::malformed(format!(
                "chunk {chunk}: raw bytes beyond the index's count"
            ))),
        }
    }

    /// A text byte went by (coded by the LLM): only the version-1 model follows it.
    pub fn observe_text(&mut self, byte: u8) {
        if let ByteModel::Order2 { model, .. } = self {
            model.observe(byte);
        }
    }
}
