//! The only module that touches llama.cpp: backend, model, tokenizer access, and its side of
//! the lockstep decoding of a group of chunks (`predict::lockstep`) with a sliding KV window.
//!
//! Lifecycle (llama-cpp-2): backend once per process → model (shared) → one context per group
//! runner → batch → `decode` → logits. The schedule of `decode` calls is a pure function of the
//! group's token counts and the [`Schedule`], so the encoder replays exactly what the decoder
//! will do (DESIGN.md, determinism rule 2).

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::OnceLock;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::container::Schedule;
use crate::error::{Error, Result};
use crate::predict::devices::{Device, LLAMA_CPP_BINDING};
use crate::predict::lockstep::LockstepModel;

/// llama.cpp's model loading and context creation mutate shared state; creating them from
/// several threads at once is unsound (llama-cpp-2's own note), so they take turns.
static CREATE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();

fn backend() -> Result<&'static LlamaBackend> {
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(
                llama_cpp_2::LogOptions::default().with_logs_enabled(false),
            );
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Llama(format!("backend init: {e}")))
}

/// Every device this build of llama.cpp can use (CPU first, then GPUs).
pub fn devices() -> Result<Vec<Device>> {
    backend()?;
    Ok(llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .map(|d| Device {
            index: d.index,
            gpu: matches!(
                d.device_type,
                llama_cpp_2::LlamaBackendDeviceType::Gpu
                    | llama_cpp_2::LlamaBackendDeviceType::IntegratedGpu
            ),
            name: d.name,
            description: d.description,
            backend: d.backend,
            memory_total: d.memory_total,
            memory_free: d.memory_free,
        })
        .collect())
}

/// A loaded GGUF model.
pub struct LanguageModel {
    model: LlamaModel,
    n_vocab: usize,
    /// The GPU it was loaded onto; `None` for the CPU.
    gpu: Option<Device>,
}

impl crate::token::Tokenizer for LanguageModel {
    fn n_vocab(&self) -> usize {
        LanguageModel::n_vocab(self)
    }

    fn token_bytes(&self, token: u32) -> Vec<u8> {
        self.piece(token)
    }

    fn tokenize(&self, text: &str) -> Vec<u32> {
        LanguageModel::tokenize(self, text)
    }
}

impl LanguageModel {
    /// Loads the model for CPU inference.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_on(path, None)
    }

    /// Loads the model onto `gpu` (every layer), or for the CPU.
    pub fn load_on(path: &Path, gpu: Option<&Device>) -> Result<Self> {
        let params = match gpu {
            None => LlamaModelParams::default().with_n_gpu_layers(0),
            Some(d) => LlamaModelParams::default()
                .with_n_gpu_layers(u32::MAX)
                .with_split_mode(llama_cpp_2::model::params::LlamaSplitMode::None)
                .with_devices(&[d.index])
                .map_err(|e| Error::Llama(format!("choosing {}: {e}", d.name)))?,
        };
        let mut lm = Self::load_with(path, params)?;
        lm.gpu = gpu.cloned();
        Ok(lm)
    }

    /// Loads only the tokenizer: enough to segment and tokenize, no weights read.
    pub fn load_vocab_only(path: &Path) -> Result<Self> {
        Self::load_with(path, LlamaModelParams::default().with_vocab_only(true))
    }

    fn load_with(path: &Path, params: LlamaModelParams) -> Result<Self> {
        let backend = backend()?;
        let _turn = CREATE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let model = LlamaModel::load_from_file(backend, path, &params)
            .map_err(|e| Error::Llama(format!("loading {}: {e}", path.display())))?;
        let n_vocab = usize::try_from(model.n_vocab())
            .ok()
            .filter(|&n| n > 1 && n <= (crate::entropy::quantize::TOTAL / 2) as usize)
            .ok_or_else(|| Error::Llama("model has an unusable vocabulary size".into()))?;
        Ok(Self {
            model,
            n_vocab,
            gpu: None,
        })
    }

    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    /// Tokens of `text` as plain text: no BOS/EOS added, special-token text not parsed.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), false, false)
            .into_iter()
            .map(|t| t.0 as u32)
            .collect()
    }

    /// The bytes a token stands for in plain text (control tokens render as nothing).
    pub fn piece(&self, token: u32) -> Vec<u8> {
        self.model
            .vocab()
            .token_to_piece(LlamaToken(token as i32), false, None)
    }

    /// Backend, instruction set and library that produce the logits: two builds with the same
    /// fingerprint compute the same bits.
    pub fn numerics_fingerprint(&self) -> String {
        self.gpu
            .as_ref()
            .map_or_else(numerics_fingerprint, Device::numerics_fingerprint)
    }

    /// A runner for groups of up to `schedule.seqs` chunks, with its own llama.cpp context.
    pub fn group_runner(&self, schedule: &Schedule, threads: usize) -> Result<GroupRunner<'_>> {
        let seqs = schedule.seqs;
        let n_ctx = schedule
            .window
            .checked_mul(seqs)
            .and_then(NonZeroU32::new)
            .ok_or_else(|| Error::InvalidOption("context size out of range".into()))?;
        let threads = threads.clamp(1, 512) as i32;
        let params = LlamaContextParams::default()
            .with_n_ctx(Some(n_ctx))
            .with_n_batch(seqs.max(1))
            .with_n_ubatch(seqs.max(1))
            .with_n_seq_max(seqs)
            .with_kv_unified(false)
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED)
            // A CPU model computes on the CPU only: a GPU build would otherwise move large
            // batches' matrix products to the GPU, and the numerics with them.
            .with_op_offload(self.gpu.is_some())
            .with_offload_kqv(self.gpu.is_some());
        let _turn = CREATE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let ctx = self
            .model
            .new_context(backend()?, params)
            .map_err(|e| Error::Llama(format!("creating a context of {n_ctx} tokens: {e}")))?;
        let batch = LlamaBatch::new(seqs as usize, 1);
        Ok(GroupRunner {
            ctx,
            batch,
            schedule: *schedule,
            position: Vec::new(),
        })
    }
}

