//! The devices a run can use and the llama.cpp numerics each computes: llama.cpp's CPU and
//! GPUs where this build has llama.cpp, the CPU alone where it does not (the portable engine
//! runs there, with the same numerics on every machine).

use crate::error::{Error, Result};

/// The llama.cpp release our pinned llama-cpp-sys-2 vendors; part of the numerics fingerprint.
pub const LLAMA_CPP_BINDING: &str = "llama-cpp-sys-2 0.1.161";

/// What a build without llama.cpp says where llama.cpp's numerics would go.
pub const NO_LLAMA: &str = "none: this nzip was built without llama.cpp";

/// A compute device llama.cpp can run the model on, as this build sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// ggml's device index (what llama.cpp's model parameters take).
    pub index: usize,
    /// ggml's name for it, e.g. `CUDA0`, `Vulkan1`, `CPU`; what `--device` takes.
    pub name: String,
    /// e.g. `NVIDIA H100 80GB HBM3`.
    pub description: String,
    /// e.g. `CUDA`, `Vulkan`, `CPU`.
    pub backend: String,
    pub gpu: bool,
    pub memory_total: usize,
    pub memory_free: usize,
}

impl Device {
    /// The logits' numerics on this device: backend and device kind. Two devices with the
    /// same fingerprint compute the same bits (the same GPU model; CPUs with the same kernels).
    pub fn numerics_fingerprint(&self) -> String {
        if self.gpu {
            format!(
                "{}; {}; {}",
                self.backend, self.description, LLAMA_CPP_BINDING
            )
        } else {
            cpu_numerics_fingerprint()
        }
    }
}

/// Every device this build can use (CPU first, then llama.cpp's GPUs).
pub fn devices() -> Result<Vec<Device>> {
    #[cfg(feature = "llama")]
    return super::llama::devices();
    #[cfg(not(feature = "llama"))]
    Ok(vec![Device {
        index: 0,
        name: "CPU".into(),
        description: std::env::consts::ARCH.into(),
        backend: "CPU".into(),
        gpu: false,
        memory_total: 0,
        memory_free: 0,
    }])
}

/// llama.cpp's numerics on this build's CPU.
fn cpu_numerics_fingerprint() -> String {
    #[cfg(feature = "llama")]
    return super::llama::numerics_fingerprint();
    #[cfg(not(feature = "llama"))]
    NO_LLAMA.into()
}

/// Which devices run the model, as asked for on the command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// Every GPU of this build, or the CPU where it has none.
    #[default]
    Auto,
    Cpu,
    /// Devices by name (`nzip devices` lists them).
    Named(Vec<String>),
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "cpu" | "CPU" => Ok(Self::Cpu),
            "" => Err("no device named".into()),
            names => Ok(Self::Named(
                names.split(',').map(|n| n.trim().to_string()).collect(),
            )),
        }
    }
}

/// Where a run's workers go: each worker is one llama.cpp context that runs one lockstep group
/// at a time; groups are spread over the workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// `workers` contexts on the CPU sharing one copy of the weights, the threads split
    /// between them.
    Cpu { workers: usize },
    /// `per_gpu` workers on each GPU, sharing that GPU's copy of the model (fully
    /// offloaded): while one worker's batch is on the device, another's token step can run on
    /// the CPU.
    Gpus { gpus: Vec<Device>, per_gpu: usize },
}

impl Placement {
    /// Resolves a choice against this build's devices: `workers` contexts on the CPU, or on
    /// each chosen GPU.
    pub fn resolve(choice: &DeviceChoice, workers: usize) -> Result<Self> {
        let workers = workers.max(1);
        let cpu = Placement::Cpu { workers };
        let all = devices()?;
        let gpus: Vec<Device> = match choice {
            DeviceChoice::Cpu => return Ok(cpu),
            DeviceChoice::Auto => all.into_iter().filter(|d| d.gpu).collect(),
            DeviceChoice::Named(names) => {
                let mut chosen = Vec::new();
                let mut cpu_named = false;
                for name in names {
                    let found = all.iter().find(|d| d.name.eq_ignore_ascii_case(name));
                    match found {
                        Some(d) if !d.gpu => cpu_named = true,
                        Some(d) if !chosen.contains(d) => chosen.push(d.clone()),
                        Some(_) => {}
                        None => {
                            let known: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
                            return Err(Error::InvalidOption(format!(
                                "no device {name:?} in this build; it has {} (see `nzip devices`)",
                                known.join(", ")
                            )));
                        }
                    }
                }
                if cpu_named && !chosen.is_empty() {
                    return Err(Error::InvalidOption(
                        "the CPU and GPUs compute different numerics; an archive must come \
                         from one kind of device: name either the CPU or GPUs with --device"
                            .into(),
                    ));
                }
                chosen
            }
        };
        if gpus.is_empty() {
            return Ok(cpu);
        }
        if let Some(odd) = gpus
            .iter()
            .find(|d| d.numerics_fingerprint() != gpus[0].numerics_fingerprint())
        {
            return Err(Error::InvalidOption(format!(
                "{} ({}) and {} ({}) compute different numerics; an archive must come from \
                 one kind of device: choose some with --device",
                gpus[0].name, gpus[0].description, odd.name, odd.description
            )));
        }
        Ok(Placement::Gpus {
            gpus,
            per_gpu: workers,
        })
    }

    /// The numerics every worker computes with.
    pub fn numerics_fingerprint(&self) -> String {
        match self {
            Placement::Cpu { .. } => cpu_numerics_fingerprint(),
            Placement::Gpus { gpus, .. } => gpus[0].numerics_fingerprint(),
        }
    }
}
