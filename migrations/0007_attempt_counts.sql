-- Sign-in and sign-up tries, counted per key (an email, a client address's network) in fixed
-- windows. Here, not in each web process's memory, so every process of one deployment counts
-- against the same numbers: two web processes behind one address no longer give a guesser twice
-- the tries, and a restart forgives nothing.
CREATE TABLE attempt_counts (
    -- the sha-256 of the key ("email:…", "addr:…", "sign-up:…"): the table names no email
    key_hash TEXT PRIMARY KEY,
    count BIGINT NOT NULL,
    -- when the key's window ends (ms since the epoch); a try at or after it starts a new window
    until_ms BIGINT NOT NULL
);
-- Windows that ended are deleted by this index's order.
CREATE INDEX attempt_counts_until ON attempt_counts (until_ms);
