//! The worker: claims queued runs under a lease, runs the phase's units, commits the checkpoint.
//!
//! Each finished unit is memoized and staged at once, so a retry, a resumed run after a crash, or
//! an edit re-runs only what is missing. The checkpoint is written only when every unit succeeded,
//! in one transaction with the run's end (and, with auto-continue, the next phase's run).
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::watch;

use super::commands::apply_decision;
use super::faults;
use super::providers::{Costed, ProviderError};
use super::units::{self, UnitInput, UnitOutput, UnitPlan};
use super::{CoreError, Engine, now_ms};
use crate::domain::rules::{self, ContinueRequest, GivenCheckpoint};
use crate::domain::{BranchName, CheckpointId, CheckpointStatus, ClipRef, Manifest, Origin, Phase, RunStatus};
use crate::storage::{self, CheckpointRecord, Ender, Lease, MemoEntry, RunRecord, UnitTryRecord, VideoRecord, WriteTx};

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
    message: String,
}

enum UnitEnd {
    Done(u32, UnitOutput),
    Failed(UnitFailure),
    Stopped,
}

impl Engine {
    /// Claims one run (queued, or abandoned by a dead worker) and runs it to the end.
    pub async fn work_once(&self, owner: &str, shutdown: &watch::Receiver<bool>) -> Result<WorkOutcome, CoreError> {
        let mut tx = self.store.write().await?;
        let claimed = storage::claim_run(&mut tx, owner, now_ms(), self.config.lease_ms).await?;
        let Some((run, lease)) = claimed else {
            let _ = tx.rollback().await;
            return Ok(WorkOutcome::Idle);
        };
        tx.commit().await?;
        self.events.changed(run.video_id);
        tracing::info!(run = %run.id, video = %run.video_id, phase = run.phase.wire(), attempt = run.attempt, token = lease.token, "run claimed");
        let (stop_tx, stop_rx) = watch::channel(false);
        // Renews the lease until the run's end is committed. Dropped with this future: a worker
        // that dies stops renewing, so its lease can expire and another worker take over.
        let heartbeat = AbortOnDrop(tokio::spawn(self.clone().heartbeat(lease.clone(), stop_tx, shutdown.clone())));
        let outcome = self.execute(run, &lease, stop_rx, shutdown).await;
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
                    tokio::select! {
                        _ = woken => {}
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "worker step failed; trying again shortly");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// A write transaction for a held run: the video is locked and counted first, like every
    /// writer's, then the lease is checked (and extended). `LeaseLost`: nothing may be written.
    async fn begin_fenced(&self, lease: &Lease) -> Result<WriteTx, CoreError> {
        let mut tx = self.store.write().await?;
        storage::touch_video(&mut tx, lease.video).await?;
        if !storage::hold_lease(&mut tx, lease, now_ms() + self.config.lease_ms).await? {
            let _ = tx.rollback().await;
            return Err(CoreError::LeaseLost);
        }
        Ok(tx)
    }

    async fn execute(
        &self,
        run: RunRecord,
        lease: &Lease,
        stop_rx: watch::Receiver<bool>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<WorkOutcome, CoreError> {
        let state = self.video_state(run.video_id).await?;
        let (plans, seeds) = match units::plan(self, &state, &run) {
            Ok(p) => p,
            Err(e) => return self.fail_run(lease, format!("Cannot start the {} phase: {e}", run.phase.label()), None, &stop_rx).await,
        };
        let total = plans.len() as u32;
        match self.begin_fenced(lease).await {
            Ok(mut tx) => {
                storage::set_run_progress(&mut tx, lease, total, 0, 0).await?;
                tx.commit().await?;
                self.events.changed(run.video_id);
            }
            Err(CoreError::LeaseLost) => return Ok(WorkOutcome::Stopped),
            Err(e) => return Err(e),
        }

        let ends: Vec<UnitEnd> = futures::stream::iter(plans.clone())
            .map(|plan| self.run_unit(&run, lease, &state.video, plan, total, stop_rx.clone()))
            .buffer_unordered(self.config.unit_concurrency.max(1))
            .collect()
            .await;

        if *stop_rx.borrow() || ends.iter().any(|e| matches!(e, UnitEnd::Stopped)) {
            if *shutdown.borrow() {
                let mut tx = self.store.write().await?;
                storage::release_run(&mut tx, lease).await?;
                tx.commit().await?;
                tracing::info!(run = %run.id, "run handed back at shutdown");
            }
            self.events.changed(run.video_id);
            return Ok(WorkOutcome::Stopped);
        }
        let mut failures: Vec<UnitFailure> = Vec::new();
        let mut outputs: Vec<(u32, UnitOutput)> = Vec::new();
        for end in ends {
            match end {
                UnitEnd::Done(i, o) => outputs.push((i, o)),
                UnitEnd::Failed(f) => failures.push(f),
                UnitEnd::Stopped => unreachable!("handled above"),
            }
        }
        if !failures.is_empty() {
            failures.sort_by_key(|f| f.index);
            let first = &failures[0];
            let mut error = format!("Failed to generate {}: {}", units::describe(run.phase, first.beat), first.message);
            if failures.len() > 1 {
                error.push_str(&format!(" ({} of {} units failed)", failures.len(), total));
            }
            return self.fail_run(lease, error, first.beat, &stop_rx).await;
        }
        outputs.sort_by_key(|(i, _)| *i);
        let manifest = units::manifest_of(run.phase, state.video.seed, seeds, outputs.into_iter().map(|(_, o)| o).collect())?;
        self.commit_success(&run, lease, manifest).await
    }

    /// Renews the lease; stops the run when it is cancelled, taken over, or the server shuts
    /// down, and when the lease cannot be renewed: a lease nobody renews is not ours for long, so
    /// the worker stops well before another may take it over.
    async fn heartbeat(self, lease: Lease, stop: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let mut cancelled = self.cancelled.subscribe();
        let lease_ms = self.config.lease_ms;
        let period = Duration::from_millis((lease_ms / 3).max(50) as u64);
        let mut held_until = now_ms() + lease_ms;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {
                    let asked = now_ms();
                    let renew = async {
                        let mut tx = self.store.write().await?;
                        let held = storage::hold_lease(&mut tx, &lease, asked + lease_ms).await?;
                        tx.commit().await?;
                        Ok::<_, CoreError>(held)
                    };
                    match tokio::time::timeout(period, renew).await {
                        Ok(Ok(true)) => held_until = asked + lease_ms,
                        Ok(Ok(false)) => {
                            tracing::warn!(run = %lease.run, token = lease.token, "lease lost: the run was cancelled, finished or taken over");
                            let _ = stop.send(true);
                            return;
                        }
                        Ok(Err(e)) if now_ms() < held_until - lease_ms / 2 => tracing::warn!(run = %lease.run, error = %e, "cannot renew the lease yet"),
                        Err(_) if now_ms() < held_until - lease_ms / 2 => tracing::warn!(run = %lease.run, "renewing the lease is slow"),
                        _ => {
                            tracing::error!(run = %lease.run, "cannot renew the lease: stopping the run before it may be taken over");
                            let _ = stop.send(true);
                            return;
                        }
                    }
                }
                changed = cancelled.changed() => {
                    if changed.is_err() || cancelled.borrow().contains(&lease.run) {
                        let _ = stop.send(true);
                        return;
                    }
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        let _ = stop.send(true);
                        return;
                    }
                }
            }
        }
    }

    async fn run_unit(
        &self,
        run: &RunRecord,
        lease: &Lease,
        video: &VideoRecord,
        plan: UnitPlan,
        total: u32,
        mut stop: watch::Receiver<bool>,
    ) -> UnitEnd {
        match self.run_unit_inner(run, lease, video, &plan, total, &mut stop).await {
            Ok(Some(output)) => UnitEnd::Done(plan.index, output),
            Ok(None) => UnitEnd::Stopped,
            Err(message) => UnitEnd::Failed(UnitFailure { index: plan.index, beat: plan.beat, message }),
        }
    }

    /// `Ok(None)`: stopped. `Err`: the unit failed for good, with the provider's message.
    async fn run_unit_inner(
        &self,
        run: &RunRecord,
        lease: &Lease,
        video: &VideoRecord,
        plan: &UnitPlan,
        total: u32,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<UnitOutput>, String> {
        let provider = self.providers.id_of(run.phase);
        let storage_err = |e: &CoreError| format!("could not save the result: {}", e.plain());
        let fx = if self.config.fault_injection && !video.fault_plan.is_empty() {
            faults::effects(&self.store, video.id, &video.fault_plan, run.phase, plan.index, plan.beat, run.id)
                .await
                .map_err(|e| storage_err(&CoreError::from(e)))?
        } else {
            faults::Effects::default()
        };
        if fx.crash {
            tracing::error!(run = %run.id, unit = plan.index, "fault plan: crashing the process now");
            std::process::abort();
        }
        if fx.delay_ms > 0 && !sleep_unless_stopped(Duration::from_millis(fx.delay_ms), stop).await {
            return Ok(None);
        }
        if fx.hang {
            let _ = stop.wait_for(|s| *s).await;
            return Ok(None);
        }
        if fx.fail.is_none() {
            let memo = async {
                let mut tx = self.store.read().await?;
                let m = storage::memo_get(&mut tx, &plan.key).await?;
                let _ = tx.rollback().await;
                Ok::<_, CoreError>(m)
            }
            .await
            .map_err(|e| storage_err(&e))?;
            // A memo entry whose files were lost (disk trouble, manual cleanup) is made again.
            if let Some(m) = memo
                && let Ok(output) = serde_json::from_str::<UnitOutput>(&m.output)
                && output.blobs().iter().all(|b| self.blobs.intact(b))
            {
                let now = now_ms();
                return match self.record_unit(run, lease, plan, total, &provider, None, 0, "memo", None, now, now).await {
                    Ok(()) => Ok(Some(output)),
                    Err(CoreError::LeaseLost) => Ok(None),
                    Err(e) => Err(storage_err(&e)),
                };
            }
        }
        let tries = 1 + self.config.extra_tries;
        for try_no in 1..=tries {
            if *stop.borrow() {
                return Ok(None);
            }
            let started = now_ms();
            let answer = match &fx.fail {
                Some(message) => Err(ProviderError::Transient(message.clone())),
                None => {
                    self.providers.count_call(run.phase);
                    let call = self.call(run.phase, plan.input.clone());
                    tokio::select! {
                        answer = call => answer,
                        _ = stop.wait_for(|s| *s) => return Ok(None),
                    }
                }
            };
            let answer = match answer {
                Ok(costed) => self.store_output(costed).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok((output, cost)) => {
                    return match self.record_unit(run, lease, plan, total, &provider, Some(&output), cost, "ok", None, started, now_ms()).await
                    {
                        Ok(()) => Ok(Some(output)),
                        Err(CoreError::LeaseLost) => Ok(None),
                        Err(e) => Err(storage_err(&e)),
                    };
                }
                Err(ProviderError::Transient(message)) => {
                    self.record_try(run, lease, plan, try_no, &provider, "transient", &message, started).await;
                    if try_no == tries {
                        return Err(message);
                    }
                    let base = self.config.backoff_base_ms.saturating_mul(1 << (try_no - 1));
                    let jitter = fastrand::u64(0..=self.config.backoff_base_ms.max(1));
                    if !sleep_unless_stopped(Duration::from_millis(base + jitter), stop).await {
                        return Ok(None);
                    }
                }
                Err(ProviderError::Permanent(message)) => {
                    self.record_try(run, lease, plan, try_no, &provider, "permanent", &message, started).await;
                    return Err(message);
                }
            }
        }
        unreachable!("the last try returns")
    }

    async fn call(&self, phase: Phase, input: UnitInput) -> Result<Costed<Produced>, ProviderError> {
        let p = &self.providers;
        Ok(match input {
            UnitInput::Script { prompt, beats, seed } => {
                let c = p.script.write(prompt, beats, seed).await?;
                debug_assert_eq!(phase, Phase::Script);
                if let Err(e) = c.value.validate() {
                    return Err(ProviderError::Permanent(format!("the script provider returned an invalid script: {e}")));
                }
                Costed { value: Produced::Script(c.value), cost_micros: c.cost_micros }
            }
            UnitInput::Frame { script, index, seed, width, height } => {
                let c = p.storyboard.draw(script, index, seed, width, height).await?;
                Costed { value: Produced::Frame(c.value), cost_micros: c.cost_micros }
            }
            UnitInput::Clip { still, caption, duration_ms, fps, seed } => {
                let bytes =
                    self.blobs.read(&still).map_err(|e| ProviderError::Permanent(format!("the storyboard image is missing: {e}")))?;
                let c = p.clips.animate(bytes, caption, duration_ms, fps, seed).await?;
                Costed { value: Produced::Clip(c.value), cost_micros: c.cost_micros }
            }
            UnitInput::Render { streams, poster_still, title, fps } => {
                let mut clips = Vec::with_capacity(streams.len());
                for s in &streams {
                    clips.push(self.blobs.read(s).map_err(|e| ProviderError::Permanent(format!("a clip is missing: {e}")))?);
                }
                let still =
                    self.blobs.read(&poster_still).map_err(|e| ProviderError::Permanent(format!("the poster image is missing: {e}")))?;
                let c = p.render.render(clips, fps, still, title).await?;
                Costed { value: Produced::Render(c.value), cost_micros: c.cost_micros }
            }
        })
    }

    /// Writes a unit's bytes to the blob store; a full disk is a failure of this try, said plainly.
    async fn store_output(&self, costed: Costed<Produced>) -> Result<(UnitOutput, i64), ProviderError> {
        let blobs = self.blobs.clone();
        let cost = costed.cost_micros;
        let stored = tokio::task::spawn_blocking(move || -> std::io::Result<UnitOutput> {
            Ok(match costed.value {
                Produced::Script(script) => UnitOutput::Script { script },
                Produced::Frame(png) => UnitOutput::Frame { frame: blobs.put(&png, "image/png")? },
                Produced::Clip(c) => UnitOutput::Clip {
                    clip: ClipRef {
                        stream: blobs.put(&c.stream, "application/x-reelsmith-h264")?,
                        preview: blobs.put(&c.preview_mp4, "video/mp4")?,
                        frames: c.frames,
                    },
                },
                Produced::Render(r) => UnitOutput::Render {
                    video: blobs.put(&r.mp4, "video/mp4")?,
                    poster: blobs.put(&r.poster_png, "image/png")?,
                    duration_ms: r.duration_ms,
                    frames: r.frames,
                },
            })
        })
        .await
        .map_err(|e| ProviderError::Transient(format!("storing the output stopped: {e}")))?;
        stored.map(|o| (o, cost)).map_err(|e| ProviderError::Transient(format!("could not store the output: {e}")))
    }

    /// Memoizes and stages a finished unit, records its try and counts its progress: one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn record_unit(
        &self,
        run: &RunRecord,
        lease: &Lease,
        plan: &UnitPlan,
        total: u32,
        provider: &str,
        output: Option<&UnitOutput>,
        cost_micros: i64,
        outcome: &str,
        message: Option<String>,
        started: i64,
        finished: i64,
    ) -> Result<(), CoreError> {
        let mut tx = self.begin_fenced(lease).await?;
        if let Some(output) = output {
            // Checked under the write lock, which `gc` holds while it deletes: a file it removed
            // after this unit stored it must not get a memo row.
            if let Some(lost) = output.blobs().into_iter().find(|b| !self.blobs.intact(b)) {
                let _ = tx.rollback().await;
                return Err(CoreError::Internal(format!("the stored output {} vanished before it was recorded", lost.sha256)));
            }
            for blob in output.blobs() {
                storage::blob_put(&mut tx, &blob.sha256, blob.bytes, &blob.media_type, finished).await?;
            }
            let entry = MemoEntry {
                key: plan.key.clone(),
                phase: run.phase,
                provider: provider.to_string(),
                output: serde_json::to_string(output).expect("outputs serialize"),
                cost_micros,
            };
            storage::memo_put(&mut tx, &entry, finished).await?;
        }
        storage::stage_unit(&mut tx, run.id, plan.index, &plan.key).await?;
        let try_record = UnitTryRecord {
            run_id: run.id,
            unit: plan.index,
            try_no: 0,
            outcome: outcome.to_string(),
            message,
            provider: provider.to_string(),
            cost_micros,
            started_at: started,
            finished_at: finished,
        };
        storage::insert_unit_try(&mut tx, &try_record).await?;
        storage::add_run_progress(&mut tx, lease, total, cost_micros).await?;
        tx.commit().await?;
        self.events.changed(run.video_id);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_try(&self, run: &RunRecord, lease: &Lease, plan: &UnitPlan, try_no: u32, provider: &str, outcome: &str, message: &str, started: i64) {
        let record = UnitTryRecord {
            run_id: run.id,
            unit: plan.index,
            try_no,
            outcome: outcome.to_string(),
            message: Some(message.to_string()),
            provider: provider.to_string(),
            cost_micros: 0,
            started_at: started,
            finished_at: now_ms(),
        };
        let written = async {
            let mut tx = self.begin_fenced(lease).await?;
            storage::insert_unit_try(&mut tx, &record).await?;
            tx.commit().await?;
            Ok::<_, CoreError>(())
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not record a failed try");
        }
        self.events.changed(run.video_id);
    }

    /// Records the run's failure under its lease. The heartbeat keeps renewing meanwhile; if the
    /// database refuses for longer than the lease can be held, the heartbeat gives up and so does
    /// this: the run is then taken over when its lease expires, instead of looking busy while
    /// nobody works on it.
    async fn fail_run(&self, lease: &Lease, error: String, beat: Option<u32>, stop: &watch::Receiver<bool>) -> Result<WorkOutcome, CoreError> {
        tracing::warn!(run = %lease.run, %error, "run failed");
        let mut wait = Duration::from_millis(100);
        loop {
            let written = async {
                let mut tx = self.begin_fenced(lease).await?;
                if !storage::finish_run(&mut tx, lease.run, Ender::Worker(lease), RunStatus::Failed, Some(&error), beat, now_ms()).await? {
                    let _ = tx.rollback().await;
                    return Err(CoreError::LeaseLost);
                }
                storage::clear_staged(&mut tx, lease.run).await?;
                tx.commit().await?;
                Ok::<_, CoreError>(())
            }
            .await;
            match written {
                Ok(()) => break,
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
        self.events.changed(lease.video);
        Ok(WorkOutcome::Failed { error })
    }

    /// The phase succeeded: checkpoint, new branch head, end of run and (auto-continue) the next
    /// run, in one transaction.
    async fn commit_success(&self, run: &RunRecord, lease: &Lease, manifest: Manifest) -> Result<WorkOutcome, CoreError> {
        let mut last_err = None;
        for _ in 0..8 {
            let mut tx = match self.begin_fenced(lease).await {
                Ok(tx) => tx,
                Err(CoreError::LeaseLost) => return Ok(WorkOutcome::Stopped),
                Err(e) if e.is_retryable() => {
                    last_err = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let now = now_ms();
            if !storage::finish_run(&mut tx, run.id, Ender::Worker(lease), RunStatus::Succeeded, None, None, now).await? {
                let _ = tx.rollback().await;
                return Ok(WorkOutcome::Stopped);
            }
            let Some(mut state) = storage::load_video_state(&mut tx, run.video_id).await? else {
                return Err(CoreError::not_found("video", run.video_id));
            };
            let checkpoint = CheckpointRecord {
                id: CheckpointId(uuid::Uuid::new_v4()),
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
            let result = async {
                storage::insert_checkpoint(&mut tx, &checkpoint).await?;
                storage::set_branch_head(&mut tx, run.branch_id, checkpoint.id).await?;
                let branch = state.branch(run.branch_id).cloned().ok_or_else(|| CoreError::not_found("branch", run.branch_id))?;
                if let (Manifest::Script { script, .. }, true) = (&manifest, branch.name == BranchName::MAIN) {
                    storage::set_video_title(&mut tx, run.video_id, &script.title).await?;
                }
                // Every new checkpoint, a regenerated version included (SPEC §4, auto-continue).
                if state.video.auto_continue {
                    let branch = crate::storage::BranchRecord { head_id: Some(checkpoint.id), ..branch };
                    state.checkpoints.push(checkpoint.clone());
                    if let Some(b) = state.branches.iter_mut().find(|b| b.id == branch.id) {
                        *b = branch.clone();
                    }
                    if let Some(r) = state.runs.iter_mut().find(|r| r.id == run.id) {
                        r.status = RunStatus::Succeeded;
                    }
                    let request = ContinueRequest {
                        checkpoint: Some(GivenCheckpoint { id: checkpoint.id, status: CheckpointStatus::Pending }),
                        force_retry: false,
                    };
                    // A refusal here (a spent budget) just leaves the checkpoint waiting for a person.
                    if let Ok(decision) = rules::decide(&state.branch_view(&branch), request, self.config.limits()) {
                        apply_decision(&mut tx, &state, &branch, decision.automatic(), now).await?;
                    }
                }
                storage::clear_staged(&mut tx, run.id).await?;
                Ok::<_, CoreError>(())
            }
            .await;
            match result {
                Ok(()) => match tx.commit().await {
                    Ok(()) => {
                        self.events.changed(run.video_id);
                        self.wake.notify_waiters();
                        tracing::info!(run = %run.id, checkpoint = %checkpoint.id, phase = run.phase.wire(), "checkpoint written");
                        return Ok(WorkOutcome::Succeeded { checkpoint: checkpoint.id });
                    }
                    Err(e) => last_err = Some(CoreError::from(e)),
                },
                Err(e) => {
                    let _ = tx.rollback().await;
                    match &e {
                        _ if e.is_retryable() => last_err = Some(e),
                        _ => return Err(e),
                    }
                }
            }
        }
        Err(last_err.unwrap_or_else(|| CoreError::Internal("could not commit the checkpoint".into())))
    }
}

/// What a provider made, before it is stored.
enum Produced {
    Script(crate::domain::Script),
    Frame(Vec<u8>),
    Clip(super::providers::ClipBytes),
    Render(super::providers::RenderBytes),
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
