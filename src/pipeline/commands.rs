//! The commands a person (through a server function) or a test can give. Each is one transaction
//! that validates with the rule table; a constraint violation from a concurrent caller becomes an
//! expected outcome ("already running — here is the run"), never a 500.
use uuid::Uuid;

use super::{CoreError, Engine, now_ms};
use crate::domain::rules::{self, ContinueRequest, Decision, GivenCheckpoint};
use crate::domain::video::{Branch, Checkpoint, Regenerate, Run, RunStart, UnitTry, Video, VideoInfo};
use crate::domain::{
    AccountId, BranchId, BranchName, CheckpointId, CheckpointStatus, Entity, InvalidInput, LimitReached, Manifest, NewVideo, Origin, Phase,
    Quotas, Refusal, RunId, RunKind, RunStatus, Script, Timestamp, Usage, VideoId,
};
use crate::storage::{self, Constraint, WriteTx};
use sqlx::AnyConnection;

/// What a continue did. Expected outcomes are data, not errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContinueOutcome {
    Started { run: RunId, kind: RunKind, attempt: u32 },
    AlreadyRunning { run: RunId },
    Completed { checkpoint: CheckpointId },
}

impl ContinueOutcome {
    pub fn run(&self) -> Option<RunId> {
        match self {
            ContinueOutcome::Started { run, .. } | ContinueOutcome::AlreadyRunning { run } => Some(*run),
            ContinueOutcome::Completed { .. } => None,
        }
    }

    /// The run the continue queued, if it queued one.
    pub fn started(&self) -> Option<RunId> {
        match self {
            ContinueOutcome::Started { run, .. } => Some(*run),
            ContinueOutcome::AlreadyRunning { .. } | ContinueOutcome::Completed { .. } => None,
        }
    }

    /// Whether the continue changed the video (returning the run already going changes nothing).
    pub fn is_change(&self) -> bool {
        !matches!(self, ContinueOutcome::AlreadyRunning { .. })
    }
}

/// What the account uses now: videos made in the last hour, active runs, and the bytes `gc`
/// keeps because of it: its checkpoints' blobs and those its active and retryable failed runs
/// hold (each blob once, however many share it).
pub(crate) async fn usage(
    tx: &mut AnyConnection,
    owner: AccountId,
    now: Timestamp,
    uncommitted: Option<&Manifest>,
) -> Result<Usage, CoreError> {
    let videos_last_hour = storage::videos_made_since(tx, owner, now - 3_600_000).await?;
    let active_runs = storage::active_runs_of(tx, owner).await?;
    // A checkpoint this transaction writes at its commit holds its blobs already.
    let mut blobs: std::collections::HashMap<String, u64> =
        uncommitted.iter().flat_map(|m| m.blobs()).map(|b| (b.sha256.clone(), b.bytes)).collect();
    for doc in storage::manifests_of(tx, owner).await? {
        if let Ok(manifest) = serde_json::from_str::<Manifest>(&doc) {
            blobs.extend(manifest.blobs().into_iter().map(|b| (b.sha256.clone(), b.bytes)));
        }
    }
    for doc in storage::held_memo_outputs_of(tx, owner).await? {
        if let Ok(output) = serde_json::from_str::<super::units::UnitOutput>(&doc) {
            blobs.extend(output.blobs().into_iter().map(|b| (b.sha256.clone(), b.bytes)));
        }
    }
    let clamp = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(Usage { videos_last_hour: clamp(videos_last_hour), active_runs: clamp(active_runs), storage_bytes: blobs.values().sum() })
}

/// Cancelled runs remembered for the workers of this process, at most.
pub const CANCELLED_KEPT: usize = 1024;

