//! A second decoder for byte-model archives (`nzip --fast`, `-2`), written from formats/NZIP.md
//! alone, that proves the document: it decodes every golden archive without language-model
//! chunks, and fresh `--fast` archives of the corpus, to the original bytes.
//!
//! It imports nothing from the nzip crate (one test below checks this file for it): only std,
//! crc32fast and zstd. Names follow the document's fields. It checks what the document asks a
//! decoder to check, in less detail than nzip's errors; a chunk with language-model tokens is
//! reported as such ([`Chunk::NeedsLanguageModel`]), never decoded.

use std::path::{Path, PathBuf};

type Res<T> = Result<T, String>;

// ---------------------------------------------------------------------------------------------
// Container ("Conventions" to "Index and footer")
// ---------------------------------------------------------------------------------------------

/// Little-endian reads over a byte slice that fail on running out.
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let s = &self.data[self.at..end.ok_or("truncated")?];
        self.at += n;
        Ok(s)
    }
    fn uint(&mut self, n: usize) -> Res<u64> {
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0, |v, &b| v << 8 | u64::from(b)))
    }
    fn str(&mut self) -> Res<String> {
        let n = self.uint(2)? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "string not UTF-8".into())
    }
    /// A minimal LEB128 varint of at most 10 bytes.
    fn varint(&mut self) -> Res<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.take(1)?[0];
            if i == 9 && b != 0x01 {
                return Err("varint over 64 bits".into());
            }
            v |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err("varint not minimal".into());
                }
                return Ok(v);
            }
        }
        unreachable!("the 10th byte ends the varint or fails")
    }
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap())
}

struct Header {
    version: u16,
    size_unknown: bool,
    original_size: u64,
    /// `Table_Bits` (byte model 2); `None` for format version 1 (byte model 1).
    table_bits: Option<u8>,
    llm: bool,
    size: usize,
}

fn parse_header(file: &[u8]) -> Res<Header> {
    let mut r = Bytes { data: file, at: 0 };
    if r.take(8)? != b"\x89NZIP\r\n\x1a" {
        return Err("bad magic number".into());
    }
    let version = r.uint(2)? as u16;
    if !(1..=3).contains(&version) {
        return Err(format!("unknown version {version}"));
    }
    let flags = r.uint(2)? as u16;
    let known = if version >= 3 { 0b11 } else { 0b01 };
    if flags & !known != 0 {
        return Err("reserved flag set".into());
    }
    let size = r.uint(4)? as usize;
    if !(20..=65536).contains(&size) || size > file.len() {
        return Err(format!("header size {size}"));
    }
    if le32(&file[size - 4..]) != crc32fast::hash(&file[..size - 4]) {
        return Err("header checksum".into());
    }
    let mut r = Bytes {
        data: &file[..size - 4],
        at: 16,
    };
    let original_size = r.uint(8)?;
    let size_unknown = flags & 2 != 0;
    if size_unknown && original_size != 0 {
        return Err("size given and unknown".into());
    }
    let _chunk_target = r.uint(8)?; // Unused
    let table_bits = match (version, r.uint(1)?) {
        (1, 1) => None,
        (2.., 2) => {
            let b = r.uint(1)? as u8;
            if !(10..=20).contains(&b) {
                return Err(format!("table bits {b}"));
            }
            Some(b)
        }
        (_, id) => return Err(format!("byte model {id} in version {version}")),
    };
    let llm = flags & 1 != 0;
    if llm {
        // The model section: read and checked against its limits; the fields themselves
        // only matter to a decoder with a language model.
        let _name = r.str()?;
        let _file_size = r.uint(8)?; // Unused
        let _sha256 = r.take(32)?;
        let _numerics = r.str()?;
        let [vocab, window, slide, sinks, seqs, start] = [(); 6].map(|_| r.uint(4));
        let (vocab, window, slide, sinks, seqs) = (vocab?, window?, slide?, sinks?, seqs?);
        let ok = (1..=1 << 23).contains(&vocab)
            && (2..=65536).contains(&window)
            && (1..=256).contains(&seqs)
            && window * seqs <= 1 << 20
            && slide >= 1
            && sinks + slide < window
            && start? < vocab;
        if !ok {
            return Err("model section out of limits".into());
        }
        if version >= 3 && r.uint(1)? > 2 {
            return Err("reserved token model".into());
        }
    }
    if r.at != r.data.len() {
        return Err("bytes left in the header".into());
    }
    Ok(Header {
        version,
        size_unknown,
        original_size,
        table_bits,
        llm,
        size,
    })
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    kind: u64,
    len: u64,
    tokens: u64,
    raw: u64,
    payload_len: u64,
    crc: u32,
}

