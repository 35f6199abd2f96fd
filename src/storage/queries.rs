//! The statements, as functions over one connection (usually a transaction's).
//!
//! Every statement is literal SQL that both databases run. Entities are read whole (`SELECT *`)
//! into their `FromRow` rows, which pick their columns by name and check every id and word as
//! they read it; `tests/it/storage.rs` runs every function here on SQLite and PostgreSQL.
use sqlx::AnyConnection;

use super::batch::{Answer, Batch, Statement, StatementSet, Value, run_set, statement_set};
use super::records::{BranchRow, CheckpointRow, RunRow, UnitTryRow, VideoRow, key_of};
use super::{Backend, StorageError};
use crate::domain::video::{Branch, Checkpoint, Run, UnitTry, Video, VideoInfo};
use crate::domain::{AccountId, BranchId, CheckpointId, Phase, RunId, RunStatus, Timestamp, VideoId};

type Result<T> = std::result::Result<T, StorageError>;

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("records serialize")
}

// ---- videos -------------------------------------------------------------------------------

pub async fn insert_video(conn: &mut AnyConnection, v: &VideoInfo) -> Result<()> {
    sqlx::query(
        "INSERT INTO videos (id, prompt, title, beats, seed, auto_continue, fault_plan, budget_micros, created_at, account_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(v.id.to_string())
    .bind(&v.prompt)
    .bind(&v.title)
    .bind(i64::from(v.beats))
    .bind(v.seed as i64)
    .bind(i64::from(v.auto_continue))
    .bind(json(&v.fault_plan))
    .bind(v.budget_micros)
    .bind(v.created_at)
    .bind(v.owner.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_video(conn: &mut AnyConnection, id: VideoId) -> Result<Option<VideoInfo>> {
    let row: Option<VideoRow> = sqlx::query_as("SELECT * FROM videos WHERE id = $1").bind(id.to_string()).fetch_optional(conn).await?;
    Ok(row.map(VideoInfo::from))
}

/// The account's newest videos.
pub async fn list_videos(conn: &mut AnyConnection, owner: AccountId, limit: i64) -> Result<Vec<VideoInfo>> {
    let rows: Vec<VideoRow> = sqlx::query_as("SELECT * FROM videos WHERE account_id = $1 ORDER BY created_at DESC, id LIMIT $2")
        .bind(owner.to_string())
        .bind(limit)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(VideoInfo::from).collect())
}

/// Locks the video's row until the transaction ends, on PostgreSQL: every command on a video
/// calls this first, so a video's writers run one at a time on both databases (SQLite's
/// `BEGIN IMMEDIATE` already serialises all writers).
pub async fn lock_video(conn: &mut AnyConnection, backend: Backend, id: VideoId) -> Result<()> {
    if backend == Backend::Postgres {
        lock_video_statement(id).run(conn).await?;
    }
    Ok(())
}

/// `lock_video`'s statement (PostgreSQL only).
fn lock_video_statement(id: VideoId) -> Statement {
    Statement { sql: "SELECT id FROM videos WHERE id = $1 FOR UPDATE", values: vec![Value::Text(id.to_string())] }
}

/// Counts a committed change of the video (and locks its row on PostgreSQL, like `lock_video`).
/// False: no such video.
pub async fn touch_video(conn: &mut AnyConnection, id: VideoId) -> Result<bool> {
    Ok(touch_video_statement(id).run(conn).await?.rows_affected == 1)
}

/// `touch_video` as a statement (to run with others, or at the commit: `WriteTx::defer`).
pub fn touch_video_statement(id: VideoId) -> Statement {
    Statement { sql: "UPDATE videos SET changes = changes + 1 WHERE id = $1", values: vec![Value::Text(id.to_string())] }
}

/// The video's change counter (0 for an unknown video).
pub async fn video_changes(conn: &mut AnyConnection, id: VideoId) -> Result<i64> {
    let changes: Option<i64> =
        sqlx::query_scalar("SELECT changes FROM videos WHERE id = $1").bind(id.to_string()).fetch_optional(conn).await?;
    Ok(changes.unwrap_or(0))
}

pub async fn set_video_title(conn: &mut AnyConnection, id: VideoId, title: &str) -> Result<()> {
    set_video_title_statement(id, title).run(conn).await?;
    Ok(())
}

pub fn set_video_title_statement(id: VideoId, title: &str) -> Statement {
    Statement { sql: "UPDATE videos SET title = $1 WHERE id = $2", values: vec![Value::Text(title.into()), Value::Text(id.to_string())] }
}

pub async fn set_auto_continue(conn: &mut AnyConnection, id: VideoId, on: bool) -> Result<()> {
    sqlx::query("UPDATE videos SET auto_continue = $1 WHERE id = $2").bind(i64::from(on)).bind(id.to_string()).execute(conn).await?;
    Ok(())
}

pub async fn set_budget(conn: &mut AnyConnection, id: VideoId, budget_micros: Option<i64>) -> Result<()> {
    sqlx::query("UPDATE videos SET budget_micros = $1 WHERE id = $2").bind(budget_micros).bind(id.to_string()).execute(conn).await?;
    Ok(())
}

// ---- branches -----------------------------------------------------------------------------

pub async fn insert_branch(conn: &mut AnyConnection, b: &Branch) -> Result<()> {
    sqlx::query("INSERT INTO branches (id, video_id, name, head_id, forked_from, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(b.id.to_string())
        .bind(b.video_id.to_string())
        .bind(&b.name)
        .bind(b.head_id.map(|c| c.to_string()))
        .bind(b.forked_from.map(|c| c.to_string()))
        .bind(b.created_at)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_branch_head(conn: &mut AnyConnection, branch: BranchId, head: CheckpointId) -> Result<()> {
    set_branch_head_statement(branch, head).run(conn).await?;
    Ok(())
}

pub fn set_branch_head_statement(branch: BranchId, head: CheckpointId) -> Statement {
    Statement {
        sql: "UPDATE branches SET head_id = $1 WHERE id = $2",
        values: vec![Value::Text(head.to_string()), Value::Text(branch.to_string())],
    }
}

// ---- checkpoints --------------------------------------------------------------------------

pub async fn insert_checkpoint(conn: &mut AnyConnection, c: &Checkpoint) -> Result<()> {
    insert_checkpoint_statement(c).run(conn).await?;
    Ok(())
}

pub fn insert_checkpoint_statement(c: &Checkpoint) -> Statement {
    Statement {
        sql: "INSERT INTO checkpoints (id, video_id, branch_id, parent_id, parent_key, phase, version, status, origin, \
              manifest, run_id, created_at, approved_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        values: vec![
            Value::Text(c.id.to_string()),
            Value::Text(c.video_id.to_string()),
            Value::Text(c.branch_id.to_string()),
            Value::MaybeText(c.parent_id.map(|p| p.to_string())),
            Value::Text(key_of(c.parent_id)),
            Value::Int(i64::from(c.phase.number())),
            Value::Int(i64::from(c.version)),
            Value::Text(c.status.wire().into()),
            Value::Text(c.origin.wire().into()),
            Value::Text(json(&c.manifest)),
            Value::MaybeText(c.run_id.map(|r| r.to_string())),
            Value::Int(c.created_at),
            Value::MaybeInt(c.approved_at),
        ],
    }
}

/// `pending → approved`, the only change a checkpoint ever sees. Returns whether it changed.
pub async fn approve_checkpoint(conn: &mut AnyConnection, id: CheckpointId, now: Timestamp) -> Result<bool> {
    Ok(approve_checkpoint_statement(id, now).run(conn).await?.rows_affected == 1)
}

/// `approve_checkpoint` as a statement (for a checkpoint nobody else can have approved: one this
/// transaction wrote, approved at its commit with `WriteTx::defer`).
pub fn approve_checkpoint_statement(id: CheckpointId, now: Timestamp) -> Statement {
    Statement {
        sql: "UPDATE checkpoints SET status = 'approved', approved_at = $1 WHERE id = $2 AND status = 'pending'",
        values: vec![Value::Int(now), Value::Text(id.to_string())],
    }
}

// ---- runs ---------------------------------------------------------------------------------

pub async fn insert_run(conn: &mut AnyConnection, r: &Run) -> Result<()> {
    insert_run_statement(r).run(conn).await?;
    Ok(())
}

/// `insert_run` as a statement (to send with others, or with the commit: `WriteTx::defer`).
pub fn insert_run_statement(r: &Run) -> Statement {
    let from_key = match &r.regenerate {
        Some(regen) => format!("regenerate:{}", regen.of),
        None => key_of(r.from_checkpoint),
    };
    Statement {
        sql: "INSERT INTO runs (id, video_id, branch_id, from_checkpoint, from_key, phase, attempt, kind, status, \
              regenerate_beat, regenerate_seed, regenerate_of, units_total, created_at) \
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        values: vec![
            Value::Text(r.id.to_string()),
            Value::Text(r.video_id.to_string()),
            Value::Text(r.branch_id.to_string()),
            Value::MaybeText(r.from_checkpoint.map(|c| c.to_string())),
            Value::Text(from_key),
            Value::Int(i64::from(r.phase.number())),
            Value::Int(i64::from(r.attempt)),
            Value::Text(r.kind.wire().to_string()),
            Value::Text(r.status.wire().to_string()),
            Value::MaybeInt(r.regenerate.as_ref().map(|g| i64::from(g.beat))),
            Value::MaybeInt(r.regenerate.as_ref().map(|g| g.seed as i64)),
            Value::MaybeText(r.regenerate.as_ref().map(|g| g.of.to_string())),
            Value::Int(i64::from(r.units_total)),
            Value::Int(r.created_at),
        ],
    }
}

/// A worker's claim on a run. Each claim takes the next token, and every write the worker makes
/// for the run is conditional on still holding it: a claim taken over has a stale token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub run: RunId,
    pub video: VideoId,
    pub owner: String,
    pub token: i64,
}

/// Claims a queued run, or a running one whose lease expired (its worker died or stalled), under
/// a new fencing token, in one `UPDATE … RETURNING`; then counts the change on its video and
/// notes the claim on its account. (On SQLite, whose transaction holds the write lock throughout,
/// the pick is first kept in a temporary table, so that the statements after the claim can find
/// it in the same call.)
///
/// Fair across accounts: the run picked belongs to the account whose last claim is oldest (round
/// robin), and within an account the oldest run goes first. So one account with 50 queued
/// videos delays another account's single run by at most the one claim already under way (and,
/// should the run arrive just as that run's checkpoint commits, the run its worker claimed with
/// it: `worker::claim_next`).
///
/// On PostgreSQL the candidate is picked `FOR UPDATE SKIP LOCKED` together with its video's row:
/// claimers never wait on each other or on a command busy with that video, and the video's lock
/// is already held when the change is counted, so the claim takes its locks in the same order as
/// every other writer (video, then run) and cannot deadlock with them. The outer `WHERE` repeats
/// the claim condition: it is checked again on the row as it is when locked.
pub async fn claim_run(conn: &mut AnyConnection, owner: &str, now: Timestamp, lease_ms: i64) -> Result<Option<(Run, Lease)>> {
    Ok(claim_run_with_state(conn, owner, now, lease_ms).await?.map(|(run, lease, _)| (run, lease)))
}

/// `claim_run`, and the claimed run's video as `load_video_state` reads it after the claim.
pub async fn claim_run_with_state(
    conn: &mut AnyConnection,
    owner: &str,
    now: Timestamp,
    lease_ms: i64,
) -> Result<Option<(Run, Lease, Video)>> {
    let answers = claim_batch(Backend::of_connection(conn), owner, now, lease_ms).run(&mut *conn).await?;
    claimed_state(conn, &answers, owner, now).await
}

/// The claim of `claim_run_with_state`, as a batch that can open a transaction
/// (`Store::write_starting`). Run it inside a write transaction (every caller does): on SQLite
/// the pick and the claim are separate statements, which only the transaction's write lock keeps
/// together.
pub fn claim_batch(backend: Backend, owner: &str, now: Timestamp, lease_ms: i64) -> Batch {
    let lease = vec![Value::Text(owner.to_string()), Value::Int(now + lease_ms), Value::Int(now)];
    let mut batch = Batch::new(backend);
    match backend {
        // The pick goes into the connection's `temp.claim_pick` (made by `set_up`), so the
        // statements after the claim find the run and its video without its id: the claim, the
        // video's change, the account's turn and the state go in one call.
        Backend::Sqlite => {
            batch.push_statement(Statement { sql: "DELETE FROM temp.claim_pick", values: Vec::new() });
            batch.push_statement(Statement {
                sql: "INSERT INTO temp.claim_pick (id, video_id) \
                      SELECT r.id, r.video_id FROM runs r JOIN videos v ON v.id = r.video_id LEFT JOIN accounts a ON a.id = v.account_id \
                      WHERE r.status = 'queued' OR (r.status = 'running' AND r.lease_expires_at < $1) \
                      ORDER BY COALESCE(a.last_claimed_at, 0), r.created_at, r.id LIMIT 1",
                values: vec![Value::Int(now)],
            });
            batch.push_statement(Statement {
                sql: "UPDATE runs SET status = 'running', lease_owner = $1, lease_expires_at = $2, started_at = COALESCE(started_at, $3), \
                      lease_token = lease_token + 1 WHERE id = (SELECT id FROM temp.claim_pick) \
                      AND (status = 'queued' OR (status = 'running' AND lease_expires_at < $3)) RETURNING *",
                values: lease,
            });
            batch.push_set(&CLAIMED_PICKED, vec![Value::Int(now)]);
        }
        Backend::Postgres => batch.push_statement(Statement {
            sql: "UPDATE runs SET status = 'running', lease_owner = $1, lease_expires_at = $2, started_at = COALESCE(started_at, $3), \
                  lease_token = lease_token + 1 \
                  WHERE id = (SELECT r.id FROM runs r JOIN videos v ON v.id = r.video_id LEFT JOIN accounts a ON a.id = v.account_id \
                              WHERE r.status = 'queued' OR (r.status = 'running' AND r.lease_expires_at < $3) \
                              ORDER BY COALESCE(a.last_claimed_at, 0), r.created_at, r.id LIMIT 1 FOR UPDATE OF r, v SKIP LOCKED) \
                  AND (status = 'queued' OR (status = 'running' AND lease_expires_at < $3)) RETURNING *",
            values: lease,
        }),
    }
    batch
}

/// SQLite's table for the run a claim picked (`claim_batch`), one per connection.
pub const CLAIM_PICK_TABLE: &str = "CREATE TEMP TABLE IF NOT EXISTS claim_pick (id TEXT NOT NULL, video_id TEXT NOT NULL)";

/// After `claim_batch` (its `answers`), in the same transaction: the claimed run, its lease and
/// its video's state; `None` when there was nothing to claim. On SQLite the claim's call read
/// the state already; on PostgreSQL it is read here (`CLAIMED`).
pub async fn claimed_state(
    conn: &mut AnyConnection,
    answers: &[Answer],
    owner: &str,
    now: Timestamp,
) -> Result<Option<(Run, Lease, Video)>> {
    let (claim, picked) = match answers {
        [claim] => (claim, None),
        [_, _, claim, picked @ ..] if picked.len() == CLAIMED_PICKED.statements.len() => (claim, Some(picked)),
        _ => return Err(StorageError::Corrupt(format!("a claim came back in {} parts", answers.len()))),
    };
    let Some(run) = claim.rows_as::<RunRow>()?.into_iter().next().map(Run::from) else { return Ok(None) };
    let state = match picked {
        Some(picked) => state_of(&picked[2..])?,
        None => state_of(&run_set(conn, &CLAIMED, &[Value::Text(run.video_id.to_string()), Value::Int(now)]).await?[2..])?,
    };
    let state = state.ok_or_else(|| StorageError::Corrupt(format!("run {} has no video", run.id)))?;
    if state.video.id != run.video_id {
        return Err(StorageError::Corrupt(format!("the claim of run {} read video {}", run.id, state.video.id)));
    }
    let lease = Lease { run: run.id, video: run.video_id, owner: owner.to_string(), token: run.lease_token };
    Ok(Some((run, lease, state)))
}

/// `touch_video` then `hold_lease`, in one call on SQLite: how every write for a held run begins.
pub async fn touch_and_hold(conn: &mut AnyConnection, lease: &Lease, now: Timestamp, lease_ms: i64) -> Result<bool> {
    let answers = touch_and_hold_batch(Backend::of_connection(conn), lease, now, lease_ms).run(conn).await?;
    Ok(held(&answers))
}

/// `touch_and_hold` as a batch that can open a transaction (`Store::write_starting`); `held`
/// reads its answers.
pub fn touch_and_hold_batch(backend: Backend, lease: &Lease, now: Timestamp, lease_ms: i64) -> Batch {
    let values = vec![
        Value::Text(lease.video.to_string()),
        Value::Int(now + lease_ms),
        Value::Text(lease.run.to_string()),
        Value::Text(lease.owner.clone()),
        Value::Int(lease.token),
        Value::Int(now),
    ];
    let mut batch = Batch::new(backend);
    batch.push_set(&TOUCH_AND_HOLD, values);
    batch
}

/// Whether the lease still holds its run (read only: `hold_lease` without the extension).
pub async fn lease_held(conn: &mut AnyConnection, lease: &Lease, now: Timestamp) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM runs WHERE id = $1 AND lease_owner = $2 AND lease_token = $3 AND status = 'running' AND lease_expires_at >= $4",
    )
    .bind(lease.run.to_string())
    .bind(&lease.owner)
    .bind(lease.token)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// How many answers `touch_and_hold_batch` gives (statements appended to it answer after them).