/// Backend, instruction set and library version of this build's logits on the CPU.
pub fn numerics_fingerprint() -> String {
    format!("CPU; {}; {}", isa_target(), LLAMA_CPP_BINDING)
}

/// The instruction-set part of the numerics fingerprint: the CPU features llama.cpp's kernels
/// were compiled for (from `llama_print_system_info`), e.g. `x86_64 AVX AVX2 F16C FMA SSE3`.
fn isa_target() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string owned by llama.cpp.
    let info = unsafe { std::ffi::CStr::from_ptr(llama_cpp_sys_2::llama_print_system_info()) };
    let info = info.to_string_lossy();
    // Sections look like `CPU : SSE3 = 1 | AVX = 1 | ... | CUDA : ARCHS = 890 | ...`: only
    // the CPU's features describe the CPU's numerics (a GPU build lists its backend too).
    let mut in_cpu = false;
    let mut features: Vec<&str> = info
        .split('|')
        .filter_map(|item| {
            let (name, value) = item.split_once('=')?;
            if let Some((section, _)) = name.split_once(':') {
                in_cpu = section.trim() == "CPU";
            }
            if !in_cpu {
                return None;
            }
            let name = name.rsplit(':').next()?.trim();
            (value.trim() == "1" && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .then_some(name)
        })
        .filter(|name| !matches!(*name, "OPENMP" | "REPACK" | "LLAMAFILE"))
        .collect();
    features.sort_unstable();
    features.dedup();
    format!("{} {}", std::env::consts::ARCH, features.join(" "))
}

/// One llama.cpp context that decodes groups of chunks in lockstep.
pub struct GroupRunner<'m> {
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    schedule: Schedule,
    /// Each sequence's next position in the context.
    position: Vec<u32>,
}

/// Runs groups through `predict::lockstep::run_group`.
impl LockstepModel for GroupRunner<'_> {
    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn start(&mut self, seqs: usize) -> Result<()> {
        self.ctx.clear_kv_cache();
        self.position.clear();
        self.position.resize(seqs, 0);
        Ok(())
    }

    fn step<R>(
        &mut self,
        feed: &[(usize, u32)],
        use_logits: impl FnOnce(&[&[f32]]) -> Result<R>,
    ) -> Result<R> {
        let Schedule {
            window,
            slide,
            sinks,
            ..
        } = self.schedule;
        self.batch.clear();
        for &(i, token) in feed {
            if self.position[i] == window {
                let seq = i as i32;
                let kv_err = |e| Error::Llama(format!("sliding the KV window: {e}"));
                self.ctx
                    .kv_cache_seq_rm(seq, Some(sinks), Some(sinks + slide))
                    .map_err(kv_err)?;
                self.ctx
                    .kv_cache_seq_add(seq, Some(sinks + slide), Some(window), -(slide as i32))
                    .map_err(kv_err)?;
                self.position[i] -= slide;
            }
            self.batch
                .add(
                    LlamaToken(token as i32),
                    self.position[i] as i32,
                    &[i as i32],
                    true,
                )
                .map_err(|e| Error::Llama(format!("building a batch: {e}")))?;
            self.position[i] += 1;
        }
        self.ctx
            .decode(&mut self.batch)
            .map_err(|e| Error::Llama(format!("decode: {e}")))?;
        // GPU backends return before the graph has run; wait here so that the model's time is
        // counted as the model's, not as the coder's.
        self.ctx.synchronize();
        let ctx = &self.ctx;
        let logits: Vec<&[f32]> = (0..feed.len())
            .map(|slot| ctx.get_logits_ith(slot as i32))
            .collect();
        use_logits(&logits)
    }
}
