//! `nzip test`: decodes archives and checks every CRC without writing anything, as `gzip -t`
//! and `zstd -t` do; reports each archive and fails if any did.

use nzip::pipeline;
use std::path::Path;

use super::{decompress::decode_options, input, CliResult, Failure};
use crate::cli::args::TestArgs;

pub fn run(args: &TestArgs) -> CliResult {
    let opts = decode_options(&args.decode, args.threads, &args.placement);
    let mut failed = 0;
    for file in &args.files {
        let outcome = input::open(file).and_then(|stream| {
            let mut reader = stream.reader;
            let bytes =
                pipeline::decompress_stream(&mut reader, &opts, &mut std::io::sink(), &|_| {})
                    .map_err(|e| super::name_io_error(e, file, Path::new("<no output>")))?;
            Ok((bytes, stream.size.unwrap_or(0)))
        });
        match outcome {
            Ok((bytes, size)) => {
                if !args.quiet {
                    eprintln!(
                        "{}: OK ({bytes} bytes from {size}, every chunk's CRC32 matched)",
                        file.display()
                    );
                }
            }
            Err(e) => {
                failed += 1;
                Failure::from(e).report(Some(file));
            }
        }
    }
    if failed > 0 {
        return Err(Failure::TestFailed {
            failed,
            total: args.files.len(),
        });
    }
    Ok(())
}
