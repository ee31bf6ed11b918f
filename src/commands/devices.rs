//! `nzip devices`: what this build can run the model on, and the numerics each computes (a
//! llama.cpp archive decodes only where its numerics are computed; a portable one anywhere).

use nzip::predict::devices::{self, DeviceChoice, Placement};
use nzip::Result;

pub fn run() -> Result<()> {
    for d in devices::devices()? {
        let kind = if d.gpu { "GPU" } else { "CPU" };
        let memory = if d.memory_total > 0 {
            format!(
                ", {:.1} GB ({:.1} GB free)",
                d.memory_total as f64 / 1e9,
                d.memory_free as f64 / 1e9
            )
        } else {
            String::new()
        };
        outln!(
            "{} ({kind}, {}): {}{memory}",
            d.name,
            d.backend,
            d.description
        );
        outln!("    numerics: {}", d.numerics_fingerprint());
    }
    let auto = Placement::resolve(&DeviceChoice::Auto, 1)?;
    match &auto {
        Placement::Cpu { .. } => outln!("--device auto runs on the CPU"),
        Placement::Gpus { gpus, .. } => {
            let names: Vec<&str> = gpus.iter().map(|g| g.name.as_str()).collect();
            outln!(
                "--device auto runs one worker on each of {}",
                names.join(", ")
            );
        }
    }
    outln!(
        "the portable engine (the default of levels 3-5 in CPU builds; --engine portable) runs on \
         the CPU: numerics {} (the same on every machine)",
        nzip::engine::NUMERICS
    );
    Ok(())
}
