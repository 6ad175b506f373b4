//! Partial output: published by a running handler, seen by subscribers before the result.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use jobs_core::{JobArgs, JobContext, JobError, ManagerConfig, MemoryStore, QueueManager};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Serialize, Deserialize)]
struct Spell {
    word: String,
}

impl JobArgs for Spell {
    const KIND: &'static str = "spell";
    type Output = String;
}

async fn spell(job: Spell, ctx: JobContext) -> Result<String, JobError> {
    let partials = ctx.partials();
    for c in job.word.chars() {
        partials.send(json!({ "letter": c.to_string() }));
        tokio::task::yield_now().await;
    }
    Ok(job.word)
}

#[tokio::test]
async fn partials_reach_subscribers_before_the_result() {
    let m = QueueManager::new(Arc::new(MemoryStore::new()), ManagerConfig::default());
    m.register(spell);
    m.start().await.unwrap();
    let mut rx = m.subscribe_partials();
    let h = m.enqueue(Spell { word: "abc".into() }).await.unwrap();
    let id = h.id();
    assert_eq!(h.wait().await.unwrap(), "abc");
    let mut letters = String::new();
    while let Ok(p) = rx.try_recv() {
        assert_eq!(p.job_id, id);
        letters.push_str(p.data["letter"].as_str().unwrap());
    }
    assert_eq!(
        letters, "abc",
        "every partial, in order, before the job finished"
    );
    m.stop().await.unwrap();
}