fn check_entry(e: &Entry) -> Res<()> {
    let ok = e.kind <= 2
        && e.len >= 1
        && e.tokens <= e.len
        && e.raw <= e.len
        && (e.kind != 0 || (e.payload_len == e.len && e.tokens == 0 && e.raw == 0))
        && (e.kind != 2 || (e.payload_len >= 1 && e.tokens == 0 && e.raw == 0));
    ok.then_some(())
        .ok_or_else(|| format!("bad chunk entry {e:?}"))
}

/// The index, found from the footer.
fn parse_index(file: &[u8], header_size: usize) -> Res<(Vec<Entry>, usize)> {
    let n = file.len();
    if n < header_size + 16 || &file[n - 8..] != b"NZIPTAIL" {
        return Err("no footer".into());
    }
    let offset = u64::from_le_bytes(file[n - 16..n - 8].try_into().unwrap());
    if offset < header_size as u64 || offset + 16 > (n - 16) as u64 {
        return Err("index offset out of range".into());
    }
    let body = &file[offset as usize..n - 16];
    let stored = le32(&body[body.len() - 4..]);
    if stored != crc32fast::hash(&body[..body.len() - 4]) {
        return Err("index checksum".into());
    }
    let mut r = Bytes {
        data: &body[..body.len() - 4],
        at: 0,
    };
    let magic = r.take(4)?;
    let count = r.uint(8)?;
    if magic != b"NZIX"
        || !(body.len() - 16).is_multiple_of(37)
        || (body.len() as u64 - 16) / 37 != count
    {
        return Err("index magic or size".into());
    }
    let entries = (0..count)
        .map(|_| {
            let e = Entry {
                kind: r.uint(1)?,
                len: r.uint(8)?,
                tokens: r.uint(8)?,
                raw: r.uint(8)?,
                payload_len: r.uint(8)?,
                crc: r.uint(4)? as u32,
            };
            check_entry(&e).map(|_| e)
        })
        .collect::<Res<Vec<_>>>()?;
    Ok((entries, offset as usize))
}

/// A version-3 frame header at the start of `data`: the entry it repeats, the payload's
/// checksum and the header's length.
fn parse_frame(data: &[u8]) -> Res<(Entry, u32, usize)> {
    let mut r = Bytes { data, at: 0 };
    let kind = r.uint(1)?;
    let [len, tokens, raw, payload_len] = [(); 4].map(|_| r.varint());
    let crc = r.uint(4)? as u32;
    let payload_crc = r.uint(4)? as u32;
    let computed = crc32fast::hash(&data[..r.at]);
    if r.uint(4)? as u32 != computed {
        return Err("frame checksum".into());
    }
    let e = Entry {
        kind,
        len: len?,
        tokens: tokens?,
        raw: raw?,
        payload_len: payload_len?,
        crc,
    };
    check_entry(&e)?;
    Ok((e, payload_crc, r.at))
}

/// The members of a file ("Members"): each framed member is walked from its header through
/// its frame headers to its index and footer; one without frames (versions 1 and 2) is the
/// rest of the file.
fn split_members(file: &[u8]) -> Res<Vec<&[u8]>> {
    let mut members = Vec::new();
    let mut at = 0;
    while at < file.len() || members.is_empty() {
        let rest = &file[at..];
        let header = parse_header(rest)?;
        if header.version < 3 {
            members.push(rest);
            break;
        }
        let mut pos = header.size;
        let end = loop {
            if *rest.get(pos).ok_or("member ends inside its frames")? == b'N' {
                let count = u64::from_le_bytes(
                    rest.get(pos + 4..pos + 12)
                        .ok_or("index cut")?
                        .try_into()
                        .unwrap(),
                );
                break pos + 4 + 8 + 37 * count as usize + 4 + 16;
            }
            let (frame, _, frame_len) = parse_frame(&rest[pos..])?;
            pos += frame_len + frame.payload_len as usize;
        };
        members.push(rest.get(..end).ok_or("member cut")?);
        at += end;
    }
    Ok(members)
}

