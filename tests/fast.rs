//! Fast mode and the byte model: every corpus file round-trips without the LLM and without a
//! model file, incompressible data barely grows, zstd chunks decode (and lie detectably),
//! and arbitrary bytes survive.

use nzip::container::{Archive, ChunkEntry, ChunkKind, Header, Index};
use nzip::container::{ByteModelKind, VERSION};
use nzip::pipeline::{compress, decompress, decompress_range, CompressOptions, DecompressOptions};
use nzip::{Error, FormatError};
use predicates::prelude::*;
use proptest::prelude::*;

use crate::util::{
    corpus, corpus_files, decode, fast_options, file_with, nzip, nzip_stdout, random_bytes,
};

fn fast(chunk_size: usize) -> CompressOptions {
    fast_options(chunk_size)
}

fn round_trip(data: &[u8], opts: &CompressOptions) -> Vec<u8> {
    let archive = compress(data, opts, &|_| {}).expect("compress");
    let mut back = Vec::new();
    decompress(&archive, &DecompressOptions::default(), &mut back, &|_| {}).expect("decompress");
    assert!(back == data, "round trip changed {} bytes", data.len());
    archive
}

#[test]
fn every_corpus_file_round_trips_without_a_model() {
    let names = corpus_files();
    assert!(names.len() >= 9, "corpus files: {names:?}");
    for name in &names {
        let data = corpus(name);
        let archive = round_trip(&data, &fast(pipeline_fast_chunk()));
        let a = Archive::parse(&archive).unwrap();
        assert!(
            a.header.model.is_none(),
            "{name}: fast archives name no model"
        );
        assert!(a.index.chunks.iter().all(|c| c.tokens == 0));
        let bpb = 8.0 * archive.len() as f64 / data.len() as f64;
        // Loose bounds that still catch a broken model: xz -9e gets 2.55 on alice29.txt and
        // 0.94 on html; the byte model must beat both.
        match name.as_str() {
            "alice29.txt" => assert!(bpb < 2.3, "{name}: {bpb:.3} bits per byte"),
            "html" => assert!(bpb < 0.9, "{name}: {bpb:.3} bits per byte"),
            "kppkn.gtb" => assert!(bpb < 1.095, "{name}: {bpb:.3} (xz -9e: 1.095)"),
            _ => {}
        }
    }
}

fn pipeline_fast_chunk() -> usize {
    nzip::pipeline::DEFAULT_FAST_CHUNK_SIZE
}

/// Incompressible data is stored: growth is the header, the index and footer, and per chunk
/// its index entry (37 bytes) and frame header (about 20): a tenth of a percent at the default
/// chunk size, 0.15% with 64 KiB chunks.
#[test]
fn incompressible_data_grows_at_most_a_tenth_of_a_percent() {
    for data in [corpus("fireworks.jpeg"), random_bytes(300_000, 99)] {
        for (opts, bound) in [
            (fast(pipeline_fast_chunk()), 1.001),
            (fast(64 * 1024), 1.0015),
        ] {
            let archive = round_trip(&data, &opts);
            assert!(
                archive.len() as f64 <= data.len() as f64 * bound,
                "{} bytes became {}",
                data.len(),
                archive.len()
            );
        }
    }
}

#[test]
fn text_and_binary_flipping_every_few_bytes() {
    let mut data = Vec::new();
    let noise = random_bytes(4000, 5);
    for (i, word) in "flip flop between words and noise every few bytes "
        .split(' ')
        .cycle()
        .take(600)
        .enumerate()
    {
        data.extend(word.as_bytes());
        data.extend(&noise[(i * 3) % 3990..(i * 3) % 3990 + i % 5]);
    }
    round_trip(&data, &fast(1000));
    round_trip(&data, &fast(1 << 20));
}

