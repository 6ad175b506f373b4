//! # mediajobs-server
//!
//! The mediajobs server as a library: [`Config`] (settings as data, layered by figment) and
//! [`ServerBuilder`], which assembles the store, the processor backends, the queue, the job
//! handlers and the HTTP router. The `mediajobs` binary is a thin user of it; a Rust
//! application can start the same server with its own [`Transcriber`], [`Converter`],
//! [`MediaProbe`] or [`SubtitleRefiner`]:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn demo(my_transcriber: Arc<dyn mediajobs_server::Transcriber>) -> Result<(), mediajobs_server::ServerError> {
//! let config = mediajobs_server::Config::load(None)?;
//! let server = mediajobs_server::ServerBuilder::new(config)
//!     .transcriber(my_transcriber)
//!     .build()
//!     .await?;
//! let bound = server.bind().await?;
//! println!("listening on http://{}", bound.local_addr());
//! bound.serve(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! `crates/server/examples/custom_transcriber.rs` runs a whole server with a transcriber of
//! its own and drives it over HTTP.

mod config;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use jobs_core::{CancellationToken, ManagerConfig, ManagerError, QueueManager, lanes};
use mediajobs_api::{ApiConfig, AppState, Metrics};
use mediajobs_jobs::{MediaStore, Services, register_handlers};
use mediajobs_persistence::{ConnectOptions, Database, DbError};
use mediajobs_processor::ProcessorError;
use mediajobs_processor::llm::{LlmRefiner, Providers};
use mediajobs_processor::media::{Gst, GstConfig};
use mediajobs_processor::transcribe::{
    ModelManager, ModelManagerConfig, RemoteTranscriber, RemoteTranscriberConfig,
    WhisperTranscriber,
};

pub use config::{
    Config, ConfigError, LlmProviderSettings, SETTINGS, TranscriptionBackend, parse_duration,
};
pub use mediajobs_processor::llm::SubtitleRefiner;
pub use mediajobs_processor::media::{Converter, MediaProbe};
pub use mediajobs_processor::transcribe::Transcriber;

/// Why the server could not start or stopped with an error. Messages name the setting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The data directory could not be used.
    #[error("MEDIAJOBS_DATA_DIR: cannot use {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A processor backend could not start (GStreamer, LLM providers).
    #[error(transparent)]
    Backend(#[from] ProcessorError),
    /// The queue failed to start or stop.
    #[error(transparent)]
    Queue(#[from] ManagerError),
    /// The listen address could not be bound.
    #[error("MEDIAJOBS_BIND: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
}

/// Assembles a server from a [`Config`]; each backend the configuration would make can be
/// replaced by one of your own.
pub struct ServerBuilder {
    config: Config,
    transcriber: Option<Arc<dyn Transcriber>>,
    converter: Option<Arc<dyn Converter>>,
    probe: Option<Arc<dyn MediaProbe>>,
    refiner: Option<Arc<dyn SubtitleRefiner>>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("custom_transcriber", &self.transcriber.is_some())
            .field("custom_converter", &self.converter.is_some())
            .field("custom_probe", &self.probe.is_some())
            .field("custom_refiner", &self.refiner.is_some())
            .finish()
    }
}

impl ServerBuilder {
    /// A builder with the backends the configuration names (whisper.cpp or the remote
    /// service, GStreamer, the configured LLM providers).
    pub fn new(config: Config) -> Self {
        ServerBuilder {
            config,
            transcriber: None,
            converter: None,
            probe: None,
            refiner: None,
        }
    }

    /// Transcribes with `t` instead of the configured backend. A backend that says it is
    /// not local ([`Transcriber::is_local`]) runs in the `io` lane, else in `heavy`.
    pub fn transcriber(mut self, t: Arc<dyn Transcriber>) -> Self {
        self.transcriber = Some(t);
        self
    }

    /// Converts to MP4 with `c` instead of GStreamer.
    pub fn converter(mut self, c: Arc<dyn Converter>) -> Self {
        self.converter = Some(c);
        self
    }

    /// Probes uploads with `p` instead of GStreamer.
    pub fn probe(mut self, p: Arc<dyn MediaProbe>) -> Self {
        self.probe = Some(p);
        self
    }