/// Adds a cancelled run to the set the workers watch, forgetting the older ones once it holds
/// `CANCELLED_KEPT`: a worker reads the set the moment it changes, so an old entry only matters
/// to a worker that missed that moment, and such a worker still stops at its next heartbeat
/// (the run's row says cancelled).
pub fn remember_cancel(set: &mut std::collections::HashSet<RunId>, run: RunId) {
    if set.len() >= CANCELLED_KEPT {
        set.clear();
    }
    set.insert(run);
}

/// Whether `owner` may queue one more run (and, for `new_video`, make one more video).
async fn may_queue(tx: &mut AnyConnection, quotas: Quotas, owner: AccountId, now: Timestamp, new_video: bool) -> Result<(), CoreError> {
    let quotas = quotas.applying_to(owner);
    if quotas == Quotas::UNLIMITED {
        return Ok(());
    }
    let backend = storage::Backend::of_connection(tx);
    storage::lock_account(tx, backend, owner).await?;
    let usage = usage(tx, owner, now, None).await?;
    Ok(if new_video { quotas.check_new_video(usage) } else { quotas.check_run(usage) }?)
}

pub(crate) async fn load(tx: &mut AnyConnection, video: VideoId) -> Result<Video, CoreError> {
    storage::load_video_state(tx, video).await?.ok_or_else(|| CoreError::not_found(Entity::Video, video))
}

fn branch_of<'a>(state: &'a Video, name: Option<&str>) -> Result<&'a Branch, CoreError> {
    let name = name.filter(|n| !n.is_empty()).unwrap_or(BranchName::MAIN);
    state.branch_named(name).ok_or_else(|| CoreError::not_found(Entity::Branch, name))
}

fn checkpoint_of(state: &Video, id: CheckpointId) -> Result<&Checkpoint, CoreError> {
    // A checkpoint of another video is "not found" here: ids never cross videos.
    state.checkpoint(id).ok_or_else(|| CoreError::not_found(Entity::Checkpoint, id))
}

/// Carries out a rule-table decision inside the caller's transaction.
pub(crate) async fn apply_decision(
    tx: &mut AnyConnection,
    branch: &Branch,
    decision: Decision,
    now: Timestamp,
) -> Result<ContinueOutcome, CoreError> {
    let writes = writes_of(branch, decision, now);
    if let Some(checkpoint) = writes.approve
        && !storage::approve_checkpoint(tx, checkpoint, now).await?
        && writes.run.is_some()
    {
        // Someone approved it between our read and write: re-run the command.
        return Err(CoreError::LostRace);
    }
    if let Some(run) = &writes.run {
        storage::insert_run(tx, run).await?;
    }
    Ok(writes.outcome)
}

/// `apply_decision` for a decision on the checkpoint this transaction wrote (`written`), which
/// nobody else can have approved: its writes go with the commit (`WriteTx::defer`), and one that fails fails the
/// commit.
pub(crate) fn defer_decision(
    tx: &mut WriteTx,
    branch: &Branch,
    written: CheckpointId,
    decision: Decision,
    now: Timestamp,
) -> ContinueOutcome {
    let writes = writes_of(branch, decision, now);
    debug_assert!(writes.approve.is_none_or(|c| c == written), "defer_decision approves only the checkpoint its transaction wrote");
    if let Some(checkpoint) = writes.approve {
        tx.defer(storage::approve_checkpoint_statement(checkpoint, now));
    }
    if let Some(run) = &writes.run {
        tx.defer(storage::insert_run_statement(run));
    }
    writes.outcome
}

/// What a decision writes: the checkpoint it approves, the run it queues, and what the command
/// answers.
struct Writes {
    approve: Option<CheckpointId>,
    run: Option<Run>,
    outcome: ContinueOutcome,
}