/// What became of one chunk.
#[derive(Debug)]
enum Chunk {
    Decoded(Vec<u8>),
    /// The chunk codes this many language-model tokens: this decoder has no language model.
    NeedsLanguageModel(u64),
}

/// Decodes an archive chunk by chunk: each chunk's index entry and what became of it. Every
/// decoded chunk has passed its CRC32.
fn decode_archive(file: &[u8]) -> Res<(Header, Vec<(Entry, Chunk)>)> {
    let header = parse_header(file)?;
    let (entries, index_offset) = parse_index(file, header.size)?;
    let mut at = header.size;
    let mut chunks = Vec::new();
    let (mut total_len, mut total_payload) = (0u64, 0u64);
    for e in &entries {
        let start = at;
        if header.version >= 3 {
            let (frame, payload_crc, frame_len) =
                parse_frame(file.get(at..index_offset).ok_or("frames past the index")?)?;
            if frame != *e {
                return Err("frame differs from the index".into());
            }
            let payload = file.get(at + frame_len..at + frame_len + e.payload_len as usize);
            if payload.map(crc32fast::hash) != Some(payload_crc) {
                return Err("payload checksum".into());
            }
            at += frame_len;
        }
        let payload = file
            .get(at..at + e.payload_len as usize)
            .ok_or("payload truncated")?;
        at += payload.len();
        total_len = total_len.checked_add(e.len).ok_or("size overflow")?;
        total_payload += (at - start) as u64;
        if e.tokens > 0 {
            if !header.llm {
                return Err("tokens without a model section".into());
            }
            chunks.push((e.clone(), Chunk::NeedsLanguageModel(e.tokens)));
            continue;
        }
        let bytes = match e.kind {
            0 => payload.to_vec(),
            2 => {
                use std::io::Read;
                let mut out = Vec::new();
                zstd::stream::read::Decoder::new(payload)
                    .and_then(|d| d.take(e.len + 1).read_to_end(&mut out))
                    .map_err(|err| format!("zstd: {err}"))?;
                out
            }
            _ => decode_modelled(payload, e, header.table_bits)?,
        };
        if bytes.len() as u64 != e.len || crc32fast::hash(&bytes) != e.crc {
            return Err("chunk checksum".into());
        }
        chunks.push((e.clone(), Chunk::Decoded(bytes)));
    }
    if total_payload != (index_offset - header.size) as u64
        || (!header.size_unknown && total_len != header.original_size)
    {
        return Err("chunks do not add up".into());
    }
    Ok((header, chunks))
}

