//! Database calls of a running job that outlive a short outage: a PostgreSQL restart or
//! failover (a few seconds) must never fail a job. Transient errors
//! ([`DbError::is_transient`]) are retried with jittered exponential backoff while the job
//! still runs here; the lease rules alone decide who finishes it — if another node took the
//! job meanwhile, the heartbeat fires the job's token and the retrying stops.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use mediajobs_persistence::DbError;
use tokio_util::sync::CancellationToken;

/// How long one call keeps retrying before its error stands: longer than any restart or
/// failover we plan for, and longer than the default lease (30 s), so that an outage ends
/// either in success or in the lease rules, never in this error.
pub const DB_RETRY_WINDOW: Duration = Duration::from_secs(120);

/// What stopped a retried call.
#[derive(Debug)]
pub enum Retried {
    /// The error stands: not transient, or the retry window passed.
    Failed(DbError),
    /// The job's token fired (cancel, shutdown, lease lost) while waiting to retry.
    Cancelled,
}

/// Runs `op`, retrying transient database errors with backoff (50 ms doubling to 2 s,
/// jittered) for up to `window`, or until `token` fires.
pub async fn with_db_retries<T, F, Fut>(
    token: &CancellationToken,
    what: &str,
    window: Duration,
    mut op: F,
) -> Result<T, Retried>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbError>>,
{
    let started = tokio::time::Instant::now();
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .without_max_times()
        .with_jitter()
        .build();
    let mut attempt = 1u32;
    loop {
        match op().await {
            Ok(v) => {
                if attempt > 1 {
                    tracing::info!(attempt, "{what}: the database answered again");
                }
                return Ok(v);
            }
            Err(e) if e.is_transient() && started.elapsed() < window => {
                let delay = delays.next().unwrap_or(Duration::from_secs(2));
                tracing::warn!(error = %e, attempt, "{what} failed; retrying");
                tokio::select! {
                    _ = token.cancelled() => return Err(Retried::Cancelled),
                    _ = tokio::time::sleep(delay) => {}
                }
                attempt += 1;
            }
            Err(e) => return Err(Retried::Failed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_the_call_passes() {
        let calls = AtomicU32::new(0);
        let token = CancellationToken::new();
        let v = with_db_retries(&token, "test", DB_RETRY_WINDOW, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 5 {
                Err(DbError::Connection("refused".into()))
            } else {
                Ok(7)
            }
        })
        .await
        .unwrap();
        assert_eq!((v, calls.load(Ordering::SeqCst)), (7, 6));
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_stand_at_once_and_the_window_ends_retrying() {
        let token = CancellationToken::new();
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = with_db_retries(&token, "test", DB_RETRY_WINDOW, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(DbError::Corrupt("bad row".into()))
        })
        .await;
        assert!(matches!(r, Err(Retried::Failed(DbError::Corrupt(_)))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let started = tokio::time::Instant::now();
        let r: Result<(), _> = with_db_retries(&token, "test", Duration::from_secs(10), || async {
            Err(DbError::Connection("down".into()))
        })
        .await;
        assert!(matches!(r, Err(Retried::Failed(DbError::Connection(_)))));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(13),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fired_token_stops_the_retrying() {
        let token = CancellationToken::new();
        let t = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            t.cancel();
        });
        let r: Result<(), _> = with_db_retries(&token, "test", DB_RETRY_WINDOW, || async {
            Err(DbError::Connection("down".into()))
        })
        .await;
        assert!(matches!(r, Err(Retried::Cancelled)));
    }
}