    /// Fixes subtitles with `r` instead of the configured LLM providers.
    pub fn refiner(mut self, r: Arc<dyn SubtitleRefiner>) -> Self {
        self.refiner = Some(r);
        self
    }

    /// Opens the data directory and the database (migrating it), starts the backends and
    /// the queue (recovering interrupted jobs), and builds the router.
    pub async fn build(self) -> Result<Server, ServerError> {
        let cfg = self.config;
        let tokens = mediajobs_api::parse_tokens(&cfg.api_tokens)
            .map_err(|e| ConfigError(format!("MEDIAJOBS_API_TOKENS: {e}")))?;
        if !mediajobs_persistence::valid_profile_id(&cfg.default_profile) {
            return Err(ConfigError(format!(
                "MEDIAJOBS_DEFAULT_PROFILE: '{}' is not a profile id (1-64 of [A-Za-z0-9_-])",
                cfg.default_profile
            ))
            .into());
        }
        let data_err = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| ServerError::DataDir { path, source }
        };
        std::fs::create_dir_all(&cfg.data_dir).map_err(data_err(&cfg.data_dir))?;
        let opts = ConnectOptions {
            pg_ca_file: cfg.database_ca_file.clone(),
            ..Default::default()
        };
        let db = Database::connect(&cfg.database_url(), opts).await?;
        let media_dir = cfg.data_dir.join("media");
        let media = MediaStore::open(&media_dir, &cfg.node_id()).map_err(data_err(&media_dir))?;

        // GStreamer is started only when a backend of the configuration needs it.
        let needs_gst =
            self.probe.is_none() || self.converter.is_none() || self.transcriber.is_none();
        let gst = if needs_gst {
            Some(Arc::new(Gst::new(GstConfig::default())?))
        } else {
            None
        };
        let probe: Arc<dyn MediaProbe> = match (self.probe, &gst) {
            (Some(p), _) => p,
            (None, Some(g)) => g.clone(),
            (None, None) => missing_gst()?,
        };
        let converter: Arc<dyn Converter> = match (self.converter, &gst) {
            (Some(c), _) => c,
            (None, Some(g)) => g.clone(),
            (None, None) => missing_gst()?,
        };
        let transcriber = match (self.transcriber, &gst) {
            (Some(t), _) => Ok(t),
            (None, Some(g)) => configured_transcriber(&cfg, g).await,
            (None, None) => missing_gst()?,
        };
        if let Err(why) = &transcriber {
            tracing::warn!(%why, "transcription is unavailable: generate_srt and transcribe will be refused");
        }
        let refiner: Arc<dyn SubtitleRefiner> = match self.refiner {
            Some(r) => r,
            None => {
                let providers = Providers::new(cfg.llm_providers()?)?;
                tracing::info!(providers = ?providers.names(), "LLM providers");
                Arc::new(LlmRefiner::new(Arc::new(providers)))
            }
        };

