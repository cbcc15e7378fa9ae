-- Restores that survive a crash: the transaction id on the target (the
-- server tells afterwards whether it committed), where its temporary files
-- are, how to reach a URL target again (its password sealed), the objects
-- the user accepted to lose, the roles it created. A status 'interrupted'
-- for restores a kill ended. Restore tests get their own rows, so an
-- interrupted one's scratch database and stand-in roles can be dropped.
CREATE TABLE restores_new (
    id                  TEXT PRIMARY KEY,
    backup_id           TEXT NOT NULL,
    target_project_id   TEXT REFERENCES projects (id) ON DELETE SET NULL,
    target              TEXT NOT NULL,
    scope               TEXT NOT NULL DEFAULT '{}',
    mode                TEXT NOT NULL CHECK (mode IN ('new', 'replace')),
    status              TEXT NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'completed', 'failed', 'cancelled',
                                          'rolled_back', 'interrupted')),
    snapshot_backup_id  TEXT REFERENCES backups (id) ON DELETE SET NULL,
    rollback_of         TEXT REFERENCES restores_new (id) ON DELETE SET NULL,
    error_message       TEXT,
    started_at          TEXT NOT NULL,
    completed_at        TEXT,
    -- The target transaction's id (txid_current()), once it began.
    xid                 TEXT,
    -- For interrupted restores: 1 committed, 0 rolled back, NULL not known yet.
    committed           INTEGER,
    work_dir            TEXT,
    -- A URL target without its password, and the password sealed under
    -- the vault's master key (associated data: the restore id).
    target_url          TEXT,
    target_secret_nonce BLOB,
    target_secret       BLOB,
    -- JSON arrays: objects outside the scope the user accepted to drop,
    -- roles the restore created.
    allow_drop          TEXT NOT NULL DEFAULT '[]',
    created_roles       TEXT NOT NULL DEFAULT '[]'
);
INSERT INTO restores_new (id, backup_id, target_project_id, target, scope, mode, status,
                          snapshot_backup_id, rollback_of, error_message, started_at, completed_at)
SELECT id, backup_id, target_project_id, target, scope, mode, status,
       snapshot_backup_id, rollback_of, error_message, started_at, completed_at
FROM restores;
DROP TABLE restores;
ALTER TABLE restores_new RENAME TO restores;
CREATE INDEX restores_started ON restores (started_at DESC);

CREATE TABLE restore_tests (
    id                  TEXT PRIMARY KEY,
    backup_id           TEXT NOT NULL,
    -- The scratch server without its password; the password sealed.
    scratch_url         TEXT NOT NULL,
    scratch_secret_nonce BLOB,
    scratch_secret      BLOB,
    database            TEXT NOT NULL,
    -- JSON array of the stand-in roles created on the scratch server.
    created_roles       TEXT NOT NULL DEFAULT '[]',
    status              TEXT NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'passed', 'failed', 'error', 'cancelled',
                                          'interrupted')),
    -- For interrupted ones: whether the scratch database is gone.
    cleaned             INTEGER NOT NULL DEFAULT 0,
    work_dir            TEXT,
    error_message       TEXT,
    started_at          TEXT NOT NULL,
    completed_at        TEXT
);
CREATE INDEX restore_tests_backup ON restore_tests (backup_id, started_at DESC);
