-- Small artifacts (up to 64 KiB) keep their bytes in their blob row instead of a file or an S3
-- object: written in the same transaction as the memo row that references them, so no memo row
-- can outlive its bytes, and without a file to create and fsync per unit. NULL: the bytes are in
-- the blob store (every blob written before this migration, and every larger one).
ALTER TABLE blobs ADD COLUMN content BYTEA;