        let node_id = cfg.node_id();
        let mut mcfg = ManagerConfig::default()
            .node_id(node_id.clone())
            .lane(lanes::HEAVY, cfg.heavy_concurrency)
            .lane(lanes::IO, cfg.io_concurrency)
            .interrupt_policy(cfg.interrupted_jobs)
            .max_attempts(cfg.max_attempts)
            .lease(cfg.lease())
            .grace_period(cfg.grace())
            .retry(
                jobs_core::RetryPolicy::default()
                    .base(std::time::Duration::from_millis(cfg.retry_base_ms.max(1))),
            );
        mcfg.retention = cfg.retention().map_err(ConfigError)?;
        mcfg.maintenance_interval = cfg.maintenance_interval().map_err(ConfigError)?;
        let manager = Arc::new(QueueManager::new(Arc::new(db.clone()), mcfg));
        let speed = Arc::new(mediajobs_jobs::SpeedBook::new(
            cfg.model_name(),
            mediajobs_jobs::TimeoutPolicy {
                factor: cfg.timeout_factor,
                floor: std::time::Duration::from_secs(cfg.timeout_floor_secs),
                ..Default::default()
            },
        ));
        let services = Arc::new(Services {
            db,
            media,
            probe,
            converter,
            transcriber,
            refiner,
            io_concurrency: cfg.io_concurrency,
            speed,
        });
        register_handlers(&manager, services.clone());
        let metrics = Arc::new(Metrics::new());
        metrics.set_build_info(
            env!("CARGO_PKG_VERSION"),
            if cfg.database_url().starts_with("postgres") {
                "postgres"
            } else {
                "sqlite"
            },
            match cfg.transcription_backend {
                config::TranscriptionBackend::Local => "local",
                config::TranscriptionBackend::Remote => "remote",
            },
        );
        let webhooks = cfg.webhooks();
        if let Some(policy) = &webhooks {
            manager.set_webhook_sender(Arc::new(mediajobs_api::MeteredWebhookSender::new(
                mediajobs_api::HttpWebhookSender::new(policy.clone()),
                metrics.clone(),
            )));
        }
        if cfg.retention_files {
            manager.set_prune_hook(prune_files_hook(services.clone()));
        }
        let report = manager.start().await?;
        tracing::info!(?report, "queue started");
        let observer = metrics.spawn_observer(&manager, cfg.model_name());
        let shutdown = CancellationToken::new();
        let state = AppState {
            services,
            manager: manager.clone(),
            config: Arc::new(ApiConfig {
                max_upload_bytes: cfg.max_upload_bytes,
                tokens,
                default_profile: cfg.default_profile.clone(),
                model_name: cfg.model_name(),
                webhooks,
            }),
            metrics,
            shutdown: shutdown.clone(),
            link_key: mediajobs_api::LinkKey::random(),
            backlog: Default::default(),
        };
        Ok(Server {
            config: cfg,
            node_id,
            state,
            observer,
        })
    }
}

