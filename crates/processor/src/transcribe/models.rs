//! The model manager: which whisper models a node can run, which are loaded, and when they
//! are loaded and unloaded.
//!
//! Models are the `ggml-*.bin` files of one directory (plus files configured by path). None
//! is loaded at start: a model loads on the first job that asks for it (that job reports the
//! stage `loading_model`), stays loaded while the loaded models fit the memory budget (the
//! least recently used model that no job is using is unloaded to make room), and is unloaded
//! after it has been idle for the idle time. A model a job is using is never unloaded; a
//! budget smaller than the models in use is exceeded rather than failing the job (logged).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use super::ModelStatus;
use super::whisper::{WhisperConfig, WhisperModel};
use crate::model::{InstalledModel, installed, name_of};
use crate::progress::{ProcessorError, Progress};

/// How a [`ModelManager`] finds, loads and unloads models.
#[derive(Debug, Clone)]
pub struct ModelManagerConfig {
    /// The model directory: every `ggml-NAME.bin` in it is the model `NAME`.
    pub dir: PathBuf,
    /// Model files outside the directory, by path (named like the files of the directory).
    pub files: Vec<PathBuf>,
    /// The Silero VAD model file; `None`: the directory's (see
    /// [`silero::resolve_vad`](crate::model::silero::resolve_vad)).
    pub vad_model: Option<PathBuf>,
    /// The model of jobs that name none.
    pub default_model: String,
    /// Loaded models stay within this many bytes (their files' sizes); `None`: no limit.
    pub memory_budget: Option<u64>,
    /// A model no job has used for this long is unloaded; `None`: never.
    pub idle_unload: Option<Duration>,
    /// Flash attention (see [`WhisperConfig::flash_attn`]).
    pub flash_attn: bool,
    /// Use the GPU when built with `cuda` or `vulkan`.
    pub use_gpu: bool,
}

impl ModelManagerConfig {
    /// Models of `dir`, `default_model` by default, no budget, no idle unloading.
    pub fn new(dir: impl Into<PathBuf>, default_model: impl Into<String>) -> Self {
        let probe = WhisperConfig::new("");
        ModelManagerConfig {
            dir: dir.into(),
            files: Vec::new(),
            vad_model: None,
            default_model: default_model.into(),
            memory_budget: None,
            idle_unload: None,
            flash_attn: probe.flash_attn,
            use_gpu: probe.use_gpu,
        }
    }
}

struct Slot {
    model: Arc<WhisperModel>,
    bytes: u64,
    last_used: Instant,
    last_used_at: SystemTime,
    /// Loaded by [`ModelManager::with_loaded`]: never unloaded.
    pinned: bool,
}

/// Finds, loads and unloads whisper models (see the module docs).
pub struct ModelManager {
    cfg: ModelManagerConfig,
    loaded: Mutex<HashMap<String, Slot>>,
    /// When each model was last used, kept after it is unloaded.
    used: Mutex<HashMap<String, SystemTime>>,
    /// One load at a time: loads are memory- and disk-heavy, and two jobs asking for the
    /// same model share one load.
    loading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ModelManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelManager")
            .field("cfg", &self.cfg)
            .field("loaded", &self.loaded_names())
            .finish_non_exhaustive()
    }
}

fn unknown(name: &str, have: &[InstalledModel]) -> ProcessorError {
    let names: Vec<&str> = have.iter().map(|m| m.name.as_str()).collect();
    ProcessorError::UnknownModel(if names.is_empty() {
        format!(
            "the model '{name}' is not installed, and no model is (run `mediajobs model fetch`)"
        )
    } else {
        format!(
            "the model '{name}' is not installed; installed: {}",
            names.join(", ")
        )
    })
}

impl ModelManager {
    /// A manager; nothing is loaded yet.
    pub fn new(cfg: ModelManagerConfig) -> Arc<Self> {
        Arc::new(ModelManager {
            cfg,
            loaded: Mutex::new(HashMap::new()),
            used: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
        })
    }

    /// A manager of one model already loaded (kept loaded): what a single-model embedding
    /// needs.
    pub fn with_loaded(model: Arc<WhisperModel>) -> Arc<Self> {
        let path = model.path().to_owned();
        let name = name_of(&path).unwrap_or_else(|| "default".to_owned());
        let mut cfg = ModelManagerConfig::new(
            path.parent().map(|p| p.to_owned()).unwrap_or_default(),
            name.clone(),
        );
        cfg.files.push(path);
        let m = Self::new(cfg);
        let bytes = model.size_bytes();
        m.lock_loaded().insert(
            name,
            Slot {
                model,
                bytes,
                last_used: Instant::now(),
                last_used_at: SystemTime::now(),
                pinned: true,
            },
        );
        m
    }

