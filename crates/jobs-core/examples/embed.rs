//! Embedding jobs-core with typed jobs: arguments and outputs are Rust types, a store, two
//! handlers, start, enqueue, wait for the typed output, stop.
//! Run with `cargo run -p jobs-core --example embed`.
use std::sync::Arc;
use std::time::Duration;

use jobs_core::{JobArgs, JobContext, JobError, ManagerConfig, MemoryStore, QueueManager, lanes};
use serde::{Deserialize, Serialize};

/// Count the words of a text (cheap: the default `io` lane).
#[derive(Serialize, Deserialize)]
struct CountWords {
    text: String,
}

impl JobArgs for CountWords {
    const KIND: &'static str = "count_words";
    type Output = usize;
}

/// Square a number slowly (stands for heavy local work: the `heavy` lane, one at a time).
#[derive(Serialize, Deserialize)]
struct SlowSquare {
    n: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Square {
    square: i64,
}

impl JobArgs for SlowSquare {
    const KIND: &'static str = "slow_square";
    type Output = Square;
    fn lane() -> &'static str {
        lanes::HEAVY
    }
}

async fn count_words(job: CountWords, ctx: JobContext) -> Result<usize, JobError> {
    ctx.progress(0.5, "counting");
    Ok(job.text.split_whitespace().count())
}

async fn slow_square(job: SlowSquare, ctx: JobContext) -> Result<Square, JobError> {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        _ = ctx.cancelled() => return Err(JobError::cancelled()),
    }
    Ok(Square {
        square: job.n * job.n,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manager = QueueManager::new(Arc::new(MemoryStore::new()), ManagerConfig::default());
    manager.register(count_words);
    manager.register(slow_square);
    manager.start().await?;
    let words = manager
        .enqueue(CountWords {
            text: "to be or not".into(),
        })
        .await?;
    let square = manager.enqueue(SlowSquare { n: 12 }).await?;
    println!("count_words {} -> {}", words.id(), words.wait().await?);
    println!("slow_square {} -> {:?}", square.id(), square.wait().await?);
    manager.stop().await?;
    Ok(())
}