/// With `MEDIAJOBS_RETENTION_FILES=true`: the files a pruned page of jobs generated (their
/// results' `srt_file_id` / `file_id`) are deleted too, unless a job still uses them (the
/// file's delete refuses while an active job references it; that file is kept).
fn prune_files_hook(svc: Arc<Services>) -> jobs_core::PruneHook {
    Arc::new(move |jobs: Vec<jobs_core::Job>| {
        let svc = svc.clone();
        Box::pin(async move {
            for j in jobs {
                let (Some(profile), Some(result)) = (j.profile_id.as_deref(), j.result.as_ref())
                else {
                    continue;
                };
                for key in ["srt_file_id", "file_id"] {
                    let Some(id) = result
                        .get(key)
                        .and_then(|v| v.as_str())
                        .and_then(|s| uuid::Uuid::parse_str(s).ok())
                    else {
                        continue;
                    };
                    match svc.db.get_file(profile, id).await {
                        Ok(Some(f)) if f.origin != mediajobs_persistence::FileOrigin::Uploaded => {
                            match svc.db.delete_file(profile, id).await {
                                Ok(del) => svc.media.remove(&del.file.storage_key).await,
                                Err(e) => {
                                    tracing::info!(file_id = %id, error = %e, "retention kept a generated file")
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(file_id = %id, error = %e, "retention could not read a file")
                        }
                    }
                }
            }
        }) as futures::future::BoxFuture<'static, ()>
    })
}

/// GStreamer starts whenever a backend slot is not custom, so this answer is never given; it
/// keeps the slots' matches total without a panic.
fn missing_gst<T>() -> Result<T, ServerError> {
    Err(ProcessorError::Internal("no GStreamer for a backend that needs it".into()).into())
}

async fn configured_transcriber(
    cfg: &Config,
    gst: &Arc<Gst>,
) -> Result<Arc<dyn Transcriber>, String> {
    match cfg.transcription_backend {
        TranscriptionBackend::Local => {
            let threads = cfg.whisper_threads();
            let mut mc = ModelManagerConfig::new(cfg.models_dir(), cfg.model_name());
            if let Some(path) = &cfg.whisper_model {
                if !path.is_file() {
                    return Err(format!(
                        "whisper model not found at {} (run `mediajobs model fetch`)",
                        path.display()
                    ));
                }
                mc.files.push(path.clone());
            }
            if let Some(path) = &cfg.vad_model {
                // A file that is not a VAD model would otherwise turn VAD off without a word.
                mediajobs_processor::model::silero::read_vad_info(path).map_err(|e| {
                    format!("MEDIAJOBS_VAD_MODEL: {e} (run `mediajobs model fetch silero-vad`)")
                })?;
                mc.vad_model = Some(path.clone());
            }
            mc.memory_budget = cfg
                .model_memory()
                .map_err(|e| format!("MEDIAJOBS_MODEL_MEMORY: {e}"))?;
            mc.idle_unload = cfg.model_idle();
            let mc_use_gpu = mc.use_gpu;
            let models = ModelManager::new(mc);
            // The default model loads now (a node that says it is ready can run a job at
            // once, and a broken file is found at start); the others when a job asks.
            let default = models.resolve(None).map_err(|e| e.to_string())?;
            models
                .get(&default, &mediajobs_processor::no_progress())
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(
                default = %default.name,
                installed = ?models.available().iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
                build = mediajobs_processor::transcribe::backend(),
                compute = %mediajobs_processor::transcribe::compute_device(mc_use_gpu),
                devices = ?mediajobs_processor::model::ggml::devices().iter().map(|d| format!("{} ({})", d.name, d.description)).collect::<Vec<_>>(),
                concurrency = cfg.heavy_concurrency,
                threads_per_job = threads,
                "whisper models"
            );
            models.spawn_idle_sweeper();
            Ok(Arc::new(WhisperTranscriber::with_manager(
                models,
                gst.clone(),
                threads,
                cfg.heavy_concurrency,
            )) as Arc<dyn Transcriber>)
        }
        TranscriptionBackend::Remote => {
            let base_url = cfg.transcribe_base_url.clone().unwrap_or_default();
            let mut rc = RemoteTranscriberConfig::new(&base_url, cfg.transcribe_api_key.clone());
            rc.model = cfg.transcribe_model.clone();
            rc.max_concurrency = cfg.io_concurrency;
            RemoteTranscriber::new(rc, gst.clone())
                .map(|t| Arc::new(t) as Arc<dyn Transcriber>)
                .map_err(|e| format!("MEDIAJOBS_TRANSCRIBE_BASE_URL: {e}"))
        }
    }
}

/// A built server: the queue runs; HTTP is not bound yet.
pub struct Server {
    config: Config,
    node_id: String,
    state: AppState,
    observer: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("node_id", &self.node_id)
            .field("bind", &self.config.bind)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// The queue (to enqueue jobs from Rust, subscribe to events, …).
    pub fn manager(&self) -> &Arc<QueueManager> {
        &self.state.manager
    }

    /// The media job services (database, media, backends).
    pub fn services(&self) -> &Arc<Services> {
        &self.state.services
    }

    /// The HTTP router, to serve it yourself or nest it in a larger app.
    pub fn router(&self) -> axum::Router {
        mediajobs_api::router(self.state.clone())
    }

    /// Binds the configured address.
    pub async fn bind(self) -> Result<BoundServer, ServerError> {
        let addr = self.config.bind;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        self.bind_listener(listener)
    }

    /// Serves on a listener of your own (e.g. bound to port 0).
    pub fn bind_listener(
        self,
        listener: tokio::net::TcpListener,
    ) -> Result<BoundServer, ServerError> {
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: self.config.bind,
            source,
        })?;
        Ok(BoundServer {
            server: self,
            listener,
            addr,
        })
    }
}

/// A server with its listener, ready to serve.
#[derive(Debug)]
pub struct BoundServer {
    server: Server,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

impl BoundServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves HTTP until `shutdown` completes, then drains: event streams end, in-flight
    /// requests finish, and the queue stops (running jobs get the grace period).
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let BoundServer {
            server,
            listener,
            addr,
        } = self;
        tracing::info!(%addr, node = %server.node_id, "mediajobs listening");
        let app = server.router();
        let stop = server.state.shutdown.clone();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: draining HTTP, then stopping the queue");
                stop.cancel();
            })
            .await;
        let stopped = server.state.manager.stop().await;
        server.observer.abort();
        served.map_err(ServerError::Http)?;
        stopped?;
        tracing::info!("bye");
        Ok(())
    }
}
