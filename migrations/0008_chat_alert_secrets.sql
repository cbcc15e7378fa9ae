-- Alert channels in chat services (Slack, Discord, Microsoft Teams,
-- Telegram): their incoming-webhook URL, or Telegram's bot token, is the
-- credential, so it is sealed here like the other secrets. SQLite cannot
-- change a CHECK constraint, so the table is rebuilt with the same rows.
CREATE TABLE secrets_new (
    id          TEXT PRIMARY KEY,
    project_id  TEXT REFERENCES projects (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL
                CHECK (kind IN ('db_password', 'access_token', 'service_role_key',
                                'smtp_password', 'webhook_secret', 'backup_passphrase',
                                'slack_webhook', 'discord_webhook', 'teams_webhook',
                                'telegram_bot_token')),
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (project_id, kind)
);
INSERT INTO secrets_new (id, project_id, kind, nonce, ciphertext, created_at, updated_at)
    SELECT id, project_id, kind, nonce, ciphertext, created_at, updated_at FROM secrets;
DROP TABLE secrets;
ALTER TABLE secrets_new RENAME TO secrets;
