-- Restores: what was restored where, and the safety snapshot that undoes it.
CREATE TABLE restores (
    id                  TEXT PRIMARY KEY,
    backup_id           TEXT NOT NULL,
    target_project_id   TEXT REFERENCES projects (id) ON DELETE SET NULL,
    -- The target as shown to people: a project name or a redacted URL.
    target              TEXT NOT NULL,
    scope               TEXT NOT NULL DEFAULT '{}',
    mode                TEXT NOT NULL CHECK (mode IN ('new', 'replace')),
    status              TEXT NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'completed', 'failed', 'cancelled', 'rolled_back')),
    snapshot_backup_id  TEXT REFERENCES backups (id) ON DELETE SET NULL,
    -- Set on a restore that undid another one.
    rollback_of         TEXT REFERENCES restores (id) ON DELETE SET NULL,
    error_message       TEXT,
    started_at          TEXT NOT NULL,
    completed_at        TEXT
);
CREATE INDEX restores_started ON restores (started_at DESC);