/// A modelled chunk without tokens: its segment table, then its raw bytes from the range coder.
fn decode_modelled(payload: &[u8], e: &Entry, table_bits: Option<u8>) -> Res<Vec<u8>> {
    let mut r = Bytes {
        data: payload,
        at: 0,
    };
    let count = r.varint()?;
    if count > e.len || count > payload.len() as u64 {
        return Err("too many segments".into());
    }
    let (mut total, mut raw) = (0u64, 0u64);
    for _ in 0..count {
        let v = r.varint()?;
        if v >> 1 == 0 || v & 1 == 1 {
            // A text segment in a chunk with no tokens breaks the token-count rule too.
            return Err("empty or text segment in a chunk without tokens".into());
        }
        total = total.checked_add(v >> 1).ok_or("overflow")?;
        raw += v >> 1;
    }
    if total != e.len || raw != e.raw {
        return Err("segments do not add up".into());
    }
    let Some(bits) = table_bits else {
        return Err("byte model 1 is not implemented by this decoder".into());
    };
    let mut coder = RangeDecoder::new(&payload[r.at..])?;
    let mut model = ContextMixing::new(table_bits_for(e.raw, bits));
    let mut out = Vec::with_capacity(e.len as usize);
    for _ in 0..e.raw {
        let mut byte = 0u32;
        for _ in 0..8 {
            let bit = coder.decode_bit(model.p1)?;
            model.update(bit);
            byte = byte << 1 | bit;
        }
        out.push(byte as u8);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The range coder ("The range coder": the decoder, bits of precision 16)
// ---------------------------------------------------------------------------------------------

struct RangeDecoder {
    words: Vec<u32>,
    next: usize,
    lower: u64,
    range: u64,
    point: u64,
}

impl RangeDecoder {
    fn new(stream: &[u8]) -> Res<Self> {
        if !stream.len().is_multiple_of(4) {
            return Err("stream not whole words".into());
        }
        let words = stream.chunks_exact(4).map(le32).collect();
        let mut d = Self {
            words,
            next: 0,
            lower: 0,
            range: u64::MAX,
            point: 0,
        };
        d.point = u64::from(d.word()) << 32 | u64::from(d.word());
        Ok(d)
    }

    /// The next word, 0 past the end.
    fn word(&mut self) -> u32 {
        self.next += 1;
        self.words.get(self.next - 1).copied().unwrap_or(0)
    }

    fn decode_bit(&mut self, p1: u32) -> Res<u32> {
        let scale = self.range >> 16;
        let quantile = self.point.wrapping_sub(self.lower) / scale;
        if quantile >= 1 << 16 {
            return Err("corrupt range-coder stream".into());
        }
        let p0 = (1 << 16) - u64::from(p1);
        let (bit, c, f) = if quantile >= p0 {
            (1, p0, u64::from(p1))
        } else {
            (0, 0, p0)
        };
        self.lower = self.lower.wrapping_add(scale * c);
        self.range = scale * f;
        if self.range < 1 << 32 {
            self.lower <<= 32;
            self.range <<= 32;
            self.point = self.point << 32 | u64::from(self.word());
        }
        Ok(bit)
    }
}

// ---------------------------------------------------------------------------------------------
// Byte model 2 ("Byte model 2: context mixing")
// ---------------------------------------------------------------------------------------------

fn table_bits_for(raw: u64, max: u8) -> u8 {
    let log2 = if raw <= 1 {
        0
    } else {
        64 - (raw - 1).leading_zeros() as i32
    };
    (log2 - 2).max(10).min(i32::from(max)) as u8
}

fn hash2(a: u64, b: u64) -> u64 {
    let h = (a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    h ^ (h >> 32)
}

const S: [i32; 33] = [
    1, 2, 4, 6, 10, 17, 27, 45, 74, 120, 194, 311, 488, 747, 1102, 1546, 2048, 2550, 2994, 3349,
    3608, 3785, 3902, 3976, 4022, 4051, 4069, 4079, 4086, 4090, 4092, 4094, 4095,
];

fn squash(x: i32) -> i32 {
    if x > 2047 {
        return 4095;
    }
    if x < -2047 {
        return 1;
    }
    let (i, w) = (((x >> 7) + 16) as usize, x & 127);
    (S[i] * (128 - w) + S[i + 1] * w + 64) >> 7
}

/// stretch(p): the smallest x in −2047..=2047 with squash(x) ≥ p, else 2047.
fn stretch_table() -> Vec<i32> {
    (0..4096)
        .map(|p| (-2047..=2047).find(|&x| squash(x) >= p).unwrap_or(2047))
        .collect()
}

const NEW_CELL: u32 = 0x8000_0000;
const LOW: u32 = 1023;
const HIGH: u32 = 255;

fn train(cell: &mut u32, y: u32, limit: u32) {
    let n = *cell & 1023;
    let p = i64::from(*cell >> 10);
    let target = if y == 1 { (1 << 22) - 1 } else { 0 };
    let r = i64::from(131072 / (2 * n + 3));
    let p = p + (((target - p) * r) >> 16);
    *cell = (p as u32) << 10 | (n + u32::from(n < limit));
}

/// One mixer set: weight vectors, the one chosen for this bit and its squashed output.
struct Mixers {
    w: Vec<[i32; 12]>,
    chosen: usize,
    p: i32,
}

impl Mixers {
    fn dot(&mut self, x: &[i32; 12], ctx: usize) -> i32 {
        self.chosen = ctx;
        let sum: i64 = (0..12)
            .map(|k| i64::from(x[k]) * i64::from(self.w[ctx][k]))
            .sum();
        let d = (sum >> 16).clamp(-2047, 2047) as i32;
        self.p = squash(d);
        d
    }
    fn train(&mut self, x: &[i32; 12], y: u32) {
        let err = (((y as i32) << 12) - self.p) * 5;
        for (w, &x) in self.w[self.chosen].iter_mut().zip(x) {
            *w = w.wrapping_add((x * err) >> 12);
        }
    }
}

/// An adaptive probability map: 33 entries per context, and the entry to train.
struct Apm {
    e: Vec<u16>,
    chosen: usize,
}

impl Apm {
    fn new(contexts: usize) -> Self {
        let row: Vec<u16> = (0..33)
            .map(|j| (squash((j - 16) * 128) * 16) as u16)
            .collect();
        Apm {
            e: row.repeat(contexts),
            chosen: 0,
        }
    }
    fn refine(&mut self, stretched: i32, ctx: usize) -> u32 {
        let s = stretched + 2048;
        let (lo, w) = ((s >> 7) as usize, (s & 127) as u32);
        let base = ctx * 33 + lo;
        self.chosen = base + (w >> 6) as usize;
        (u32::from(self.e[base]) * (128 - w) + u32::from(self.e[base + 1]) * w) >> 7
    }
    fn train(&mut self, y: u32) {
        let (t, e) = (
            if y == 1 { 65535 } else { 0 },
            i32::from(self.e[self.chosen]),
        );
        self.e[self.chosen] = (e + ((t - e) >> 6)) as u16;
    }
}

struct ContextMixing {
    stretch: Vec<i32>,
    h: Vec<u8>,
    c0: u32,
    bitpos: u32,
    nib: usize,
    c8: u64,
    word: u64,
    r1: u64,
    r2: u64,
    hits: Vec<u16>, // hits[d] for d = 1..=1024 (index 0 unused)
    t0: Vec<u32>,
    t1: Vec<u32>,
    slots: Vec<[u32; 16]>,
    b: u32,
    ctx: [u64; 8],
    cur: [usize; 8],
    m: Vec<u32>,
    match_ptr: usize,
    match_len: usize,
    mc: [u32; 64],
    match_cell: Option<usize>,
    x: [i32; 12],
    mix_a: Mixers,
    mix_b: Mixers,
    apm_a: Apm,
    apm_b: Apm,
    p1: u32,
}

impl ContextMixing {
    fn new(b: u8) -> Self {
        let b = u32::from(b);
        let mut empty = [NEW_CELL; 16];
        empty[0] = 0;
        let mut cm = ContextMixing {
            stretch: stretch_table(),
            h: Vec::new(),
            c0: 1,
            bitpos: 0,
            nib: 1,
            c8: 0,
            word: 0,
            r1: 0,
            r2: 0,
            hits: vec![0; 1025],
            t0: vec![NEW_CELL; 256],
            t1: vec![NEW_CELL; 65536],
            slots: vec![empty; 8 << b],
            b,
            ctx: [0; 8],
            cur: [0; 8],
            m: vec![0; 1 << (b + 2).min(22)],
            match_ptr: 0,
            match_len: 0,
            mc: [NEW_CELL; 64],
            match_cell: None,
            x: [0; 12],
            mix_a: Mixers {
                w: vec![[16384; 12]; 256],
                chosen: 0,
                p: 0,
            },
            mix_b: Mixers {
                w: vec![[16384; 12]; 1024],
                chosen: 0,
                p: 0,
            },
            apm_a: Apm::new(256),
            apm_b: Apm::new(65536),
            p1: 0,
        };
        cm.hash_contexts();
        cm.select_slots();
        cm.predict();
        cm
    }

    fn st(&self, cell: u32) -> i32 {
        self.stretch[(cell >> 20) as usize]
    }

    fn above(&self, k: u64) -> u64 {
        let pos = self.h.len() as u64;
        if k >= 1 && k <= pos {
            u64::from(self.h[(pos - k) as usize])
        } else {
            0
        }
    }

    fn hash_contexts(&mut self) {
        let (c8, r1, r2) = (self.c8, self.r1, self.r2);
        let c = [
            c8 & 0xFFFF,
            c8 & 0xFF_FFFF,
            c8 & 0xFFFF_FFFF,
            c8 & 0xFFFF_FFFF_FFFF,
            hash2(self.word, c8 & 0xFF),
            c8 & 0xFF_FF00,
            hash2(
                self.above(r1) << 8 | self.above(2 * r1),
                r1 << 16 | (c8 & 0xFF),
            ),
            hash2(self.above(r1) << 8 | self.above(r2), r1 << 16 | r2),
        ];
        for (i, (ctx, c)) in self.ctx.iter_mut().zip(c).enumerate() {
            *ctx = hash2(c, i as u64 + 1);
        }
    }

    fn select_slots(&mut self) {
        self.nib = 1;
        let mask = (1u64 << self.b) - 1;
        for i in 0..8 {
            let h = if self.bitpos == 0 {
                self.ctx[i]
            } else {
                hash2(self.ctx[i], u64::from(self.c0))
            };
            let check = h as u32 | 1;
            let a = (i << self.b) + ((h >> 40) & mask) as usize;
            let a2 = a ^ 1;
            self.cur[i] = if self.slots[a][0] == check {
                a
            } else if self.slots[a2][0] == check {
                a2
            } else {
                let v = if self.slots[a][1] & 1023 <= self.slots[a2][1] & 1023 {
                    a
                } else {
                    a2
                };
                self.slots[v] = [NEW_CELL; 16];
                self.slots[v][0] = check;
                v
            };
        }
    }

    fn predict(&mut self) {
        let (c0, prev) = (self.c0 as usize, (self.c8 & 0xFF) as usize);
        let mut x = [0i32; 12];
        x[0] = self.st(self.t0[c0]);
        x[1] = self.st(self.t1[prev * 256 + c0]);
        for i in 0..8 {
            x[2 + i] = self.st(self.slots[self.cur[i]][self.nib]);
        }
        self.match_cell = None;
        let mut mstate = 0;
        if self.match_ptr > 0 {
            let expected = u32::from(self.h[self.match_ptr]) + 256;
            if expected >> (8 - self.bitpos) == self.c0 {
                let bit = ((expected >> (7 - self.bitpos)) & 1) as usize;
                let len = self.match_len;
                let bucket = match len {
                    0..16 => len,
                    16..32 => 16 + (len - 16) / 2,
                    _ => (24 + (len - 32) / 16).min(31),
                };
                self.match_cell = Some(bucket * 2 + bit);
                x[10] = self.st(self.mc[bucket * 2 + bit]);
                mstate = 1 + usize::from(len >= 6) + usize::from(len >= 32);
            }
        }
        x[11] = 256;
        self.x = x;
        let d_a = self.mix_a.dot(&x, c0);
        let d_b = self.mix_b.dot(&x, prev * 4 + mstate);
        let p12 = squash((d_a + d_b) >> 1);
        let s = self.stretch[p12 as usize];
        let a_a = self.apm_a.refine(s, c0);
        let a_b = self.apm_b.refine(s, prev * 256 + c0);
        self.p1 = ((p12 as u32 * 16 + a_a + 2 * a_b + 2) >> 2).clamp(32, 65504);
    }

    fn update(&mut self, y: u32) {
        let (c0, prev) = (self.c0 as usize, (self.c8 & 0xFF) as usize);
        train(&mut self.t0[c0], y, LOW);
        train(&mut self.t1[prev * 256 + c0], y, LOW);
        for i in 0..8 {
            train(
                &mut self.slots[self.cur[i]][self.nib],
                y,
                if i < 2 { LOW } else { HIGH },
            );
        }
        if let Some(c) = self.match_cell {
            train(&mut self.mc[c], y, LOW);
        }
        self.mix_a.train(&self.x, y);
        self.mix_b.train(&self.x, y);
        self.apm_a.train(y);
        self.apm_b.train(y);
        self.c0 = self.c0 * 2 + y;
        self.nib = self.nib * 2 + y as usize;
        self.bitpos += 1;
        if self.bitpos == 8 {
            self.end_byte((self.c0 & 255) as u8);
            self.select_slots();
        } else if self.bitpos == 4 {
            self.select_slots();
        }
        self.predict();
    }

    fn end_byte(&mut self, c: u8) {
        self.h.push(c);
        self.c8 = self.c8 << 8 | u64::from(c);
        self.c0 = 1;
        self.bitpos = 0;
        self.word = if c.is_ascii_alphabetic() {
            hash2(self.word, u64::from(c.to_ascii_lowercase()))
        } else {
            0
        };
        self.hash_contexts();
        self.update_match(c);
        self.update_records(c);
    }

    fn update_match(&mut self, c: u8) {
        let pos = self.h.len();
        if self.match_ptr > 0 {
            self.match_len = if self.h[self.match_ptr] == c {
                (self.match_len + 1).min(65535)
            } else {
                0
            };
            self.match_ptr += 1;
        }
        if pos < 6 {
            return;
        }
        let slot = hash2(self.c8 & 0xFFFF_FFFF_FFFF, 7) as usize & (self.m.len() - 1);
        if self.match_len < 6 {
            let cand = self.m[slot] as usize;
            if 0 < cand && cand < pos {
                let mut l = 0;
                while l < 32 && l < cand && self.h[cand - 1 - l] == self.h[pos - 1 - l] {
                    l += 1;
                }
                if l >= 6 {
                    self.match_len = l;
                    self.match_ptr = cand;
                }
            }
        }
        self.m[slot] = pos as u32;
    }

    fn update_records(&mut self, c: u8) {
        let pos = self.h.len();
        if !pos.is_multiple_of(8) || pos <= 1024 {
            return;
        }
        for d in 1..=1024 {
            if self.h[pos - 1 - d] == c {
                self.hits[d] += 1;
            }
        }
        if !pos.is_multiple_of(4096) {
            return;
        }
        let total: u64 = self.hits[1..].iter().map(|&h| u64::from(h)).sum();
        let mean = total / 1024;
        let best_of = |allowed: &dyn Fn(usize) -> bool| {
            let mut best = (0u16, 0usize);
            for d in (4..=1024).filter(|&d| allowed(d)) {
                if self.hits[d] > best.0 {
                    best = (self.hits[d], d);
                }
            }
            best
        };
        let best = best_of(&|_| true);
        let second = best_of(&|d| d.abs_diff(best.1) > 1);
        let significant = |h: u16| u64::from(h) > 2 * mean && u64::from(h) * 8 > 512;
        self.r1 = if significant(best.0) {
            best.1 as u64
        } else {
            0
        };
        self.r2 = if significant(second.0) {
            second.1 as u64
        } else {
            0
        };
        if pos.is_multiple_of(131072) {
            self.hits.iter_mut().for_each(|h| *h >>= 1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Decodes `archive` and compares every decoded chunk with its place in `original`; returns
/// the chunks' entries and how many were skipped for their language-model tokens (each named
/// on stderr: a skip is never silent).
fn check(name: &str, archive: &[u8], original: &[u8]) -> (Vec<Entry>, usize) {
    let members = split_members(archive).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut chunks = Vec::new();
    for member in members {
        let (header, member_chunks) =
            decode_archive(member).unwrap_or_else(|e| panic!("{name}: {e}"));
        chunks.extend(member_chunks.into_iter().map(|(e, c)| (header.llm, e, c)));
    }
    let (mut at, mut skipped) = (0usize, 0);
    for (i, (llm, entry, chunk)) in chunks.iter().enumerate() {
        let end = at + entry.len as usize;
        assert!(
            end <= original.len(),
            "{name}: chunk {i} ends past the original"
        );
        match chunk {
            Chunk::Decoded(bytes) => assert!(bytes[..] == original[at..end], "{name}: chunk {i}"),
            Chunk::NeedsLanguageModel(tokens) => {
                // Only an archive with a model section may hold these (decode_archive checks),
                // and only a modelled chunk.
                assert!(*llm && entry.kind == 1 && *tokens > 0);
                eprintln!(
                    "second decoder: {name}: chunk {i} skipped: it codes {tokens} LLM tokens"
                );
                skipped += 1;
            }
        }
        at = end;
    }
    assert_eq!(at, original.len(), "{name}: chunk lengths");
    (chunks.into_iter().map(|(_, e, _)| e).collect(), skipped)
}

/// Every golden archive: those without LLM chunks decode whole; in the others, exactly the
/// chunks with tokens are skipped, and said to be.
#[test]
fn second_decoder_decodes_the_golden_archives() {
    let dir = repo("tests/golden");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".nz"))
        .collect();
    names.sort();
    let mut whole = Vec::new();
    for name in &names {
        let archive = std::fs::read(dir.join(name)).unwrap();
        let original = std::fs::read(dir.join(name.trim_end_matches(".nz"))).unwrap();
        if check(name, &archive, &original).1 == 0 {
            whole.push(name.as_str());
        }
    }
    // The byte-model archives among them must all be there and decode whole: the test
    // cannot pass by skipping them.
    for name in [
        "v1-stored.bin.nz",
        "v2-fast.bin.nz",
        "v3-streamed.bin.nz",
        "v3-members.bin.nz",
    ] {
        assert!(
            whole.contains(&name),
            "{name} not decoded whole (decoded whole: {whole:?})"
        );
    }
}

/// Runs the nzip binary with `args`, `input` on standard input; returns standard output.
fn nzip(args: &[&str], input: &[u8]) -> Vec<u8> {
    let out = assert_cmd::Command::cargo_bin("nzip")
        .unwrap()
        .args(args)
        .write_stdin(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nzip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Fresh `--fast` archives of every corpus file, and of input made to need stored and zstd
/// chunks beside modelled ones, streamed (size unknown) and not: all decode exactly, and every
/// chunk kind occurs.
#[test]
fn second_decoder_decodes_fresh_fast_archives() {
    let mut kinds = [0usize; 3];
    let mut check_fast = |name: &str, archive: &[u8], original: &[u8]| {
        let (entries, skipped) = check(name, archive, original);
        assert_eq!(skipped, 0, "{name}: a --fast archive has LLM chunks");
        entries.iter().for_each(|e| kinds[e.kind as usize] += 1);
    };
    let corpus = repo("corpus");
    let mut names: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md" && n != "SHA256SUMS")
        .collect();
    names.sort();
    assert!(names.len() >= 5, "corpus files: {names:?}");
    for name in &names {
        let path = corpus.join(name);
        let original = std::fs::read(&path).unwrap();
        let archive = nzip(&["compress", "--fast", "-c", path.to_str().unwrap()], &[]);
        check_fast(name, &archive, &original);
    }
    // Zeros (zstd), noise (stored) and text (modelled), in 64 KiB chunks, through a pipe.
    let mut mixed = vec![0u8; 200_000];
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    mixed.extend((0..150_000).map(|_| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 24) as u8
    }));
    mixed.extend(std::fs::read(corpus.join("alice29.txt")).unwrap());
    let archive = nzip(
        &["compress", "--fast", "--chunk-size", "65536", "-c"],
        &mixed,
    );
    assert!(
        parse_header(&archive).unwrap().size_unknown,
        "a piped input's size is unknown"
    );
    check_fast("mixed input", &archive, &mixed);
    assert!(
        kinds.iter().all(|&k| k > 0),
        "chunks by kind (stored, modelled, zstd): {kinds:?}"
    );
}

/// The decoder above stands alone: nothing of nzip's own code is used.
#[test]
fn second_decoder_imports_nothing_from_nzip() {
    let source = std::fs::read_to_string(repo("tests/second_decoder.rs")).unwrap();
    for needle in [
        ["nzip", "::"].concat(),
        ["crate", "::"].concat(),
        ["super", "::"].concat(),
    ] {
        assert!(
            !source.contains(&needle),
            "tests/second_decoder.rs uses {needle}"
        );
    }
}
