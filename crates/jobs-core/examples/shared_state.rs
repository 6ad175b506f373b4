//! Typed handlers with shared state, handed in the way axum hands out `State`: one value
//! registered with the handler and cloned into every run, no capture in a closure.
//! Run with `cargo run -p jobs-core --example shared_state`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jobs_core::{
    JobArgs, JobContext, JobError, ManagerConfig, MemoryStore, QueueManager, State, WaitError,
};
use serde::{Deserialize, Serialize};

/// What every run shares: a price list and a ledger the runs write to.
#[derive(Clone, Default)]
struct Shop {
    prices: Arc<HashMap<String, u64>>,
    ledger: Arc<Mutex<Vec<String>>>,
}

#[derive(Serialize, Deserialize)]
struct Invoice {
    customer: String,
    items: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Total {
    cents: u64,
}

impl JobArgs for Invoice {
    const KIND: &'static str = "invoice";
    type Output = Total;
}

async fn invoice(
    State(shop): State<Shop>,
    job: Invoice,
    ctx: JobContext,
) -> Result<Total, JobError> {
    let mut cents = 0;
    for (i, item) in job.items.iter().enumerate() {
        ctx.check_cancelled()?;
        let price = shop.prices.get(item).ok_or_else(|| {
            JobError::new("UnknownItem", format!("no price for '{item}'"))
                .with_details(serde_json::json!({ "item": item }))
        })?;
        cents += price;
        ctx.progress((i + 1) as f64 / job.items.len() as f64, "pricing");
    }
    shop.ledger
        .lock()
        .map_err(|_| JobError::internal_msg("ledger poisoned"))?
        .push(format!("{}: {cents}", job.customer));
    Ok(Total { cents })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shop = Shop {
        prices: Arc::new(HashMap::from([("tea".into(), 350), ("cake".into(), 420)])),
        ledger: Arc::default(),
    };
    let manager = QueueManager::new(Arc::new(MemoryStore::new()), ManagerConfig::default());
    manager.register_with_state(shop.clone(), invoice);
    manager.start().await?;

    let ok = manager
        .enqueue(Invoice {
            customer: "ada".into(),
            items: vec!["tea".into(), "cake".into()],
        })
        .await?;
    let bad = manager
        .enqueue(Invoice {
            customer: "bob".into(),
            items: vec!["caviar".into()],
        })
        .await?;
    println!("ada pays {:?}", ok.wait().await?);
    match bad.wait().await {
        Err(WaitError::Failed { error, .. }) => {
            println!(
                "bob's invoice failed: {} ({})",
                error.message(),
                error.code()
            )
        }
        other => return Err(format!("expected a failure, got {other:?}").into()),
    }
    println!(
        "ledger: {:?}",
        shop.ledger.lock().map(|l| l.clone()).unwrap_or_default()
    );
    manager.stop().await?;
    Ok(())
}