pub const FENCE_ANSWERS: usize = TOUCH_AND_HOLD.statements.len();

/// Whether `touch_and_hold_batch` found the lease still held (and extended it).
pub fn held(answers: &[Answer]) -> bool {
    answers.get(1).is_some_and(|a| a.rows_affected == 1)
}

/// Extends the lease if it is still held (same owner and token, still running); false when the
/// run is no longer ours: cancelled, finished, or taken over. On PostgreSQL it also locks the
/// run's row until the transaction ends, so no claim can slip in before the caller commits.
///
/// A lease that has expired is lost even if nobody has claimed the run yet: a worker that stalled
/// past its lease must not carry on as if nothing happened (a claimer may be about to take it).
pub async fn hold_lease(conn: &mut AnyConnection, lease: &Lease, now: Timestamp, lease_ms: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE runs SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3 AND lease_token = $4 AND status = 'running' \
         AND lease_expires_at >= $5",
    )
    .bind(now + lease_ms)
    .bind(lease.run.to_string())
    .bind(&lease.owner)
    .bind(lease.token)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets a held run's unit count and progress; false (nothing written) when the lease is lost.
pub async fn set_run_progress(
    conn: &mut AnyConnection,
    lease: &Lease,
    units_total: u32,
    units_done: u32,
    cost_micros: i64,
) -> Result<bool> {
    Ok(set_run_progress_statement(lease, units_total, units_done, cost_micros).run(conn).await?.rows_affected == 1)
}

