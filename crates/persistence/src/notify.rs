//! Cross-node signals over PostgreSQL `LISTEN/NOTIFY`.
//!
//! Writers send `pg_notify('mediajobs_signals', payload)` inside their transaction, so a signal
//! is delivered only if the change committed. One dedicated (non-pooled) connection per process
//! listens; when it drops, the task reconnects with backoff, re-subscribes, and publishes
//! [`StoreSignal::Resync`] so the managers re-poll whatever they may have missed.

use std::path::PathBuf;
use std::sync::Weak;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures::StreamExt;
use jobs_core::StoreSignal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{Inner, NOTIFY_CHANNEL};

/// The JSON payload of a notification.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "k", rename_all = "snake_case")]
pub(crate) enum Payload {
    Jobs {
        lane: String,
    },
    Cancel {
        id: Uuid,
    },
    Changed {
        id: Uuid,
        o: String,
    },
    /// Several jobs changed in one statement (the claim sends one of these per claim).
    ChangedMany {
        ids: Vec<Uuid>,
        o: String,
    },
}

impl Payload {
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

async fn connect(url: &str, ca: Option<&std::path::Path>) -> Result<AsyncPgConnection, String> {
    let conn = if crate::tls::wants_tls(url).map_err(|e| e.to_string())? {
        crate::tls::establish_tls(url, ca).await
    } else {
        AsyncPgConnection::establish(url).await
    };
    conn.map_err(|e| e.to_string())
}

/// The listener task. Ends when the database is dropped.
pub(crate) async fn listen(inner: Weak<Inner>, url: String, ca: Option<PathBuf>) {
    // 100 ms doubling to 5 s, jittered, for as long as the database lives; reset once a
    // connection listens again.
    let reconnect = || {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .without_max_times()
            .with_jitter()
            .build()
    };
    let mut delays = reconnect();
    let mut first = true;
    loop {
        let mut conn = match connect(&url, ca.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY listener cannot connect; retrying");
                tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
                if inner.upgrade().is_none() {
                    return;
                }
                continue;
            }
        };
        if let Err(e) = conn
            .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
            .await
        {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
            continue;
        }
        delays = reconnect();
        {
            let Some(inner) = inner.upgrade() else { return };
            if !first {
                tracing::info!("NOTIFY listener reconnected");
                let _ = crate::db::measure_clock(&inner).await;
                let _ = inner.signals.send(StoreSignal::Resync);
            }
        }
        first = false;
        let stream = conn.notifications_stream();
        let mut stream = std::pin::pin!(stream);
        while let Some(n) = stream.next().await {
            let Some(inner) = inner.upgrade() else { return };
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "NOTIFY stream error");
                    break;
                }
            };
            let signal = match serde_json::from_str::<Payload>(&n.payload) {
                Ok(Payload::Jobs { lane }) => StoreSignal::JobsAvailable { lane },
                Ok(Payload::Cancel { id }) => StoreSignal::CancelRequested { job_id: id },
                Ok(Payload::Changed { id, o }) => {
                    if o == inner.instance {
                        continue; // our own change: the local manager already published it
                    }
                    StoreSignal::JobChanged { job_id: id }
                }
                Ok(Payload::ChangedMany { ids, o }) => {
                    if o != inner.instance {
                        for id in ids {
                            let _ = inner.signals.send(StoreSignal::JobChanged { job_id: id });
                        }
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, payload = %n.payload, "unknown NOTIFY payload");
                    continue;
                }
            };
            let _ = inner.signals.send(signal);
        }
        tracing::warn!("NOTIFY listener connection lost; reconnecting");
        if inner.upgrade().is_none() {
            return;
        }
        tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
    }
}
