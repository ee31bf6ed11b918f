//! The archive header: magic, version, flags, original size, model identity, numerics
//! fingerprint and every parameter the decoder needs. Layout in `formats/NZIP.md`.

use super::reader::Reader;
use super::schedule::Schedule;
use crate::error::{Error, FormatError, Result};

pub const MAGIC: [u8; 8] = *b"\x89NZIP\r\n\x1a";
/// The version this nzip writes, and the oldest it still reads.
pub const VERSION: u16 = 3;
pub const OLDEST_VERSION: u16 = 1;
/// The first version whose payloads carry frame headers (and may leave the size open).
pub const FRAMED_VERSION: u16 = 3;
/// Headers are small (the model section is the bulk); a larger size field is damage.
const MAX_HEADER_SIZE: usize = 1 << 16;
/// Largest vocabulary an archive may name: a CDF of precision 24 must give each symbol at
/// least 1 of its 2^24 units, and the CDF builder takes at most 2^23 symbols.
const MAX_VOCAB: u32 = 1 << 23;

/// Flag bit: the archive holds LLM-coded chunks, so a model section follows.
pub const FLAG_LLM: u16 = 1 << 0;
/// Flag bit (version 3): the input was streamed and its size was not known when the header
/// was written; the size field is 0 and the index's chunk lengths give the size.
pub const FLAG_SIZE_UNKNOWN: u16 = 1 << 1;

fn known_flags(version: u16) -> u16 {
    if version >= FRAMED_VERSION {
        FLAG_LLM | FLAG_SIZE_UNKNOWN
    } else {
        FLAG_LLM
    }
}

/// Byte-model identifiers as stored in the header.
const BYTE_MODEL_ORDER2: u8 = 1;
const BYTE_MODEL_CM: u8 = 2;
/// The context-mixing byte model's hash tables: 2^MIN_TABLE_BITS ..= 2^MAX_TABLE_BITS slots.
pub const MIN_TABLE_BITS: u8 = 10;
pub const MAX_TABLE_BITS: u8 = 20;

/// The model that codes raw bytes (everything the LLM does not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteModelKind {
    /// Format version 1: order-0/1/2 count blend over 256 symbols, interleaved with tokens.
    Order2,
    /// Format version 2: bitwise context mixing (`predict::cm`); hashed tables of up to
    /// 2^max_table_bits slots (fewer for chunks with fewer raw bytes).
    ContextMixing { max_table_bits: u8 },
}

impl ByteModelKind {
    pub fn id(self) -> u8 {
        match self {
            ByteModelKind::Order2 => BYTE_MODEL_ORDER2,
            ByteModelKind::ContextMixing { .. } => BYTE_MODEL_CM,
        }
    }
}

impl std::fmt::Display for ByteModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ByteModelKind::Order2 => write!(f, "order-2 counts (id 1)"),
            ByteModelKind::ContextMixing { max_table_bits } => {
                write!(
                    f,
                    "context mixing (id 2), tables up to 2^{max_table_bits} slots"
                )
            }
        }
    }
}

/// Token-model identifiers as stored in the model section (version 3 on).
const TOKEN_MODEL_BARE: u8 = 0;
const TOKEN_MODEL_ENSEMBLE: u8 = 1;
const TOKEN_MODEL_BIASED_ENSEMBLE: u8 = 2;

/// How the LLM's logits become the coder's CDF (`predict::ensemble` builds it); recorded in
/// the archive's model section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenModelKind {
    /// The LLM's softmax alone (format versions 1 and 2, and id 0).
    Bare,
    /// The LLM mixed with the match model and token n-grams (id 1, nzip 0.3).
    Ensemble,
    /// As id 1, with the learned per-token bias on the LLM's logits (id 2).
    BiasedEnsemble,
}

impl TokenModelKind {
    pub fn id(self) -> u8 {
        match self {
            TokenModelKind::Bare => TOKEN_MODEL_BARE,
            TokenModelKind::Ensemble => TOKEN_MODEL_ENSEMBLE,
            TokenModelKind::BiasedEnsemble => TOKEN_MODEL_BIASED_ENSEMBLE,
        }
    }

    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            TOKEN_MODEL_BARE => Some(TokenModelKind::Bare),
            TOKEN_MODEL_ENSEMBLE => Some(TokenModelKind::Ensemble),
            TOKEN_MODEL_BIASED_ENSEMBLE => Some(TokenModelKind::BiasedEnsemble),
            _ => None,
        }
    }
}

