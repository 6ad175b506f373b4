//! The completer: writes the outcomes of plain jobs (top-level, no batch) in batches. An
//! executor whose handler returned hands its [`Completion`] over and waits for the answer; the
//! completer writes whatever has piled up since its last write in one
//! [`JobStore::complete_jobs`] call (one transaction, one commit), so under load a commit
//! carries many jobs and a lone job is written at once, with no timer.
//!
//! [`JobStore::complete_jobs`]: crate::JobStore::complete_jobs

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::engine::{Engine, lock};
use crate::job::Job;
use crate::store::Completion;

/// One completion and where its answer goes (`None` inside: the fence did not match;
/// `None` outside: every write attempt failed).
pub(crate) struct CompletionRequest {
    pub(super) completion: Completion,
    pub(super) reply: oneshot::Sender<Option<Option<Job>>>,
}

impl Engine {
    /// Starts the completer; its channel lives until [`Engine::close_completer`].
    pub(super) fn open_completer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        *lock(&self.completions) = Some(tx);
        tokio::spawn(self.clone().completer(rx))
    }

    /// Closes the channel: the completer writes what it holds and ends.
    pub(super) fn close_completer(&self) {
        lock(&self.completions).take();
    }

    /// Hands a completion to the completer, or gives it back when there is none (stopped).
    pub(super) fn send_completion(
        &self,
        completion: Completion,
    ) -> Result<oneshot::Receiver<Option<Option<Job>>>, Completion> {
        let (reply, rx) = oneshot::channel();
        let guard = lock(&self.completions);
        let Some(tx) = guard.as_ref() else {
            return Err(completion);
        };
        tx.send(CompletionRequest { completion, reply })
            .map(|()| rx)
            .map_err(|e| e.0.completion)
    }

    async fn completer(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<CompletionRequest>) {
        let max = self.config.completion_batch.max(1);
        let mut batch = Vec::with_capacity(max);
        while rx.recv_many(&mut batch, max).await > 0 {
            let (items, replies): (Vec<Completion>, Vec<_>) =
                batch.drain(..).map(|r| (r.completion, r.reply)).unzip();
            let first = items[0].fence.job_id;
            let written = self
                .with_retries("store the jobs' outcomes", first, || {
                    self.store.complete_jobs(items.clone())
                })
                .await;
            match written {
                Some(jobs) => {
                    for (reply, job) in replies.into_iter().zip(jobs) {
                        let _ = reply.send(Some(job));
                    }
                }
                None => {
                    for reply in replies {
                        let _ = reply.send(None);
                    }
                }
            }
        }
    }
}