#[test]
fn many_small_chunks_in_parallel_decode_in_order() {
    let data = corpus("enwik6")[..200_000].to_vec();
    let archive = round_trip(&data, &fast(3000));
    assert!(Archive::parse(&archive).unwrap().index.chunks.len() > 60);
}

#[test]
fn ranges_decode_exactly_their_bytes() {
    let data = corpus("geo.protodata");
    let archive = compress(&data, &fast(10_000), &|_| {}).unwrap();
    let n = data.len() as u64;
    let ranges = [
        0..0,
        0..n,
        0..1,
        n - 1..n,
        9_999..10_001,
        10_000..20_000,
        12_345..67_890,
    ];
    for range in ranges {
        let mut out = Vec::new();
        let dopts = DecompressOptions::default();
        decompress_range(&archive, Some(range.clone()), &dopts, &mut out, &|_| {}).unwrap();
        assert!(
            out == data[range.start as usize..range.end as usize],
            "{range:?}"
        );
    }
    // Past the end, a range is clipped to the end (as dd, head and tail do).
    for (past, want) in [
        (0..n + 1, 0..n),
        (n - 3..n + 9, n - 3..n),
        (n + 5..n + 6, n..n),
    ] {
        let mut out = Vec::new();
        let dopts = DecompressOptions::default();
        let written =
            decompress_range(&archive, Some(past.clone()), &dopts, &mut out, &|_| {}).unwrap();
        assert_eq!(written, want.end - want.start, "{past:?}");
        assert!(
            out == data[want.start as usize..want.end as usize],
            "{past:?}"
        );
    }
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 9..3;
    let err = decompress_range(
        &archive,
        Some(backwards),
        &DecompressOptions::default(),
        &mut Vec::new(),
        &|_| {},
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidOption(_)), "{err}");
}

#[test]
fn keep_going_recovers_the_undamaged_chunks() {
    let data = corpus("alice29.txt")[..40_000].to_vec();
    let archive = compress(&data, &fast(10_000), &|_| {}).unwrap();
    let a = Archive::parse(&archive).unwrap();
    let chunks = &a.index.chunks;
    assert!(chunks.len() >= 4);
    let start: u64 = chunks[..2].iter().map(|c| c.len).sum();
    let end = start + chunks[2].len;
    let (s, e) = (start as usize, end as usize);
    let mut damaged = archive.clone();
    damaged[a.payload_offset(2) + 100] ^= 0x01;
    assert!(matches!(
        decode(&damaged),
        Err(Error::Format(FormatError::Crc { .. }) | Error::Format(FormatError::Malformed(_)))
    ));
    let opts = DecompressOptions {
        keep_going: true,
        ..DecompressOptions::default()
    };
    let mut out = Vec::new();
    match decompress(&damaged, &opts, &mut out, &|_| {}).unwrap_err() {
        Error::Damaged { ranges, written } => {
            assert_eq!(written, 40_000);
            assert_eq!(ranges.len(), 1);
            assert_eq!(ranges[0].0, start..end);
        }
        e => panic!("expected a damage report, got {e}"),
    }
    assert!(out[..s] == data[..s] && out[e..] == data[e..]);
    assert!(out[s..e].iter().all(|&b| b == 0));

    // The CLI keeps the recovered output, names the range, and exits 1.
    let (dir, path) = file_with("a.txt.nz", &damaged);
    nzip()
        .args(["decompress", "--keep-going"])
        .arg(&path)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("{start}..{end}")));
    assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), out);
}