impl std::fmt::Display for TokenModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenModelKind::Bare => write!(f, "LLM softmax alone (id 0)"),
            TokenModelKind::Ensemble => {
                write!(f, "LLM + match model + token n-grams 1-3, mixed (id 1)")
            }
            TokenModelKind::BiasedEnsemble => write!(
                f,
                "LLM with a learned per-token bias + match model + token n-grams 1-3, mixed (id 2)"
            ),
        }
    }
}

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
    /// How logits become CDFs (version 3 on; [`TokenModelKind::Bare`] before).
    pub token_model: TokenModelKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version: [`VERSION`] when writing; what the file says when read.
    pub version: u16,
    /// `None` when the input was streamed (flag bit 1): the index gives the size.
    pub original_size: Option<u64>,
    /// Target chunk size the planner used (informational; cuts are in the index).
    pub chunk_target: u64,
    pub byte_model: ByteModelKind,
    pub model: Option<ModelSection>,
}

impl Header {
    /// Version 3 on: every payload follows its frame header.
    pub fn framed(&self) -> bool {
        self.version >= FRAMED_VERSION
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(256);
        b.extend(MAGIC);
        b.extend(self.version.to_le_bytes());
        let mut flags = if self.model.is_some() { FLAG_LLM } else { 0 };
        if self.original_size.is_none() {
            flags |= FLAG_SIZE_UNKNOWN;
        }
        b.extend(flags.to_le_bytes());
        b.extend(0u32.to_le_bytes()); // header size, patched below
        b.extend(self.original_size.unwrap_or(0).to_le_bytes());
        b.extend(self.chunk_target.to_le_bytes());
        b.push(self.byte_model.id());
        if let ByteModelKind::ContextMixing { max_table_bits } = self.byte_model {
            b.push(max_table_bits);
        }
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
            if self.version >= FRAMED_VERSION {
                b.push(m.token_model.id());
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
                return Err(Error::truncated("file ends inside the magic number"));
            }
            return Err(Error::Format(FormatError::BadMagic));
        }
        let mut r = Reader::new(data, "header");
        r.skip(MAGIC.len())?;
        let version = r.u16()?;
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(Error::Format(FormatError::UnsupportedVersion {
                found: version,
                oldest: OLDEST_VERSION,
                newest: VERSION,
            }));
        }
        let flags = r.u16()?;
        if flags & !known_flags(version) != 0 {
            return Err(Error::Format(FormatError::ReservedBits {
                field: "header flags",
                value: u64::from(flags),
            }));
        }
        let size = r.u32()? as usize;
        if !(16 + 4..=MAX_HEADER_SIZE).contains(&size) {
            return Err(if size > MAX_HEADER_SIZE {
                Error::Format(FormatError::OverLimit {
                    what: "header size".into(),
                    value: size as u64,
                    limit: MAX_HEADER_SIZE as u64,
                })
            } else {
                Error::malformed(format!(
                    "header size {size} is below the fixed fields' 20 bytes"
                ))
            });
        }
        if size > data.len() {
            return Err(Error::truncated(format!(
                "header of {size} bytes, file has {}",
                data.len()
            )));
        }
        let stored = u32::from_le_bytes(data[size - 4..size].try_into().expect("4 bytes"));
        let computed = crc32fast::hash(&data[..size - 4]);
        if stored != computed {
            return Err(Error::Format(FormatError::Crc {
                structure: "header".into(),
                stored,
                computed,
            }));
        }
        let mut r = Reader::new(&data[..size - 4], "header");
        r.skip(16)?;
        let original_size = match (r.u64()?, flags & FLAG_SIZE_UNKNOWN != 0) {
            (size, false) => Some(size),
            (0, true) => None,
            (_, true) => {
                return Err(Error::malformed(
                    "header gives a size and says the size is unknown",
                ))
            }
        };
        let chunk_target = r.u64()?;
        let byte_model = match (version, r.u8()?) {
            (1, BYTE_MODEL_ORDER2) => ByteModelKind::Order2,
            (2.., BYTE_MODEL_CM) => {
                let max_table_bits = r.u8()?;
                if !(MIN_TABLE_BITS..=MAX_TABLE_BITS).contains(&max_table_bits) {
                    return Err(Error::malformed(format!(
                        "byte model table size 2^{max_table_bits} out of range"
                    )));
                }
                ByteModelKind::ContextMixing { max_table_bits }
            }
            (v, id) => {
                return Err(Error::Format(FormatError::UnknownId {
                    field: format!("byte model (format version {v})"),
                    id: id.into(),
                }))
            }
        };
        let model = if flags & FLAG_LLM != 0 {
            let name = r.str()?;
            let size = r.u64()?;
            let sha256 = r.array::<32>()?;
            let numerics = r.str()?;
            let n_vocab = r.u32()?;
            if n_vocab > MAX_VOCAB {
                return Err(Error::Format(FormatError::OverLimit {
                    what: "vocabulary size".into(),
                    value: n_vocab.into(),
                    limit: MAX_VOCAB.into(),
                }));
            }
            let schedule = Schedule {
                window: r.u32()?,
                slide: r.u32()?,
                sinks: r.u32()?,
                seqs: r.u32()?,
                start_token: r.u32()?,
            };
            schedule.validate(Some(n_vocab as usize))?;
            let token_model = if version >= FRAMED_VERSION {
                let id = r.u8()?;
                TokenModelKind::from_id(id).ok_or_else(|| {
                    Error::Format(FormatError::UnknownId {
                        field: "token model".into(),
                        id: id.into(),
                    })
                })?
            } else {
                TokenModelKind::Bare
            };
            Some(ModelSection {
                name,
                size,
                sha256,
                numerics,
                n_vocab,
                schedule,
                token_model,
            })
        } else {
            None
        };
        if !r.is_empty() {
            return Err(Error::malformed(
                "unexpected bytes at the end of the header",
            ));
        }
        Ok((
            Header {
                version,
                original_size,
                chunk_target,
                byte_model,
                model,
            },
            size,
        ))
    }
}

