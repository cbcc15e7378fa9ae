-- Jobs read their cron expression in local time, UTC or any IANA zone
-- (`Europe/Berlin`): the column no longer lists the allowed values (the
-- engine validates them). Migrations run with foreign keys off, so
-- rebuilding the table leaves backups.job_id as it was.
CREATE TABLE backup_jobs_new (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    cron_expression TEXT NOT NULL,
    timezone        TEXT NOT NULL DEFAULT 'local' CHECK (length(timezone) BETWEEN 1 AND 64),
    backup_config   TEXT NOT NULL DEFAULT '{}',
    retention       TEXT NOT NULL DEFAULT '{}',
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    last_run_at     TEXT,
    last_status     TEXT,
    next_run_at     TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
INSERT INTO backup_jobs_new SELECT id, project_id, name, cron_expression, timezone, backup_config,
    retention, enabled, last_run_at, last_status, next_run_at, created_at, updated_at FROM backup_jobs;
DROP TABLE backup_jobs;
ALTER TABLE backup_jobs_new RENAME TO backup_jobs;
CREATE INDEX backup_jobs_project ON backup_jobs (project_id);