    /// The configuration.
    pub fn config(&self) -> &ModelManagerConfig {
        &self.cfg
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The installed models: the directory's files and the configured ones, by name (a
    /// configured file wins over a directory file of the same name).
    pub fn available(&self) -> Vec<InstalledModel> {
        let mut by_name: HashMap<String, InstalledModel> = installed(&self.cfg.dir)
            .into_iter()
            .map(|m| (m.name.clone(), m))
            .collect();
        for path in &self.cfg.files {
            let Some(name) = name_of(path)
                .or_else(|| path.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
            else {
                continue;
            };
            let Ok(meta) = std::fs::metadata(path) else {
                continue;
            };
            if let Ok(info) = crate::model::ggml::read_info(path) {
                by_name.insert(
                    name.clone(),
                    InstalledModel {
                        name,
                        path: path.clone(),
                        size_bytes: meta.len(),
                        info,
                    },
                );
            }
        }
        let mut v: Vec<InstalledModel> = by_name.into_values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The model a job runs on: `name`, or the default; `UnknownModel` (listing the installed
    /// ones) when it is not installed.
    pub fn resolve(&self, name: Option<&str>) -> Result<InstalledModel, ProcessorError> {
        let name = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.cfg.default_model);
        let have = self.available();
        match have.iter().find(|m| m.name == name) {
            Some(m) => Ok(m.clone()),
            None => Err(unknown(name, &have)),
        }
    }

    /// The loaded models' names.
    pub fn loaded_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock_loaded().keys().cloned().collect();
        v.sort();
        v
    }

    /// Every installed model with its state.
    pub fn status(&self) -> Vec<ModelStatus> {
        let loaded = self.lock_loaded();
        let used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.available()
            .into_iter()
            .map(|m| ModelStatus {
                loaded: loaded.contains_key(&m.name),
                last_used: loaded
                    .get(&m.name)
                    .map(|s| s.last_used_at)
                    .or_else(|| used.get(&m.name).copied()),
                default: m.name == self.cfg.default_model,
                multilingual: m.info.multilingual(),
                size_class: m.info.size_class(),
                weights: m.info.weights,
                name: m.name,
                path: m.path,
                size_bytes: m.size_bytes,
            })
            .collect()
    }

    fn touch(&self, name: &str) -> Option<Arc<WhisperModel>> {
        let mut loaded = self.lock_loaded();
        let slot = loaded.get_mut(name)?;
        slot.last_used = Instant::now();
        slot.last_used_at = SystemTime::now();
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), slot.last_used_at);
        Some(slot.model.clone())
    }

    /// The loaded model `m`, loading it first if needed (reporting the stage
    /// `loading_model`), and unloading least recently used models to keep within the budget.
    pub async fn get(
        &self,
        m: &InstalledModel,
        progress: &Progress,
    ) -> Result<Arc<WhisperModel>, ProcessorError> {
        if let Some(model) = self.touch(&m.name) {
            return Ok(model);
        }
        progress.report(0.0, "loading_model");
        let _one_load = self.loading.lock().await;
        if let Some(model) = self.touch(&m.name) {
            return Ok(model); // loaded by the job we waited for
        }
        self.make_room(m.size_bytes);
        let mut wc = WhisperConfig::new(&m.path);
        wc.flash_attn = self.cfg.flash_attn;
        wc.use_gpu = self.cfg.use_gpu;
        let started = Instant::now();
        let model = tokio::task::spawn_blocking(move || WhisperModel::load(&wc))
            .await
            .map_err(|e| ProcessorError::Internal(format!("model load task failed: {e}")))??;
        tracing::info!(model = %m.name, seconds = started.elapsed().as_secs_f64(), "whisper model loaded on demand");
        let now = SystemTime::now();
        self.lock_loaded().insert(
            m.name.clone(),
            Slot {
                model: model.clone(),
                bytes: m.size_bytes,
                last_used: Instant::now(),
                last_used_at: now,
                pinned: false,
            },
        );
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(m.name.clone(), now);
        Ok(model)
    }

    /// Unloads least recently used idle models until `incoming` more bytes fit the budget.
    fn make_room(&self, incoming: u64) {
        let Some(budget) = self.cfg.memory_budget else {
            return;
        };
        let mut loaded = self.lock_loaded();
        loop {
            let total: u64 = loaded.values().map(|s| s.bytes).sum();
            if total + incoming <= budget {
                return;
            }
            let victim = loaded
                .iter()
                .filter(|(_, s)| !s.pinned && Arc::strong_count(&s.model) == 1)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(n, _)| n.clone());
            match victim {
                Some(n) => {
                    loaded.remove(&n);
                    tracing::info!(model = %n, budget, "whisper model unloaded to make room");
                }
                None => {
                    tracing::warn!(
                        budget,
                        total,
                        incoming,
                        "models in use exceed MEDIAJOBS_MODEL_MEMORY; loading anyway"
                    );
                    return;
                }
            }
        }
    }

    /// Unloads the models no job has used for the idle time (none in use). Returns their
    /// names.
    pub fn unload_idle(&self) -> Vec<String> {
        let Some(idle) = self.cfg.idle_unload else {
            return Vec::new();
        };
        let mut loaded = self.lock_loaded();
        let gone: Vec<String> = loaded
            .iter()
            .filter(|(_, s)| {
                !s.pinned && Arc::strong_count(&s.model) == 1 && s.last_used.elapsed() >= idle
            })
            .map(|(n, _)| n.clone())
            .collect();
        for n in &gone {
            loaded.remove(n);
            tracing::info!(model = %n, idle_secs = idle.as_secs(), "idle whisper model unloaded");
        }
        gone
    }

    /// Runs [`unload_idle`](Self::unload_idle) every quarter of the idle time (at least
    /// every second) until the manager is dropped. Needs a tokio runtime; does nothing
    /// without an idle time.
    pub fn spawn_idle_sweeper(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let idle = self.cfg.idle_unload?;
        let every = (idle / 4).clamp(Duration::from_millis(200), Duration::from_secs(60));
        let weak: Weak<Self> = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(m) = weak.upgrade() else { return };
                m.unload_idle();
            }
        }))
    }
}
