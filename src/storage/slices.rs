//! Bounded reads for pages: what the status page and the list show, without reading a video's
//! whole history. However many checkpoints and runs a video has, a page reads:
//! - every branch (their number is capped per video), the checkpoints on each branch's line
//!   (at most one per phase), and the runs the rule table asks about (per branch: the active
//!   run, the runs from its head, and its newest run), with the video's spend as one sum;
//! - one page of the checkpoint tree (the newest checkpoints and the versions they came from);
//! - one page of the branch's attempts, with each run's tally counted by the database.
//!
//! The same statements serve one video and a page of an account's videos: each is written once
//! around the set of videos it reads (`one!` or `newest!`), so both stay literal SQL.
use sqlx::AnyConnection;
use std::collections::HashMap;

use super::StorageError;
use super::records::{BranchRow, CheckpointRow, RunRow, UnitTryRow, VideoRow};
use crate::domain::video::{Branch, Checkpoint, Run, RunTally, UnitTry, Video, VideoInfo};
use crate::domain::{AccountId, BranchId, RunId, VideoId};

type Result<T> = std::result::Result<T, StorageError>;

/// The statements over a set of videos, given as a sub-select of video ids.
macro_rules! over_videos {
    ($videos:literal) => {
        SetSql {
            branches: concat!("SELECT * FROM branches WHERE video_id IN (", $videos, ") ORDER BY created_at, name"),
            lines: concat!(
                "WITH RECURSIVE line(id) AS (SELECT head_id FROM branches WHERE video_id IN (",
                $videos,
                ") AND head_id IS NOT NULL UNION SELECT c.parent_id FROM checkpoints c JOIN line ON c.id = line.id \
                 WHERE c.parent_id IS NOT NULL) SELECT * FROM checkpoints WHERE id IN (SELECT id FROM line) ORDER BY created_at, id"
            ),
            rule_runs: concat!(
                "SELECT r.* FROM runs r JOIN branches b ON b.id = r.branch_id WHERE r.video_id IN (",
                $videos,
                ") AND (r.status IN ('queued', 'running') OR r.from_key = COALESCE(b.head_id, '') OR r.id = \
                 (SELECT n.id FROM runs n WHERE n.branch_id = b.id ORDER BY n.created_at DESC, n.attempt DESC, n.id DESC LIMIT 1)) \
                 ORDER BY r.created_at, r.id"
            ),
            spent: concat!(
                "SELECT video_id, CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS micros FROM runs WHERE video_id IN (",
                $videos,
                ") GROUP BY video_id"
            ),
        }
    };
}

struct SetSql {
    branches: &'static str,
    lines: &'static str,
    rule_runs: &'static str,
    spent: &'static str,
}

/// One video: `$1` is its id.
const ONE: SetSql = over_videos!("$1");
/// A page of an account's videos, newest first: `$1` the account, `$2` the page size, `$3` the offset.
const NEWEST: SetSql = over_videos!("SELECT id FROM videos WHERE account_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3");

/// Which videos a statement reads, bound in the order its placeholders ask.
#[derive(Clone, Copy)]
enum Videos {
    One(VideoId),
    Newest { owner: AccountId, limit: i64, offset: i64 },
}

impl Videos {
    fn sql(self) -> &'static SetSql {
        match self {
            Videos::One(_) => &ONE,
            Videos::Newest { .. } => &NEWEST,
        }
    }

    async fn fetch<R>(self, conn: &mut AnyConnection, sql: &'static str) -> Result<Vec<R>>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let query = sqlx::query_as(sql);
        let query = match self {
            Videos::One(id) => query.bind(id.to_string()),
            Videos::Newest { owner, limit, offset } => query.bind(owner.to_string()).bind(limit).bind(offset),
        };
        Ok(query.fetch_all(conn).await?)
    }
}

row! {
    struct SpentRow {
        video_id: String,
        micros: i64,
    }
}

