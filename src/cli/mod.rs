//! The command line: argument parsing (`args`) and the gzip-style shorthands.

pub mod args;

use std::ffi::OsString;

/// Rewrites gzip habits into subcommands: `nzip -d X` (or a cluster such as `-dc`) →
/// `nzip decompress X`, `nzip -t X` → `nzip test X`, `nzip FILE…` → `nzip compress FILE…`,
/// and levels `-1` … `-9` → `--level N`.
pub fn normalize(argv: Vec<OsString>) -> Vec<OsString> {
    let mut argv = subcommand(argv);
    for a in argv.iter_mut().skip(2) {
        match a.to_str() {
            Some("--") => break,
            Some(s)
                if s.len() == 2 && s.starts_with('-') && matches!(s.as_bytes()[1], b'1'..=b'9') =>
            {
                *a = format!("--level={}", &s[1..]).into();
            }
            _ => {}
        }
    }
    argv
}

fn subcommand(mut argv: Vec<OsString>) -> Vec<OsString> {
    const SUBCOMMANDS: &[&str] = &[
        "compress",
        "decompress",
        "test",
        "info",
        "model",
        "bench",
        "devices",
        "completions",
        "man",
        "help",
    ];
    if argv.len() == 1 {
        // `nzip` alone filters standard input to standard output, as gzip and zstd do (and
        // as `tar -I nzip` expects).
        argv.push("compress".into());
        return argv;
    }
    let Some(first) = argv.get(1).and_then(|a| a.to_str()).map(str::to_owned) else {
        return argv;
    };
    if first == "-d" || first == "--decompress" {
        argv[1] = "decompress".into();
    } else if first == "-t" || first == "--test" {
        argv[1] = "test".into();
    } else if !SUBCOMMANDS.contains(&first.as_str())
        && !matches!(first.as_str(), "-h" | "--help" | "-V" | "--version")
    {
        let mut decompress = false;
        let mut emptied = Vec::new();
        for (i, a) in argv.iter_mut().enumerate().skip(1) {
            let Some(s) = a.to_str() else { continue };
            if s == "--" {
                break;
            }
            if s == "--decompress" {
                *a = "-d".into();
            }
            let Some(cluster) = a.to_str().and_then(|s| s.strip_prefix('-')) else {
                continue;
            };
            if !cluster.starts_with('-')
                && cluster.contains('d')
                && cluster.bytes().all(|b| b.is_ascii_alphabetic())
            {
                decompress = true;
                let rest: String = cluster.chars().filter(|&c| c != 'd').collect();
                if rest.is_empty() {
                    emptied.push(i);
                }
                *a = format!("-{rest}").into();
            }
        }
        if decompress {
            for i in emptied.into_iter().rev() {
                argv.remove(i);
            }
            argv.insert(1, "decompress".into());
        } else {
            argv.insert(1, "compress".into());
        }
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        let argv = std::iter::once("nzip")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        normalize(argv)
            .into_iter()
            .skip(1)
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn gzip_habits() {
        assert_eq!(norm(&["-d", "a.nz"]), ["decompress", "a.nz"]);
        assert_eq!(norm(&["-dc", "a.nz"]), ["decompress", "-c", "a.nz"]);
        assert_eq!(norm(&["-c", "-d", "-"]), ["decompress", "-c", "-"]);
        assert_eq!(norm(&["-kd", "a.nz"]), ["decompress", "-k", "a.nz"]);
        assert_eq!(norm(&["a", "--decompress"]), ["decompress", "a"]);
        assert_eq!(norm(&["-c", "a"]), ["compress", "-c", "a"]);
        assert_eq!(norm(&["-t", "a.nz"]), ["test", "a.nz"]);
        // A file named like a flag after `--` stays a file.
        assert_eq!(norm(&["-k", "--", "-d"]), ["compress", "-k", "--", "-d"]);
        assert_eq!(norm(&["info", "-d"]), ["info", "-d"]);
        assert_eq!(norm(&["-9", "a"]), ["compress", "--level=9", "a"]);
        assert_eq!(
            norm(&["compress", "-1", "a"]),
            ["compress", "--level=1", "a"]
        );
        assert_eq!(
            norm(&["-3", "--", "-4"]),
            ["compress", "--level=3", "--", "-4"]
        );
        assert_eq!(norm(&["-d", "-c", "a"]), ["decompress", "-c", "a"]);
        // tar -I 'nzip --fast' runs these two.
        assert_eq!(norm(&[]), ["compress"]);
        assert_eq!(norm(&["--fast", "-d"]), ["decompress", "--fast"]);
        assert_eq!(norm(&["completions", "bash"]), ["completions", "bash"]);
    }
}
