//! A phase's finished units, written in groups: every unit that finished while the previous group
//! was committing goes into one transaction (its blobs, memo entry, try and the run's
//! progress), one multi-row statement per table. Small artifacts keep their bytes in their blob
//! row, so the memo row and the bytes it names commit together.
use sqlx::AnyConnection;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use super::batch::{Answer, Batch, Value};
use super::{Backend, Lease, MemoEntry, StorageError};
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

/// `($first, …), (…)` for `rows` rows of `cols` columns, numbered from `first`.
fn placeholders_from(first: usize, rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        s.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            let sep = if c == 0 { "" } else { ", " };
            let _ = write!(s, "{sep}${}", first + r * cols + c);
        }
        s.push(')');
    }
    s
}

/// `$1, $2, …` for an `IN` list of `n`.
fn list(n: usize) -> String {
    list_from(1, n)
}

/// `$first, …` for an `IN` list of `n`.
fn list_from(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Writes the group: the run's progress, new blobs, memo entries, tries (each naming its memo
/// entry, which holds it for `gc` while the run may still use it), and the remote
/// jobs they are done with. False when the run is no longer this lease's: the caller then rolls
/// back.
pub async fn record_finished(conn: &mut AnyConnection, lease: &Lease, total: u32, units: &[FinishedUnit], now: Timestamp) -> Result<bool> {
    let batch = record_finished_batch(Backend::of_connection(conn), lease, total, units, now);
    let answers = batch.run(conn).await?;
    Ok(recorded(&answers) && reused_intact(&answers, units)?)
}

/// The memo keys the group's reused units name, each once.
fn reused_keys(units: &[FinishedUnit]) -> Vec<&str> {
    let mut keys: Vec<&str> = units.iter().filter(|u| u.made.is_none()).map(|u| u.memo_key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Whether every memo entry the group's reused units name was there when the group wrote its
/// tries (`answers`: those of `record_finished_batch`, whose last statements count them). False:
/// `gc` forgot one after its unit found it, and the caller rolls back.
pub fn reused_intact(answers: &[Answer], units: &[FinishedUnit]) -> Result<bool> {
    let reused = reused_keys(units);
    let checks = reused.len().div_ceil(ROWS_PER_STATEMENT);
    let Some(first) = answers.len().checked_sub(checks) else { return Ok(false) };
    let mut found = 0;
    for answer in &answers[first..] {
        found += answer.rows.first().map(|row| sqlx::Row::try_get::<i64, _>(row, 0)).transpose()?.unwrap_or(0);
    }
    Ok(found == reused.len() as i64)
}

/// Whether `record_finished_batch` (its answers, first) found the run still this lease's.
pub fn recorded(answers: &[Answer]) -> bool {
    answers.first().is_some_and(|a| a.rows_affected == 1)
}

/// `record_finished` as a batch, to send with other statements (on SQLite, with the fence that
/// opens the transaction: one call). Its first statement is the fence of its own; the rest
/// write whether or not the run is still the lease's, so the caller rolls back when `recorded`
/// says it is not.
pub fn record_finished_batch(backend: Backend, lease: &Lease, total: u32, units: &[FinishedUnit], now: Timestamp) -> Batch {
    let mut batch = Batch::new(backend);
    // The fence first: a stale lease's group is rolled back.
    let cost: i64 = units.iter().map(|u| u.tried.cost_micros).sum();
    let n = batch.first_placeholder();
    batch.push(
        format!(
            "UPDATE runs SET units_done = units_done + ${n}, units_total = ${}, cost_micros = cost_micros + ${} \
             WHERE id = ${} AND lease_token = ${} AND status = 'running'",
            n + 1,
            n + 2,
            n + 3,
            n + 4
        ),
        vec![
            Value::Int(units.len() as i64),
            Value::Int(i64::from(total)),
            Value::Int(cost),
            Value::Text(lease.run.to_string()),
            Value::Int(lease.token),
        ],
    );
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
    // In one order (by hash, memo rows by key), so two groups that share rows lock them in the
    // same order on PostgreSQL instead of deadlocking.
    let mut blobs: Vec<&NewBlob> = blobs.into_values().collect();
    blobs.sort_unstable_by(|a, b| a.blob.sha256.cmp(&b.blob.sha256));
    // A row already there without its bytes takes them: its file may be gone (the unit was made
    // again because its blob was lost), and a memo row must not name bytes that are nowhere.
    for chunk in blobs.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO blobs (sha256, bytes, media_type, created_at, content) VALUES {} ON CONFLICT (sha256) \
             DO UPDATE SET content = excluded.content WHERE blobs.content IS NULL AND excluded.content IS NOT NULL",
            placeholders_from(batch.first_placeholder(), chunk.len(), 5)
        );
        let values = chunk.iter().flat_map(|b| {
            [
                Value::Text(b.blob.sha256.clone()),
                Value::Int(b.blob.bytes as i64),
                Value::Text(b.blob.media_type.clone()),
                Value::Int(now),
                Value::MaybeBytes(b.content.clone()),
            ]
        });
        batch.push(sql, values.collect());
    }
    let mut memo: Vec<&MemoEntry> = units.iter().filter_map(|u| u.made.as_ref().map(|(m, _)| m)).collect();
    memo.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    for chunk in memo.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO memo (key, phase, provider, output, cost_micros, created_at) VALUES {} ON CONFLICT (key) DO NOTHING",
            placeholders_from(batch.first_placeholder(), chunk.len(), 6)
        );
        let values = chunk.iter().flat_map(|m| {
            [
                Value::Text(m.key.clone()),
                Value::Int(i64::from(m.phase.number())),
                Value::Text(m.provider.clone()),
                Value::Text(m.output.clone()),
                Value::Int(m.cost_micros),
                Value::Int(now),
            ]
        });
        batch.push(sql, values.collect());
    }
    for chunk in units.chunks(ROWS_PER_STATEMENT) {
        // The units' remote jobs (if any) are done with: their outputs are stored and memoized.
        let sql = format!("DELETE FROM provider_jobs WHERE call_key IN ({})", list_from(batch.first_placeholder(), chunk.len()));
        batch.push(sql, chunk.iter().map(|u| Value::Text(u.memo_key.clone())).collect());
        let sql = format!(
            "INSERT INTO unit_tries (id, run_id, unit, try_no, outcome, message, provider, cost_micros, started_at, finished_at, memo_key) \
             VALUES {}",
            placeholders_from(batch.first_placeholder(), chunk.len(), 11)
        );
        let values = chunk.iter().flat_map(|u| {
            let t = &u.tried;
            [
                Value::Text(crate::domain::ids::new_row_id().to_string()),
                Value::Text(t.run_id.to_string()),
                Value::Int(i64::from(t.unit)),
                Value::Int(i64::from(t.try_no)),
                Value::Text(t.outcome.wire().to_string()),
                Value::MaybeText(t.message.clone()),
                Value::Text(t.provider.clone()),
                Value::Int(t.cost_micros),
                Value::Int(t.started_at),
                Value::Int(t.finished_at),
                Value::Text(u.memo_key.clone()),
            ]
        });
        batch.push(sql, values.collect());
    }
    // Last, after the tries: the memo entries that reused units name are still there. A unit
    // reused from the memo names an entry it did not write, which `gc` may have forgotten since
    // the unit found it; a try must not commit naming nothing (`reused_intact`). On PostgreSQL
    // the tries' insert above holds `unit_tries` against `gc`'s lock, so this count sees what
    // `gc` did before it and `gc` waits for what comes after.
    for chunk in reused_keys(units).chunks(ROWS_PER_STATEMENT) {
        let sql = format!("SELECT COUNT(*) FROM memo WHERE key IN ({})", list_from(batch.first_placeholder(), chunk.len()));
        batch.push(sql, chunk.iter().map(|k| Value::Text(k.to_string())).collect());
    }
    batch
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
        assert_eq!(super::placeholders_from(1, 2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::list(3), "$1, $2, $3");
        assert_eq!(super::placeholders_from(4, 1, 2), "($4, $5)");
        assert_eq!(super::list_from(7, 2), "$7, $8");
    }
}
