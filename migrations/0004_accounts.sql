-- Accounts (SPEC §8): every video belongs to one; sessions live here so any web process can
-- check them; the scheduler serves accounts in turn.

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    -- trimmed and lowercased: one account per mailbox
    email TEXT NOT NULL,
    -- argon2id PHC string
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- when a worker last claimed one of the account's runs: the account waiting longest goes next
    last_claimed_at BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT accounts_email_unique UNIQUE (email)
);

-- The local account owns every video made before accounts existed, and every video of a server
-- run with --auth none. Its hash '!' is no argon2 hash, so nobody can sign in as it.
INSERT INTO accounts (id, email, password_hash, created_at) VALUES ('00000000-0000-0000-0000-000000000000', 'local', '!', 0);

CREATE TABLE sessions (
    -- the sha-256 of the cookie's secret: reading this table signs nobody in
    id_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);

-- No REFERENCES here: SQLite cannot add a column with a foreign key and a non-NULL default.
-- Existing videos go to the local account.
ALTER TABLE videos ADD COLUMN account_id TEXT NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
CREATE INDEX videos_account ON videos (account_id, created_at);
