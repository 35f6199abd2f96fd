-- A finished unit's try names the memo entry it made or reused, so `gc` finds what a queued,
-- running or retryable failed run holds from its tries; the separate staging table, written per
-- unit and cleared at every checkpoint, is gone. A unit's try and its staging were written in the
-- same transaction (a group or a checkpoint), so the pairs are the same. No foreign key: a try
-- outlives the memo entry it names once its run holds nothing (succeeded, cancelled, or failed
-- and superseded) and `gc` forgets the entry.
--
-- Tries are only ever looked up by their run: keyed (run_id, id), one b-tree serves the key and
-- those look-ups, instead of a key on `id` and an index on `run_id` (one b-tree fewer to write per
-- try). The table is rebuilt to change its key: copied aside, made again (so its key keeps the
-- name `unit_tries_pkey` on PostgreSQL) and filled from the copy.
CREATE TABLE unit_tries_copy AS
SELECT t.id, t.run_id, t.unit, t.try_no, t.outcome, t.message, t.provider, t.cost_micros, t.started_at, t.finished_at,
       CASE WHEN t.outcome IN ('ok', 'memo')
            THEN (SELECT s.memo_key FROM staged_units s WHERE s.run_id = t.run_id AND s.unit = t.unit) END AS memo_key
FROM unit_tries t;
DROP TABLE unit_tries;
DROP TABLE staged_units;
CREATE TABLE unit_tries (
    id TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs (id),
    unit BIGINT NOT NULL,
    try_no BIGINT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'memo', 'transient', 'permanent', 'cancelled')),
    message TEXT,
    provider TEXT NOT NULL,
    cost_micros BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    memo_key TEXT,
    PRIMARY KEY (run_id, id)
);
INSERT INTO unit_tries (id, run_id, unit, try_no, outcome, message, provider, cost_micros, started_at, finished_at, memo_key)
SELECT id, run_id, unit, try_no, outcome, message, provider, cost_micros, started_at, finished_at, memo_key FROM unit_tries_copy;
DROP TABLE unit_tries_copy;
