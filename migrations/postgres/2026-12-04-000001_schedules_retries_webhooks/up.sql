-- Scheduled and delayed jobs, retries with backoff, unique jobs, result reuse and completion
-- webhooks (ADR 016..019).
--
-- run_at: not claimable before it. Claim order is priority DESC, run_at, id: jobs that were
-- never delayed have run_at = created_at, so FIFO is unchanged.
ALTER TABLE jobs ADD COLUMN run_at TIMESTAMPTZ;
UPDATE jobs SET run_at = created_at;
ALTER TABLE jobs ALTER COLUMN run_at SET NOT NULL;
-- The error of the latest failed attempt (a retryable failure re-queues the job with it).
ALTER TABLE jobs ADD COLUMN last_error JSONB;
-- At most one active job per unique_key: the index is the guarantee under concurrent inserts.
ALTER TABLE jobs ADD COLUMN unique_key TEXT;
-- A succeeded job's result may be reused by an identical later job (media dedupe).
ALTER TABLE jobs ADD COLUMN dedupe_key TEXT;
-- The completion webhook and its delivery state; the jobs row is the outbox (a terminal write
-- marks it pending in the same statement).
ALTER TABLE jobs ADD COLUMN webhook JSONB;

DROP INDEX jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON jobs (status, lane, claimable, priority DESC, run_at, id);
CREATE UNIQUE INDEX jobs_unique_key_idx ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running');
-- The two indexes below are partial on IS NOT NULL so that the common job (no reuse key, no
-- webhook) costs no index write: the queue's hot path keeps its speed. A
-- query's `col = $1` / `col < $1` implies `col IS NOT NULL`, so generic plans use them.
CREATE INDEX jobs_dedupe_idx ON jobs (dedupe_key, finished_at) WHERE dedupe_key IS NOT NULL;
-- due_us is set only while a delivery is pending; the claim names `webhook IS NOT NULL`.
CREATE INDEX jobs_webhook_due_idx ON jobs (((webhook ->> 'due_us')::BIGINT)) WHERE webhook IS NOT NULL;
-- No index on finished_at: one more write per completion costs the queue's drain rate (measured
-- on SQLite: 5-10%); retention finds finished jobs through the claim index's leading status.

-- A profile's default completion webhook (used when a submission names none).
ALTER TABLE profiles ADD COLUMN webhook_url TEXT;
