//! Garbage collection: removes blob files that no checkpoint, memo entry or running unit references.
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
    pub async fn gc(&self, grace: Option<Duration>) -> Result<GcReport, CoreError> {
        let grace = grace.unwrap_or(GRACE);
        let mut tx = self.store.write().await?;
        let mut live = HashSet::new();
        for doc in storage::referenced_manifests(&mut tx).await? {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&doc) {
                collect_hashes(&value, &mut live);
            }
        }
        let mut report = GcReport::default();
        let now = SystemTime::now();
        for (sha, bytes) in self.blobs.list().map_err(|e| CoreError::Internal(format!("cannot list blobs: {e}")))? {
            if live.contains(&sha) {
                report.kept += 1;
                continue;
            }
            let young = std::fs::metadata(self.blobs.path_of(&sha))
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() < grace);
            if young {
                report.kept += 1;
                continue;
            }
            self.blobs.remove(&sha).map_err(|e| CoreError::Internal(format!("cannot remove blob {sha}: {e}")))?;
            storage::delete_blob_row(&mut tx, &sha).await?;
            report.removed += 1;
            report.freed_bytes += bytes;
        }
        tx.commit().await?;
        Ok(report)
    }
}
