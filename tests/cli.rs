//! The command line in the habits of gzip and zstd: names, flags, stdin/stdout, exit codes,
//! and decoding in another process with another thread count.

use predicates::prelude::*;

use crate::util::{corpus, file_with, nzip, nzip_piped, nzip_stdout};

#[test]
fn compress_then_decompress_in_other_processes_with_other_threads() {
    let data = corpus("alice29.txt")[..2500].to_vec();
    let (dir, input) = file_with("alice.txt", &data);
    nzip()
        .args(["compress", "--threads", "2", "--chunk-size", "900"])
        .arg(&input)
        .assert()
        .success();
    let archive = dir.path().join("alice.txt.nz");
    assert!(archive.exists());
    assert!(input.exists(), "the input is kept by default");
    let out = dir.path().join("back.txt");
    nzip()
        .args(["decompress", "--threads", "1", "-o"])
        .arg(&out)
        .arg(&archive)
        .assert()
        .success();
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[test]
fn gzip_style_shorthands_and_rm() {
    let data = b"short text for the gzip habits test, long enough to be text.\n".repeat(3);
    let (dir, input) = file_with("t.txt", &data);
    nzip().arg(&input).assert().success(); // nzip FILE = compress
    std::fs::remove_file(&input).unwrap();
    let archive = dir.path().join("t.txt.nz");
    nzip()
        .arg("-d")
        .arg("--rm")
        .arg(&archive)
        .assert()
        .success(); // nzip -d FILE.nz
    assert_eq!(std::fs::read(&input).unwrap(), data);
    assert!(!archive.exists(), "--rm removes the input after success");
}

#[test]
fn stdin_to_stdout_and_back() {
    let data = b"piped through standard input and output, both ways.\n".to_vec();
    let archive = nzip_piped(&["compress", "-c", "-"], data.clone());
    assert!(archive.starts_with(b"\x89NZIP"));
    assert_eq!(nzip_piped(&["decompress", "-c"], archive), data);
}

#[test]
fn existing_output_needs_force() {
    let (dir, input) = file_with("x.txt", b"some text that is long enough");
    let out = dir.path().join("x.txt.nz");
    std::fs::write(&out, b"precious").unwrap();
    nzip()
        .arg("compress")
        .arg(&input)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    nzip()
        .args(["compress", "-f"])
        .arg(&input)
        .assert()
        .success();
    assert!(std::fs::read(&out).unwrap().starts_with(b"\x89NZIP"));
}

#[test]
fn unreadable_input_is_an_error_naming_it() {
    nzip()
        .args(["compress", "/nonexistent/nowhere.txt"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("/nonexistent/nowhere.txt"));
}

#[test]
fn usage_errors_exit_2() {
    nzip()
        .args(["compress", "--threads", "0", "x"])
        .assert()
        .code(2);
    nzip()
        .args(["frobnicate-not-a-flag", "--bogus"])
        .assert()
        .code(2);
    let (_dir, input) = file_with("plain.bin", b"data");
    nzip()
        .arg("decompress")
        .arg(&input)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("suffix"));
}

#[test]
fn info_prints_every_field() {
    let (dir, input) = file_with(
        "i.txt",
        b"information about an archive, please, in text and json.\n",
    );
    nzip().arg("compress").arg(&input).assert().success();
    let archive = dir.path().join("i.txt.nz");
    nzip()
        .arg("info")
        .arg(&archive)
        .assert()
        .success()
        .stdout(predicate::str::contains("smollm2-135m-instruct-q4_1"))
        // SmolLM2 computes version 3's logits under version 2, which the archive records.
        .stdout(predicate::str::contains(
            "numerics         nzip portable 2 (portable: the same logits on every machine)",
        ))
        .stdout(predicate::str::contains("window 1024"));
    let json = nzip_stdout(&["info", "--json"], &archive);
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["model"]["engine"], "portable");
    assert_eq!(v["original_bytes"], 56);
    assert_eq!(
        v["model"]["sha256"],
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    assert_eq!(v["chunks"].as_array().unwrap().len(), 1);
    // llama.cpp's archive says where it decodes.
    let llama = dir.path().join("llama.nz");
    nzip()
        .args(["compress", "--engine", "llama", "-o"])
        .arg(&llama)
        .arg(&input)
        .assert()
        .success();
    nzip()
        .arg("info")
        .arg(&llama)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "(llama.cpp: decodes where nzip's llama.cpp build computes this fingerprint)",
        ));
}

/// `nzip info` on several files, one of them no archive: that one is named, the others are
/// still described, and the status is 1 (as gzip -l does).
#[test]
fn info_names_a_file_that_is_no_archive_and_goes_on() {
    let (dir, plain) = file_with("plain.txt", b"not an archive, just text\n");
    let archive = dir.path().join("a.nz");
    nzip()
        .args(["compress", "--fast", "-o"])
        .arg(&archive)
        .arg(&plain)
        .assert()
        .success();
    nzip()
        .arg("info")
        .arg(&plain)
        .arg(&archive)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("plain.txt: not an nzip archive"))
        .stdout(predicate::str::contains("a.nz"))
        .stdout(predicate::str::contains("original size"));
}