fn writes_of(branch: &Branch, decision: Decision, now: Timestamp) -> Writes {
    match decision {
        Decision::Start { kind, phase, from, attempt, approve } => {
            let approve = approve.then(|| from.expect("approval needs a checkpoint"));
            let run = Run::queued(RunId::fresh(), branch, RunStart { phase, from, attempt, kind, regenerate: None }, now);
            let outcome = ContinueOutcome::Started { run: run.id, kind, attempt };
            Writes { approve, run: Some(run), outcome }
        }
        Decision::ApproveFinal { checkpoint } => {
            Writes { approve: Some(checkpoint), run: None, outcome: ContinueOutcome::Completed { checkpoint } }
        }
        Decision::AlreadyRunning { run } => Writes { approve: None, run: None, outcome: ContinueOutcome::AlreadyRunning { run } },
    }
}

impl Engine {
    /// A command's write: one transaction through `Store::write_retrying_starting`, so a command
    /// that lost a race runs again and the rule table sees the winner's write (e.g. the run it
    /// queued).
    /// The video's row is locked before its state is read and handed to `work`, so a video's
    /// commands run one at a time on PostgreSQL too: under READ COMMITTED two of them could
    /// otherwise both decide on the same old state and both commit. On SQLite the state comes in
    /// the call that opens the transaction. No such video: "not found", nothing written.
    async fn write_video<T>(
        &self,
        video: VideoId,
        work: impl AsyncFn(&mut WriteTx, Video) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        self.write_video_if(video, |_| true, None, work).await
    }

    /// `write_video`, counting a change of the video only when `changed` says the result is one
    /// (a continue that returns the run already going changes nothing). A command that can
    /// queue a run says which (`queued`): a worker loop of this process waiting for work is set
    /// aside first, and gets the run claimed in this transaction (`worker::handoff`).
    async fn write_video_if<T>(
        &self,
        video: VideoId,
        changed: fn(&T) -> bool,
        queued: Option<fn(&T) -> Option<RunId>>,
        work: impl AsyncFn(&mut WriteTx, Video) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        let backend = self.store.backend();
        let reserved = queued.and_then(|_| self.reserve_worker());
        let (for_loop, engine) = (reserved.as_ref().map(|r| r.owner().to_string()), self.clone());
        let (value, claimed) = self
            .store
            .write_retrying_starting(
                || Some(storage::lock_and_load_batch(backend, video)),
                async move |tx, answers| {
                    let state = storage::loaded_state(&answers)?.ok_or_else(|| CoreError::not_found(Entity::Video, video))?;
                    let value = work(tx, state).await?;
                    if changed(&value) {
                        // Sent with the commit.
                        tx.defer(storage::touch_video_statement(video));
                    }
                    let claimed = match (&for_loop, queued.and_then(|q| q(&value))) {
                        (Some(owner), Some(_)) => engine.claim_for(tx, owner, now_ms()).await?,
                        _ => None,
                    };
                    Ok::<_, CoreError>((value, claimed))
                },
            )
            .await?;
        self.events.changed(video);
        self.hand_over(reserved, claimed, queued.and_then(|q| q(&value))).await;
        Ok(value)
    }

    /// A new video of `owner`'s, with its `main` branch and the first run of phase 1.
    pub async fn create_video(&self, owner: AccountId, new: NewVideo, seed: Option<u64>) -> Result<VideoId, CoreError> {
        let now = now_ms();
        let quotas = self.config.quotas;
        let video = VideoInfo {
            id: VideoId::fresh(),
            owner,
            title: new.prompt.chars().take(80).collect(),
            prompt: new.prompt,
            beats: new.beats,
            seed: seed.unwrap_or_else(|| Uuid::new_v4().as_u64_pair().0 >> 1),
            auto_continue: new.auto_continue,
            fault_plan: new.fault_plan,
            budget_micros: new.budget_micros,
            created_at: now,
            changes: 0,
        };
        let (id, first_run) = (video.id, RunId::fresh());
        // A worker loop waiting for work gets the first run claimed in this transaction.
        let reserved = self.reserve_worker();
        let (for_loop, engine) = (reserved.as_ref().map(|r| r.owner().to_string()), self.clone());
        let claimed = self
            .store
            .write_retrying(async move |tx| {
                may_queue(tx, quotas, owner, now, true).await?;
                storage::insert_video(tx, &video).await?;
                let main = Branch {
                    id: BranchId::fresh(),
                    video_id: video.id,
                    name: BranchName::MAIN.into(),
                    head_id: None,
                    forked_from: None,
                    created_at: now,
                };
                storage::insert_branch(tx, &main).await?;
                let first = RunStart { phase: Phase::Script, from: None, attempt: 1, kind: RunKind::Initial, regenerate: None };
                storage::insert_run(tx, &Run::queued(first_run, &main, first, now)).await?;
                // Counted as the video's first change, with the commit.
                tx.defer(storage::touch_video_statement(id));
                match &for_loop {
                    Some(owner) => engine.claim_for(tx, owner, now_ms()).await,
                    None => Ok(None),
                }
            })
            .await?;
        self.events.changed(id);
        self.hand_over(reserved, claimed, Some(first_run)).await;
        Ok(id)
    }

