-- Secrets: values a token's tasks may read at /run/secrets/<name>, encrypted at rest
-- (core/sealing.py: AES-256-GCM, the row's (token, name) as associated data, so a
-- ciphertext copied to another row or token does not decrypt). key_id names the key of the
-- keyring that sealed the row: rotation adds a key, and old rows still open until they are
-- re-sealed (`homerun rekey-secrets`).
CREATE TABLE secrets (
    token_id    uuid NOT NULL REFERENCES tokens (id),
    name        text NOT NULL,
    key_id      text NOT NULL,
    nonce       bytea NOT NULL,
    ciphertext  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (token_id, name)
);
CREATE INDEX secrets_key ON secrets (key_id);

-- The names of the secrets a task reads; checked against the token's at submission.
ALTER TABLE tasks ADD COLUMN secrets text[] NOT NULL DEFAULT '{}';
