//! A phase's finished units, written in groups: every unit that finished while the previous group
//! was committing goes into one transaction (its blobs, memo entry, staging, try and the run's
//! progress), one multi-row statement per table. Small artifacts keep their bytes in their blob
//! row, so the memo row and the bytes it names commit together.
use sqlx::AnyConnection;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use super::{Lease, MemoEntry, StorageError};
use crate::domain::video::UnitTry;
use crate::domain::{BlobRef, Timestamp};

type Result<T> = std::result::Result<T, StorageError>;

/// Artifacts up to this size keep their bytes in the database (their `blobs` row) instead of the
/// blob store: SQLite writes a small value in its WAL faster than the file system creates, fills
/// and fsyncs a file and its directory, and PostgreSQL's row is one round trip where S3 is an
/// HTTP request. Larger artifacts (clips, videos, real stills) stay files or objects.
pub const INLINE_BLOB_MAX: u64 = 64 * 1024;

/// Rows per multi-row statement: well under SQLite's 32,766 parameters and PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 200;

/// A blob a unit made; `content` holds its bytes when they are kept in the row.
#[derive(Clone, Debug)]
pub struct NewBlob {
    pub blob: BlobRef,
    pub content: Option<Vec<u8>>,
}

/// A unit that finished: made now (`made`: its memo entry and blobs) or reused from the memo.
#[derive(Clone, Debug)]
pub struct FinishedUnit {
    pub unit: u32,
    pub memo_key: String,
    pub made: Option<(MemoEntry, Vec<NewBlob>)>,
    pub tried: UnitTry,
}

/// `($1, $2, …), (…)` for `rows` rows of `cols` columns.
fn placeholders(rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        s.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            let sep = if c == 0 { "" } else { ", " };
            let _ = write!(s, "{sep}${}", r * cols + c + 1);
        }
        s.push(')');
    }
    s
}

/// `$1, $2, …` for an `IN` list of `n`.
fn list(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Writes the group: the run's progress, new blobs, memo entries, staging, tries, and the remote
/// jobs they are done with. False, and nothing written, when the run is no longer this lease's.
pub async fn record_finished(conn: &mut AnyConnection, lease: &Lease, total: u32, units: &[FinishedUnit], now: Timestamp) -> Result<bool> {
    // The fence first: a stale lease writes nothing.
    let cost: i64 = units.iter().map(|u| u.tried.cost_micros).sum();
    let done = sqlx::query(
        "UPDATE runs SET units_done = units_done + $1, units_total = $2, cost_micros = cost_micros + $3 \
         WHERE id = $4 AND lease_token = $5 AND status = 'running'",
    )
    .bind(units.len() as i64)
    .bind(i64::from(total))
    .bind(cost)
    .bind(lease.run.to_string())
    .bind(lease.token)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let mut blobs: HashMap<&str, &NewBlob> = HashMap::new();
    for (_, made) in units.iter().filter_map(|u| u.made.as_ref()) {
        for b in made {
            // A blob with bytes wins over the same blob without (the row must carry them).
            blobs
                .entry(b.blob.sha256.as_str())
                .and_modify(|old| {
                    if old.content.is_none() {
                        *old = b
                    }
                })
                .or_insert(b);
        }
    }
    let blobs: Vec<&NewBlob> = blobs.into_values().collect();
    for chunk in blobs.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO blobs (sha256, bytes, media_type, created_at, content) VALUES {} ON CONFLICT (sha256) DO NOTHING",
            placeholders(chunk.len(), 5)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in chunk {
            q = q.bind(b.blob.sha256.clone()).bind(b.blob.bytes as i64).bind(b.blob.media_type.clone()).bind(now).bind(b.content.clone());
        }
        q.execute(&mut *conn).await?;
    }
    let memo: Vec<&MemoEntry> = units.iter().filter_map(|u| u.made.as_ref().map(|(m, _)| m)).collect();
    for chunk in memo.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO memo (key, phase, provider, output, cost_micros, created_at) VALUES {} ON CONFLICT (key) DO NOTHING",
            placeholders(chunk.len(), 6)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for m in chunk {
            q = q.bind(m.key.clone()).bind(i64::from(m.phase.number())).bind(m.provider.clone()).bind(m.output.clone());
            q = q.bind(m.cost_micros).bind(now);
        }
        q.execute(&mut *conn).await?;
    }
    for chunk in units.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO staged_units (run_id, unit, memo_key) VALUES {} ON CONFLICT (run_id, unit) DO NOTHING",
            placeholders(chunk.len(), 3)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for u in chunk {
            q = q.bind(lease.run.to_string()).bind(i64::from(u.unit)).bind(u.memo_key.clone());
        }
        q.execute(&mut *conn).await?;
        // The units' remote jobs (if any) are done with: their outputs are stored and memoized.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM provider_jobs WHERE call_key IN ({})", list(chunk.len()))));
        for u in chunk {
            q = q.bind(u.memo_key.clone());
        }
        q.execute(&mut *conn).await?;
        insert_tries(conn, chunk.iter().map(|u| &u.tried)).await?;
    }
    Ok(true)
}

