-- Remote jobs (Replicate predictions) a unit has started, recorded before the worker waits on
-- them: a unit resumed after a crash or a lease takeover attaches to its job instead of paying
-- for a new one. Keyed by the unit's call (its memo key, plus the re-roll number).
CREATE TABLE provider_jobs (
    call_key TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id),
    provider TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX provider_jobs_run ON provider_jobs (run_id);