/// An archive cut anywhere (an interrupted copy) still gives back, under --keep-going, every
/// chunk that lies wholly before the cut, byte for byte; the lost tail is named, not written.
#[test]
fn keep_going_recovers_a_cut_archive_up_to_the_cut() {
    let data = corpus("enwik6")[..60_000].to_vec();
    let archive = compress(&data, &fast(3_000), &|_| {}).unwrap();
    let a = Archive::parse(&archive).unwrap();
    // Where each chunk's frame ends in the archive, and its original bytes end.
    let mut ends = Vec::new();
    let mut original = 0u64;
    for (i, c) in a.index.chunks.iter().enumerate() {
        original += c.len;
        ends.push((a.payload_offset(i) + c.payload_len as usize, original));
    }
    assert!(ends.len() >= 20, "{} chunks", ends.len());
    let opts = DecompressOptions {
        keep_going: true,
        ..DecompressOptions::default()
    };
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..200 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let cut = 1 + (state % (archive.len() as u64 - 1)) as usize;
        let whole: u64 = ends
            .iter()
            .filter(|(end, _)| *end <= cut)
            .map(|(_, o)| *o)
            .max()
            .unwrap_or(0);
        let mut out = Vec::new();
        match decompress(&archive[..cut], &opts, &mut out, &|_| {}) {
            Err(Error::Damaged { ranges, written }) => {
                assert_eq!(written, whole, "cut at {cut}: the recovered prefix");
                assert_eq!(ranges.len(), 1, "cut at {cut}: {ranges:?}");
                assert_eq!(ranges[0].0, whole..data.len() as u64, "cut at {cut}");
            }
            // Cut before the header's end: nothing to recover, and nothing written.
            Err(e) if cut < a.payload_offset(0) => {
                assert!(out.is_empty(), "cut at {cut}: {e}");
                continue;
            }
            other => panic!("cut at {cut}: expected a damage report, got {other:?}"),
        }
        assert!(
            out == data[..whole as usize],
            "cut at {cut}: recovered bytes differ"
        );
    }

    // The CLI: the good chunks are written, the lost tail named, status 1.
    let cut = ends[ends.len() / 2].0 + 5;
    let whole = ends[ends.len() / 2].1;
    let (dir, path) = file_with("cut.txt.nz", &archive[..cut]);
    nzip()
        .args(["decompress", "--keep-going"])
        .arg(&path)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("{whole}..{}", data.len())))
        .stderr(predicate::str::contains("cut short"));
    let out = std::fs::read(dir.path().join("cut.txt")).unwrap();
    assert!(out == data[..whole as usize]);
}

/// A thousand single-bit flips anywhere in an archive: every one is reported as an error;
/// never other bytes (nor, since format 3, the right bytes from a damaged archive).
#[test]
fn a_thousand_bit_flips_are_all_detected() {
    let data = corpus("asyoulik.txt")[..12_000].to_vec();
    let archive = compress(&data, &fast(4_000), &|_| {}).unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let (mut detected, mut harmless) = (0, 0);
    for _ in 0..1000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut damaged = archive.clone();
        let bit = (state % (archive.len() as u64 * 8)) as usize;
        damaged[bit / 8] ^= 1 << (bit % 8);
        match decode(&damaged) {
            Err(_) => detected += 1,
            Ok(back) => {
                assert!(back == data, "bit {bit}: wrong bytes passed off as good");
                harmless += 1;
            }
        }
    }
    eprintln!("1,000 bit flips: {detected} detected, {harmless} harmless");
    // Every byte of a version-3 archive is under a CRC: the header, each frame header, each
    // payload, the index; the footer points at the index.
    assert_eq!((detected, harmless), (1000, 0));
}

#[test]
fn cli_range() {
    let data = corpus("kppkn.gtb");
    let (dir, input) = file_with("t.gtb", &data);
    nzip()
        .args(["compress", "--fast", "--chunk-size", "50000"])
        .arg(&input)
        .assert()
        .success();
    let archive = dir.path().join("t.gtb.nz");
    let part = nzip_stdout(&["decompress", "-c", "--range", "60000..120000"], &archive);
    assert!(part == data[60_000..120_000]);
    let tail = nzip_stdout(&["decompress", "-c", "--range", "180000.."], &archive);
    assert!(tail == data[180_000..]);
    // Past the end: clipped, as dd, head and tail read what is there.
    let past = nzip_stdout(&["decompress", "-c", "--range", "180000..999999"], &archive);
    assert!(past == data[180_000..]);
    let after = nzip_stdout(
        &["decompress", "-c", "--range", "999999..1000000"],
        &archive,
    );
    assert!(after.is_empty());
    for (args, code) in [
        (vec!["--range", "1..2"], 2),       // neither -c nor -o
        (vec!["-c", "--range", "5..3"], 2), // backwards
        (vec!["-c", "--range", "x..3"], 2), // not a number
    ] {
        nzip()
            .arg("decompress")
            .args(&args)
            .arg(&archive)
            .assert()
            .code(code);
    }
}