    /// The seed document's continue: approve a pending checkpoint and start the next phase, retry
    /// a failed phase (`force_retry`), or return the run already going.
    pub async fn continue_video(
        &self,
        video: VideoId,
        checkpoint: Option<CheckpointId>,
        branch: Option<&str>,
        force_retry: bool,
    ) -> Result<ContinueOutcome, CoreError> {
        let (limits, quotas, engine) = (self.config.limits(), self.config.quotas, self.clone());
        let branch = branch.map(str::to_string);
        self.write_video_if(video, ContinueOutcome::is_change, Some(ContinueOutcome::started), async move |tx, mut state| {
            let now = now_ms();
            // Only the budget check reads the estimate: a video without a budget skips its plan
            // and its read of the memo (a retry's path to its first provider call, one call less).
            if state.video.budget_micros.is_some() {
                engine.add_estimates(tx, &mut state, None).await?;
            }
            let branch = branch_of(&state, branch.as_deref())?;
            let given =
                checkpoint.map(|id| checkpoint_of(&state, id).map(|c| GivenCheckpoint { id: c.id, status: c.status })).transpose()?;
            let decision = rules::decide(&state.branch_view(branch), ContinueRequest { checkpoint: given, force_retry }, limits)?;
            if matches!(decision, Decision::Start { .. }) {
                may_queue(tx, quotas, state.video.owner, now, false).await?;
            }
            apply_decision(tx, branch, decision, now).await
        })
        .await
    }

    /// Approve & Continue: the same as continue on a pending head.
    pub async fn approve(&self, video: VideoId, checkpoint: CheckpointId, branch: Option<&str>) -> Result<ContinueOutcome, CoreError> {
        self.continue_video(video, Some(checkpoint), branch, false).await
    }

    /// Saves an edited script as a new version (same parent, version + 1, pending) at the branch head.
    pub async fn edit_script(
        &self,
        video: VideoId,
        branch: Option<&str>,
        checkpoint: CheckpointId,
        script_json: &str,
    ) -> Result<CheckpointId, CoreError> {
        let script = Script::parse_edit(script_json)?;
        let branch = branch.map(str::to_string);
        let quotas = self.config.quotas;
        self.write_video(video, async move |tx, state| {
            let now = now_ms();
            let edits = state.checkpoints.iter().filter(|c| c.origin == Origin::Edited).count();
            let limit = quotas.applying_to(state.video.owner).edits_per_video;
            Quotas::check_count(edits, limit, |limit| LimitReached::Edits { limit })?;
            let branch = branch_of(&state, branch.as_deref())?;
            let target = checkpoint_of(&state, checkpoint)?;
            rules::decide_edit(&state.branch_view(branch), target.phase, state.on_line(branch, checkpoint))?;
            let Manifest::Script { script: old, seed } = &target.manifest else {
                return Err(Refusal::OnlyScriptsAreEditable { phase: target.phase }.into());
            };
            if *old == script {
                return Err(InvalidInput::new("script", "nothing changed; edit a field before saving").into());
            }
            let edited = Checkpoint {
                id: CheckpointId::fresh(),
                video_id: video,
                branch_id: branch.id,
                parent_id: target.parent_id,
                phase: target.phase,
                version: state.next_version(target.parent_id, target.phase),
                status: CheckpointStatus::Pending,
                origin: Origin::Edited,
                manifest: Manifest::Script { script: script.clone(), seed: *seed },
                run_id: None,
                created_at: now,
                approved_at: None,
            };
            storage::insert_checkpoint(tx, &edited).await?;
            storage::set_branch_head(tx, branch.id, edited.id).await?;
            if branch.name == BranchName::MAIN {
                storage::set_video_title(tx, video, &script.title).await?;
            }
            Ok(edited.id)
        })
        .await
    }

