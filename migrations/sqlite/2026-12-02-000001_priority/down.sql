DROP INDEX jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON jobs (status, lane, claimable, created_at, id);
ALTER TABLE jobs DROP COLUMN priority;