#[test]
fn cli_fast_mode_needs_no_model_directory() {
    let data = corpus("geo.protodata");
    let (dir, input) = file_with("geo.protodata", &data);
    let empty_models = dir.path().join("no-models");
    nzip()
        .env("NZIP_MODEL_DIR", &empty_models)
        .env("NZIP_OFFLINE", "1")
        .args(["compress", "--fast"])
        .arg(&input)
        .assert()
        .success();
    std::fs::remove_file(&input).unwrap();
    nzip()
        .env("NZIP_MODEL_DIR", &empty_models)
        .env("NZIP_OFFLINE", "1")
        .arg("-d")
        .arg(dir.path().join("geo.protodata.nz"))
        .assert()
        .success();
    assert_eq!(std::fs::read(&input).unwrap(), data);
}

/// An archive of one zstd chunk holding `frame`, claiming `len` original bytes with `crc`.
fn zstd_archive(frame: &[u8], len: u64, crc32: u32) -> Vec<u8> {
    let header = Header {
        version: VERSION,
        original_size: Some(len),
        chunk_target: len,
        byte_model: ByteModelKind::ContextMixing { max_table_bits: 18 },
        model: None,
    };
    let entry = ChunkEntry {
        kind: ChunkKind::Zstd,
        len,
        tokens: 0,
        raw_bytes: 0,
        payload_len: frame.len() as u64,
        crc32,
    };
    let mut out = header.to_bytes();
    out.extend(nzip::container::frame::header(&entry, frame));
    out.extend(frame);
    let index = Index {
        chunks: vec![entry],
    };
    let at = out.len() as u64;
    out.extend(index.to_bytes(at));
    out
}

#[test]
fn zstd_chunks_decode_and_wrong_lengths_are_refused() {
    let data = corpus("alice29.txt")[..5000].to_vec();
    let frame = zstd::bulk::compress(&data, 19).unwrap();
    let crc = crc32fast::hash(&data);
    assert_eq!(decode(&zstd_archive(&frame, 5000, crc)).unwrap(), data);
    for (len, what) in [(4999, "longer"), (5001, "shorter"), (1 << 40, "huge")] {
        let err = decode(&zstd_archive(&frame, len, crc)).unwrap_err();
        assert!(
            matches!(err, Error::Format(FormatError::Malformed(_))),
            "{what}: {err}"
        );
    }
    let mut bad = frame.clone();
    let n = bad.len();
    bad[n / 2] ^= 0x20;
    assert!(decode(&zstd_archive(&bad, 5000, crc)).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_bytes_round_trip(
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        chunk in 1usize..2000,
    ) {
        round_trip(&data, &fast(chunk));
    }

    #[test]
    fn arbitrary_byte_model_archives_never_panic(
        data in proptest::collection::vec(any::<u8>(), 1..2000),
        flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..4),
    ) {
        let mut archive = compress(&data, &fast(700), &|_| {}).unwrap();
        for (at, bit) in flips {
            let i = at % archive.len();
            archive[i] ^= 1 << bit;
        }
        // Damage must be reported or, where it hit nothing that matters, harmless.
        if let Ok(back) = decode(&archive) {
            prop_assert_eq!(back, data);
        }
    }
}