async fn insert_tries<'a>(conn: &mut AnyConnection, tries: impl ExactSizeIterator<Item = &'a UnitTry>) -> Result<()> {
    let sql = format!(
        "INSERT INTO unit_tries (id, run_id, unit, try_no, outcome, message, provider, cost_micros, started_at, finished_at) VALUES {}",
        placeholders(tries.len(), 10)
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for t in tries {
        q = q.bind(uuid::Uuid::new_v4().to_string()).bind(t.run_id.to_string()).bind(i64::from(t.unit)).bind(i64::from(t.try_no));
        q = q.bind(t.outcome.wire()).bind(t.message.clone()).bind(t.provider.clone()).bind(t.cost_micros);
        q = q.bind(t.started_at).bind(t.finished_at);
    }
    q.execute(conn).await?;
    Ok(())
}

/// The memo entries among `keys`, by key (one statement per 200 keys).
pub async fn memo_of(conn: &mut AnyConnection, keys: &[String]) -> Result<HashMap<String, MemoEntry>> {
    let mut found = HashMap::new();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let sql = format!("SELECT key, phase, provider, output, cost_micros FROM memo WHERE key IN ({})", list(chunk.len()));
        let mut q = sqlx::query_as::<_, MemoEntry>(sqlx::AssertSqlSafe(sql));
        for k in chunk {
            q = q.bind(k.clone());
        }
        found.extend(q.fetch_all(&mut *conn).await?.into_iter().map(|m| (m.key.clone(), m)));
    }
    Ok(found)
}

/// Which of `shas` have their bytes in their row.
pub async fn inline_blobs_among(conn: &mut AnyConnection, shas: &[String]) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    for chunk in shas.chunks(ROWS_PER_STATEMENT) {
        let sql = format!("SELECT sha256 FROM blobs WHERE content IS NOT NULL AND sha256 IN ({})", list(chunk.len()));
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
        for s in chunk {
            q = q.bind(s.clone());
        }
        found.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

/// The bytes of those of `shas` whose rows hold them, by hash.
pub async fn inline_blob_contents(conn: &mut AnyConnection, shas: &[String]) -> Result<HashMap<String, Vec<u8>>> {
    let mut found = HashMap::new();
    for chunk in shas.chunks(ROWS_PER_STATEMENT) {
        let sql = format!("SELECT sha256, content FROM blobs WHERE content IS NOT NULL AND sha256 IN ({})", list(chunk.len()));
        let mut q = sqlx::query_as::<_, (String, Vec<u8>)>(sqlx::AssertSqlSafe(sql));
        for s in chunk {
            q = q.bind(s.clone());
        }
        found.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

/// The blob's bytes when its row holds them.
pub async fn inline_blob(conn: &mut AnyConnection, sha256: &str) -> Result<Option<Vec<u8>>> {
    let content: Option<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT content FROM blobs WHERE sha256 = $1").bind(sha256).fetch_optional(conn).await?;
    Ok(content.flatten())
}

/// Every blob kept in its row: hash, size and when it was written (for `gc`).
pub async fn inline_blob_rows(conn: &mut AnyConnection) -> Result<Vec<(String, i64, Timestamp)>> {
    Ok(sqlx::query_as("SELECT sha256, bytes, created_at FROM blobs WHERE content IS NOT NULL").fetch_all(conn).await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_every_value_once_in_order() {
        assert_eq!(super::placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::list(3), "$1, $2, $3");
    }
}
