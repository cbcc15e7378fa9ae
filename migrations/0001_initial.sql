-- supabackup catalog, version 1.
-- Ids are text (UUIDv7), timestamps are UTC RFC 3339 text, JSON is text.

CREATE TABLE projects (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    slug            TEXT NOT NULL UNIQUE,
    project_ref     TEXT NOT NULL,
    -- Connection URL WITHOUT the password (that one is sealed in `secrets`).
    db_url          TEXT NOT NULL,
    environment     TEXT NOT NULL DEFAULT 'development'
                    CHECK (environment IN ('development', 'staging', 'production')),
    organization_id TEXT,
    description     TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE UNIQUE INDEX projects_name_nocase ON projects (name COLLATE NOCASE);

-- Credentials sealed with AES-256-GCM under the vault's master key
-- (nonce per record, record id as associated data). Never clear text.
CREATE TABLE secrets (
    id          TEXT PRIMARY KEY,
    project_id  TEXT REFERENCES projects (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL
                CHECK (kind IN ('db_password', 'access_token', 'service_role_key',
                                'smtp_password', 'webhook_secret', 'backup_passphrase')),
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (project_id, kind)
);

CREATE TABLE backup_jobs (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    cron_expression TEXT NOT NULL,
    timezone        TEXT NOT NULL DEFAULT 'local' CHECK (timezone IN ('local', 'utc')),
    backup_config   TEXT NOT NULL DEFAULT '{}',
    retention       TEXT NOT NULL DEFAULT '{}',
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    last_run_at     TEXT,
    last_status     TEXT,
    next_run_at     TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX backup_jobs_project ON backup_jobs (project_id);

-- A backup outlives its project's catalog entry: project_name/project_ref
-- keep it identifiable after the project is removed.
CREATE TABLE backups (
    id                     TEXT PRIMARY KEY,
    project_id             TEXT REFERENCES projects (id) ON DELETE SET NULL,
    project_name           TEXT NOT NULL,
    project_ref            TEXT NOT NULL,
    job_id                 TEXT REFERENCES backup_jobs (id) ON DELETE SET NULL,
    backup_type            TEXT NOT NULL,
    status                 TEXT NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    file_path              TEXT,
    file_size              INTEGER,
    checksum               TEXT,
    metadata               TEXT,
    error_message          TEXT,
    created_at             TEXT NOT NULL,
    started_at             TEXT,
    completed_at           TEXT,
    verified_at            TEXT,
    verified_restorable_at TEXT
);
CREATE INDEX backups_project_created ON backups (project_id, created_at DESC);
CREATE INDEX backups_status ON backups (status);

-- Events for dashboards: backup durations and sizes, connection tests...
CREATE TABLE analytics (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  TEXT REFERENCES projects (id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    event_data  TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);
CREATE INDEX analytics_project_type ON analytics (project_id, event_type, created_at);

-- Every mutating action, secrets redacted.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    details     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
