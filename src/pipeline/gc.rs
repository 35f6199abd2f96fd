//! Garbage collection: removes blobs (files, or objects in S3) that no checkpoint, memo entry or running unit references.
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::{CoreError, Engine};
use crate::storage;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub removed: usize,
    pub freed_bytes: u64,
    pub kept: usize,
}

/// Files younger than this may belong to a unit that has not committed its memo row yet.
const GRACE: Duration = Duration::from_secs(600);

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
    /// without the write lock; only the final re-check and the deletions hold it, so no memo row
    /// can commit a reference to a file between its re-check and its removal.
    pub async fn gc(&self, grace: Option<Duration>) -> Result<GcReport, CoreError> {
        let grace = grace.unwrap_or(GRACE);
        let live = {
            let mut tx = self.store.read().await?;
            let live = live_hashes(&mut tx).await;
            let _ = tx.rollback().await;
            live?
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
        if candidates.is_empty() {
            return Ok(report);
        }
        // One attempt, not `write_retrying`: the files are removed as it goes, and a second
        // attempt would not find them.
        let mut tx = self.store.write().await?;
        let live = live_hashes(&mut tx).await?;
        for (sha, bytes) in candidates {
            if live.contains(&sha) || self.young(&sha, grace).await {
                report.kept += 1;
                continue;
            }
            self.blobs.remove(&sha).await.map_err(|e| CoreError::Internal(format!("cannot remove blob {sha}: {e}")))?;
            storage::delete_blob_row(&mut tx, &sha).await?;
            report.removed += 1;
            report.freed_bytes += bytes;
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Written (or put again) within the grace period: it may belong to a unit whose memo row
    /// has not committed yet.
    async fn young(&self, sha: &str, grace: Duration) -> bool {
        self.blobs.modified(sha).await.is_some_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() < grace)
    }
}

async fn live_hashes(conn: &mut sqlx::AnyConnection) -> Result<HashSet<String>, CoreError> {
    let mut live = HashSet::new();
    for doc in storage::referenced_manifests(conn).await? {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&doc) {
            collect_hashes(&value, &mut live);
        }
    }
    Ok(live)
}
