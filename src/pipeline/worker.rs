//! The worker: claims queued runs under a lease, runs the phase's units, commits the checkpoint.
//!
//! Each finished unit is memoized and recorded at once, so a retry, a resumed run after a crash, or
//! an edit re-runs only what is missing. The checkpoint is written only when every unit succeeded,
//! in one transaction with the run's end (and, with auto-continue, the next phase's run), which
//! also claims the worker's next run (`claim_next`).
mod group;
mod handoff;

pub use handoff::{Parked, Reserved};

use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

use super::commands::defer_decision;
use super::faults;
use super::providers::{ClipRequest, Costed, Failure, JobBook, ProviderError, RenderRequest, SpeechRequest, UnitCall};

/// The tries of one unit so far that failed: transiently, and by a moderation refusal.
#[derive(Default)]
struct Spent {
    transient: u32,
    rerolls: u32,
}

/// The longest wait a rate limit's `Retry-After` is honoured for; a longer one waits this long.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(120);
use super::estimate::MemoSeen;
use super::units::{self, UnitInput, UnitOutput, UnitPlan};
use super::{CoreError, Engine, now_ms};
use crate::domain::rules::{ContinueRequest, Decision, GivenCheckpoint, Limits, decide};
use crate::domain::video::{Checkpoint, Run, UnitTry, Video, VideoInfo};
use crate::domain::{
    BranchName, CheckpointId, CheckpointStatus, ClipRef, Entity, Manifest, NarrationRef, Origin, Phase, Quotas, RunId, RunStatus,
    Timestamp, TryOutcome, Usage,
};
use crate::storage::{self, Ender, FinishedUnit, INLINE_BLOB_MAX, Lease, MemoEntry, NewBlob, WriteTx};
use sqlx::AnyConnection;

/// What one step of a worker did; tests step workers by hand with `work_once`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkOutcome {
    Idle,
    Succeeded {
        checkpoint: CheckpointId,
    },
    Failed {
        error: String,
    },
    /// Cancelled, lease lost, or handed back at shutdown: nothing committed for the phase.
    Stopped,
}

struct UnitFailure {
    index: u32,
    beat: Option<u32>,
    narration: bool,
    message: String,
}

enum UnitEnd {
    Done(u32, UnitOutput),
    Failed(UnitFailure),
    Stopped,
    /// Not started: the run yields to another account's (see `others_waiting`).
    Skipped,
}

/// Why a unit made no output.
#[derive(Clone)]
enum Halt {
    /// Cancelled, lease lost or shutting down: the unit writes nothing more.
    Stopped,
    /// The unit failed for good, with the provider's message (or the database's).
    Failed(String),
}

impl Halt {
    /// A unit's read or write of the database failed: a lost lease stops the unit, anything else fails it.
    fn storage(e: CoreError) -> Halt {
        match e {
            CoreError::LeaseLost => Halt::Stopped,
            e => Halt::Failed(format!("could not save the result: {}", e.plain())),
        }
    }
}

/// What a provider answered for one try, its output stored as blobs: the output, its cost, and
/// its blobs (with their bytes when they are small enough to go in the database).
type Answer = Result<(UnitOutput, i64, Vec<NewBlob>), Failure>;

/// What every unit of one run shares.
struct UnitJob<'a> {
    run: &'a Run,
    lease: &'a Lease,
    video: &'a VideoInfo,
    /// How many units the run has.
    total: u32,
    /// The memo's answers for the run's units, read once when the run starts.
    memo: Memo,
    /// Units making output at once (`EngineConfig::unit_concurrency`); a unit gives its slot back
    /// before its output is committed, so the next unit's work overlaps the commit.
    slots: Semaphore,
    /// Finished units waiting to be committed, in groups.
    group: group::GroupCommit,
}

/// The memo entries of a run's units (by memo key), which of their blobs are kept in rows, and
/// the bytes of the units' small inputs (a clip's still, a render's streams) kept in rows.
#[derive(Default)]
struct Memo {
    outputs: HashMap<String, UnitOutput>,
    inline: HashSet<String>,
    inputs: HashMap<String, Vec<u8>>,
}

/// A claimed run's state, and its plan (or why it cannot be planned).
struct Start {
    state: Video,
    planned: Result<Planned, String>,
}

struct Planned {
    plans: Vec<UnitPlan>,
    seeds: Vec<u64>,
    memo: Memo,
}

/// A run this worker holds and has planned, not yet started: claimed in the transaction that
/// wrote its previous run's checkpoint (`claim_next`), or in a command's that queued it while
/// the worker waited (`handoff`), kept in `Engine::claimed` under the worker's name until its
/// next `work_once`.
pub struct Claimed {
    run: Run,
    lease: Lease,
    start: Start,
}

/// The memo's entries for the run's units, which of their blobs are kept in rows, and the bytes
/// of their small inputs: one read for the whole run instead of one or more per unit. The
/// entries come from `seen` when this transaction has read them all already.
async fn memo_for(tx: &mut AnyConnection, plans: &[UnitPlan], seen: Option<&MemoSeen>) -> Result<Memo, CoreError> {
    let small = |b: &&crate::domain::BlobRef| b.bytes <= INLINE_BLOB_MAX;
    let keys: Vec<String> = plans.iter().map(|p| p.key.clone()).collect();
    let entries = match seen.and_then(|seen| seen.answers(&keys)) {
        Some(entries) => entries,
        None => storage::memo_of(tx, &keys).await?,
    };
    let outputs: HashMap<String, UnitOutput> =
        entries.into_iter().filter_map(|(k, m)| serde_json::from_str(&m.output).ok().map(|o| (k, o))).collect();
    let made: Vec<String> = outputs.values().flat_map(|o| o.blobs()).filter(small).map(|b| b.sha256.clone()).collect();
    let inline = if made.is_empty() { HashSet::new() } else { storage::inline_blobs_among(tx, &made).await? };
    let wanted: Vec<String> = plans.iter().flat_map(|p| p.input.blobs()).filter(small).map(|b| b.sha256.clone()).collect();
    let inputs = if wanted.is_empty() { HashMap::new() } else { storage::inline_blob_contents(tx, &wanted).await? };
    Ok(Memo { outputs, inline, inputs })
}

impl UnitJob<'_> {
    /// A try that failed, for the attempts history.
    fn failed_try(&self, plan: &UnitPlan, try_no: u32, outcome: TryOutcome, message: &str, started: Timestamp) -> UnitTry {
        UnitTry {
            run_id: self.run.id,
            unit: plan.index,
            try_no,
            outcome,
            message: Some(message.to_string()),
            provider: plan.provider.clone(),
            cost_micros: 0,
            started_at: started,
            finished_at: now_ms(),
        }
    }
}

/// Where a finished unit's output came from. (Short-lived, one per finished unit: not boxed.)
#[allow(clippy::large_enum_variant)]
enum Source {
    /// Made by the provider, starting at `started`; `blobs`: what it stored.
    Provider { output: UnitOutput, cost_micros: i64, started: Timestamp, blobs: Vec<NewBlob> },
    /// Reused from the memo (free).
    Memo,
}

