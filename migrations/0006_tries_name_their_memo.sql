-- A finished unit's try names the memo entry it made or reused, so `gc` finds what a queued,
-- running or retryable failed run holds from its tries; the separate staging table, written per
-- unit and cleared at every checkpoint, is gone. A unit's try and its staging were written in the
-- same transaction (a group or a checkpoint), so the pairs are the same. No foreign key: a try
-- outlives the memo entry it names once its run holds nothing (succeeded, cancelled, or failed
-- and superseded) and `gc` forgets the entry.
ALTER TABLE unit_tries ADD COLUMN memo_key TEXT;
UPDATE unit_tries SET memo_key = (
    SELECT s.memo_key FROM staged_units s WHERE s.run_id = unit_tries.run_id AND s.unit = unit_tries.unit
) WHERE outcome IN ('ok', 'memo');
DROP TABLE staged_units;