    /// A new branch whose head is `from`; names are unique per video (a schema constraint).
    pub async fn create_branch(&self, video: VideoId, from: CheckpointId, name: &str) -> Result<BranchId, CoreError> {
        let name = BranchName::parse(name)?;
        let quotas = self.config.quotas;
        let created = self
            .write_video(video, async move |tx, state| {
                checkpoint_of(&state, from)?;
                let limit = quotas.applying_to(state.video.owner).branches_per_video;
                Quotas::check_count(state.branches.len(), limit, |limit| LimitReached::Branches { limit })?;
                if state.branch_named(name.as_str()).is_some() {
                    return Err(Refusal::BranchNameTaken { name: name.to_string() }.into());
                }
                let branch = Branch {
                    id: BranchId::fresh(),
                    video_id: video,
                    name: name.to_string(),
                    head_id: Some(from),
                    forked_from: Some(from),
                    created_at: now_ms(),
                };
                storage::insert_branch(tx, &branch).await?;
                Ok(branch.id)
            })
            .await;
        match created {
            // Two people picked the same name at once: the constraint decided.
            Err(CoreError::Storage(e)) if storage::violated(&e) == Some(Constraint::BranchName) => {
                Err(Refusal::BranchNameTaken { name: "that name".into() }.into())
            }
            other => other,
        }
    }

    /// Cancels the branch's active run; the worker notices at its next heartbeat.
    pub async fn cancel(&self, video: VideoId, branch: Option<&str>) -> Result<RunId, CoreError> {
        let branch = branch.map(str::to_string);
        let run = self
            .write_video(video, async move |tx, state| {
                let branch = branch_of(&state, branch.as_deref())?;
                let run = rules::decide_cancel(&state.branch_view(branch))?;
                let ended =
                    storage::finish_run(tx, run, storage::Ender::Person, RunStatus::Cancelled, Some("Cancelled by user"), None, now_ms())
                        .await?;
                if !ended {
                    // The run ended between our read and our write (it cannot, with the video
                    // locked; if it ever does, say what happened rather than "cancelled").
                    return Err(Refusal::NothingToCancel.into());
                }
                let phase = state.runs.iter().find(|r| r.id == run).map(|r| r.phase);
                Ok((run, phase))
            })
            .await?;
        self.cancelled.send_modify(|set| remember_cancel(set, run.0));
        // The run's remote jobs stop being paid for now, also when its worker is gone (a crashed
        // process) or in another process that learns of the cancel only at its next heartbeat.
        // In the background: a provider slow to answer does not hold up the person's cancel.
        if let (run, Some(phase)) = run {
            let engine = self.clone();
            tokio::spawn(async move { engine.cancel_remote_jobs(run, phase).await });
        }
        Ok(run.0)
    }

    pub async fn set_auto_continue(&self, video: VideoId, on: bool) -> Result<(), CoreError> {
        self.write_video(video, async move |tx, _| Ok(storage::set_auto_continue(tx, video, on).await?)).await
    }

