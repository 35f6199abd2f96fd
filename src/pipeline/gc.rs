//! Garbage collection. Keeps the blobs (files, or objects in S3) of every checkpoint of an existing video and of every memo
//! entry a run still holds (a queued or running run's units so far, or a failed or cancelled run's
//! that a retry from its branch's head, or a continue after an edit, would reuse: see
//! `storage::holding_runs!`). Reclaims everything else: what only deleted videos or superseded
//! failures used; their memo entries go with their bytes, so no memo row outlives its files. Files younger than the grace period are kept (a unit may be about to
//! commit the row that makes them live). Small blobs kept in their database rows are reclaimed the
//! same way, by deleting the row.
use futures::StreamExt;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::{CoreError, Engine};
use crate::storage;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub removed: usize,
    pub freed_bytes: u64,
    pub kept: usize,
    /// Memo entries forgotten because their bytes were reclaimed.
    pub forgotten_memo: usize,
}

/// Files younger than this may belong to a unit that has not committed its memo row yet.
const GRACE: Duration = Duration::from_secs(600);

/// How many of a batch's checks and removals run at once (`EngineConfig::gc_batch` blobs per
/// write transaction): the lock is held for a few round trips to the blob store, not one per blob.
const GC_AT_ONCE: usize = 16;

fn collect_hashes(value: &serde_json::Value, out: &mut HashSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "sha256" {
                    if let Some(s) = v.as_str() {
                        out.insert(s.to_string());
                    }
                } else {
                    collect_hashes(v, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_hashes(v, out)),
        _ => {}
    }
}

impl Engine {
    /// Removes unreferenced blob files older than the grace period. The file-system scan runs
    /// without the write lock; only the re-checks and the deletions hold it, a batch at a time,
    /// so no memo row can commit a reference to a file between its re-check and its removal.
    pub async fn gc(&self, grace: Option<Duration>) -> Result<GcReport, CoreError> {
        let grace = grace.unwrap_or(GRACE);
        let (live, rows) = {
            let mut tx = self.store.read().await?;
            let live = live_hashes(&mut tx).await;
            let rows = storage::inline_blob_rows(&mut tx).await;
            let _ = tx.rollback().await;
            (live?, rows?)
        };
        let listed = self.blobs.list().await.map_err(|e| CoreError::Internal(format!("cannot list blobs: {e}")))?;
        let mut report = GcReport::default();
        let mut candidates = Vec::new();
        for (sha, bytes) in listed {
            if live.contains(&sha) || self.young(&sha, grace).await {
                report.kept += 1;
            } else {
                candidates.push((sha, bytes));
            }
        }
        // Bytes kept in rows need no grace period: the unit that stores them commits its memo
        // row in the same transaction, so they are never waiting for a reference.
        let mut dead_rows: Vec<(String, u64)> = Vec::new();
        for (sha, bytes, _) in rows {
            if live.contains(&sha) {
                report.kept += 1;
            } else {
                dead_rows.push((sha, bytes.max(0) as u64));
            }
        }
        if candidates.is_empty() && dead_rows.is_empty() {
            return Ok(report);
        }
        // A batch of stored blobs per write transaction (the inline rows go with the first, as
        // they need no blob store call): each batch's checks and removals run side by side (an
        // S3 store answers each in a round trip), and between batches the writers waiting for
        // the lock get their turn.
        let mut batches: Vec<&[(String, u64)]> = candidates.chunks(self.config.gc_batch.max(1)).collect();
        if batches.is_empty() {
            batches.push(&[]);
        }
        let mut dead_rows = Some(dead_rows);
        for batch in batches {
            // One attempt, not `write_retrying`: the blobs are removed as it goes, and a second
            // attempt would not find them.
            let mut tx = self.lock_for_gc().await?;
            let live = live_hashes(&mut tx).await?;
            // What a holding run's memo entry made since the first read names is live again, and
            // kept; any other entry naming bytes about to go goes with them.
            report.forgotten_memo += forget_dead_memo(&mut tx, &live).await?;
            for (sha, bytes) in dead_rows.take().unwrap_or_default() {
                if live.contains(&sha) {
                    report.kept += 1;
                    continue;
                }
                storage::delete_blob_row(&mut tx, &sha).await?;
                report.removed += 1;
                report.freed_bytes += bytes;
            }
            let dead: Vec<&(String, u64)> = batch.iter().filter(|(sha, _)| !live.contains(sha)).collect();
            report.kept += batch.len() - dead.len();
            let outcomes: Vec<(&(String, u64), std::io::Result<bool>)> = futures::stream::iter(dead)
                .map(|blob| async move {
                    let removed =
                        if self.young(&blob.0, grace).await { Ok(false) } else { self.blobs.remove(&blob.0).await.map(|()| true) };
                    (blob, removed)
                })
                .buffer_unordered(GC_AT_ONCE)
                .collect()
                .await;
            // The rows of the blobs removed go whatever else failed; the first failure is
            // reported after the commit.
            let mut failed = None;
            for ((sha, bytes), removed) in outcomes {
                match removed {
                    Ok(true) => {
                        storage::delete_blob_row(&mut tx, sha).await?;
                        report.removed += 1;
                        report.freed_bytes += bytes;
                    }
                    Ok(false) => report.kept += 1,
                    Err(e) => failed = failed.or(Some(CoreError::Internal(format!("cannot remove blob {sha}: {e}")))),
                }
            }
            tx.commit().await?;
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(report)
    }

    /// The write lock, for `gc`'s deletions. On PostgreSQL no write lock serialises the writers:
    /// this waits for the groups of finished units under way and holds new ones back until `gc`
    /// commits, so the holds read under it are every committed try's, and a group that reused
    /// an entry forgotten here finds it gone (`storage::reused_intact`). SQLite's one write
    /// connection does the same.
    async fn lock_for_gc(&self) -> Result<storage::WriteTx, CoreError> {
        let mut tx = self.store.write().await?;
        if self.store.backend() == crate::storage::Backend::Postgres {
            sqlx::query("LOCK TABLE unit_tries IN SHARE MODE").execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    /// Written (or put again) within the grace period: it may belong to a unit whose memo row
    /// has not committed yet.
    async fn young(&self, sha: &str, grace: Duration) -> bool {
        self.blobs.modified(sha).await.is_some_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() < grace)
    }
}

async fn live_hashes(conn: &mut sqlx::AnyConnection) -> Result<HashSet<String>, CoreError> {
    let mut live = HashSet::new();
    let mut docs = storage::checkpoint_manifests(conn).await?;
    docs.extend(storage::held_memo_outputs(conn).await?);
    for doc in docs {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&doc) {
            collect_hashes(&value, &mut live);
        }
    }
    Ok(live)
}

/// Under the write lock: forgets every memo entry whose bytes are not all live (they are about
/// to be removed).
async fn forget_dead_memo(conn: &mut sqlx::AnyConnection, live: &HashSet<String>) -> Result<usize, CoreError> {
    let mut forgotten = 0;
    for (key, output) in storage::memo_outputs(conn).await? {
        let mut hashes = HashSet::new();
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&output) {
            collect_hashes(&value, &mut hashes);
        }
        if !hashes.is_subset(live) {
            storage::delete_memo(conn, &key).await?;
            forgotten += 1;
        }
    }
    Ok(forgotten)
}