/// `set_run_progress` as a statement (to run with others, or at the commit: `WriteTx::defer`).
pub fn set_run_progress_statement(lease: &Lease, units_total: u32, units_done: u32, cost_micros: i64) -> Statement {
    Statement {
        sql: "UPDATE runs SET units_total = $1, units_done = $2, cost_micros = $3 \
              WHERE id = $4 AND lease_token = $5 AND status = 'running'",
        values: vec![
            Value::Int(i64::from(units_total)),
            Value::Int(i64::from(units_done)),
            Value::Int(cost_micros),
            Value::Text(lease.run.to_string()),
            Value::Int(lease.token),
        ],
    }
}

/// A claimed run's progress starts again from none of its units done (those it made before a
/// hand-back or a takeover are counted again as they come back from the memo), and its cost
/// keeps what those units were paid: the memo gives them back at no cost.
pub fn restart_run_progress_statement(lease: &Lease, units_total: u32) -> Statement {
    Statement {
        sql: "UPDATE runs SET units_total = $1, units_done = 0 WHERE id = $2 AND lease_token = $3 AND status = 'running'",
        values: vec![Value::Int(i64::from(units_total)), Value::Text(lease.run.to_string()), Value::Int(lease.token)],
    }
}

/// Adds what a failed try was paid to a held run's cost (the provider answered, and the answer
/// could not be used); false (nothing written) when the lease is lost.
pub async fn add_run_cost(conn: &mut AnyConnection, lease: &Lease, cost_micros: i64) -> Result<bool> {
    let added = sqlx::query("UPDATE runs SET cost_micros = cost_micros + $1 WHERE id = $2 AND lease_token = $3 AND status = 'running'")
        .bind(cost_micros)
        .bind(lease.run.to_string())
        .bind(lease.token)
        .execute(conn)
        .await?;
    Ok(added.rows_affected() == 1)
}

