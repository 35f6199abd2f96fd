//! Accounts, sessions and the per-account counts that limits and the scheduler read.
use sqlx::AnyConnection;

use super::StorageError;
use crate::domain::{Account, AccountId, Email, Manifest, Timestamp, VideoId};

type Result<T> = std::result::Result<T, StorageError>;

row! {
    struct AccountRow {
        id: AccountId as String,
        email: String,
        password_hash: String,
    }
}

impl TryFrom<AccountRow> for Account {
    type Error = StorageError;
    fn try_from(r: AccountRow) -> Result<Account> {
        let email = Email::parse(&r.email).map_err(|_| StorageError::Corrupt(format!("account {} has no valid email", r.id)))?;
        Ok(Account { id: r.id, email, password_hash: r.password_hash })
    }
}

pub async fn insert_account(conn: &mut AnyConnection, account: &Account, now: Timestamp) -> Result<()> {
    sqlx::query("INSERT INTO accounts (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(account.id.to_string())
        .bind(account.email.as_str())
        .bind(&account.password_hash)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn account_by_email(conn: &mut AnyConnection, email: &Email) -> Result<Option<Account>> {
    let row: Option<AccountRow> =
        sqlx::query_as("SELECT id, email, password_hash FROM accounts WHERE email = $1").bind(email.as_str()).fetch_optional(conn).await?;
    row.map(Account::try_from).transpose()
}

pub async fn account_by_id(conn: &mut AnyConnection, id: AccountId) -> Result<Option<Account>> {
    let row: Option<AccountRow> =
        sqlx::query_as("SELECT id, email, password_hash FROM accounts WHERE id = $1").bind(id.to_string()).fetch_optional(conn).await?;
    row.map(Account::try_from).transpose()
}

/// Stores a session under the hash of its secret.
pub async fn insert_session(
    conn: &mut AnyConnection,
    id_hash: &str,
    account: AccountId,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<()> {
    sqlx::query("INSERT INTO sessions (id_hash, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(id_hash)
        .bind(account.to_string())
        .bind(now)
        .bind(expires_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// The account a live (unexpired) session belongs to.
pub async fn session_account(conn: &mut AnyConnection, id_hash: &str, now: Timestamp) -> Result<Option<AccountId>> {
    let id: Option<String> = sqlx::query_scalar("SELECT account_id FROM sessions WHERE id_hash = $1 AND expires_at > $2")
        .bind(id_hash)
        .bind(now)
        .fetch_optional(conn)
        .await?;
    id.map(|raw| AccountId::try_from(raw).map_err(|_| StorageError::Corrupt("a session's account id".into()))).transpose()
}

/// Ends a session (sign-out, or the old one at sign-in) and drops the account's expired ones.
pub async fn delete_session(conn: &mut AnyConnection, id_hash: &str, now: Timestamp) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1 OR expires_at <= $2").bind(id_hash).bind(now).execute(conn).await?;
    Ok(())
}

/// The video's owner, or none for an unknown video.
pub async fn video_owner(conn: &mut AnyConnection, video: VideoId) -> Result<Option<AccountId>> {
    let id: Option<String> =
        sqlx::query_scalar("SELECT account_id FROM videos WHERE id = $1").bind(video.to_string()).fetch_optional(conn).await?;
    id.map(|raw| AccountId::try_from(raw).map_err(|_| StorageError::Corrupt(format!("video {video} has no valid owner")))).transpose()
}

/// Videos the account made since `since`.
pub async fn videos_made_since(conn: &mut AnyConnection, account: AccountId, since: Timestamp) -> Result<i64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM videos WHERE account_id = $1 AND created_at >= $2")
        .bind(account.to_string())
        .bind(since)
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// The account's queued or running runs, over all its videos.
pub async fn active_runs_of(conn: &mut AnyConnection, account: AccountId) -> Result<i64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM runs r JOIN videos v ON v.id = r.video_id WHERE v.account_id = $1 AND r.status IN ('queued', 'running')",
    )
    .bind(account.to_string())
    .fetch_one(conn)
    .await?;
    Ok(n)
}

/// Every manifest of the account's checkpoints, for the bytes its videos hold.
pub async fn manifests_of(conn: &mut AnyConnection, account: AccountId) -> Result<Vec<String>> {
    let docs = sqlx::query_scalar("SELECT c.manifest FROM checkpoints c JOIN videos v ON v.id = c.video_id WHERE v.account_id = $1")
        .bind(account.to_string())
        .fetch_all(conn)
        .await?;
    Ok(docs)
}

/// Whether one of the video's checkpoints holds the blob (its artifact URL may be served).
pub async fn video_holds_blob(conn: &mut AnyConnection, video: VideoId, sha256: &str) -> Result<bool> {
    // The text search only narrows the rows down: a script's title or narration can hold the
    // same text, so each manifest found is read, and only the blobs it names count.
    let docs: Vec<String> = sqlx::query_scalar("SELECT manifest FROM checkpoints WHERE video_id = $1 AND manifest LIKE $2")
        .bind(video.to_string())
        .bind(format!("%\"{sha256}\"%"))
        .fetch_all(conn)
        .await?;
    Ok(docs
        .iter()
        .any(|doc| serde_json::from_str::<Manifest>(doc).is_ok_and(|manifest| manifest.blobs().iter().any(|blob| blob.sha256 == sha256))))
}

/// Records that a worker just claimed one of the account's runs (the scheduler's turn order).
pub async fn note_claim(conn: &mut AnyConnection, video: VideoId, now: Timestamp) -> Result<()> {
    sqlx::query("UPDATE accounts SET last_claimed_at = $1 WHERE id = (SELECT account_id FROM videos WHERE id = $2)")
        .bind(now)
        .bind(video.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes the video and every row of its own (tries, remote jobs, fault hits,
/// runs, checkpoints, branches), children first. Blobs and memo entries are shared by content and stay
/// for `gc`.
pub async fn delete_video(conn: &mut AnyConnection, video: VideoId) -> Result<()> {
    const STATEMENTS: [&str; 7] = [
        "DELETE FROM unit_tries WHERE run_id IN (SELECT id FROM runs WHERE video_id = $1)",
        "DELETE FROM provider_jobs WHERE run_id IN (SELECT id FROM runs WHERE video_id = $1)",
        "DELETE FROM fault_hits WHERE video_id = $1",
        "DELETE FROM runs WHERE video_id = $1",
        "DELETE FROM checkpoints WHERE video_id = $1",
        "DELETE FROM branches WHERE video_id = $1",
        "DELETE FROM videos WHERE id = $1",
    ];
    for sql in STATEMENTS {
        sqlx::query(sql).bind(video.to_string()).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Locks the account's row until the transaction ends, on PostgreSQL: commands that check the
/// account's limits take it (after their video's lock, before anything else), so two racing
/// commands cannot both pass a limit that has room for one. SQLite serialises all writers.
pub async fn lock_account(conn: &mut AnyConnection, backend: super::Backend, id: AccountId) -> Result<()> {
    if backend == super::Backend::Postgres {
        sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE").bind(id.to_string()).execute(conn).await?;
    }
    Ok(())
}

/// Whether another account than `account` has a run waiting in the queue.
pub async fn others_waiting(conn: &mut AnyConnection, account: AccountId) -> Result<bool> {
    let hit: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM runs r JOIN videos v ON v.id = r.video_id WHERE r.status = 'queued' AND v.account_id <> $1 LIMIT 1",
    )
    .bind(account.to_string())
    .fetch_optional(conn)
    .await?;
    Ok(hit.is_some())
}

/// Counts one try against each key (`(key_hash, window_ms)`), in one statement per key: a key whose
/// window has ended starts a new one. Answers each key's count after this try and when its window
/// ends, in `keys`' order. On PostgreSQL each row stays locked until the transaction ends, so tries
/// sent at once count one after another; callers pass keys in one order (sorted), so two
/// transactions never wait for each other's rows in a circle.
pub async fn count_tries(conn: &mut AnyConnection, keys: &[(String, i64)], now: Timestamp) -> Result<Vec<(i64, Timestamp)>> {
    let mut answers = Vec::with_capacity(keys.len());
    for (key_hash, window_ms) in keys {
        let answer: (i64, i64) = sqlx::query_as(
            "INSERT INTO attempt_counts (key_hash, count, until_ms) VALUES ($1, 1, $2 + $3)
             ON CONFLICT (key_hash) DO UPDATE SET
               count = CASE WHEN attempt_counts.until_ms <= $2 THEN 1 ELSE attempt_counts.count + 1 END,
               until_ms = CASE WHEN attempt_counts.until_ms <= $2 THEN $2 + $3 ELSE attempt_counts.until_ms END
             RETURNING count, until_ms",
        )
        .bind(key_hash)
        .bind(now)
        .bind(*window_ms)
        .fetch_one(&mut *conn)
        .await?;
        answers.push(answer);
    }
    Ok(answers)
}

/// A successful sign-in: the email's count is gone, and the address's gives this try back. The
/// two rows are written in key order, as `count_tries` locks them.
pub async fn forgive_sign_in(conn: &mut AnyConnection, email_key: &str, address_key: &str) -> Result<()> {
    let forget = sqlx::query("DELETE FROM attempt_counts WHERE key_hash = $1").bind(email_key);
    let give_back = sqlx::query("UPDATE attempt_counts SET count = count - 1 WHERE key_hash = $1 AND count > 0").bind(address_key);
    let (first, second) = if email_key <= address_key { (forget, give_back) } else { (give_back, forget) };
    first.execute(&mut *conn).await?;
    second.execute(conn).await?;
    Ok(())
}

/// Deletes up to `limit` counts whose window ended by `now`, oldest first; answers how many. On
/// PostgreSQL it skips rows a sign-in holds at the moment (they are deleted next time), so it
/// never waits for one.
pub async fn delete_ended_tries(conn: &mut AnyConnection, backend: super::Backend, now: Timestamp, limit: i64) -> Result<u64> {
    let sql = match backend {
        super::Backend::Sqlite => {
            "DELETE FROM attempt_counts WHERE key_hash IN
               (SELECT key_hash FROM attempt_counts WHERE until_ms <= $1 ORDER BY until_ms LIMIT $2)"
        }
        super::Backend::Postgres => {
            "DELETE FROM attempt_counts WHERE key_hash IN
               (SELECT key_hash FROM attempt_counts WHERE until_ms <= $1 ORDER BY until_ms LIMIT $2 FOR UPDATE SKIP LOCKED)"
        }
    };
    Ok(sqlx::query(sql).bind(now).bind(limit).execute(conn).await?.rows_affected())
}
