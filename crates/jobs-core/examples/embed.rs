//! Embedding jobs-core: a store, two handlers, start, submit, wait, stop.
//! Run with `cargo run -p jobs-core --example embed`.
use std::sync::Arc;

use jobs_core::{Job, JobContext, JobError, JobResult, ManagerConfig, MemoryStore, NewJob};
use jobs_core::{QueueManager, lanes};
use serde_json::json;

async fn count_words(job: Job, ctx: JobContext) -> Result<JobResult, JobError> {
    ctx.progress(0.5, "counting");
    let text = job.params["text"].as_str().unwrap_or_default();
    Ok(JobResult(
        json!({ "words": text.split_whitespace().count() }),
    ))
}

async fn slow_square(job: Job, ctx: JobContext) -> Result<JobResult, JobError> {
    let n = job.params["n"]
        .as_i64()
        .ok_or(JobError::new("ValidationError", "n missing"))?;
    tokio::select! {
        _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
        _ = ctx.cancelled() => return Err(JobError::cancelled()),
    }
    Ok(JobResult(json!({ "square": n * n })))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manager = QueueManager::new(Arc::new(MemoryStore::new()), ManagerConfig::default());
    manager.register_handler("count_words", lanes::IO, count_words);
    manager.register_handler("slow_square", lanes::HEAVY, slow_square);
    manager.start().await?;
    let a = manager
        .enqueue(NewJob::new("count_words", json!({"text": "to be or not"})))
        .await?;
    let b = manager
        .enqueue(NewJob::new("slow_square", json!({"n": 12})))
        .await?;
    for id in [a.id, b.id] {
        let job = manager.wait_for(id).await?;
        println!(
            "{} {} {}",
            job.job_type,
            job.status,
            job.result.unwrap_or_default()
        );
    }
    manager.stop().await?;
    Ok(())
}
