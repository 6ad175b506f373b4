-- Job priority: within a lane, a higher priority is claimed first (FIFO among equals), so an
-- interactive request (language detection, an OpenAI-compatible transcription) runs next on
-- the heavy lane instead of behind queued batch work. A running job is never preempted.
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN -32768 AND 32767);
DROP INDEX jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON jobs (status, lane, claimable, priority DESC, created_at, id);