impl Engine {
    /// Claims one run (queued, or abandoned by a dead worker) and runs it to the end.
    pub async fn work_once(&self, owner: &str, shutdown: &watch::Receiver<bool>) -> Result<WorkOutcome, CoreError> {
        // The run claimed for this worker (with its last checkpoint, or by a command), if any,
        // comes first, unless this process cancelled it since (then it is dropped; the claim
        // below finds what is left).
        if let Some(claimed) = self.take_claimed(owner) {
            if !self.cancelled.borrow().contains(&claimed.run.id) {
                return self.run_claimed(claimed, shutdown).await;
            }
            tracing::info!(run = %claimed.run.id, "a claimed run was cancelled before it started");
        }
        // Not `write_retrying`: finding nothing to claim rolls back, so an idle poll commits nothing.
        let now = now_ms();
        let claim = storage::claim_batch(self.store.backend(), owner, now, self.config.lease_ms);
        let (mut tx, answers) = self.store.write_starting(Some(claim)).await?;
        let claimed = match storage::claimed_state(&mut tx, &answers, owner, now).await {
            Ok(claimed) => claimed,
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(e.into());
            }
        };
        let Some((run, lease, state)) = claimed else {
            let _ = tx.rollback().await;
            return Ok(WorkOutcome::Idle);
        };
        // Planned under the claim: the state, the plan, the progress's start and the memo's
        // answers in the claim's transaction rather than four more.
        let start = match self.start_run(&mut tx, &run, &lease, state, None).await {
            Ok(start) => start,
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(e);
            }
        };
        tx.commit().await?;
        self.events.changed(run.video_id);
        self.run_claimed(Claimed { run, lease, start }, shutdown).await
    }

    /// Runs a claimed run to its end, renewing its lease meanwhile.
    async fn run_claimed(&self, claimed: Claimed, shutdown: &watch::Receiver<bool>) -> Result<WorkOutcome, CoreError> {
        let Claimed { run, lease, start } = claimed;
        tracing::info!(run = %run.id, video = %run.video_id, phase = run.phase.wire(), attempt = run.attempt, token = lease.token, "run claimed");
        let (stop_tx, stop_rx) = watch::channel(false);
        // Renews the lease until the run's end is committed. Dropped with this future: a worker
        // that dies stops renewing, so its lease can expire and another worker take over.
        let heartbeat = AbortOnDrop(tokio::spawn(self.clone().heartbeat(lease.clone(), stop_tx, shutdown.clone())));
        let outcome = self.execute(run, &lease, start, stop_rx, shutdown).await;
        drop(heartbeat);
        outcome
    }

    /// Works until `shutdown` turns true; in-flight runs are handed back to the queue.
    pub async fn run_worker(self, owner: String, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Registered before looking for work: a run queued while this worker is busy in
            // `work_once` still wakes it, instead of waiting for the next poll.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.work_once(&owner, &shutdown).await {
                Ok(WorkOutcome::Idle) => {
                    // Parked: a command that queues a run may hand it over claimed (`handoff`).
                    let (wait, mut handed) = self.parked.park(&owner);
                    let arrived = tokio::select! {
                        claimed = &mut handed => Some(claimed.ok()),
                        _ = woken => None,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => None,
                        _ = shutdown.changed() => None,
                    };
                    let claimed = match arrived {
                        Some(claimed) => claimed,
                        None if self.parked.unpark(wait) => None,
                        // A command reserved this loop: its answer is one transaction away.
                        None => handed.await.ok(),
                    };
                    if let Some(claimed) = claimed {
                        self.keep_claimed(&owner, claimed).await;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "worker step failed; trying again shortly");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        // A run claimed for this worker and not started goes back to the queue.
        if let Some(claimed) = self.take_claimed(&owner) {
            self.hand_back_claimed(claimed, "the worker is shutting down").await;
        }
    }

    /// Keeps a run claimed for `owner` (with its checkpoint, or by a command) until its next step.
    async fn keep_claimed(&self, owner: &str, claimed: Claimed) {
        let replaced = self.claimed.lock().unwrap_or_else(|e| e.into_inner()).insert(owner.to_string(), claimed);
        // Two steps of one worker name at once (tests do it): the older claim goes back.
        if let Some(old) = replaced {
            self.hand_back_claimed(old, "another claim replaced it").await;
        }
    }

    /// The run claimed for `owner` and not started yet, if any.
    fn take_claimed(&self, owner: &str) -> Option<Claimed> {
        self.claimed.lock().unwrap_or_else(|e| e.into_inner()).remove(owner)
    }

    /// Gives a claimed, not started run back to the queue; if that fails its lease lapses.
    async fn hand_back_claimed(&self, claimed: Claimed, why: &str) {
        if let Err(e) = self.hand_back(&claimed.lease, why).await {
            tracing::warn!(run = %claimed.run.id, error = %e, "could not hand a claimed run back; its lease will lapse");
        }
    }

    /// A write for a held run, through `Store::write_retrying_starting`: the video is locked and counted
    /// first, like every writer's, then the lease is checked (and extended) and handed to `work`.
    /// `LeaseLost`: nothing was written.
    async fn write_fenced<T>(
        &self,
        lease: &Lease,
        work: impl AsyncFn(&mut WriteTx, &Lease) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        self.write_fenced_with(lease, |_| None, async move |tx, lease, _, _| work(tx, lease).await).await
    }

    /// `write_fenced` whose first statements after the fence are `with`'s (built for each
    /// attempt, at its time): on SQLite they go to the database in the fence's call, with the
    /// `BEGIN`. `work` gets their answers and that time. `with`'s statements run even when the
    /// fence finds the lease lost: then `work` does not run and the transaction, their writes
    /// included, rolls back (`LeaseLost`). When they fail because the run is gone (its video
    /// deleted after it was cancelled: a foreign key), that is a lost lease too.
    async fn write_fenced_with<T>(
        &self,
        lease: &Lease,
        with: impl Fn(Timestamp) -> Option<storage::batch::Batch>,
        work: impl AsyncFn(&mut WriteTx, &Lease, &[storage::batch::Answer], Timestamp) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        let (held, lease_ms, backend) = (lease.clone(), self.config.lease_ms, self.store.backend());
        let at = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let begun = at.clone();
        let fence = move || {
            let now = now_ms();
            begun.store(now, Ordering::Relaxed);
            let mut first = storage::touch_and_hold_batch(backend, lease, now, lease_ms);
            if let Some(more) = with(now) {
                first.append(more);
            }
            Some(first)
        };
        let written = self
            .store
            .write_retrying_starting(fence, async move |tx, answers| {
                if !storage::held(&answers) {
                    return Err(CoreError::LeaseLost);
                }
                work(tx, &held, &answers[storage::FENCE_ANSWERS..], at.load(Ordering::Relaxed)).await
            })
            .await;
        match written {
            Ok(value) => {
                self.events.changed(lease.video);
                Ok(value)
            }
            Err(CoreError::LeaseLost) => Err(CoreError::LeaseLost),
            Err(e) if !self.lease_held(lease).await => {
                tracing::debug!(run = %lease.run, error = %e, "a held run's write failed after its lease was lost");
                Err(CoreError::LeaseLost)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the lease still holds its run, read after a write failed (true when it cannot be
    /// read: the write's own error is the one to report then).
    async fn lease_held(&self, lease: &Lease) -> bool {
        let read = async {
            let mut tx = self.store.read().await?;
            let held = storage::lease_held(&mut tx, lease, now_ms()).await;
            let _ = tx.rollback().await;
            held
        };
        read.await.unwrap_or(true)
    }

    /// What a claimed run starts from, read (and its progress started) in the claim's transaction
    /// (`seen`: the memo's answers that transaction has read already).
    async fn start_run(
        &self,
        tx: &mut WriteTx,
        run: &Run,
        lease: &Lease,
        state: Video,
        seen: Option<&MemoSeen>,
    ) -> Result<Start, CoreError> {
        let (plans, seeds) = match units::plan(self, &state, run) {
            Ok(p) => p,
            Err(e) => return Ok(Start { state, planned: Err(e.to_string()) }),
        };
        // Sent with the commit (the claim holds the run: nothing can end its lease before it).
        tx.defer(storage::restart_run_progress_statement(lease, plans.len() as u32));
        let memo = memo_for(tx, &plans, seen).await?;
        Ok(Start { state, planned: Ok(Planned { plans, seeds, memo }) })
    }

    async fn execute(
        &self,
        run: Run,
        lease: &Lease,
        start: Start,
        stop: watch::Receiver<bool>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<WorkOutcome, CoreError> {
        let Start { state, planned } = start;
        let Planned { plans, seeds, memo } = match planned {
            Ok(p) => p,
            Err(e) => return self.fail_run(lease, format!("Cannot start the {} phase: {e}", run.phase.label()), None, &stop).await,
        };
        let total = plans.len() as u32;
        let slots = Semaphore::new(self.config.unit_concurrency.max(1));
        let job = UnitJob { run: &run, lease, video: &state.video, total, memo, slots, group: group::GroupCommit::new(total) };
        let yielding = AtomicBool::new(false);
        // Every unit waits for a slot in order (the semaphore is fair); the group commit then
        // writes together the units that finished while the last group was committing.
        let ends: Vec<UnitEnd> = futures::stream::iter(plans)
            .map(|plan| self.run_unit(&job, plan, stop.clone(), &yielding))
            .buffer_unordered(total.max(1) as usize)
            .collect()
            .await;
        let deferred = job.group.take_deferred();
        // Read once: a stop that comes after this finds the checkpoint's fence instead, and the
        // deferred records are never dropped between the two.
        let stopped = *stop.borrow() || ends.iter().any(|e| matches!(e, UnitEnd::Stopped));
        let succeeded = !stopped && ends.iter().all(|e| matches!(e, UnitEnd::Done(..)));
        let deferred = if succeeded || deferred.is_empty() {
            deferred
        } else {
            // The run does not end with a checkpoint: the deferred records get their own group,
            // so a retry or a resumed run reuses them.
            self.record_deferred(&job, Arc::new(deferred)).await;
            Vec::new()
        };
        if stopped {
            return self.stopped(lease, run.phase, shutdown).await;
        }
        if ends.iter().any(|e| matches!(e, UnitEnd::Skipped)) && ends.iter().all(|e| matches!(e, UnitEnd::Done(..) | UnitEnd::Skipped)) {
            return self.hand_back(lease, "another account's run is waiting").await;
        }
        match outputs_of(ends) {
            Ok(outputs) => {
                // A worker shutting down claims nothing more.
                let claim = !*shutdown.borrow();
                let deferred = Arc::new(deferred);
                let ended = match units::manifest_of(run.phase, state.video.seed, seeds, outputs) {
                    Ok(manifest) => self.commit_success(run.clone(), lease, manifest, (total, deferred.clone()), claim).await,
                    Err(e) => Err(e),
                };
                // The checkpoint did not commit (an error; a lost lease or a cancel would refuse
                // these records too): they get a group of their own, as on a failed run.
                if ended.is_err() && !deferred.is_empty() {
                    self.record_deferred(&job, deferred).await;
                }
                ended
            }
            Err(failures) => self.fail_run(lease, failure_message(run.phase, &failures, total), failures[0].beat, &stop).await,
        }
    }

    /// The run stopped before its end (cancelled, lease lost, shutdown); at shutdown it goes back
    /// to the queue, for the next worker to resume from the memo.
    async fn stopped(&self, lease: &Lease, phase: Phase, shutdown: &watch::Receiver<bool>) -> Result<WorkOutcome, CoreError> {
        if *shutdown.borrow() {
            return self.hand_back(lease, "shutdown").await;
        }
        self.cancel_remote_jobs(lease.run, phase).await;
        self.events.changed(lease.video);
        Ok(WorkOutcome::Stopped)
    }

    /// Puts the run back in the queue; the next claim resumes it from the memo.
    async fn hand_back(&self, lease: &Lease, why: &str) -> Result<WorkOutcome, CoreError> {
        let held = lease.clone();
        self.store.write_retrying(async move |tx| storage::release_run(tx, &held).await).await?;
        tracing::info!(run = %lease.run, why, "run handed back to the queue");
        self.events.changed(lease.video);
        Ok(WorkOutcome::Stopped)
    }

    /// Fair to one unit's time: after each unit, a run yields when another account has a run
    /// waiting (no worker was free to take it). The local account of a single-person server
    /// (`--auth none`) has nobody to yield to, and does not ask.
    async fn others_waiting(&self, job: &UnitJob<'_>) -> bool {
        if job.video.owner == crate::domain::AccountId::LOCAL {
            return false;
        }
        let waiting = async {
            let mut tx = self.store.read().await?;
            let waiting = storage::others_waiting(&mut tx, job.video.owner).await?;
            let _ = tx.rollback().await;
            Ok::<_, CoreError>(waiting)
        };
        waiting.await.unwrap_or(false)
    }

    /// A cancelled run's remote jobs are cancelled too, so nobody pays for output no one will
    /// use. A run that stopped for another reason (its lease was taken over) keeps them: the
    /// worker that took it over attaches to them.
    pub(crate) async fn cancel_remote_jobs(&self, run: RunId, phase: Phase) {
        let jobs = async {
            let mut tx = self.store.read().await?;
            let cancelled = storage::run_status(&mut tx, run).await? == Some(RunStatus::Cancelled);
            let jobs = if cancelled { storage::jobs_of_run(&mut tx, run).await? } else { vec![] };
            let _ = tx.rollback().await;
            Ok::<_, storage::StorageError>(jobs)
        };
        let jobs = jobs.await.unwrap_or_else(|e| {
            tracing::warn!(run = %run, error = %e, "cannot list the cancelled run's remote jobs");
            vec![]
        });
        let book = JobBook::new(self.store.clone());
        for job in jobs {
            match book.take_to_cancel(&job).await {
                Ok(true) => {
                    self.providers.cancel(phase, job.job_id.clone()).await;
                    tracing::info!(run = %run, provider = %job.provider, "remote job cancelled with its run");
                }
                // Cancelled by the other side (the command, or the run's worker), or another
                // run's now (a retry attached to it).
                Ok(false) => {}
                Err(e) => tracing::warn!(run = %run, error = %e, "cannot forget a cancelled remote job"),
            }
        }
    }

    /// Renews the lease; stops the run when it is cancelled, taken over, or the server shuts
    /// down, and when the lease cannot be renewed: a lease nobody renews is not ours for long, so
    /// the worker stops well before another may take it over.
    async fn heartbeat(self, lease: Lease, stop: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let mut cancelled = self.cancelled.subscribe();
        // A cancel made before this subscription is not a change to it: look once first.
        if cancelled.borrow_and_update().contains(&lease.run) {
            let _ = stop.send(true);
            return;
        }
        let lease_ms = self.config.lease_ms;
        let period = Duration::from_millis((lease_ms / 3).max(50) as u64);
        let mut held_until = now_ms() + lease_ms;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {
                    let asked = now_ms();
                    match tokio::time::timeout(period, self.renew(&lease, asked)).await {
                        Ok(Ok(true)) => held_until = asked + lease_ms,
                        Ok(Ok(false)) => {
                            tracing::warn!(run = %lease.run, token = lease.token, "lease lost: the run was cancelled, finished or taken over");
                            break;
                        }
                        Ok(Err(e)) if now_ms() < held_until - lease_ms / 2 => tracing::warn!(run = %lease.run, error = %e, "cannot renew the lease yet"),
                        Err(_) if now_ms() < held_until - lease_ms / 2 => tracing::warn!(run = %lease.run, "renewing the lease is slow"),
                        _ => {
                            tracing::error!(run = %lease.run, "cannot renew the lease: stopping the run before it may be taken over");
                            break;
                        }
                    }
                }
                changed = cancelled.changed() => {
                    if changed.is_err() || cancelled.borrow().contains(&lease.run) {
                        break;
                    }
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        let _ = stop.send(true);
    }

    /// Extends a held lease by `lease_ms` from `now`; false when the run is no longer ours
    /// (cancelled, finished, taken over, or its lease already expired).
    async fn renew(&self, lease: &Lease, now: Timestamp) -> Result<bool, storage::StorageError> {
        let (held, lease_ms) = (lease.clone(), self.config.lease_ms);
        self.store.write_retrying(async move |tx| storage::hold_lease(tx, &held, now, lease_ms).await).await
    }

    /// One unit: waits for a slot (none once the run yields), makes or reuses the output, gives
    /// the slot back and waits for its group's commit. Fair to one unit's time: a run then yields
    /// when another account has a run waiting.
    async fn run_unit(&self, job: &UnitJob<'_>, plan: UnitPlan, mut stop: watch::Receiver<bool>, yielding: &AtomicBool) -> UnitEnd {
        let slot = job.slots.acquire().await.expect("the slots are never closed");
        if yielding.load(Ordering::Relaxed) {
            return UnitEnd::Skipped;
        }
        let made = self.make_unit(job, &plan, &mut stop).await;
        let last = job.group.made_one();
        drop(slot);
        let recorded = match made {
            // Every other unit is already recorded or failed: no group to share, so the record
            // waits for the run's next transaction (the checkpoint's, on success).
            Ok((output, source)) if last => {
                job.group.defer(finished_unit(job, &plan, source, now_ms()));
                Ok(output)
            }
            Ok((output, source)) => self.record_unit(job, &plan, source).await.map(|()| output),
            Err(halt) => Err(halt),
        };
        let end = match recorded {
            Ok(output) => UnitEnd::Done(plan.index, output),
            Err(Halt::Stopped) => UnitEnd::Stopped,
            Err(Halt::Failed(message)) => {
                UnitEnd::Failed(UnitFailure { index: plan.index, beat: plan.beat, narration: plan.is_narration(), message })
            }
        };
        if self.others_waiting(job).await {
            yielding.store(true, Ordering::Relaxed);
        }
        end
    }

    /// One unit, in steps: what the fault plan does to it, its output from the memo if an
    /// earlier run made it, else the provider's (tried again after transient errors).
    async fn make_unit(&self, job: &UnitJob<'_>, plan: &UnitPlan, stop: &mut watch::Receiver<bool>) -> Result<(UnitOutput, Source), Halt> {
        let fx = self.fault_effects(job, plan).await?;
        if fx.crash {
            // The units that finished before this one are committed first, as they would be
            // a moment later in a process that was not about to die.
            job.group.flush(self, job).await;
            tracing::error!(run = %job.run.id, unit = plan.index, "fault plan: crashing the process now");
            std::process::abort();
        }
        if fx.delay_ms > 0 && !sleep_unless_stopped(Duration::from_millis(fx.delay_ms), stop).await {
            return Err(Halt::Stopped);
        }
        if fx.hang {
            let _ = stop.wait_for(|s| *s).await;
            return Err(Halt::Stopped);
        }
        if fx.fail.is_none()
            && let Some(output) = self.reuse(job, plan).await
        {
            return Ok((output, Source::Memo));
        }
        self.make_with_retries(job, plan, fx.fail.as_deref(), stop).await
    }

    async fn fault_effects(&self, job: &UnitJob<'_>, plan: &UnitPlan) -> Result<faults::Effects, Halt> {
        let (video, run) = (job.video, job.run);
        if !self.config.fault_injection || video.fault_plan.is_empty() {
            return Ok(faults::Effects::default());
        }
        let spot = faults::UnitSpot { phase: run.phase, unit: plan.index, beat: plan.beat, narration: plan.is_narration() };
        faults::effects(&self.store, video.id, &video.fault_plan, spot, run.id).await.map_err(|e| Halt::storage(e.into()))
    }

    /// The unit's output from the memo (read when the run started); `None` when there is none, or
    /// when its bytes were lost (disk trouble, manual cleanup) and it must be made again.
    async fn reuse(&self, job: &UnitJob<'_>, plan: &UnitPlan) -> Option<UnitOutput> {
        let output = job.memo.outputs.get(&plan.key)?;
        for blob in output.blobs() {
            if !job.memo.inline.contains(&blob.sha256) && !self.blobs.intact(blob).await {
                return None;
            }
        }
        Some(output.clone())
    }

    /// Calls the provider (or fails as the fault plan says), trying again after a transient
    /// error with exponential backoff and jitter (or after the wait a rate limit asked for), and
    /// with a new seed after a moderation refusal; every failed try is recorded.
    async fn make_with_retries(
        &self,
        job: &UnitJob<'_>,
        plan: &UnitPlan,
        fail: Option<&str>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(UnitOutput, Source), Halt> {
        let (mut input, mut spent) = (plan.input.clone(), Spent::default());
        for try_no in 1.. {
            if *stop.borrow() {
                return Err(Halt::Stopped);
            }
            let started = now_ms();
            let failure = match self.try_once(job, plan, input.clone(), fail, stop).await? {
                Ok((output, cost_micros, blobs)) => {
                    return Ok((output.clone(), Source::Provider { output, cost_micros, started, blobs }));
                }
                Err(failure) => failure,
            };
            let Failure { error, cost_micros } = failure;
            let outcome = if matches!(error, ProviderError::Permanent(_)) { TryOutcome::Permanent } else { TryOutcome::Transient };
            let tried = UnitTry { cost_micros, ..job.failed_try(plan, try_no, outcome, &error.to_string(), started) };
            self.record_try(job, tried).await;
            let wait = self.after_failure(error, &mut spent, &mut input)?;
            if !sleep_unless_stopped(wait, stop).await {
                return Err(Halt::Stopped);
            }
        }
        unreachable!("every try returns or waits")
    }

    /// What a failed try leads to: the wait before the next one (with a new seed after a
    /// moderation refusal), or, when the error is permanent or the tries are spent, the unit's
    /// failure.
    fn after_failure(&self, error: ProviderError, spent: &mut Spent, input: &mut UnitInput) -> Result<Duration, Halt> {
        let tries = 1 + self.config.extra_tries;
        match error {
            ProviderError::Permanent(message) => Err(Halt::Failed(message)),
            ProviderError::Rejected(message) if spent.rerolls == self.config.rerolls => {
                Err(Halt::Failed(format!("{message} (refused {} times, each with a new seed)", spent.rerolls + 1)))
            }
            ProviderError::Rejected(_) => {
                spent.rerolls += 1;
                *input = input.clone().rerolled(spent.rerolls);
                Ok(Duration::ZERO)
            }
            ProviderError::Transient(message) | ProviderError::RateLimited { message, .. } if spent.transient + 1 == tries => {
                Err(Halt::Failed(message))
            }
            ProviderError::Transient(_) => Ok(self.backoff(&mut spent.transient)),
            ProviderError::RateLimited { after, .. } => Ok(self.backoff(&mut spent.transient).max(after.min(MAX_RATE_LIMIT_WAIT))),
        }
    }

    /// The wait before the next try after `transient` transient failures (counting this one):
    /// exponential, with jitter.
    fn backoff(&self, transient: &mut u32) -> Duration {
        *transient += 1;
        let base = self.config.backoff_base_ms.saturating_mul(1 << (*transient - 1));
        Duration::from_millis(base + fastrand::u64(0..=self.config.backoff_base_ms.max(1)))
    }

    /// One try: the provider's answer (or the fault plan's failure), its output stored as blobs.
    async fn try_once(
        &self,
        job: &UnitJob<'_>,
        plan: &UnitPlan,
        input: UnitInput,
        fail: Option<&str>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Answer, Halt> {
        let phase = job.run.phase;
        let call = UnitCall { key: plan.key.clone(), run: job.run.id, jobs: JobBook::new(self.store.clone()) };
        let answer = match fail {
            Some(message) => Err(ProviderError::Transient(message.to_string()).into()),
            None => {
                match input {
                    UnitInput::Narration { .. } => self.providers.count_narration_call(),
                    _ => self.providers.count_call(phase),
                }
                tokio::select! {
                    answer = self.call(phase, &call, input, &job.memo.inputs) => answer,
                    _ = stop.wait_for(|s| *s) => return Err(Halt::Stopped),
                }
            }
        };
        Ok(match answer {
            // Output the provider was paid for and the engine refuses (a script that fails its
            // check, a narration too long to say) was still paid for.
            Ok(costed) => match refused(&costed.value) {
                Some(error) => Err(error.paid(costed.cost_micros)),
                None => {
                    let cost = costed.cost_micros;
                    match self.store_output(costed).await {
                        Ok(made) => Ok(made),
                        // Paid for, and not kept. A remote job left in the job book is attached
                        // to by the next try, which counts its cost once its output is kept; any
                        // other answer is gone with this try, which counts it.
                        Err(error) => Err(error.paid(if call.jobs.holds(&call).await { 0 } else { cost })),
                    }
                }
            },
            Err(failure) => Err(failure),
        })
    }

    /// An input blob's bytes: read with the run's start when small, else from the blob store.
    async fn input_bytes(&self, known: &HashMap<String, Vec<u8>>, blob: &crate::domain::BlobRef) -> std::io::Result<Vec<u8>> {
        match known.get(&blob.sha256) {
            Some(bytes) => Ok(bytes.clone()),
            None => self.blob_bytes(blob).await,
        }
    }

    async fn call(
        &self,
        phase: Phase,
        call: &UnitCall,
        input: UnitInput,
        known: &HashMap<String, Vec<u8>>,
    ) -> Result<Costed<Produced>, Failure> {
        let p = &self.providers;
        Ok(match input {
            UnitInput::Script { prompt, beats, seed } => {
                let c = p.script.write(call, prompt, beats, seed).await?;
                debug_assert_eq!(phase, Phase::Script);
                Costed { value: Produced::Script(c.value), cost_micros: c.cost_micros }
            }
            UnitInput::Frame { script, index, seed, width, height } => {
                let c = p.storyboard.draw(call, script, index, seed, width, height).await?;
                Costed { value: Produced::Frame(c.value), cost_micros: c.cost_micros }
            }
            UnitInput::Narration { text, voice, speed_wpm } => {
                let c = p.narration.speak(call, SpeechRequest { text, voice, speed_wpm }).await?;
                Costed { value: Produced::Narration(c.value), cost_micros: c.cost_micros }
            }
            UnitInput::Clip { still, prompt, caption, duration_ms, fps, seed, .. } => {
                let bytes = self
                    .input_bytes(known, &still)
                    .await
                    .map_err(|e| ProviderError::Permanent(format!("the storyboard image is missing: {e}")))?;
                let c = p.clips.animate(call, ClipRequest { still_png: bytes, prompt, caption, duration_ms, fps, seed }).await?;
                Costed { value: Produced::Clip(c.value), cost_micros: c.cost_micros }
            }
            UnitInput::Render { streams, poster_still, title, fps, narration, captions } => {
                let request = self.render_request(known, streams, poster_still, title, fps, narration, captions).await?;
                let c = p.render.render(call, request).await?;
                Costed { value: Produced::Render(c.value), cost_micros: c.cost_micros }
            }
        })
    }

    /// The render's input bytes, read from the blob store.
    #[allow(clippy::too_many_arguments)]
    async fn render_request(
        &self,
        known: &HashMap<String, Vec<u8>>,
        streams: Vec<crate::domain::BlobRef>,
        poster_still: crate::domain::BlobRef,
        title: String,
        fps: u32,
        narration: Vec<(Option<crate::domain::BlobRef>, String)>,
        captions: bool,
    ) -> Result<RenderRequest, ProviderError> {
        let read = async |blob: &crate::domain::BlobRef, what: &str| {
            self.input_bytes(known, blob).await.map_err(|e| ProviderError::Permanent(format!("{what} is missing: {e}")))
        };
        let mut clip_streams = Vec::with_capacity(streams.len());
        for s in &streams {
            clip_streams.push(read(s, "a clip").await?);
        }
        let mut spoken = Vec::with_capacity(narration.len());
        for (audio, text) in narration {
            let bytes = match &audio {
                Some(a) => read(a, "a narration").await?,
                None => Vec::new(),
            };
            spoken.push((bytes, text));
        }
        let poster_still_png = read(&poster_still, "the poster image").await?;
        Ok(RenderRequest { clip_streams, fps, poster_still_png, title, narration: spoken, captions })
    }

    /// Keeps a unit's bytes: small ones (up to `INLINE_BLOB_MAX`) go into the database with the
    /// unit's group commit, larger ones into the blob store now; a full disk is a failure of
    /// this try, said plainly.
    async fn store_output(&self, costed: Costed<Produced>) -> Result<(UnitOutput, i64, Vec<NewBlob>), ProviderError> {
        let mut kept = Keep { blobs: &self.blobs, made: Vec::new() };
        let stored = async {
            Ok::<_, std::io::Error>(match costed.value {
                Produced::Script(script) => UnitOutput::Script { script },
                Produced::Frame(png) => UnitOutput::Frame { frame: kept.put(png, "image/png").await? },
                Produced::Narration(s) => UnitOutput::Narration {
                    narration: NarrationRef { audio: kept.put(s.wav, "audio/wav").await?, duration_ms: s.duration_ms },
                },
                Produced::Clip(c) => UnitOutput::Clip {
                    clip: ClipRef {
                        stream: kept.put(c.stream, "application/x-reelsmith-h264").await?,
                        preview: kept.put(c.preview_mp4, "video/mp4").await?,
                        frames: c.frames,
                    },
                },
                Produced::Render(r) => UnitOutput::Render {
                    video: kept.put(r.mp4, "video/mp4").await?,
                    poster: kept.put(r.poster_png, "image/png").await?,
                    duration_ms: r.duration_ms,
                    frames: r.frames,
                    captions: match r.captions_vtt {
                        Some(vtt) => Some(kept.put(vtt, "text/vtt").await?),
                        None => None,
                    },
                },
            })
        }
        .await;
        match stored {
            Ok(output) => Ok((output, costed.cost_micros, kept.made)),
            Err(e) => Err(ProviderError::Transient(format!("could not store the output: {e}"))),
        }
    }

    /// Records a finished unit (memoized when made now, its try naming the memo entry, the run's
    /// progress) in the next group commit; returns once that group has committed.
    async fn record_unit(&self, job: &UnitJob<'_>, plan: &UnitPlan, source: Source) -> Result<(), Halt> {
        job.group.record(self, job, finished_unit(job, plan, source, now_ms())).await
    }

    /// The records deferred to a checkpoint that will not come, in a group of their own; one that
    /// cannot be written (the lease is lost, the run cancelled) is logged.
    async fn record_deferred(&self, job: &UnitJob<'_>, units: Arc<Vec<FinishedUnit>>) {
        if let Err(e) = self.write_group(job, units).await {
            tracing::warn!(run = %job.run.id, error = %e, "could not record the finished units");
        }
    }

    /// Commits a group of finished units under the run's lease, in one transaction (on SQLite,
    /// one call with the fence, then the commit).
    async fn write_group(&self, job: &UnitJob<'_>, units: Arc<Vec<FinishedUnit>>) -> Result<(), CoreError> {
        let (blobs, total, backend) = (self.blobs.clone(), job.total, self.store.backend());
        let (group, lease) = (units.clone(), job.lease.clone());
        let records = move |now| Some(storage::record_finished_batch(backend, &lease, total, &group, now));
        self.write_fenced_with(job.lease, records, async move |_, _, answers, _| group_recorded(answers, &blobs, &units).await).await
    }

    /// Records a failed try, and what it cost in the run's cost; one that cannot be recorded is
    /// logged, and the unit goes on.
    async fn record_try(&self, job: &UnitJob<'_>, tried: UnitTry) {
        let written = self
            .write_fenced(job.lease, async move |tx, lease| {
                storage::insert_unit_try(tx, &tried).await?;
                if tried.cost_micros > 0 {
                    storage::add_run_cost(tx, lease, tried.cost_micros).await?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not record a failed try");
            self.events.changed(job.lease.video);
        }
    }

    /// Records the run's failure under its lease. The heartbeat keeps renewing meanwhile; if the
    /// database refuses for longer than the lease can be held, the heartbeat gives up and so does
    /// this: the run is then taken over when its lease expires, instead of looking busy while
    /// nobody works on it.
    async fn fail_run(
        &self,
        lease: &Lease,
        error: String,
        beat: Option<u32>,
        stop: &watch::Receiver<bool>,
    ) -> Result<WorkOutcome, CoreError> {
        tracing::warn!(run = %lease.run, %error, "run failed");
        let mut wait = Duration::from_millis(100);
        let backend = self.store.backend();
        loop {
            // The units it finished stay held (their tries name them): a retry reuses them, and
            // `gc` keeps them until the branch moves on.
            let end = |now| {
                let mut batch = storage::batch::Batch::new(backend);
                batch.push_statement(storage::finish_run_statement(
                    lease.run,
                    Ender::Worker(lease),
                    RunStatus::Failed,
                    Some(&error),
                    beat,
                    now,
                ));
                Some(batch)
            };
            let written = self
                .write_fenced_with(lease, end, async |_, _, answers, _| match answers.first() {
                    Some(ended) if ended.rows_affected == 1 => Ok(()),
                    _ => Err(CoreError::LeaseLost),
                })
                .await;
            match written {
                Ok(()) => return Ok(WorkOutcome::Failed { error }),
                Err(CoreError::LeaseLost) => {
                    self.events.changed(lease.video);
                    return Ok(WorkOutcome::Stopped);
                }
                Err(e) if !*stop.borrow() => {
                    tracing::error!(run = %lease.run, error = %e, "cannot record the failure yet");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The phase succeeded: checkpoint, new branch head, end of run and (auto-continue) the next
    /// run, in one transaction.
    ///
    /// `last`: the run's unit count and the records deferred to this transaction: its last unit's,
    /// and those still waiting for a group when every unit had made its output (see `group`).
    async fn commit_success(
        &self,
        run: Run,
        lease: &Lease,
        manifest: Manifest,
        last: (u32, Arc<Vec<FinishedUnit>>),
        claim: bool,
    ) -> Result<WorkOutcome, CoreError> {
        let (limits, phase, branch, engine, blobs, backend) =
            (self.config.limits(), run.phase, run.branch_id, self.clone(), self.blobs.clone(), self.store.backend());
        let (total, last) = last;
        // On SQLite one call opens the transaction, checks the lease, records the last group,
        // ends the run and reads the video's state; the checkpoint (and, with auto-continue, the
        // next run) goes with the commit.
        let (group, held) = (last.clone(), lease.clone());
        let first = move |now| {
            let mut batch = storage::batch::Batch::new(backend);
            if !group.is_empty() {
                batch.append(storage::record_finished_batch(backend, &held, total, &group, now));
            }
            batch.append(storage::finish_and_load_batch(backend, &held, now));
            Some(batch)
        };
        let committed = self
            .write_fenced_with(lease, first, async move |tx, lease, answers, now| {
                // The group's answers first (if any), then the run's end and the state.
                let Some(group_end) = answers.len().checked_sub(storage::FINISH_AND_LOAD_ANSWERS) else {
                    return Err(CoreError::Internal(format!("a checkpoint's first call answered {} times", answers.len())));
                };
                let (group, answers) = answers.split_at(group_end);
                if !last.is_empty() {
                    group_recorded(group, &blobs, &last).await?;
                }
                let Some(mut state) = storage::finished_state(answers, lease)? else {
                    return Err(CoreError::LeaseLost);
                };
                let checkpoint = write_checkpoint(tx, &state, &run, &manifest, now)?;
                let id = checkpoint.id;
                // The next phase's memo answers, read for auto-continue's estimate, start the
                // run when this worker claims it (below).
                let mut seen = MemoSeen::default();
                // Every new checkpoint, a regenerated version included (SPEC §4, auto-continue).
                if state.video.auto_continue {
                    // The state as this transaction left it: the run is over (read after
                    // `finish_run`) and the new checkpoint heads its branch.
                    state.checkpoints.push(checkpoint);
                    if let Some(branch) = state.branches.iter_mut().find(|b| b.id == run.branch_id) {
                        branch.head_id = Some(id);
                    }
                    auto_continue(&engine, tx, state, &run, id, limits, now, &mut seen).await?;
                }
                let next = if claim { claim_next(&engine, tx, &lease.owner, now, Some(&seen)).await? } else { None };
                Ok((id, next))
            })
            .await;
        match committed {
            Ok((checkpoint, next)) => {
                // A run auto-continue queued and this worker did not claim is for the others.
                if next.as_ref().is_none_or(|n| n.run.branch_id != branch) {
                    self.events.wake_workers();
                }
                tracing::info!(run = %lease.run, checkpoint = %checkpoint, phase = phase.wire(), "checkpoint written");
                if let Some(next) = next {
                    if next.run.video_id != lease.video {
                        self.events.changed(next.run.video_id);
                    }
                    self.keep_claimed(&lease.owner, next).await;
                }
                Ok(WorkOutcome::Succeeded { checkpoint })
            }
            Err(CoreError::LeaseLost) => Ok(WorkOutcome::Stopped),
            Err(e) => Err(e),
        }
    }
}

/// The run this worker takes next, claimed in the transaction that writes a checkpoint: the claim
/// an idle worker would make after it (`storage::claim_batch`: the same fair order), here
/// without a transaction of its own. With auto-continue it is usually the next phase's run,
/// queued by this same transaction. Planned and its progress started as `work_once` does;
/// `None` when nothing is claimable. The claim holds a lease like any other: a worker that dies
/// before starting the run leaves it to another once the lease lapses.
///
/// The claim runs under a savepoint: when it fails (a lock it waited on too long, a row that
/// will not read), it is rolled back alone and the checkpoint commits without it; the worker's
/// next step claims as usual. An error before the savepoint (the checkpoint's own statements)
/// is the checkpoint's.
async fn claim_next(
    engine: &Engine,
    tx: &mut WriteTx,
    owner: &str,
    now: Timestamp,
    seen: Option<&MemoSeen>,
) -> Result<Option<Claimed>, CoreError> {
    let backend = engine.store.backend();
    let mut batch = storage::batch::Batch::new(backend);
    batch.push(CLAIM_SAVEPOINT.to_string(), Vec::new());
    batch.append(storage::claim_batch(backend, owner, now, engine.config.lease_ms));
    let claimed = async {
        let answers = tx.flush_with(batch).await?;
        let Some((run, lease, state)) = storage::claimed_state(tx, answers.get(1..).unwrap_or_default(), owner, now).await? else {
            return Ok(None);
        };
        let start = engine.start_run(tx, &run, &lease, state, seen).await?;
        Ok::<_, CoreError>(Some(Claimed { run, lease, start }))
    }
    .await;
    match claimed {
        Ok(claimed) => Ok(claimed),
        Err(e) => match sqlx::raw_sql(CLAIM_ROLLBACK).execute(&mut **tx).await {
            Ok(_) => {
                tracing::warn!(error = %e, "could not claim the next run with a checkpoint; the worker will claim it next");
                Ok(None)
            }
            // No savepoint to go back to: the error came before it.
            Err(_) => Err(e),
        },
    }
}

const CLAIM_SAVEPOINT: &str = "SAVEPOINT claim_next";
const CLAIM_ROLLBACK: &str = "ROLLBACK TO SAVEPOINT claim_next";

/// Whether a group's records (`storage::record_finished_batch`, its answers) were written: the
/// lease still held the run, and the files its units stored are still there. The files are
/// checked under the write lock, before the commit: `gc` holds that lock while it deletes, so a
/// file it removed after a unit stored it never gets a memo row (bytes kept in rows commit here).
async fn group_recorded(
    answers: &[storage::batch::Answer],
    blobs: &super::blobs::BlobStore,
    units: &[FinishedUnit],
) -> Result<(), CoreError> {
    if !storage::recorded(answers) {
        return Err(CoreError::LeaseLost);
    }
    if !storage::reused_intact(answers, units)? {
        return Err(CoreError::Internal("an output reused from the memo was forgotten by gc before its unit was recorded".into()));
    }
    for made in units.iter().filter_map(|u| u.made.as_ref().map(|(_, blobs)| blobs)) {
        for b in made.iter().filter(|b| b.content.is_none()) {
            if !blobs.intact(&b.blob).await {
                return Err(CoreError::Internal(format!("the stored output {} vanished before it was recorded", b.blob.sha256)));
            }
        }
    }
    Ok(())
}

/// The units' outputs in order, or (when any failed) the failures, first unit first.
fn outputs_of(ends: Vec<UnitEnd>) -> Result<Vec<UnitOutput>, Vec<UnitFailure>> {
    let mut failures: Vec<UnitFailure> = Vec::new();
    let mut outputs: Vec<(u32, UnitOutput)> = Vec::new();
    for end in ends {
        match end {
            UnitEnd::Done(i, o) => outputs.push((i, o)),
            UnitEnd::Failed(f) => failures.push(f),
            // Units not started because the run yields: only reached when others failed.
            UnitEnd::Skipped => {}
            UnitEnd::Stopped => unreachable!("a stopped run commits nothing"),
        }
    }
    if !failures.is_empty() {
        failures.sort_by_key(|f| f.index);
        return Err(failures);
    }
    outputs.sort_by_key(|(i, _)| *i);
    Ok(outputs.into_iter().map(|(_, o)| o).collect())
}

/// Writes the run's checkpoint (pending, the next version under its parent) as its branch's new
/// head; a script on `main` also names the video. Sent with the commit (`WriteTx::defer`).
fn write_checkpoint(tx: &mut WriteTx, state: &Video, run: &Run, manifest: &Manifest, now: Timestamp) -> Result<Checkpoint, CoreError> {
    let branch = state.branch(run.branch_id).ok_or_else(|| CoreError::not_found(Entity::Branch, run.branch_id))?;
    let checkpoint = Checkpoint {
        id: CheckpointId::fresh(),
        video_id: run.video_id,
        branch_id: run.branch_id,
        parent_id: run.from_checkpoint,
        phase: run.phase,
        version: state.next_version(run.from_checkpoint, run.phase),
        status: CheckpointStatus::Pending,
        origin: Origin::Generated,
        manifest: manifest.clone(),
        run_id: Some(run.id),
        created_at: now,
        approved_at: None,
    };
    tx.defer(storage::insert_checkpoint_statement(&checkpoint));
    tx.defer(storage::set_branch_head_statement(run.branch_id, checkpoint.id));
    if let (Manifest::Script { script, .. }, true) = (manifest, branch.name == BranchName::MAIN) {
        tx.defer(storage::set_video_title_statement(run.video_id, &script.title));
    }
    Ok(checkpoint)
}

/// Continues from the new checkpoint as a person's approve & continue would, on `state` (the
/// checkpoint now heads the branch) with its estimates, with the run kind `auto`. A refusal (a
/// spent budget, the account's storage used up) just leaves the checkpoint waiting for a person,
/// whose continue then says why. The memo's answers the estimate read are noted in `seen`.
#[allow(clippy::too_many_arguments)]
async fn auto_continue(
    engine: &Engine,
    tx: &mut WriteTx,
    mut state: Video,
    run: &Run,
    checkpoint: CheckpointId,
    limits: Limits,
    now: Timestamp,
    seen: &mut MemoSeen,
) -> Result<(), CoreError> {
    engine.add_estimates(tx, &mut state, Some(seen)).await?;
    let branch = state.branch(run.branch_id).ok_or_else(|| CoreError::not_found(Entity::Branch, run.branch_id))?;
    let request =
        ContinueRequest { checkpoint: Some(GivenCheckpoint { id: checkpoint, status: CheckpointStatus::Pending }), force_retry: false };
    let Ok(decision) = decide(&state.branch_view(branch), request, limits) else { return Ok(()) };
    let quotas = engine.config.quotas.applying_to(state.video.owner);
    if matches!(decision, Decision::Start { .. }) && quotas != Quotas::UNLIMITED {
        // The run that just ended gives its place in the queue to the next one, so only the
        // storage limit applies, not the count of active runs.
        let made = state.checkpoint(checkpoint).map(|c| &c.manifest);
        let usage = super::commands::usage(tx, state.video.owner, now, made).await?;
        if quotas.check_run(Usage { active_runs: 0, ..usage }).is_err() {
            return Ok(());
        }
    }
    defer_decision(tx, branch, checkpoint, decision.automatic(), now);
    Ok(())
}

/// What a provider made, before it is stored.
enum Produced {
    Script(crate::domain::Script),
    Frame(Vec<u8>),
    Narration(super::providers::SpeechBytes),
    Clip(super::providers::ClipBytes),
    Render(super::providers::RenderBytes),
}

/// A unit's blobs as they are made: small ones stay in memory for the unit's group commit (their
/// bytes go in their rows), larger ones are written to the blob store at once.
struct Keep<'a> {
    blobs: &'a super::blobs::BlobStore,
    made: Vec<NewBlob>,
}

impl Keep<'_> {
    async fn put(&mut self, bytes: Vec<u8>, media_type: &str) -> std::io::Result<crate::domain::BlobRef> {
        let (blob, content) = if bytes.len() as u64 <= INLINE_BLOB_MAX {
            let blob =
                crate::domain::BlobRef { sha256: super::blobs::hash(&bytes), bytes: bytes.len() as u64, media_type: media_type.into() };
            (blob, Some(bytes))
        } else {
            (self.blobs.put(&bytes, media_type).await?, None)
        };
        self.made.push(NewBlob { blob: blob.clone(), content });
        Ok(blob)
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sleeps; false when stopped first.
async fn sleep_unless_stopped(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    !stopped && !*stop.borrow()
}

/// The error card's sentence for a phase whose units failed: the first failure, and how many.
fn failure_message(phase: Phase, failures: &[UnitFailure], total: u32) -> String {
    let first = &failures[0];
    let mut error = format!("Failed to generate {}: {}", units::describe(phase, first.beat, first.narration), first.message);
    if failures.len() > 1 {
        error.push_str(&format!(" ({} of {} units failed)", failures.len(), total));
    }
    error
}

/// A finished unit as its group commit writes it: its try, and its memo entry and blobs when it
/// was made now (not reused).
fn finished_unit(job: &UnitJob<'_>, plan: &UnitPlan, source: Source, finished: Timestamp) -> FinishedUnit {
    let (made, cost_micros, outcome, started) = match source {
        Source::Provider { output, cost_micros, started, blobs } => {
            let entry = MemoEntry {
                key: plan.key.clone(),
                phase: job.run.phase,
                provider: plan.provider.clone(),
                output: serde_json::to_string(&output).expect("outputs serialize"),
                cost_micros,
            };
            (Some((entry, blobs)), cost_micros, TryOutcome::Ok, started)
        }
        Source::Memo => (None, 0, TryOutcome::Memo, finished),
    };
    let tried = UnitTry {
        run_id: job.run.id,
        unit: plan.index,
        try_no: 0,
        outcome,
        message: None,
        provider: plan.provider.clone(),
        cost_micros,
        started_at: started,
        finished_at: finished,
    };
    FinishedUnit { unit: plan.index, memo_key: plan.key.clone(), made, tried }
}

/// Why a provider's answer cannot be used though it came (and was paid for): a script that is
/// not valid, or a narration that, with the pause after it, lasts longer than a clip may (a
/// script's check estimates it; this is the real audio's): its beat fails here, in phase 2,
/// saying what to do (it failed in phase 3 as "clip duration … is too long", on every retry).
fn refused(produced: &Produced) -> Option<ProviderError> {
    match produced {
        Produced::Script(script) => {
            script.validate().err().map(|e| ProviderError::Permanent(format!("the script provider returned an invalid script: {e}")))
        }
        Produced::Narration(speech) => crate::domain::narration::too_long_to_say(speech.duration_ms).map(ProviderError::Permanent),
        _ => None,
    }
}
