-- mediajobs schema, SQLite (STRICT tables). Same version as migrations/postgres.
-- uuid -> TEXT (hyphenated), jsonb -> TEXT, timestamptz -> INTEGER unix microseconds.

CREATE TABLE profiles (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE files (
    id              TEXT PRIMARY KEY NOT NULL,
    profile_id      TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('video', 'audio', 'subtitle', 'other')),
    content_type    TEXT,
    size_bytes      INTEGER NOT NULL CHECK (size_bytes >= 0),
    sha256          TEXT NOT NULL,
    duration_ms     INTEGER,
    source_file_id  TEXT REFERENCES files (id) ON DELETE SET NULL,
    origin          TEXT NOT NULL CHECK (origin IN ('uploaded', 'generated', 'converted', 'fixed')),
    folder          TEXT,
    storage_key     TEXT NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX files_profile_idx ON files (profile_id, created_at DESC, id DESC);
CREATE INDEX files_source_idx ON files (source_file_id);

CREATE TABLE transcripts (
    id          TEXT PRIMARY KEY NOT NULL,
    profile_id  TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    file_id     TEXT REFERENCES files (id) ON DELETE SET NULL,
    job_id      TEXT,
    language    TEXT,
    text        TEXT NOT NULL,
    segments    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX transcripts_profile_idx ON transcripts (profile_id, created_at DESC, id DESC);
CREATE INDEX transcripts_file_idx ON transcripts (file_id);

CREATE TABLE jobs (
    id                TEXT PRIMARY KEY NOT NULL,
    type              TEXT NOT NULL,
    lane              TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    profile_id        TEXT REFERENCES profiles (id) ON DELETE CASCADE,
    file_id           TEXT REFERENCES files (id) ON DELETE CASCADE,
    parent_id         TEXT REFERENCES jobs (id) ON DELETE CASCADE,
    claimable         INTEGER NOT NULL,
    params            TEXT NOT NULL,
    result            TEXT,
    error             TEXT,
    error_code        TEXT,
    error_details     TEXT,
    progress          REAL NOT NULL DEFAULT 0,
    stage             TEXT,
    total             INTEGER NOT NULL,
    completed         INTEGER NOT NULL,
    attempts          INTEGER NOT NULL,
    max_attempts      INTEGER NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    updated_at        INTEGER NOT NULL
) STRICT;
CREATE INDEX jobs_claim_idx ON jobs (status, lane, claimable, created_at, id);
CREATE INDEX jobs_lease_idx ON jobs (status, lease_expires_at);
CREATE INDEX jobs_parent_idx ON jobs (parent_id, created_at, id);
CREATE INDEX jobs_list_idx ON jobs (profile_id, created_at DESC, id DESC);
CREATE INDEX jobs_file_idx ON jobs (file_id);