    /// Sets the cost budget in micro-dollars (`None`: unlimited).
    pub async fn set_budget(&self, video: VideoId, budget_micros: Option<i64>) -> Result<(), CoreError> {
        if budget_micros.is_some_and(|b| !(0..=1_000_000_000_000).contains(&b)) {
            return Err(InvalidInput::new("budget", "the budget must be between $0 and $1,000,000").into());
        }
        self.write_video(video, async move |tx, _| Ok(storage::set_budget(tx, video, budget_micros).await?)).await
    }

    /// Queues a run that makes a new version of a storyboard or clips checkpoint in which only
    /// `beat` is made again, with a new seed; every other beat comes from the memo.
    pub async fn regenerate_beat(
        &self,
        video: VideoId,
        branch: Option<&str>,
        checkpoint: CheckpointId,
        beat: u32,
    ) -> Result<RunId, CoreError> {
        let (branch, engine) = (branch.map(str::to_string), self.clone());
        let quotas = self.config.quotas;
        self.write_video_if(
            video,
            |_| true,
            Some(|run| Some(*run)),
            async move |tx, state| {
                let now = now_ms();
                let quotas = quotas.applying_to(state.video.owner);
                let regenerations = state.runs.iter().filter(|r| r.regenerate.is_some()).count();
                Quotas::check_count(regenerations, quotas.regenerations_per_video, |limit| LimitReached::Regenerations { limit })?;
                may_queue(tx, quotas, state.video.owner, now, false).await?;
                let branch = branch_of(&state, branch.as_deref())?;
                let target = checkpoint_of(&state, checkpoint)?;
                let beats = target.manifest.seeds().map(|s| s.len() as u32).unwrap_or(0);
                let old_seed = target.manifest.seeds().and_then(|s| s.get(beat as usize)).copied().unwrap_or(0);
                let attempt = state
                    .runs
                    .iter()
                    .filter(|r| r.branch_id == branch.id && r.regenerate.as_ref().is_some_and(|g| g.of == checkpoint))
                    .count() as u32
                    + 1;
                let regenerate = Regenerate { beat, seed: super::mix_seed(old_seed, now as u64, u64::from(attempt)), of: checkpoint };
                let start = RunStart {
                    phase: target.phase,
                    from: target.parent_id,
                    attempt,
                    kind: RunKind::Regenerate,
                    regenerate: Some(regenerate),
                };
                let run = Run::queued(RunId::fresh(), branch, start, now);
                let mut view = state.branch_view(branch);
                let budgeted = view.budget_micros.is_some();
                view.estimate_micros = if beat < beats && budgeted { engine.estimate(tx, &state, &run, None).await? } else { 0 };
                rules::decide_regenerate(&view, target.phase, state.on_line(branch, checkpoint), beat, beats)?;
                storage::insert_run(tx, &run).await?;
                Ok(run.id)
            },
        )
        .await
    }

    /// One video's whole state, read in one snapshot.
    pub async fn video_state(&self, video: VideoId) -> Result<Video, CoreError> {
        let mut tx = self.store.read().await?;
        let state = load(&mut tx, video).await;
        let _ = tx.rollback().await;
        state
    }

    pub async fn unit_tries(&self, video: VideoId) -> Result<Vec<UnitTry>, CoreError> {
        let mut tx = self.store.read().await?;
        let tries = storage::unit_tries_of_video(&mut tx, video).await?;
        let _ = tx.rollback().await;
        Ok(tries)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cancelled_set_stays_bounded_and_holds_the_newest() {
        let mut set = std::collections::HashSet::new();
        let run = |n: u128| super::RunId(uuid::Uuid::from_u128(n));
        for n in 0..10 * super::CANCELLED_KEPT as u128 {
            super::remember_cancel(&mut set, run(n));
            assert!(set.contains(&run(n)));
        }
        assert!(set.len() <= super::CANCELLED_KEPT);
    }
}