/// Who may end a run: its worker, while it holds the lease, or a person (cancel), any time it is
/// still active.
#[derive(Clone, Copy, Debug)]
pub enum Ender<'a> {
    Worker(&'a Lease),
    Person,
}

/// Ends an active run. False when it was not active any more (finished, cancelled meanwhile) or,
/// for a worker, when its lease was taken over.
pub async fn finish_run(
    conn: &mut AnyConnection,
    run: RunId,
    by: Ender<'_>,
    status: RunStatus,
    error: Option<&str>,
    failed_unit: Option<u32>,
    now: Timestamp,
) -> Result<bool> {
    Ok(finish_run_statement(run, by, status, error, failed_unit, now).run(conn).await?.rows_affected == 1)
}

/// `finish_run` as a statement: it ended the run when it changed one row.
pub fn finish_run_statement(
    run: RunId,
    by: Ender<'_>,
    status: RunStatus,
    error: Option<&str>,
    failed_unit: Option<u32>,
    now: Timestamp,
) -> Statement {
    let mut values = vec![
        Value::Text(status.wire().into()),
        Value::MaybeText(error.map(str::to_string)),
        Value::MaybeInt(failed_unit.map(i64::from)),
        Value::Int(now),
        Value::Text(run.to_string()),
    ];
    let sql = match by {
        Ender::Worker(lease) => {
            values.push(Value::Int(lease.token));
            "UPDATE runs SET status = $1, error = $2, failed_unit = $3, finished_at = $4, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $5 AND status = 'running' AND lease_token = $6"
        }
        Ender::Person => {
            "UPDATE runs SET status = $1, error = $2, failed_unit = $3, finished_at = $4, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $5 AND status IN ('queued', 'running')"
        }
    };
    Statement { sql, values }
}

