-- One schema for SQLite and PostgreSQL: TEXT ids, BIGINT numbers and millisecond timestamps.
-- The invariants of SPEC §3 live here as constraints, not only in code.

CREATE TABLE videos (
    id TEXT PRIMARY KEY,
    prompt TEXT NOT NULL,
    title TEXT NOT NULL,
    beats BIGINT NOT NULL,
    seed BIGINT NOT NULL,
    auto_continue BIGINT NOT NULL DEFAULT 0,
    fault_plan TEXT NOT NULL DEFAULT '[]',
    budget_micros BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX videos_created ON videos (created_at);

CREATE TABLE branches (
    id TEXT PRIMARY KEY,
    video_id TEXT NOT NULL REFERENCES videos (id),
    name TEXT NOT NULL,
    head_id TEXT,
    forked_from TEXT,
    created_at BIGINT NOT NULL,
    CONSTRAINT branches_name_unique UNIQUE (video_id, name)
);

CREATE TABLE checkpoints (
    id TEXT PRIMARY KEY,
    video_id TEXT NOT NULL REFERENCES videos (id),
    branch_id TEXT NOT NULL REFERENCES branches (id),
    parent_id TEXT REFERENCES checkpoints (id),
    -- the parent id or '' : NULLs never collide in a unique index, so versions key on this
    parent_key TEXT NOT NULL,
    phase BIGINT NOT NULL CHECK (phase BETWEEN 1 AND 4),
    version BIGINT NOT NULL CHECK (version >= 1),
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved')),
    origin TEXT NOT NULL CHECK (origin IN ('generated', 'edited')),
    manifest TEXT NOT NULL,
    run_id TEXT,
    created_at BIGINT NOT NULL,
    approved_at BIGINT
);
CREATE UNIQUE INDEX checkpoints_version_unique ON checkpoints (video_id, parent_key, phase, version);
CREATE INDEX checkpoints_video ON checkpoints (video_id, created_at);

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    video_id TEXT NOT NULL REFERENCES videos (id),
    branch_id TEXT NOT NULL REFERENCES branches (id),
    from_checkpoint TEXT REFERENCES checkpoints (id),
    from_key TEXT NOT NULL,
    phase BIGINT NOT NULL CHECK (phase BETWEEN 1 AND 4),
    attempt BIGINT NOT NULL CHECK (attempt >= 1),
    kind TEXT NOT NULL CHECK (kind IN ('initial', 'continue', 'auto', 'retry', 'regenerate')),
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- regenerate runs: the beat to make again and its new seed
    regenerate_beat BIGINT,
    regenerate_seed BIGINT,
    regenerate_of TEXT,
    error TEXT,
    failed_unit BIGINT,
    units_total BIGINT NOT NULL DEFAULT 0,
    units_done BIGINT NOT NULL DEFAULT 0,
    cost_micros BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    lease_owner TEXT,
    lease_expires_at BIGINT
);
-- At most one active run per branch: two simultaneous clicks make one run.
CREATE UNIQUE INDEX runs_one_active_per_branch ON runs (branch_id) WHERE status IN ('queued', 'running');
CREATE UNIQUE INDEX runs_attempt_unique ON runs (branch_id, from_key, attempt);
CREATE INDEX runs_video ON runs (video_id, created_at);
CREATE INDEX runs_claimable ON runs (status, lease_expires_at);

-- Every try of every unit, for the attempts history and the cost ledger.
CREATE TABLE unit_tries (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id),
    unit BIGINT NOT NULL,
    try_no BIGINT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'memo', 'transient', 'permanent', 'cancelled')),
    message TEXT,
    provider TEXT NOT NULL,
    cost_micros BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL
);
CREATE INDEX unit_tries_run ON unit_tries (run_id);

-- Content-addressed blobs (files under data/blobs) and the memo of unit outputs by input key.
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL,
    media_type TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE memo (
    key TEXT PRIMARY KEY,
    phase BIGINT NOT NULL,
    provider TEXT NOT NULL,
    output TEXT NOT NULL,
    cost_micros BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- A run's finished units, kept apart until the whole phase succeeds.
CREATE TABLE staged_units (
    run_id TEXT NOT NULL REFERENCES runs (id),
    unit BIGINT NOT NULL,
    memo_key TEXT NOT NULL REFERENCES memo (key),
    PRIMARY KEY (run_id, unit)
);

-- How many runs of a unit a fault rule has affected, so `times` and spent crashes survive restarts.
CREATE TABLE fault_hits (
    video_id TEXT NOT NULL REFERENCES videos (id),
    rule_index BIGINT NOT NULL,
    unit_key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (video_id, rule_index, unit_key, run_id)
);
