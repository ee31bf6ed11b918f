//! gzip's, zstd's and xz's habits, side by side with them where nzip should behave the same
//! (exit status, which files are made, what is skipped): several files where one fails,
//! terminals, inputs that already carry the suffix, and the messages users see.

use std::fs::File;
use std::os::fd::FromRawFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::util::{corpus, file_with};

/// What one run did: its exit status and which of `names` exist in `dir` afterwards.
fn outcome(out: &Output, dir: &Path, names: &[&str]) -> (Option<i32>, Vec<String>) {
    let made = names
        .iter()
        .filter(|n| dir.join(n).exists())
        .map(|n| n.to_string())
        .collect();
    (out.status.code(), made)
}

fn run_in(dir: &Path, program: &str, args: &[&str]) -> Output {
    let mut command = if program == "nzip" {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("nzip"));
        c.env_remove("NZIP_MODEL").env_remove("NZIP_OFFLINE");
        c
    } else {
        Command::new(program)
    };
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run the program")
}

fn sample() -> Vec<u8> {
    corpus("kppkn.gtb")[..5000].to_vec()
}

#[test]
fn a_failing_file_does_not_stop_the_others_as_with_gzip() {
    let (dir, _) = file_with("a", &sample());
    std::fs::write(dir.path().join("b"), sample()).unwrap();
    let nz = run_in(dir.path(), "nzip", &["--fast", "a", "missing", "b"]);
    let gz = run_in(dir.path(), "gzip", &["-k", "a", "missing", "b"]);
    assert_eq!(
        outcome(&nz, dir.path(), &["a.nz", "b.nz"]),
        (Some(1), vec!["a.nz".into(), "b.nz".into()])
    );
    assert_eq!(
        outcome(&gz, dir.path(), &["a.gz", "b.gz"]),
        (Some(1), vec!["a.gz".into(), "b.gz".into()])
    );
    let stderr = String::from_utf8_lossy(&nz.stderr);
    assert_eq!(stderr.matches("missing").count(), 1, "{stderr}");

    // Decompression: a damaged archive among good ones.
    for f in ["a", "b"] {
        std::fs::rename(dir.path().join(f), dir.path().join(format!("{f}.orig"))).unwrap();
    }
    std::fs::write(dir.path().join("bad.nz"), b"\x89NZIP not really").unwrap();
    std::fs::write(dir.path().join("bad.gz"), b"\x1f\x8b not really").unwrap();
    let nz = run_in(dir.path(), "nzip", &["-d", "bad.nz", "a.nz", "b.nz"]);
    let gz = run_in(dir.path(), "gzip", &["-dkf", "bad.gz", "a.gz", "b.gz"]);
    assert_eq!(nz.status.code(), Some(1));
    assert_eq!(gz.status.code(), Some(1));
    for f in ["a", "b"] {
        assert_eq!(
            std::fs::read(dir.path().join(f)).unwrap(),
            sample(),
            "{f} decoded after bad.nz failed"
        );
    }
    assert!(
        !dir.path().join("bad").exists(),
        "no output for the damaged archive"
    );
    let stderr = String::from_utf8_lossy(&nz.stderr);
    assert!(
        stderr.contains("bad.nz"),
        "the message names the file: {stderr}"
    );
}

#[test]
fn an_archive_is_not_compressed_again_unless_forced_as_with_gzip() {
    let (dir, _) = file_with("x.nz", &sample());
    std::fs::write(dir.path().join("x.gz"), sample()).unwrap();
    let nz = run_in(dir.path(), "nzip", &["--fast", "x.nz"]);
    let gz = run_in(dir.path(), "gzip", &["-k", "x.gz"]);
    // gzip 1.12: "x.gz already has .gz suffix -- unchanged", and status 0.
    assert_eq!(outcome(&nz, dir.path(), &["x.nz.nz"]), (Some(0), vec![]));
    assert_eq!(outcome(&gz, dir.path(), &["x.gz.gz"]), (Some(0), vec![]));
    assert!(String::from_utf8_lossy(&nz.stderr).contains("x.nz: already has the .nz suffix"));
    assert!(String::from_utf8_lossy(&gz.stderr).contains("already has .gz suffix"));
    let nz = run_in(dir.path(), "nzip", &["--fast", "-f", "x.nz"]);
    let gz = run_in(dir.path(), "gzip", &["-kf", "x.gz"]);
    assert_eq!(
        outcome(&nz, dir.path(), &["x.nz.nz"]),
        (Some(0), vec!["x.nz.nz".into()])
    );
    assert_eq!(
        outcome(&gz, dir.path(), &["x.gz.gz"]),
        (Some(0), vec!["x.gz.gz".into()])
    );
}