/// A held run's success: the run ended as `finish_run` ends it, then its video's state as
/// `load_video_state` reads it (one call on SQLite). `None`, and nothing ended, when the lease is
/// no longer held.
pub async fn finish_and_load(conn: &mut AnyConnection, lease: &Lease, now: Timestamp) -> Result<Option<Video>> {
    let answers = finish_and_load_batch(Backend::of_connection(conn), lease, now).run(conn).await?;
    finished_state(&answers, lease)
}

/// `finish_and_load` as a batch, to send with other statements (`finished_state` reads its answers).
pub fn finish_and_load_batch(backend: Backend, lease: &Lease, now: Timestamp) -> Batch {
    let mut batch = Batch::new(backend);
    batch.push_statement(finish_run_statement(lease.run, Ender::Worker(lease), RunStatus::Succeeded, None, None, now));
    for sql in VIDEO_STATE.statements {
        batch.push_statement(Statement { sql, values: vec![Value::Text(lease.video.to_string())] });
    }
    batch
}

/// How many answers `finish_and_load_batch` gives.
pub const FINISH_AND_LOAD_ANSWERS: usize = 1 + VIDEO_STATE.statements.len();

/// The state `finish_and_load_batch` read (its answers), or `None` when it ended nothing.
pub fn finished_state(answers: &[Answer], lease: &Lease) -> Result<Option<Video>> {
    if answers.first().is_none_or(|a| a.rows_affected != 1) {
        return Ok(None);
    }
    Ok(Some(state_of(&answers[1..])?.ok_or_else(|| StorageError::Corrupt(format!("run {} has no video", lease.run)))?))
}

