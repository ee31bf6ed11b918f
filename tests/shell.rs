//! The shell's conventions: completions and the man page from the clap definitions, tar's
//! compressor hook (`tar -I nzip`), and the benchmark's chart.

use std::path::Path;
use std::process::Command;

use crate::util::{corpus, nzip, random_bytes};

#[test]
fn completions_for_every_shell_name_the_subcommands_and_flags() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = nzip().args(["completions", shell]).assert().success();
        let script = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        // Long flags without their dashes: fish writes `-l keep-going`.
        for word in ["compress", "decompress", "keep-going", "range", "fast"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    nzip()
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("tcsh"));
}

#[test]
fn completion_script_loads_in_bash() {
    let out = nzip().args(["completions", "bash"]).assert().success();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("nzip.bash");
    std::fs::write(&script, &out.get_output().stdout).unwrap();
    // Sourcing defines the completion function and registers it for `nzip`.
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p nzip | grep -q _nzip",
            script.display()
        ))
        .status()
        .expect("run bash");
    assert!(
        status.success(),
        "bash could not load the completion script"
    );
}

#[test]
fn man_page_documents_every_subcommand_and_its_options() {
    let out = nzip().arg("man").assert().success();
    let page = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains("\n.TH nzip"),
        "not roff: {}",
        &page[..80]
    );
    for section in [
        "COMPRESS OPTIONS",
        "DECOMPRESS OPTIONS",
        "TEST OPTIONS",
        "BENCH OPTIONS",
        "MODEL FETCH OPTIONS",
    ] {
        assert!(page.contains(section), "man page lacks {section}");
    }
    for flag in ["keep\\-going", "range", "verify", "fast", "plot"] {
        assert!(page.contains(flag), "man page lacks --{flag}");
    }
    // man(1) renders it without complaint where man is installed.
    if Command::new("man").arg("--version").output().is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nzip.1");
        std::fs::write(&file, &page).unwrap();
        let shown = Command::new("man")
            .arg("-l")
            .arg(&file)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(shown.status.success());
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(text.contains("COMPRESS OPTIONS"), "{text}");
    }
}

/// A folder of files worth archiving: text, a binary, random bytes and an empty file.
fn tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("alice.txt"), &corpus("alice29.txt")[..1500]).unwrap();
    std::fs::write(dir.join("sub/table.gtb"), &corpus("kppkn.gtb")[..30_000]).unwrap();
    std::fs::write(dir.join("sub/noise.bin"), random_bytes(20_000, 7)).unwrap();
    std::fs::write(dir.join("empty"), b"").unwrap();
}

/// Runs tar with `nzip` first on its PATH (tar finds the `-I` program there).
fn tar(args: &[&str], cwd: &Path) {
    let bin = assert_cmd::cargo::cargo_bin("nzip");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("tar")
        .args(args)
        .current_dir(cwd)
        .env("PATH", path)
        .env_remove("NZIP_MODEL")
        .env_remove("NZIP_OFFLINE")
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn same_tree(a: &Path, b: &Path) {
    for name in ["alice.txt", "sub/table.gtb", "sub/noise.bin", "empty"] {
        assert_eq!(
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap(),
            "{name} differs after tar and nzip"
        );
    }
}

#[test]
fn tar_uses_nzip_as_its_compressor_both_ways() {
    for program in ["nzip --fast", "nzip"] {
        let work = tempfile::tempdir().unwrap();
        tree(&work.path().join("in"));
        tar(&["-I", program, "-cf", "t.tar.nz", "in"], work.path());
        let archive = std::fs::read(work.path().join("t.tar.nz")).unwrap();
        assert!(
            archive.starts_with(b"\x89NZIP"),
            "{program}: not an nzip archive"
        );
        std::fs::create_dir(work.path().join("out")).unwrap();
        tar(
            &["-I", program, "-xf", "../t.tar.nz"],
            &work.path().join("out"),
        );
        same_tree(&work.path().join("in"), &work.path().join("out/in"));
        // Plain `nzip -d` reads it too: tar's hook made an ordinary archive.
        let plain = nzip()
            .args(["-d", "-c"])
            .arg(work.path().join("t.tar.nz"))
            .assert()
            .success();
        assert!(plain.get_output().stdout.len() >= 10_240, "a tar file");
    }
}

#[test]
fn bench_plot_is_an_svg_naming_every_tool_that_ran() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("alice.txt");
    std::fs::write(&text, &corpus("alice29.txt")[..20_000]).unwrap();
    let table = dir.path().join("table.gtb");
    std::fs::write(&table, &corpus("kppkn.gtb")[..20_000]).unwrap();
    let svg_path = dir.path().join("chart.svg");
    let out = nzip()
        .args(["bench", "--fast", "--plot"])
        .arg(&svg_path)
        .arg(&text)
        .arg(&table)
        .assert()
        .success();
    let table = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(table.contains("plot: "), "{table}");
    let svg = std::fs::read_to_string(&svg_path).expect("the chart was written");
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    // The test command installs every tool the bench compares with (scripts/deps.sh).
    for tool in ["nzip-fast", "gzip -9", "bzip2 -9", "xz -9e", "zstd -19"] {
        assert!(texts.contains(&tool), "{tool} not in the chart: {texts:?}");
    }
    for panel in ["compress", "decompress"] {
        assert!(texts.contains(&panel), "no {panel} panel: {texts:?}");
    }
}

/// `nzip bench --portable` puts the portable engine's column beside llama.cpp's, both decoded
/// back (the bench checks every round trip) and both beside gzip and zstd.
#[test]
fn bench_runs_the_portable_engine_beside_llama_cpp() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("alice.txt");
    std::fs::write(&text, &corpus("alice29.txt")[..300]).unwrap();
    let out = nzip()
        .args(["bench", "--portable", "--slice", "300"])
        .arg(&text)
        .assert()
        .success();
    let table = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    for column in ["nzip portable", "nzip-fast", "gzip -9", "zstd -19"] {
        assert!(table.contains(column), "no {column} column:\n{table}");
    }
}