/// What the rules read of each video in `infos`: its branches, their lines, the runs they ask
/// about, and the video's spend. The videos' `checkpoints` and `runs` are slices, so their
/// `spent_total` is set.
async fn rule_slices(conn: &mut AnyConnection, videos: Videos, infos: Vec<VideoInfo>) -> Result<Vec<Video>> {
    let sql = videos.sql();
    let branches: Vec<BranchRow> = videos.fetch(conn, sql.branches).await?;
    let lines: Vec<CheckpointRow> = videos.fetch(conn, sql.lines).await?;
    let runs: Vec<RunRow> = videos.fetch(conn, sql.rule_runs).await?;
    let spent: HashMap<String, i64> =
        videos.fetch::<SpentRow>(conn, sql.spent).await?.into_iter().map(|s| (s.video_id, s.micros)).collect();
    let mut states: Vec<Video> = infos
        .into_iter()
        .map(|video| {
            let spent_total = Some(spent.get(&video.id.to_string()).copied().unwrap_or(0));
            Video { video, branches: vec![], checkpoints: vec![], runs: vec![], estimates: vec![], spent_total }
        })
        .collect();
    let index: HashMap<VideoId, usize> = states.iter().enumerate().map(|(i, v)| (v.video.id, i)).collect();
    for b in branches.into_iter().map(Branch::from) {
        states[index[&b.video_id]].branches.push(b);
    }
    for c in lines.into_iter().map(Checkpoint::from) {
        states[index[&c.video_id]].checkpoints.push(c);
    }
    for r in runs.into_iter().map(Run::from) {
        states[index[&r.video_id]].runs.push(r);
    }
    Ok(states)
}

/// The video as the rules see it (see the module's comment), or `None` if there is no such video.
pub async fn load_rule_slice(conn: &mut AnyConnection, id: VideoId) -> Result<Option<Video>> {
    let Some(info) = super::get_video(&mut *conn, id).await? else { return Ok(None) };
    Ok(rule_slices(conn, Videos::One(id), vec![info]).await?.pop())
}

/// One page of the account's videos, newest first, each as the rules see it, and how many
/// videos the account has in all.
pub async fn load_video_page(conn: &mut AnyConnection, owner: AccountId, limit: i64, offset: i64) -> Result<(Vec<Video>, u32)> {
    let rows: Vec<VideoRow> =
        sqlx::query_as("SELECT * FROM videos WHERE account_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3")
            .bind(owner.to_string())
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *conn)
            .await?;
    let (total,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM videos WHERE account_id = $1").bind(owner.to_string()).fetch_one(&mut *conn).await?;
    let infos = rows.into_iter().map(VideoInfo::from).collect();
    Ok((rule_slices(conn, Videos::Newest { owner, limit, offset }, infos).await?, total as u32))
}

/// What a run of the beat phases takes its seeds from (`pipeline::units::newest_in_history`, the
/// same walk in Rust), off the branches' lines after an edit (a page's slice holds only lines):
/// each branch's newest storyboard and clips checkpoint; and for every forked branch, the
/// checkpoint it was forked from and its parent branch's newest storyboard and clips up to that
/// checkpoint, so the walk finds its way up a chain of forks too.
pub async fn newest_beat_checkpoints(conn: &mut AnyConnection, video: VideoId) -> Result<Vec<Checkpoint>> {
    let rows: Vec<CheckpointRow> = sqlx::query_as(
        "SELECT * FROM checkpoints WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER \
         (PARTITION BY branch_id, phase ORDER BY created_at DESC, id DESC) AS newest FROM checkpoints \
         WHERE video_id = $1 AND phase IN (2, 3)) ranked WHERE newest = 1 \
         UNION SELECT forked_from FROM branches WHERE video_id = $1 AND forked_from IS NOT NULL \
         UNION SELECT id FROM (SELECT c.id, ROW_NUMBER() OVER (PARTITION BY b.id, c.phase \
         ORDER BY c.created_at DESC, c.id DESC) AS newest FROM branches b \
         JOIN checkpoints f ON f.id = b.forked_from \
         JOIN checkpoints c ON c.video_id = b.video_id AND c.branch_id = f.branch_id AND c.phase IN (2, 3) \
         AND c.created_at <= f.created_at \
         WHERE b.video_id = $1) before_fork WHERE newest = 1)",
    )
    .bind(video.to_string())
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(Checkpoint::from).collect())
}

