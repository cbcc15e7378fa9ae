-- Off-site destinations (object_store URLs: file, s3, gs, az) and the
-- copies of each backup stored there. A destination's secret (S3 secret
-- key, Azure account key, GCS service-account JSON) is sealed with the
-- master key like every credential (AES-256-GCM, the row id as associated
-- data), never stored in clear.
CREATE TABLE destinations (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    url               TEXT NOT NULL,
    endpoint          TEXT,
    region            TEXT,
    path_style        INTEGER NOT NULL DEFAULT 0 CHECK (path_style IN (0, 1)),
    allow_http        INTEGER NOT NULL DEFAULT 0 CHECK (allow_http IN (0, 1)),
    access_key_id     TEXT,
    secret_nonce      BLOB,
    secret_ciphertext BLOB,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE UNIQUE INDEX destinations_name_nocase ON destinations (name COLLATE NOCASE);

-- One row per backup and destination. 'uploading' until every file and
-- the manifest were written AND read back with matching sizes and SHA-256
-- ('stored'); a copy being removed is 'deleting' first, so a half-deleted
-- copy is never shown as complete.
CREATE TABLE backup_copies (
    backup_id       TEXT NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
    destination_id  TEXT NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    location        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('uploading', 'stored', 'failed', 'deleting')),
    stored_bytes    INTEGER,
    verified_at     TEXT,
    error           TEXT,
    failover_for    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (backup_id, destination_id)
);
CREATE INDEX backup_copies_destination ON backup_copies (destination_id, status);

-- The local folder (backups.file_path) is one copy like the others: a job
-- may keep none, retention may remove it while off-site copies remain.
-- 'removing' is set before its files go, so a half-removed folder is never
-- read as a copy.
ALTER TABLE backups ADD COLUMN local_state TEXT NOT NULL DEFAULT 'present'
    CHECK (local_state IN ('present', 'removing', 'absent'));