// ---- one video's whole state ----------------------------------------------------------------

/// A video with its branches, checkpoints and runs: `$1` the video (one call on SQLite: `batch`).
const VIDEO_STATE: StatementSet = statement_set!(
    "SELECT * FROM videos WHERE id = $1",
    "SELECT * FROM branches WHERE video_id = $1 ORDER BY created_at, name",
    "SELECT * FROM checkpoints WHERE video_id = $1 ORDER BY created_at, id",
    "SELECT * FROM runs WHERE video_id = $1 ORDER BY created_at, id",
);

/// After a claim: the video counted as changed (`touch_video`), its account noted as last
/// claimed at `$2` (`note_claim`), then the video's state as `VIDEO_STATE` reads it.
const CLAIMED: StatementSet = statement_set!(
    "UPDATE videos SET changes = changes + 1 WHERE id = $1",
    "UPDATE accounts SET last_claimed_at = $2 WHERE id = (SELECT account_id FROM videos WHERE id = $1)",
    "SELECT * FROM videos WHERE id = $1",
    "SELECT * FROM branches WHERE video_id = $1 ORDER BY created_at, name",
    "SELECT * FROM checkpoints WHERE video_id = $1 ORDER BY created_at, id",
    "SELECT * FROM runs WHERE video_id = $1 ORDER BY created_at, id",
);

/// `CLAIMED` on SQLite, in the claim's call: the run and video `claim_batch` put in
/// `temp.claim_pick` (nothing when it picked none); `$1` now.
const CLAIMED_PICKED: StatementSet = statement_set!(
    "UPDATE videos SET changes = changes + 1 WHERE id = (SELECT video_id FROM temp.claim_pick)",
    "UPDATE accounts SET last_claimed_at = $1 WHERE id = (SELECT account_id FROM videos WHERE id = (SELECT video_id FROM temp.claim_pick))",
    "SELECT * FROM videos WHERE id = (SELECT video_id FROM temp.claim_pick)",
    "SELECT * FROM branches WHERE video_id = (SELECT video_id FROM temp.claim_pick) ORDER BY created_at, name",
    "SELECT * FROM checkpoints WHERE video_id = (SELECT video_id FROM temp.claim_pick) ORDER BY created_at, id",
    "SELECT * FROM runs WHERE video_id = (SELECT video_id FROM temp.claim_pick) ORDER BY created_at, id",
);

/// A held run's write begins: the video counted as changed (`touch_video`), then the lease
/// checked and extended as `hold_lease` does (`$2` the new expiry, `$6` now).
const TOUCH_AND_HOLD: StatementSet = statement_set!(
    "UPDATE videos SET changes = changes + 1 WHERE id = $1",
    "UPDATE runs SET lease_expires_at = $2 WHERE id = $3 AND video_id = $1 AND lease_owner = $4 AND lease_token = $5 \
     AND status = 'running' AND lease_expires_at >= $6",
);

/// Every statement set, for the test that each one names its values `$1` to `$k`.
pub const STATEMENT_SETS: [&StatementSet; 4] = [&VIDEO_STATE, &CLAIMED, &CLAIMED_PICKED, &TOUCH_AND_HOLD];

/// The state from the last four answers of `VIDEO_STATE` or `CLAIMED`.
fn state_of(answers: &[Answer]) -> Result<Option<Video>> {
    let [video, branches, checkpoints, runs] = answers else {
        return Err(StorageError::Corrupt(format!("a video's state came back in {} parts", answers.len())));
    };
    let Some(video) = video.rows_as::<VideoRow>()?.pop() else { return Ok(None) };
    Ok(Some(Video {
        video: VideoInfo::from(video),
        branches: branches.rows_as::<BranchRow>()?.into_iter().map(Branch::from).collect(),
        checkpoints: checkpoints.rows_as::<CheckpointRow>()?.into_iter().map(Checkpoint::from).collect(),
        runs: runs.rows_as::<RunRow>()?.into_iter().map(Run::from).collect(),
        estimates: Vec::new(),
        spent_total: None,
    }))
}

/// A command's first statements: the video's row locked (on PostgreSQL, as `lock_video` does;
/// SQLite's write transaction holds its lock already), then its state as `load_video_state`
/// reads it. On SQLite they go in the call that opens the transaction (`Store::write_starting`);
/// `loaded_state` reads the answers.
pub fn lock_and_load_batch(backend: Backend, id: VideoId) -> Batch {
    let mut batch = Batch::new(backend);
    if backend == Backend::Postgres {
        batch.push_statement(lock_video_statement(id));
    }
    batch.push_set(&VIDEO_STATE, vec![Value::Text(id.to_string())]);
    batch
}

/// The state `lock_and_load_batch` read (its last answers); `None`: no such video.
pub fn loaded_state(answers: &[Answer]) -> Result<Option<Video>> {
    let parts = VIDEO_STATE.statements.len();
    let Some(first) = answers.len().checked_sub(parts) else {
        return Err(StorageError::Corrupt(format!("a video's state came back in {} parts", answers.len())));
    };
    state_of(&answers[first..])
}