/// A pseudo-terminal: (controller, terminal side).
fn pty() -> (File, File) {
    let (mut controller, mut terminal) = (0, 0);
    // SAFETY: openpty writes two new descriptors, which the Files then own.
    let rc = unsafe {
        libc::openpty(
            &mut controller,
            &mut terminal,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    unsafe { (File::from_raw_fd(controller), File::from_raw_fd(terminal)) }
}

fn with_terminal(program: &str, args: &[&str], dir: &Path, stdin_tty: bool) -> Output {
    let (_controller, terminal) = pty();
    let mut command = if program == "nzip" {
        Command::new(assert_cmd::cargo::cargo_bin("nzip"))
    } else {
        Command::new(program)
    };
    command.args(args).current_dir(dir).stderr(Stdio::piped());
    if stdin_tty {
        command.stdin(Stdio::from(terminal)).stdout(Stdio::piped());
    } else {
        command.stdin(Stdio::null()).stdout(Stdio::from(terminal));
    }
    command.output().expect("run with a terminal")
}

#[test]
fn compressed_data_never_meets_a_terminal_unless_forced() {
    let (dir, _) = file_with("a", &sample());
    // Writing an archive to a terminal: refused (status 1) as xz refuses it ("Compressed data
    // cannot be written to a terminal"), allowed with -f. gzip and zstd refuse only when
    // they read standard input; nzip, as xz, refuses a named file's archive too.
    let nz = with_terminal("nzip", &["--fast", "-c", "a"], dir.path(), false);
    let xz = with_terminal("xz", &["-c", "a"], dir.path(), false);
    assert_eq!((nz.status.code(), xz.status.code()), (Some(1), Some(1)));
    assert!(nz.stdout.is_empty());
    let why = String::from_utf8_lossy(&nz.stderr);
    assert!(why.contains("terminal") && why.contains("-f"), "{why}");
    // -f writes it (as gzip's -f does where gzip refuses; xz has no way to force it).
    let nz = with_terminal("nzip", &["--fast", "-c", "-f", "a"], dir.path(), false);
    assert_eq!(nz.status.code(), Some(0));
    // Reading an archive from a terminal: refused by all four.
    let codes: Vec<Option<i32>> = ["nzip", "gzip", "zstd", "xz"]
        .iter()
        .map(|p| {
            with_terminal(p, &["-d", "-c"], dir.path(), true)
                .status
                .code()
        })
        .collect();
    assert_eq!(codes, [Some(1); 4], "nzip, gzip, zstd, xz");
    // Compressing what a terminal types: refused, as zstd does ("stdin is a console").
    let nz = with_terminal("nzip", &["--fast", "-c"], dir.path(), true);
    let zst = with_terminal("zstd", &["-c"], dir.path(), true);
    assert_eq!((nz.status.code(), zst.status.code()), (Some(1), Some(1)));
    assert!(nz.stdout.is_empty());
}

/// Several inputs with -c make one stream of members, as with gzip and zstd: it decodes to the
/// inputs one after the other, from a file and from a pipe; `nzip test` and `nzip info` read
/// every member, a range crosses the boundary, an empty member is valid, and damage in either
/// member is caught.
#[test]
fn several_inputs_to_stdout_make_one_stream_as_with_gzip() {
    let a = sample();
    let b = corpus("alice29.txt")[..7000].to_vec();
    let (dir, _) = file_with("a", &a);
    std::fs::write(dir.path().join("b"), &b).unwrap();
    std::fs::write(dir.path().join("empty"), b"").unwrap();
    let both: Vec<u8> = [&a[..], &b[..]].concat();
    for (program, compress) in [
        ("gzip", &["-c", "a", "empty", "b"][..]),
        ("nzip", &["--fast", "-c", "a", "empty", "b"][..]),
    ] {
        let out = run_in(dir.path(), program, compress);
        assert_eq!(out.status.code(), Some(0), "{program}");
        std::fs::write(dir.path().join(format!("ab.{program}")), &out.stdout).unwrap();
        let back = run_in(dir.path(), program, &["-d", "-c", &format!("ab.{program}")]);
        assert_eq!(back.status.code(), Some(0), "{program}");
        assert!(
            back.stdout == both,
            "{program}: members decode as one stream"
        );
    }
    let archive = std::fs::read(dir.path().join("ab.nzip")).unwrap();
    assert!(
        crate::util::nzip_piped(&["-d", "-c"], archive.clone()) == both,
        "from a pipe"
    );
    assert_eq!(nzip::decompress_to_vec(&archive).unwrap(), both);
    let range = run_in(
        dir.path(),
        "nzip",
        &["-d", "-c", "--range", "4000..6500", "ab.nzip"],
    );
    assert_eq!(range.status.code(), Some(0));
    assert!(range.stdout == both[4000..6500], "a range across members");
    assert_eq!(
        run_in(dir.path(), "nzip", &["test", "ab.nzip"])
            .status
            .code(),
        Some(0)
    );
    let info = run_in(dir.path(), "nzip", &["info", "--json", "ab.nzip"]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["members"].as_array().map(Vec::len), Some(3));
    assert_eq!(info["original_bytes"], both.len() as u64);
    // Damage in the last member, and a cut inside it: both refused.
    let members = nzip::container::members(&archive);
    assert_eq!(members.len(), 3);
    let mut flipped = archive.clone();
    flipped[members[2].start + 200] ^= 0x20;
    let mut cut = archive.clone();
    cut.truncate(members[2].start + 100);
    for (name, bad) in [("flipped.nz", flipped), ("cut.nz", cut)] {
        std::fs::write(dir.path().join(name), bad).unwrap();
        let out = run_in(dir.path(), "nzip", &["-d", "-c", name]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let test = run_in(dir.path(), "nzip", &["test", name]);
        assert_eq!(test.status.code(), Some(1), "{name}");
    }
    // Bytes after the last footer that are not another member are refused.
    let mut trailing = archive.clone();
    trailing.extend(b"not an archive");
    std::fs::write(dir.path().join("trailing.nz"), trailing).unwrap();
    for args in [
        &["-d", "-c", "trailing.nz"][..],
        &["-d", "-c", "--range", "0..10", "trailing.nz"][..],
    ] {
        let out = run_in(dir.path(), "nzip", args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not another archive"), "{args:?}: {stderr}");
    }
}

/// `--input-range` codes a slice of a file, so that workers can each take one: the archives
/// of consecutive ranges, concatenated, decode to the whole file (the last range open-ended,
/// one past the end clipped to nothing). It needs a named output and a named file.
#[test]
fn input_ranges_compress_slices_that_concatenate_to_the_whole() {
    let data = corpus("alice29.txt")[..50_000].to_vec();
    let (dir, _) = file_with("big", &data);
    let mut joined = Vec::new();
    for range in ["0..12345", "12345..40000", "40000..", "60000..70000"] {
        let out = run_in(
            dir.path(),
            "nzip",
            &["--fast", "-c", "--input-range", range, "big"],
        );
        assert_eq!(out.status.code(), Some(0), "{range}");
        joined.extend(out.stdout);
    }
    std::fs::write(dir.path().join("joined.nz"), &joined).unwrap();
    let back = run_in(dir.path(), "nzip", &["-d", "-c", "joined.nz"]);
    assert_eq!(back.status.code(), Some(0));
    assert!(
        back.stdout == data,
        "the ranges' members decode to the whole file"
    );
    for refused in [
        &["--fast", "--input-range", "0..10", "big"][..],
        &["--fast", "-c", "--input-range", "0..10", "-"][..],
        &["--fast", "-c", "--input-range", "10..5", "big"][..],
    ] {
        let out = run_in(dir.path(), "nzip", refused);
        assert_eq!(out.status.code(), Some(2), "{refused:?}");
        assert!(out.stdout.is_empty(), "{refused:?}");
    }
}

#[test]
fn messages_name_the_file_once_and_speak_the_users_words() {
    let (dir, _) = file_with("junk.nz", b"this is not an archive at all, just text");
    // A bad magic number names the file.
    let out = run_in(dir.path(), "nzip", &["-d", "junk.nz"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("junk.nz: not an nzip archive"), "{stderr}");
    // `nzip test` of a missing file names it once.
    let out = run_in(dir.path(), "nzip", &["test", "missing.nz"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("missing.nz").count(), 1, "{stderr}");
    // --rm with -c keeps the input, and says so.
    std::fs::write(dir.path().join("t"), sample()).unwrap();
    let out = run_in(dir.path(), "nzip", &["--fast", "--rm", "-c", "t"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(dir.path().join("t").exists());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rm has no effect with -c"));
    // A schedule the flags make impossible is told in the flags' words, not as a Rust value.
    std::fs::write(
        dir.path().join("s.txt"),
        b"A little text for a schedule check.\n",
    )
    .unwrap();
    let out = run_in(dir.path(), "nzip", &["-3", "--slide", "0", "-c", "s.txt"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("slide 0") && !stderr.contains("Schedule {"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("corrupt"),
        "a flag is not a corrupt archive: {stderr}"
    );
}