/// Damage in one member of a concatenated archive costs only that member under --keep-going:
/// where the member's index is broken (the walk from the front stops there), the members after
/// it are found from the end of the file, and the damaged member gives back its chunks up to
/// its first broken frame; bytes that are no archive at all lose only themselves.
#[test]
fn keep_going_recovers_the_members_around_a_damaged_one() {
    let text = corpus("alice29.txt");
    let parts = [
        &text[..30_000],
        &text[30_000..50_000],
        &text[50_000..70_000],
    ];
    let archives: Vec<Vec<u8>> = parts
        .iter()
        .map(|p| compress(p, &fast(5_000), &|_| {}).unwrap())
        .collect();
    let opts = DecompressOptions {
        keep_going: true,
        ..DecompressOptions::default()
    };
    let joined = |middle: &[u8]| [&archives[0][..], middle, &archives[2][..]].concat();
    let whole = &text[..70_000];
    let recover = |damaged: &[u8]| {
        let mut out = Vec::new();
        match decompress(damaged, &opts, &mut out, &|_| {}).unwrap_err() {
            Error::Damaged { ranges, written } => (out, written, ranges),
            e => panic!("expected a damage report, got {e}"),
        }
    };

    // The middle member's index broken: every chunk of it comes back through its frames.
    let b = Archive::parse(&archives[1]).unwrap();
    let footer = archives[1].len() - 16;
    let index_at = u64::from_le_bytes(archives[1][footer..footer + 8].try_into().unwrap());
    let mut middle = archives[1].clone();
    middle[index_at as usize + 20] ^= 0x01;
    assert!(decode(&joined(&middle)).is_err());
    let (out, written, ranges) = recover(&joined(&middle));
    assert_eq!(written, 70_000);
    assert!(out == whole);
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    assert!(ranges[0].1.starts_with("member 2"), "{}", ranges[0].1);
    assert!(
        ranges[0].1.contains("every chunk was recovered"),
        "{}",
        ranges[0].1
    );

    // Its third frame header broken too: its first two chunks come back, the rest of it is
    // named, and the last member follows, whole.
    let kept: u64 = b.index.chunks[..2].iter().map(|c| c.len).sum();
    middle[b.payload_offset(2) - 2] ^= 0x40;
    let (out, written, ranges) = recover(&joined(&middle));
    let (lost_from, lost_to) = (30_000 + kept as usize, 50_000);
    assert_eq!(written, 70_000 - (20_000 - kept));
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    assert_eq!(ranges[0].0, lost_from as u64..lost_to as u64);
    assert!(out[..lost_from] == whole[..lost_from]);
    assert!(
        out[lost_from..] == whole[lost_to..],
        "the last member follows what was kept"
    );

    // The middle member replaced by bytes that begin no archive: only they are lost.
    let garbage = joined(b"these bytes are no archive at all");
    assert!(decode(&garbage).is_err());
    let (out, written, ranges) = recover(&garbage);
    assert_eq!(written, 50_000);
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    assert!(
        ranges[0].1.contains("not an nzip archive"),
        "{}",
        ranges[0].1
    );
    assert!(out == [&text[..30_000], &text[50_000..70_000]].concat());

    // A file that does not begin as an archive is refused as one, --keep-going or not.
    let mut out = Vec::new();
    let leading = [&b"junk"[..], &archives[0]].concat();
    assert!(matches!(
        decompress(&leading, &opts, &mut out, &|_| {}),
        Err(Error::Format(FormatError::BadMagic))
    ));
    assert!(out.is_empty());

    // The CLI's --keep-going keeps what came back and names what did not.
    let (dir, path) = file_with("m.txt.nz", &joined(&middle));
    nzip()
        .args(["decompress", "--keep-going"])
        .arg(&path)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("{lost_from}..{lost_to}")));
    let back = std::fs::read(dir.path().join("m.txt")).unwrap();
    assert!(back[..lost_from] == whole[..lost_from] && back[lost_from..] == whole[lost_to..]);
}