/// A reader that closed its end of the pipe (`nzip model list | head -1`) ends a report
/// quietly with status 1, as it ends other filters; it used to panic in the print.
#[test]
fn a_closed_pipe_ends_a_report_quietly() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("nzip"))
        .args(["model", "list"])
        .stdout(writer)
        .output()
        .expect("run nzip");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn model_list_shows_the_default() {
    nzip()
        .args(["model", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "smollm2-135m-instruct-q4_1 (default; levels -3 -4 -5)",
        ))
        .stdout(predicate::str::contains("-9  Qwen2.5-Coder 1.5B"));
}

/// `nzip devices` names the CPU and its numerics; a device the build lacks is a usage error
/// that lists what it has; a CPU archive decodes with several workers.
#[test]
fn devices_and_workers() {
    nzip()
        .arg("devices")
        .assert()
        .success()
        .stdout(predicate::str::contains("CPU (CPU, CPU)"))
        .stdout(predicate::str::contains("numerics: CPU; "));
    let (_dir, input) = file_with("t.txt", b"Workers and devices.\n");
    nzip()
        .args(["compress", "--device", "NoSuchGpu7"])
        .arg(&input)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no device \"NoSuchGpu7\""))
        .stderr(predicate::str::contains("it has CPU"));
    nzip()
        .args(["compress", "--device", "cpu", "--workers", "2"])
        .arg(&input)
        .assert()
        .success();
    let mut archive = input.as_os_str().to_owned();
    archive.push(".nz");
    nzip()
        .args(["decompress", "-c", "--workers", "2"])
        .arg(&archive)
        .assert()
        .success()
        .stdout(predicate::eq(&b"Workers and devices.\n"[..]));
}

/// The archive's header fields as `nzip info --json` prints them.
fn info_json(archive: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&nzip_stdout(&["info", "--json"], archive)).unwrap()
}

#[test]
fn levels_choose_the_tier_and_chunk_size() {
    let text = b"Levels choose the model tier and the chunk size; the archive records both.\n";
    let (dir, input) = file_with("l.txt", text);
    let archive = dir.path().join("l.txt.nz");
    for (flags, model, chunk) in [
        (&["-1"][..], None, 524_288),
        (&["--fast"][..], None, 524_288),
        (&["-2"][..], None, 2_097_152),
        (&["compress", "--level", "2"][..], None, 2_097_152),
        (&["-3"][..], Some("smollm2-135m-instruct-q4_1"), 16_384),
        (
            &["-4", "--chunk-size", "5000"][..],
            Some("smollm2-135m-instruct-q4_1"),
            5000,
        ),
    ] {
        nzip().args(flags).arg("-f").arg(&input).assert().success();
        let v = info_json(&archive);
        assert_eq!(v["chunk_target"], chunk, "{flags:?}");
        assert_eq!(v["model"]["name"].as_str(), model, "{flags:?}");
        let back = nzip_stdout(&["-dc"], &archive);
        assert_eq!(back, text);
    }
    // $NZIP_MODEL stands in for the default level's model only.
    nzip()
        .env("NZIP_MODEL", "/nonexistent/model.gguf")
        .args(["-1", "-f"])
        .arg(&input)
        .assert()
        .success();
    nzip()
        .env("NZIP_MODEL", "/nonexistent/model.gguf")
        .arg("-f")
        .arg(&input)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("/nonexistent/model.gguf"));
    for bad in [
        &["-2", "--model", "smollm2-135m"][..],
        &["--fast", "--best"][..],
        &["-0"][..],
        &["--level", "10"][..],
    ] {
        nzip().args(bad).arg("-f").arg(&input).assert().code(2);
    }
}

#[test]
fn test_subcommand_checks_archives_without_writing() {
    let data = corpus("kppkn.gtb");
    let (dir, input) = file_with("table.gtb", &data);
    nzip()
        .args(["compress", "--fast", "--verify"])
        .arg(&input)
        .assert()
        .success();
    let good = dir.path().join("table.gtb.nz");
    nzip()
        .arg("test")
        .arg(&good)
        .assert()
        .success()
        .stderr(predicate::str::contains("OK"));
    let mut damaged = std::fs::read(&good).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x04;
    let bad = dir.path().join("bad.gtb.nz");
    std::fs::write(&bad, damaged).unwrap();
    nzip()
        .arg("-t") // gzip's spelling
        .arg(&bad)
        .arg(&good)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bad.gtb.nz"))
        .stderr(predicate::str::contains("1 of 2 archives failed"));
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["bad.gtb.nz", "table.gtb", "table.gtb.nz"],
        "test writes nothing"
    );
}

#[test]
fn verify_before_removing_the_input() {
    let data = corpus("alice29.txt")[..3000].to_vec();
    let (dir, input) = file_with("alice.txt", &data);
    nzip()
        .args(["compress", "--verify", "--rm", "--chunk-size", "1500"])
        .arg(&input)
        .assert()
        .success();
    assert!(!input.exists(), "--rm after a verified archive");
    nzip()
        .arg("-d")
        .arg(dir.path().join("alice.txt.nz"))
        .assert()
        .success();
    assert_eq!(std::fs::read(&input).unwrap(), data);
}