pub async fn load_video_state(conn: &mut AnyConnection, id: VideoId) -> Result<Option<Video>> {
    state_of(&run_set(conn, &VIDEO_STATE, &[Value::Text(id.to_string())]).await?)
}

// ---- unit tries, memo, blobs -------------------------------------------------------------

pub async fn insert_unit_try(conn: &mut AnyConnection, t: &UnitTry) -> Result<()> {
    sqlx::query(
        "INSERT INTO unit_tries (id, run_id, unit, try_no, outcome, message, provider, cost_micros, started_at, finished_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(crate::domain::ids::new_row_id().to_string())
    .bind(t.run_id.to_string())
    .bind(i64::from(t.unit))
    .bind(i64::from(t.try_no))
    .bind(t.outcome.wire())
    .bind(&t.message)
    .bind(&t.provider)
    .bind(t.cost_micros)
    .bind(t.started_at)
    .bind(t.finished_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn unit_tries_of_video(conn: &mut AnyConnection, video: VideoId) -> Result<Vec<UnitTry>> {
    let rows: Vec<UnitTryRow> = sqlx::query_as(
        "SELECT t.* FROM unit_tries t JOIN runs r ON r.id = t.run_id WHERE r.video_id = $1 ORDER BY t.started_at, t.unit, t.try_no",
    )
    .bind(video.to_string())
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(UnitTry::from).collect())
}

row! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct MemoEntry {
        pub key: String,
        pub phase: Phase as i64,
        pub provider: String,
        pub output: String,
        pub cost_micros: i64,
    }
}

// ---- reclaiming (`gc`) ----------------------------------------------------------------------

/// The runs whose finished units' memo entries (named by their tries) are still wanted: a queued
/// or running run (its units so far), and a failed or cancelled one that a retry would redo (it
/// starts from its branch's head) or that is its branch's latest ended run: after an edit of an
/// earlier phase, the continue from the edit (queued, or under way) reuses every unit the edit
/// did not change. (A regeneration
/// draws its beat with a new seed: nothing of a failed one is made again the same way.)
macro_rules! holding_runs {
    ($extra:literal) => {
        concat!(
            "SELECT r.id FROM runs r JOIN branches b ON b.id = r.branch_id WHERE (r.status IN ('queued', 'running') \
             OR (r.status IN ('failed', 'cancelled') AND (r.from_key = COALESCE(b.head_id, '') \
             OR (r.kind <> 'regenerate' \
             AND NOT EXISTS (SELECT 1 FROM runs later WHERE later.branch_id = r.branch_id AND later.created_at > r.created_at \
             AND later.status NOT IN ('queued', 'running'))))))",
            $extra
        )
    };
}

/// The manifest of every checkpoint: what `gc` keeps first.
pub async fn checkpoint_manifests(conn: &mut AnyConnection) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT manifest FROM checkpoints").fetch_all(conn).await?)
}

/// The outputs of the memo entries that holding runs' finished units made or reused (see
/// `holding_runs!`).
pub async fn held_memo_outputs(conn: &mut AnyConnection) -> Result<Vec<String>> {
    const SQL: &str =
        concat!("SELECT output FROM memo WHERE key IN (SELECT t.memo_key FROM unit_tries t WHERE t.run_id IN (", holding_runs!(""), "))");
    Ok(sqlx::query_scalar(SQL).fetch_all(conn).await?)
}

/// The same, for the account's runs only: what its failed and active runs hold beyond its
/// checkpoints (the storage quota counts it).
pub async fn held_memo_outputs_of(conn: &mut AnyConnection, account: AccountId) -> Result<Vec<String>> {
    const SQL: &str = concat!(
        "SELECT output FROM memo WHERE key IN (SELECT t.memo_key FROM unit_tries t WHERE t.run_id IN (",
        holding_runs!(" AND r.video_id IN (SELECT id FROM videos WHERE account_id = $1)"),
        "))"
    );
    Ok(sqlx::query_scalar(SQL).bind(account.to_string()).fetch_all(conn).await?)
}

/// Every memo entry's key and output.
pub async fn memo_outputs(conn: &mut AnyConnection) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as("SELECT key, output FROM memo").fetch_all(conn).await?)
}

/// Deletes one memo entry (no holding run's try may name it).
pub async fn delete_memo(conn: &mut AnyConnection, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM memo WHERE key = $1").bind(key).execute(conn).await?;
    Ok(())
}

pub async fn delete_blob_row(conn: &mut AnyConnection, sha256: &str) -> Result<()> {
    sqlx::query("DELETE FROM blobs WHERE sha256 = $1").bind(sha256).execute(conn).await?;
    Ok(())
}

// ---- fault bookkeeping --------------------------------------------------------------------

