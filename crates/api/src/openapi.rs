//! `GET /openapi.json`, generated from the handlers and types by utoipa.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::links::FileLink;
use crate::options::{
    ConvertOptions, ConvertPreset, GenerateSrtOptions, SubtitleFileFormat, TranscribeOptions,
};
use crate::profile::ProfileWebhook;
use crate::requests::{SubmitBatch, SubmitJob};
use crate::schemas::{
    BatchConvertType, BatchCounts, BatchFixSrtType, BatchGenerateSrtType, BatchTranscribeType,
    ConvertResult, ConvertType, DetectLanguageResult, FixSrtResult, FixSrtType, GenerateSrtResult,
    GenerateSrtType, JobEventName, JobResultBody, JobSseEvent, ReadingSpeedResult, SavedFormat,
    SubmitBatchBody, SubmitBatchConvert, SubmitBatchFixSrt, SubmitBatchGenerateSrt,
    SubmitBatchTranscribe, SubmitConvert, SubmitFixSrt, SubmitGenerateSrt, SubmitJobBody,
    SubmitTranscribe, TokenUsageResult, TranscribeResult, TranscribeType,
};
use crate::server_info::{
    JobTypeInfo, LaneInfo, ModelInfo, ModelList, ServerInfo, SpeedInfo, TranscriptionInfo,
};
use crate::views::{
    ErrorBody, ErrorEnvelope, FileDeleted, FileView, JobView, LastErrorView, TranscriptView,
    WebhookView,
};
use crate::{compat, files, jobs, links, profile, server_info};

/// The OpenAPI document of the HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(title = "mediajobs", description = "Long-running media jobs: transcription, SRT generation, MP4 conversion, LLM subtitle fixing."),
    paths(
        crate::health, crate::ready, server_info::server_info, server_info::models, profile::get_webhook, profile::put_webhook,
        links::create_link, links::follow_link,
        files::upload, files::list_files, files::get_file, files::file_content, files::delete_file,
        files::list_transcripts, files::get_transcript, files::delete_transcript,
        jobs::submit, jobs::submit_batch, jobs::list, jobs::get, jobs::children, jobs::cancel,
        jobs::retry, jobs::delete, jobs::job_events, jobs::profile_events,
        compat::openai::transcriptions, compat::openai::translations,
        compat::openai::list_models, compat::openai::get_model,
        compat::asr::asr, compat::asr::detect_language,
    ),
    components(schemas(FileView, JobView, TranscriptView, FileDeleted, ErrorEnvelope, ErrorBody, SubmitJob, SubmitBatch,
        FileLink, ServerInfo, LaneInfo, ModelList, ModelInfo, TranscriptionInfo, JobTypeInfo, SpeedInfo, LastErrorView, WebhookView, ProfileWebhook,
        TranscribeOptions, GenerateSrtOptions, ConvertOptions, SubtitleFileFormat, ConvertPreset,
        SubmitJobBody, SubmitBatchBody, SubmitGenerateSrt, SubmitTranscribe, SubmitConvert, SubmitFixSrt,
        SubmitBatchGenerateSrt, SubmitBatchTranscribe, SubmitBatchConvert, SubmitBatchFixSrt,
        GenerateSrtType, TranscribeType, ConvertType, FixSrtType,
        BatchGenerateSrtType, BatchTranscribeType, BatchConvertType, BatchFixSrtType,
        JobResultBody, GenerateSrtResult, TranscribeResult, ConvertResult, FixSrtResult, DetectLanguageResult,
        BatchCounts, ReadingSpeedResult, TokenUsageResult, SavedFormat, JobSseEvent, JobEventName)),
    modifiers(&BearerScheme),
    tags((name = "server", description = "What this server runs"), (name = "files"), (name = "transcripts"), (name = "jobs"),
        (name = "openai", description = "OpenAI's audio API (the official SDKs work against it)"),
        (name = "asr", description = "The whisper-asr-webservice API (Bazarr's Whisper provider, Subgen)"))
)]
pub struct ApiDoc;

/// The optional bearer scheme: with `MEDIAJOBS_API_TOKENS` set every route but `/health`,
/// `/ready`, `/openapi.json`, `/docs` and the dashboard needs `Authorization: Bearer TOKEN`;
/// without it, none does.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(
            "A token of MEDIAJOBS_API_TOKENS, bound to the profiles it reaches. Servers \
             without tokens need none."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
        doc.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new("bearer", Vec::<String>::new()),
        ]);
    }
}
