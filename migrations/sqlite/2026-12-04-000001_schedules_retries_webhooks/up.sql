-- Scheduled and delayed jobs, retries with backoff, unique jobs, result reuse and completion
-- webhooks. Same version as migrations/postgres (which explains each column).
ALTER TABLE jobs ADD COLUMN run_at INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET run_at = created_at;
ALTER TABLE jobs ADD COLUMN last_error TEXT;
ALTER TABLE jobs ADD COLUMN unique_key TEXT;
ALTER TABLE jobs ADD COLUMN dedupe_key TEXT;
ALTER TABLE jobs ADD COLUMN webhook TEXT;

DROP INDEX jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON jobs (status, lane, claimable, priority DESC, run_at, id);
CREATE UNIQUE INDEX jobs_unique_key_idx ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running');
-- Partial, so the common job costs no write to them (see migrations/postgres). No index on
-- finished_at: one more write per completion cost 5-10% of SQLite's drain rate; retention
-- finds finished jobs through the claim index's leading status column instead.
CREATE INDEX jobs_dedupe_idx ON jobs (dedupe_key, finished_at) WHERE dedupe_key IS NOT NULL;
CREATE INDEX jobs_webhook_due_idx ON jobs (json_extract(webhook, '$.due_us')) WHERE webhook IS NOT NULL;

-- A profile's default completion webhook (used when a submission names none).
ALTER TABLE profiles ADD COLUMN webhook_url TEXT;
