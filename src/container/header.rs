//! The archive header: magic, version, flags, original size, model identity, numerics
//! fingerprint and every parameter the decoder needs. Layout in `formats/NZIP.md`.

use super::reader::Reader;
use crate::chunk::Schedule;
use crate::error::{Error, Result};

pub const MAGIC: [u8; 8] = *b"\x89NZIP\r\n\x1a";
pub const VERSION: u16 = 1;

/// Flag bit: the archive holds LLM-coded chunks, so a model section follows.
pub const FLAG_LLM: u16 = 1 << 0;
const KNOWN_FLAGS: u16 = FLAG_LLM;

/// Byte model used for raw segments (version 1: order-0/1/2 count blend).
pub const BYTE_MODEL_ORDER2_V1: u8 = 1;

/// Which model and numerics the LLM-coded chunks need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSection {
    pub name: String,
    pub size: u64,
    pub sha256: [u8; 32],
    /// Backend, ISA target and llama.cpp version that computed the logits.
    pub numerics: String,
    pub n_vocab: u32,
    pub schedule: Schedule,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub original_size: u64,
    /// Target chunk size the planner used (informational; cuts are in the index).
    pub chunk_target: u64,
    pub byte_model: u8,
    pub model: Option<ModelSection>,
}

impl Header {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(256);
        b.extend(MAGIC);
        b.extend(VERSION.to_le_bytes());
        let flags = if self.model.is_some() { FLAG_LLM } else { 0 };
        b.extend(flags.to_le_bytes());
        b.extend(0u32.to_le_bytes()); // header size, patched below
        b.extend(self.original_size.to_le_bytes());
        b.extend(self.chunk_target.to_le_bytes());
        b.push(self.byte_model);
        if let Some(m) = &self.model {
            put_str(&mut b, &m.name);
            b.extend(m.size.to_le_bytes());
            b.extend(m.sha256);
            put_str(&mut b, &m.numerics);
            b.extend(m.n_vocab.to_le_bytes());
            let s = &m.schedule;
            for v in [s.window, s.slide, s.sinks, s.seqs, s.start_token] {
                b.extend(v.to_le_bytes());
            }
        }
        let size = (b.len() + 4) as u32;
        b[12..16].copy_from_slice(&size.to_le_bytes());
        let crc = crc32fast::hash(&b);
        b.extend(crc.to_le_bytes());
        b
    }

    /// Parses and checks a header from the start of `data`; returns it and its size.
    pub fn parse(data: &[u8]) -> Result<(Header, usize)> {
        if data.len() < MAGIC.len() || data[..MAGIC.len()] != MAGIC {
            if MAGIC.starts_with(data) {
                return Err(Error::Truncated("file ends inside the magic number".into()));
            }
            return Err(Error::NotNzip);
        }
        let mut r = Reader::new(data, "header");
        r.skip(MAGIC.len())?;
        let version = r.u16()?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let flags = r.u16()?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Error::ReservedBits {
                field: "header flags",
                value: u64::from(flags),
            });
        }
        let size = r.u32()? as usize;
        if size < 16 + 4 || size > data.len() {
            return if size > data.len() {
                Err(Error::Truncated(format!(
                    "header of {size} bytes, file has {}",
                    data.len()
                )))
            } else {
                Err(Error::Corrupt(format!("header size {size} too small")))
            };
        }
        let stored = u32::from_le_bytes(data[size - 4..size].try_into().expect("4 bytes"));
        let computed = crc32fast::hash(&data[..size - 4]);
        if stored != computed {
            return Err(Error::CrcMismatch {
                what: "header".into(),
                stored,
                computed,
            });
        }
        let mut r = Reader::new(&data[..size - 4], "header");
        r.skip(16)?;
        let original_size = r.u64()?;
        let chunk_target = r.u64()?;
        let byte_model = r.u8()?;
        if byte_model != BYTE_MODEL_ORDER2_V1 {
            return Err(Error::Corrupt(format!("unknown byte model {byte_model}")));
        }
        let model = if flags & FLAG_LLM != 0 {
            let name = r.str()?;
            let size = r.u64()?;
            let sha256 = r.array::<32>()?;
            let numerics = r.str()?;
            let n_vocab = r.u32()?;
            let schedule = Schedule {
                window: r.u32()?,
                slide: r.u32()?,
                sinks: r.u32()?,
                seqs: r.u32()?,
                start_token: r.u32()?,
            };
            schedule.validate(Some(n_vocab as usize))?;
            Some(ModelSection {
                name,
                size,
                sha256,
                numerics,
                n_vocab,
                schedule,
            })
        } else {
            None
        };
        if !r.is_empty() {
            return Err(Error::Corrupt(
                "unexpected bytes at the end of the header".into(),
            ));
        }
        Ok((
            Header {
                original_size,
                chunk_target,
                byte_model,
                model,
            },
            size,
        ))
    }
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    b.extend((bytes.len() as u16).to_le_bytes());
    b.extend(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> Header {
        Header {
            original_size: 12345,
            chunk_target: 16384,
            byte_model: BYTE_MODEL_ORDER2_V1,
            model: Some(ModelSection {
                name: "smollm2-135m-instruct-q4_1".into(),
                size: 98_362_432,
                sha256: [7; 32],
                numerics: "CPU; x86_64 AVX2; llama-cpp-sys-2 0.1.161".into(),
                n_vocab: 49152,
                schedule: Schedule {
                    window: 1024,
                    slide: 256,
                    sinks: 4,
                    seqs: 16,
                    start_token: 0,
                },
            }),
        }
    }

    #[test]
    fn round_trip() {
        for h in [
            sample(),
            Header {
                model: None,
                ..sample()
            },
        ] {
            let b = h.to_bytes();
            assert_eq!(Header::parse(&b).unwrap(), (h, b.len()));
        }
    }

    #[test]
    fn rejects_damage() {
        let b = sample().to_bytes();
        assert!(matches!(
            Header::parse(b"PK\x03\x04 not ours"),
            Err(Error::NotNzip)
        ));
        assert!(matches!(Header::parse(&b[..5]), Err(Error::Truncated(_))));
        assert!(matches!(Header::parse(&b[..40]), Err(Error::Truncated(_))));
        let mut v = b.clone();
        v[8] = 9;
        assert!(matches!(
            Header::parse(&v),
            Err(Error::UnsupportedVersion { found: 9, .. })
        ));
        let mut f = b.clone();
        f[10] |= 0x80;
        assert!(matches!(Header::parse(&f), Err(Error::ReservedBits { .. })));
        for i in 16..b.len() {
            let mut x = b.clone();
            x[i] ^= 0x10;
            assert!(Header::parse(&x).is_err(), "flip at byte {i} undetected");
        }
    }
}
