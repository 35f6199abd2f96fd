-- Fencing: every claim of a run takes the next token, and every write a worker makes for the run
-- is conditional on still holding that token, so a stalled worker whose run was taken over
-- commits nothing.
ALTER TABLE runs ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0;

-- A per-video change counter, bumped (and the row locked) by every write transaction that changes
-- the video: it serialises a video's writers on PostgreSQL too, and the status snapshot carries
-- it so the live page can tell whether it missed a change.
ALTER TABLE videos ADD COLUMN changes BIGINT NOT NULL DEFAULT 0;