/// Reads a header from the start of a stream; returns it with its bytes.
pub fn read_header(r: &mut dyn std::io::Read) -> Result<(Header, Vec<u8>)> {
    let mut b = vec![0u8; 16];
    let got = read_full(r, &mut b)?;
    if got < 16 {
        b.truncate(got);
        return Header::parse(&b).and(Err(Error::truncated("header ends early")));
    }
    let size = u32::from_le_bytes(b[12..16].try_into().expect("4 bytes")) as usize;
    if (16 + 4..=MAX_HEADER_SIZE).contains(&size) {
        b.resize(size, 0);
        let got = read_full(r, &mut b[16..])?;
        b.truncate(16 + got);
    }
    let (header, _) = Header::parse(&b)?;
    Ok((header, b))
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub fn read_full(r: &mut dyn std::io::Read, buf: &mut [u8]) -> Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Read(e)),
        }
    }
    Ok(at)
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
            version: VERSION,
            original_size: Some(12345),
            chunk_target: 16384,
            byte_model: ByteModelKind::ContextMixing { max_table_bits: 18 },
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
                token_model: TokenModelKind::BiasedEnsemble,
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
            Header {
                original_size: None,
                ..sample()
            },
        ] {
            let b = h.to_bytes();
            assert_eq!(Header::parse(&b).unwrap(), (h, b.len()));
        }
    }

    #[test]
    fn vocabulary_over_the_cdf_limit_is_refused() {
        let with_vocab = |n_vocab| {
            let mut h = sample();
            h.model.as_mut().unwrap().n_vocab = n_vocab;
            Header::parse(&h.to_bytes())
        };
        assert!(with_vocab(MAX_VOCAB).is_ok());
        assert!(matches!(
            with_vocab(MAX_VOCAB + 1),
            Err(Error::Format(FormatError::OverLimit { .. }))
        ));
    }

    #[test]
    fn rejects_damage() {
        let b = sample().to_bytes();
        assert!(matches!(
            Header::parse(b"PK\x03\x04 not ours"),
            Err(Error::Format(FormatError::BadMagic))
        ));
        assert!(matches!(
            Header::parse(&b[..5]),
            Err(Error::Format(FormatError::Truncated(_)))
        ));
        assert!(matches!(
            Header::parse(&b[..40]),
            Err(Error::Format(FormatError::Truncated(_)))
        ));
        let mut v = b.clone();
        v[8] = 9;
        assert!(matches!(
            Header::parse(&v),
            Err(Error::Format(FormatError::UnsupportedVersion {
                found: 9,
                ..
            }))
        ));
        // A version-1 header may not name the version-2 byte model (CRC fixed up, so only
        // the rule can catch it).
        let mut old = b.clone();
        old[8] = 1;
        let n = old.len();
        let crc = crc32fast::hash(&old[..n - 4]);
        old[n - 4..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            Header::parse(&old),
            Err(Error::Format(FormatError::UnknownId { id: 2, .. }))
        ));
        let mut f = b.clone();
        f[10] |= 0x80;
        assert!(matches!(
            Header::parse(&f),
            Err(Error::Format(FormatError::ReservedBits { .. }))
        ));
        // The size-unknown flag is version 3's; in a version-2 header it is a reserved bit,
        // and with a size given it contradicts itself.
        let refix = |x: &mut Vec<u8>| {
            let n = x.len();
            let crc = crc32fast::hash(&x[..n - 4]);
            x[n - 4..].copy_from_slice(&crc.to_le_bytes());
        };
        let mut v2 = b.clone();
        v2[8] = 2;
        v2[10] |= FLAG_SIZE_UNKNOWN as u8;
        refix(&mut v2);
        assert!(matches!(
            Header::parse(&v2),
            Err(Error::Format(FormatError::ReservedBits { .. }))
        ));
        let mut both = b.clone();
        both[10] |= FLAG_SIZE_UNKNOWN as u8;
        refix(&mut both);
        assert!(matches!(
            Header::parse(&both),
            Err(Error::Format(FormatError::Malformed(_)))
        ));
        for i in 16..b.len() {
            let mut x = b.clone();
            x[i] ^= 0x10;
            assert!(Header::parse(&x).is_err(), "flip at byte {i} undetected");
        }
    }
}