/// One page of the video's checkpoint tree: its newest `limit` checkpoints after skipping
/// `offset`, with every checkpoint they descend from (so the page is a tree), oldest first; and
/// how many checkpoints the video has in all.
pub async fn tree_page(conn: &mut AnyConnection, video: VideoId, limit: i64, offset: i64) -> Result<(Vec<Checkpoint>, u32)> {
    let rows: Vec<CheckpointRow> = sqlx::query_as(
        "WITH RECURSIVE picked(id) AS (SELECT id FROM (SELECT id FROM checkpoints WHERE video_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3) page \
         UNION SELECT c.parent_id FROM checkpoints c JOIN picked p ON c.id = p.id WHERE c.parent_id IS NOT NULL) \
         SELECT * FROM checkpoints WHERE id IN (SELECT id FROM picked) ORDER BY created_at, id",
    )
    .bind(video.to_string())
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let (total,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM checkpoints WHERE video_id = $1").bind(video.to_string()).fetch_one(&mut *conn).await?;
    Ok((rows.into_iter().map(Checkpoint::from).collect(), total as u32))
}

row! {
    struct TallyRow {
        run_id: String,
        calls: i64,
        memo_hits: i64,
        failed_tries: i64,
    }
}

/// One page of the branch's runs (the Attempts table), newest first, each with its tally.
pub async fn attempts_page(conn: &mut AnyConnection, branch: BranchId, limit: i64, offset: i64) -> Result<Vec<(Run, RunTally)>> {
    let runs: Vec<RunRow> = sqlx::query_as("SELECT * FROM runs WHERE branch_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3")
        .bind(branch.to_string())
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
    let tallies: Vec<TallyRow> = sqlx::query_as(
        "SELECT t.run_id, \
         SUM(CASE WHEN t.outcome = 'ok' THEN 1 ELSE 0 END) AS calls, \
         SUM(CASE WHEN t.outcome = 'memo' THEN 1 ELSE 0 END) AS memo_hits, \
         SUM(CASE WHEN t.outcome IN ('transient', 'permanent', 'cancelled') THEN 1 ELSE 0 END) AS failed_tries \
         FROM unit_tries t WHERE t.run_id IN \
         (SELECT id FROM runs WHERE branch_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3) GROUP BY t.run_id",
    )
    .bind(branch.to_string())
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let narrations = narrations_of_page(&mut *conn, branch, limit, offset).await?;
    let tallies: HashMap<String, RunTally> = tallies
        .into_iter()
        .map(|t| {
            let narrations = narrations.get(&t.run_id).copied().unwrap_or(0);
            (t.run_id, RunTally { calls: t.calls as u32, memo_hits: t.memo_hits as u32, failed_tries: t.failed_tries as u32, narrations })
        })
        .collect();
    Ok(runs
        .into_iter()
        .map(|row| {
            let run = Run::from(row);
            let tally = tallies.get(&run.id.to_string()).copied().unwrap_or_default();
            (run, tally)
        })
        .collect())
}

/// Per storyboard run of the page, how many narrations it made or reused: a storyboard run's
/// units are its script's stills, then one narration per beat.
async fn narrations_of_page(conn: &mut AnyConnection, branch: BranchId, limit: i64, offset: i64) -> Result<HashMap<String, u32>> {
    let scripts: Vec<CheckpointRow> = sqlx::query_as(
        "SELECT * FROM checkpoints WHERE id IN (SELECT from_checkpoint FROM (SELECT from_checkpoint, phase FROM runs \
         WHERE branch_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3) page WHERE page.phase = 2)",
    )
    .bind(branch.to_string())
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let beats: HashMap<String, i64> = scripts
        .into_iter()
        .map(Checkpoint::from)
        .filter_map(|c| Some((c.id.to_string(), c.manifest.script()?.beats.len() as i64)))
        .collect();
    let made: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "SELECT t.run_id, r.from_checkpoint, t.unit FROM unit_tries t JOIN runs r ON r.id = t.run_id WHERE t.outcome IN ('ok', 'memo') \
         AND r.phase = 2 AND t.run_id IN (SELECT id FROM runs WHERE branch_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3)",
    )
    .bind(branch.to_string())
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let mut counts = HashMap::new();
    for (run, from, unit) in made {
        if from.and_then(|f| beats.get(&f)).is_some_and(|&b| unit >= b) {
            *counts.entry(run).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// How many runs the branch has, and what they cost in all.
pub async fn branch_totals(conn: &mut AnyConnection, branch: BranchId) -> Result<(u32, i64)> {
    let (runs, micros): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM runs WHERE branch_id = $1")
            .bind(branch.to_string())
            .fetch_one(conn)
            .await?;
    Ok((runs as u32, micros))
}

/// Every try of one run, in order.
pub async fn unit_tries_of_run(conn: &mut AnyConnection, run: RunId) -> Result<Vec<UnitTry>> {
    let rows: Vec<UnitTryRow> = sqlx::query_as("SELECT * FROM unit_tries WHERE run_id = $1 ORDER BY started_at, unit, try_no")
        .bind(run.to_string())
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(UnitTry::from).collect())
}