/// How many distinct runs a fault rule has affected for one unit.
pub async fn fault_hits(conn: &mut AnyConnection, video: VideoId, rule: usize, unit_key: &str) -> Result<Vec<RunId>> {
    let runs: Vec<String> = sqlx::query_scalar("SELECT run_id FROM fault_hits WHERE video_id = $1 AND rule_index = $2 AND unit_key = $3")
        .bind(video.to_string())
        .bind(rule as i64)
        .bind(unit_key)
        .fetch_all(conn)
        .await?;
    runs.into_iter().map(|run| RunId::try_from(run.clone()).map_err(|_| StorageError::Corrupt(format!("fault hit run {run:?}")))).collect()
}

pub async fn record_fault_hit(conn: &mut AnyConnection, video: VideoId, rule: usize, unit_key: &str, run: RunId) -> Result<()> {
    sqlx::query(
        "INSERT INTO fault_hits (video_id, rule_index, unit_key, run_id) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (video_id, rule_index, unit_key, run_id) DO NOTHING",
    )
    .bind(video.to_string())
    .bind(rule as i64)
    .bind(unit_key)
    .bind(run.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Hands a held run back to the queue (graceful shutdown): the next worker resumes it from the memo.
pub async fn release_run(conn: &mut AnyConnection, lease: &Lease) -> Result<bool> {
    // The video's row first, then the run's, in the order every other writer takes them.
    lock_video(conn, Backend::of_connection(conn), lease.video).await?;
    let done = sqlx::query(
        "UPDATE runs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = $1 AND lease_owner = $2 AND lease_token = $3 AND status = 'running'",
    )
    .bind(lease.run.to_string())
    .bind(&lease.owner)
    .bind(lease.token)
    .execute(&mut *conn)
    .await?;
    let released = done.rows_affected() == 1;
    if released {
        // The video changed (its run is queued again): a status page open on it reads it again.
        touch_video(conn, lease.video).await?;
    }
    Ok(released)
}

// ---- remote jobs ----------------------------------------------------------------------------

row! {
    /// A remote job a unit started (`provider_jobs`).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ProviderJob {
        pub call_key: String,
        pub run_id: RunId as String,
        pub provider: String,
        pub job_id: String,
    }
}

/// The job recorded for a unit's call, if any.
pub async fn job_of_call(conn: &mut AnyConnection, call_key: &str) -> Result<Option<ProviderJob>> {
    Ok(sqlx::query_as("SELECT call_key, run_id, provider, job_id FROM provider_jobs WHERE call_key = $1")
        .bind(call_key)
        .fetch_optional(conn)
        .await?)
}

/// Records a job just started; the call's earlier job (one that failed) is replaced.
pub async fn record_job(conn: &mut AnyConnection, job: &ProviderJob, now: Timestamp) -> Result<()> {
    sqlx::query("DELETE FROM provider_jobs WHERE call_key = $1").bind(&job.call_key).execute(&mut *conn).await?;
    sqlx::query("INSERT INTO provider_jobs (call_key, run_id, provider, job_id, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&job.call_key)
        .bind(job.run_id.to_string())
        .bind(&job.provider)
        .bind(&job.job_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Hands a call's job to `run`, the run now making the call (a retry attaching to the job a
/// cancelled or failed run left out): cancelling the old run no longer cancels it.
/// False when the job is no longer `from`'s (a cancel took it meanwhile).
pub async fn move_job(conn: &mut AnyConnection, call_key: &str, from: RunId, run: RunId) -> Result<bool> {
    let done = sqlx::query("UPDATE provider_jobs SET run_id = $1 WHERE call_key = $2 AND run_id = $3")
        .bind(run.to_string())
        .bind(call_key)
        .bind(from.to_string())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets a call's job if it is still `run`'s, saying whether it was: whoever forgets it is the
/// one who cancels it (a cancel command and its run's worker may both try; a retry that
/// attached to it made it another run's).
pub async fn forget_job_of_run(conn: &mut AnyConnection, call_key: &str, run: RunId) -> Result<bool> {
    let done = sqlx::query("DELETE FROM provider_jobs WHERE call_key = $1 AND run_id = $2")
        .bind(call_key)
        .bind(run.to_string())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A run's status now (`None`: no such run).
pub async fn run_status(conn: &mut AnyConnection, run: RunId) -> Result<Option<RunStatus>> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM runs WHERE id = $1").bind(run.to_string()).fetch_optional(conn).await?;
    status.map(|s| RunStatus::try_from(s).map_err(|e| StorageError::Corrupt(e.to_string()))).transpose()
}

/// The jobs a run still has out (to cancel them with the run).
pub async fn jobs_of_run(conn: &mut AnyConnection, run: RunId) -> Result<Vec<ProviderJob>> {
    Ok(sqlx::query_as("SELECT call_key, run_id, provider, job_id FROM provider_jobs WHERE run_id = $1 ORDER BY call_key")
        .bind(run.to_string())
        .fetch_all(conn)
        .await?)
}
