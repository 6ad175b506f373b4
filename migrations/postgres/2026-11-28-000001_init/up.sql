-- mediajobs schema, PostgreSQL. The SQLite twin lives in migrations/sqlite with the same version.

CREATE TABLE profiles (
    id          TEXT PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE files (
    id              UUID PRIMARY KEY,
    profile_id      TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('video', 'audio', 'subtitle', 'other')),
    content_type    TEXT,
    size_bytes      BIGINT NOT NULL CHECK (size_bytes >= 0),
    sha256          TEXT NOT NULL,
    duration_ms     BIGINT,
    source_file_id  UUID REFERENCES files (id) ON DELETE SET NULL,
    origin          TEXT NOT NULL CHECK (origin IN ('uploaded', 'generated', 'converted', 'fixed')),
    folder          TEXT,
    storage_key     TEXT NOT NULL UNIQUE,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX files_profile_idx ON files (profile_id, created_at DESC, id DESC);
CREATE INDEX files_source_idx ON files (source_file_id);

CREATE TABLE transcripts (
    id          UUID PRIMARY KEY,
    profile_id  TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    file_id     UUID REFERENCES files (id) ON DELETE SET NULL,
    job_id      UUID,
    language    TEXT,
    text        TEXT NOT NULL,
    segments    JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX transcripts_profile_idx ON transcripts (profile_id, created_at DESC, id DESC);
CREATE INDEX transcripts_file_idx ON transcripts (file_id);

CREATE TABLE jobs (
    id                UUID PRIMARY KEY,
    type              TEXT NOT NULL,
    lane              TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    profile_id        TEXT REFERENCES profiles (id) ON DELETE CASCADE,
    file_id           UUID REFERENCES files (id) ON DELETE CASCADE,
    parent_id         UUID REFERENCES jobs (id) ON DELETE CASCADE,
    claimable         BOOLEAN NOT NULL,
    params            JSONB NOT NULL,
    result            JSONB,
    error             TEXT,
    error_code        TEXT,
    error_details     JSONB,
    progress          DOUBLE PRECISION NOT NULL DEFAULT 0,
    stage             TEXT,
    total             INTEGER NOT NULL,
    completed         INTEGER NOT NULL,
    attempts          INTEGER NOT NULL,
    max_attempts      INTEGER NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  TIMESTAMPTZ,
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TIMESTAMPTZ NOT NULL,
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ,
    updated_at        TIMESTAMPTZ NOT NULL
);
-- Claim path: WHERE status = $1 AND lane = $2 AND claimable ORDER BY created_at, id. Not a partial
-- index on purpose: diesel binds 'queued' as a parameter and a generic plan cannot use a partial
-- index (shared/notes/persistence.md §9).
CREATE INDEX jobs_claim_idx ON jobs (status, lane, claimable, created_at, id);
CREATE INDEX jobs_lease_idx ON jobs (status, lease_expires_at);
CREATE INDEX jobs_parent_idx ON jobs (parent_id, created_at, id);
CREATE INDEX jobs_list_idx ON jobs (profile_id, created_at DESC, id DESC);
CREATE INDEX jobs_file_idx ON jobs (file_id);
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05);
