//! One unit test per row of SPEC §4, then a property test over random sessions of several branches.
use super::*;
use uuid::Uuid;

fn cp(n: u128) -> CheckpointId {
    CheckpointId(Uuid::from_u128(n))
}
fn run_id(n: u128) -> RunId {
    RunId(Uuid::from_u128(1000 + n))
}
fn head(n: u128, phase: Phase, status: CheckpointStatus) -> Option<HeadView> {
    Some(HeadView { id: cp(n), phase, status })
}
fn run(n: u128, from: Option<CheckpointId>, phase: Phase, status: RunStatus, attempt: u32) -> RunView {
    let kind = if attempt > 1 { RunKind::Retry } else { RunKind::Continue };
    RunView { id: run_id(n), from, phase, status, attempt, kind }
}
fn given(n: u128, status: CheckpointStatus) -> Option<GivenCheckpoint> {
    Some(GivenCheckpoint { id: cp(n), status })
}
fn req(checkpoint: Option<GivenCheckpoint>, force_retry: bool) -> ContinueRequest {
    ContinueRequest { checkpoint, force_retry }
}
const LIMITS: Limits = Limits { retry_limit: 5 };
use CheckpointStatus::{Approved, Pending};

/// Phase 2 failed after phase 1 was approved: the seed document's situation.
fn failed_in_phase2(retries: u32) -> BranchView {
    BranchView {
        head: head(1, Phase::Script, Approved),
        latest_from_head: Some(run(u128::from(retries) + 1, Some(cp(1)), Phase::Storyboard, RunStatus::Failed, retries + 1)),
        attempts_from_head: retries + 1,
        retries_from_head: retries,
        ..BranchView::default()
    }
}

#[test]
fn row1_pending_head_is_approved_and_the_next_phase_starts() {
    let view = BranchView { head: head(1, Phase::Script, Pending), ..Default::default() };
    for force in [false, true] {
        assert_eq!(
            decide(&view, req(given(1, Pending), force), LIMITS),
            Ok(Decision::Start { kind: RunKind::Continue, phase: Phase::Storyboard, from: Some(cp(1)), attempt: 1, approve: true })
        );
    }
    let last = BranchView { head: head(4, Phase::Render, Pending), ..Default::default() };
    assert_eq!(decide(&last, req(given(4, Pending), false), LIMITS), Ok(Decision::ApproveFinal { checkpoint: cp(4) }));
    assert!(allowed_actions(&view, LIMITS).can_continue);
    assert_eq!(branch_status(&view), BranchStatus::AwaitingApproval);
}

#[test]
fn row2_failed_after_approval_retries_with_force() {
    let view = failed_in_phase2(0);
    assert_eq!(
        decide(&view, req(given(1, Approved), true), LIMITS),
        Ok(Decision::Start { kind: RunKind::Retry, phase: Phase::Storyboard, from: Some(cp(1)), attempt: 2, approve: false })
    );
    let allowed = allowed_actions(&view, LIMITS);
    assert!(allowed.can_retry);
    assert_eq!((allowed.next_retry_number, allowed.retry_limit), (1, 5));
    assert_eq!(branch_status(&view), BranchStatus::Failed);
    let mut cancelled = failed_in_phase2(2);
    cancelled.latest_from_head.as_mut().unwrap().status = RunStatus::Cancelled;
    assert!(matches!(
        decide(&cancelled, req(given(1, Approved), true), LIMITS),
        Ok(Decision::Start { kind: RunKind::Retry, attempt: 4, .. })
    ));
}

#[test]
fn row3_failed_after_approval_without_force_is_refused_with_the_hint() {
    let refusal = decide(&failed_in_phase2(0), req(given(1, Approved), false), LIMITS).unwrap_err();
    assert_eq!(refusal, Refusal::AlreadyApprovedUseForceRetry);
    assert_eq!(refusal.to_string(), "Checkpoint already approved. To retry, use force_retry=true");
    assert!(!allowed_actions(&failed_in_phase2(0), LIMITS).can_continue, "the seed bug: can_continue must be false here");
}

#[test]
fn row4_fresh_branch_from_an_approved_checkpoint_starts_the_next_phase() {
    let view = BranchView { head: head(2, Phase::Storyboard, Approved), ..Default::default() };
    for force in [false, true] {
        assert_eq!(
            decide(&view, req(given(2, Approved), force), LIMITS),
            Ok(Decision::Start { kind: RunKind::Continue, phase: Phase::Clips, from: Some(cp(2)), attempt: 1, approve: false })
        );
    }
    assert!(allowed_actions(&view, LIMITS).can_continue);
}

#[test]
fn row5_phase1_failure_retries_from_nothing() {
    let view = BranchView {
        latest_from_head: Some(run(1, None, Phase::Script, RunStatus::Failed, 1)),
        attempts_from_head: 1,
        ..Default::default()
    };
    assert_eq!(
        decide(&view, req(None, true), LIMITS),
        Ok(Decision::Start { kind: RunKind::Retry, phase: Phase::Script, from: None, attempt: 2, approve: false })
    );
    assert_eq!(decide(&view, req(None, false), LIMITS), Err(Refusal::RetryNeedsForce));
    assert_eq!(decide(&view, req(given(9, Approved), true), LIMITS), Err(Refusal::NotOnBranch));
    assert!(allowed_actions(&view, LIMITS).can_retry);
    assert_eq!(branch_status(&view), BranchStatus::Failed);
}

#[test]
fn row6_an_active_run_is_returned_not_duplicated() {
    let active = run(7, Some(cp(1)), Phase::Storyboard, RunStatus::Running, 2);
    let view = BranchView {
        head: head(1, Phase::Script, Approved),
        active_run: Some(active),
        latest_from_head: Some(active),
        attempts_from_head: 2,
        retries_from_head: 1,
        ..Default::default()
    };
    for force in [false, true] {
        assert_eq!(decide(&view, req(given(1, Approved), force), LIMITS), Ok(Decision::AlreadyRunning { run: run_id(7) }));
    }
    assert_eq!(decide(&view, req(given(3, Approved), true), LIMITS), Err(Refusal::AlreadyApproved));
    assert_eq!(decide(&view, req(given(3, Pending), false), LIMITS), Err(Refusal::Busy { run: run_id(7) }));
    let allowed = allowed_actions(&view, LIMITS);
    assert!(!allowed.can_continue && !allowed.can_retry && allowed.can_cancel && !allowed.can_edit);
    assert_eq!(branch_status(&view), BranchStatus::Processing);
    let phase1 = BranchView { active_run: Some(run(1, None, Phase::Script, RunStatus::Queued, 1)), ..Default::default() };
    assert_eq!(decide(&phase1, req(None, true), LIMITS), Ok(Decision::AlreadyRunning { run: run_id(1) }));
}

#[test]
fn row7_anything_else_approved_is_refused() {
    // An approved checkpoint that is not the head.
    let view = BranchView { head: head(2, Phase::Storyboard, Pending), ..Default::default() };
    assert_eq!(decide(&view, req(given(1, Approved), true), LIMITS), Err(Refusal::AlreadyApproved));
    assert_eq!(Refusal::AlreadyApproved.to_string(), "Checkpoint already approved");
    // The final checkpoint, approved: the video is complete.
    let done = BranchView { head: head(4, Phase::Render, Approved), ..Default::default() };
    assert_eq!(decide(&done, req(given(4, Approved), true), LIMITS), Err(Refusal::AlreadyApproved));
    assert_eq!(branch_status(&done), BranchStatus::Completed);
    // A superseded pending version.
    assert_eq!(decide(&view, req(given(9, Pending), false), LIMITS), Err(Refusal::NotBranchHead));
    // No checkpoint named while the branch has one.
    assert_eq!(decide(&view, req(None, true), LIMITS), Err(Refusal::NotBranchHead));
}

#[test]
fn row8_the_retry_limit_is_enforced() {
    let at_limit = failed_in_phase2(5);
    assert_eq!(decide(&at_limit, req(given(1, Approved), true), LIMITS), Err(Refusal::RetryLimitReached { limit: 5 }));
    assert_eq!(Refusal::RetryLimitReached { limit: 5 }.to_string(), "Retry limit reached (5)");
    let allowed = allowed_actions(&at_limit, LIMITS);
    assert!(!allowed.can_retry);
    assert_eq!(allowed.retry_refused, Some(Refusal::RetryLimitReached { limit: 5 }));
    assert!(allowed.can_edit, "editing is the way out");
    assert!(decide(&failed_in_phase2(4), req(given(1, Approved), true), LIMITS).is_ok());
    let limit2 = Limits { retry_limit: 2 };
    assert!(decide(&failed_in_phase2(2), req(given(1, Approved), true), limit2).is_err());
}

#[test]
fn budget_refuses_new_runs_but_not_the_final_approval() {
    let mut view = failed_in_phase2(0);
    view.spent_micros = 500;
    view.budget_micros = Some(500);
    let refusal = decide(&view, req(given(1, Approved), true), LIMITS).unwrap_err();
    assert!(matches!(refusal, Refusal::BudgetExhausted { .. }));
    assert!(refusal.to_string().contains("budget"));
    let pending = BranchView { head: head(1, Phase::Script, Pending), spent_micros: 9, budget_micros: Some(1), ..Default::default() };
    let allowed = allowed_actions(&pending, LIMITS);
    assert!(!allowed.can_continue);
    assert!(matches!(allowed.continue_refused, Some(Refusal::BudgetExhausted { spent_micros: 9, budget_micros: 1 })));
    // A spent budget refuses a beat's Regenerate too: the page says so instead of offering it.
    assert_eq!(allowed.regenerate_refused, Some(Refusal::BudgetExhausted { spent_micros: 9, budget_micros: 1 }));
    assert_eq!(allowed_actions(&failed_in_phase2(0), LIMITS).regenerate_refused, None, "no budget, nothing refused");
    // A next phase that would not fit says nothing of one beat, which may (the engine checks it
    // against the beat's own estimate).
    let next_too_dear = BranchView { estimate_micros: 300, spent_micros: 10, budget_micros: Some(100), ..pending };
    assert!(allowed_actions(&next_too_dear, LIMITS).continue_refused.is_some());
    assert_eq!(allowed_actions(&next_too_dear, LIMITS).regenerate_refused, None);
    let last = BranchView { head: head(4, Phase::Render, Pending), spent_micros: 9, budget_micros: Some(1), ..Default::default() };
    assert!(decide(&last, req(given(4, Pending), false), LIMITS).is_ok());
}

#[test]
fn edit_regenerate_and_cancel_rules() {
    let idle = failed_in_phase2(0);
    assert_eq!(decide_edit(&idle, Phase::Script, true), Ok(()));
    assert_eq!(decide_edit(&idle, Phase::Script, false), Err(Refusal::NotOnBranch));
    assert_eq!(decide_edit(&idle, Phase::Storyboard, true), Err(Refusal::OnlyScriptsAreEditable { phase: Phase::Storyboard }));
    assert_eq!(decide_regenerate(&idle, Phase::Storyboard, true, 7, 8), Ok(()));
    assert_eq!(decide_regenerate(&idle, Phase::Storyboard, true, 8, 8), Err(Refusal::BeatOutOfRange { beat: 8, beats: 8 }));
    assert_eq!(decide_regenerate(&idle, Phase::Script, true, 0, 8), Err(Refusal::NotRegenerable { phase: Phase::Script }));
    assert_eq!(decide_cancel(&idle), Err(Refusal::NothingToCancel));
    let mut busy = idle.clone();
    busy.active_run = Some(run(3, Some(cp(1)), Phase::Storyboard, RunStatus::Running, 2));
    assert_eq!(decide_edit(&busy, Phase::Script, true), Err(Refusal::Busy { run: run_id(3) }));
    assert_eq!(decide_cancel(&busy), Ok(run_id(3)));
}

#[test]
fn auto_continue_marks_the_kind() {
    let d = Decision::Start { kind: RunKind::Continue, phase: Phase::Clips, from: Some(cp(1)), attempt: 1, approve: true };
    assert!(matches!(d.automatic(), Decision::Start { kind: RunKind::Auto, .. }));
    let r = Decision::Start { kind: RunKind::Retry, phase: Phase::Clips, from: Some(cp(1)), attempt: 2, approve: false };
    assert_eq!(r.automatic(), r);
}

mod model {
    //! A reference model of one video (branches, checkpoints, runs) driven only through the rule
    //! table, seen through the real read model (`domain::video`).
    use super::*;
    use crate::domain::video;
    use crate::domain::{BranchId, FaultPlan, Manifest, Origin, VideoId};
    use proptest::prelude::*;

    #[derive(Clone, Debug, PartialEq)]
    pub struct Cp {
        pub id: CheckpointId,
        pub parent: Option<CheckpointId>,
        pub phase: Phase,
        pub version: u32,
        pub status: CheckpointStatus,
    }

    #[derive(Clone, Debug, PartialEq)]
    pub struct Run {
        pub id: RunId,
        pub branch: usize,
        pub from: Option<CheckpointId>,
        pub phase: Phase,
        pub attempt: u32,
        pub kind: RunKind,
        pub status: RunStatus,
    }

    impl Cp {
        fn domain(&self, video_id: VideoId, branch_id: BranchId) -> video::Checkpoint {
            video::Checkpoint {
                id: self.id,
                video_id,
                branch_id,
                parent_id: self.parent,
                phase: self.phase,
                version: self.version,
                status: self.status,
                origin: Origin::Generated,
                manifest: Manifest::Storyboard { frames: Vec::new(), seeds: Vec::new(), narrations: Vec::new() },
                run_id: None,
                created_at: 0,
                approved_at: None,
            }
        }
    }

    impl Run {
        fn domain(&self, video_id: VideoId, branch_id: BranchId, created_at: i64) -> video::Run {
            video::Run {
                id: self.id,
                video_id,
                branch_id,
                from_checkpoint: self.from,
                phase: self.phase,
                attempt: self.attempt,
                kind: self.kind,
                status: self.status,
                regenerate: None,
                error: None,
                failed_unit: None,
                units_total: 1,
                units_done: 0,
                cost_micros: 0,
                created_at,
                started_at: None,
                finished_at: None,
                lease_owner: None,
                lease_expires_at: None,
                lease_token: 0,
            }
        }
    }

    #[derive(Clone, Debug, PartialEq, Default)]
    pub struct Video {
        pub heads: Vec<Option<CheckpointId>>,
        pub cps: Vec<Cp>,
        pub runs: Vec<Run>,
        next: u128,
    }

    #[derive(Clone, Debug)]
    pub enum Step {
        Continue { branch: usize, target: Target, force: bool },
        Finish { branch: usize, ok: bool },
        Cancel { branch: usize },
        Edit { branch: usize },
        Branch { from: usize },
    }

    #[derive(Clone, Copy, Debug)]
    pub enum Target {
        Head,
        Nothing,
        Other(usize),
    }

    pub fn step() -> impl Strategy<Value = Step> {
        let target = prop_oneof![6 => Just(Target::Head), 1 => Just(Target::Nothing), 2 => (0usize..40).prop_map(Target::Other)];
        prop_oneof![
            4 => (0usize..4, target, any::<bool>()).prop_map(|(branch, target, force)| Step::Continue { branch, target, force }),
            4 => (0usize..4, proptest::bool::weighted(0.6)).prop_map(|(branch, ok)| Step::Finish { branch, ok }),
            1 => (0usize..4).prop_map(|branch| Step::Cancel { branch }),
            1 => (0usize..4).prop_map(|branch| Step::Edit { branch }),
            1 => (0usize..40).prop_map(|from| Step::Branch { from }),
        ]
    }

    impl Video {
        pub fn new() -> Video {
            let mut v = Video { heads: vec![None], ..Default::default() };
            let id = v.fresh_run();
            v.runs.push(Run {
                id,
                branch: 0,
                from: None,
                phase: Phase::Script,
                attempt: 1,
                kind: RunKind::Initial,
                status: RunStatus::Queued,
            });
            v
        }

        fn fresh_cp(&mut self) -> CheckpointId {
            self.next += 1;
            CheckpointId(Uuid::from_u128(self.next))
        }

        fn fresh_run(&mut self) -> RunId {
            self.next += 1;
            RunId(Uuid::from_u128(self.next))
        }

        fn cp(&self, id: CheckpointId) -> &Cp {
            self.cps.iter().find(|c| c.id == id).unwrap()
        }

        /// The model as the domain's read model, so the rule table gets exactly what the real
        /// `Video::branch_view` computes, not a copy of it.
        pub fn domain(&self) -> video::Video {
            let vid = VideoId(Uuid::nil());
            let branch_id = |b: usize| BranchId(Uuid::from_u128(u128::MAX - b as u128));
            let info = video::VideoInfo {
                id: vid,
                owner: crate::domain::AccountId::LOCAL,
                prompt: String::new(),
                title: String::new(),
                beats: 1,
                seed: 0,
                auto_continue: false,
                fault_plan: FaultPlan::default(),
                budget_micros: None,
                created_at: 0,
                changes: 0,
            };
            let branch = |(b, &head_id): (usize, &Option<CheckpointId>)| video::Branch {
                id: branch_id(b),
                video_id: vid,
                name: b.to_string(),
                head_id,
                forked_from: None,
                created_at: 0,
            };
            video::Video {
                video: info,
                branches: self.heads.iter().enumerate().map(branch).collect(),
                checkpoints: self.cps.iter().map(|c| c.domain(vid, branch_id(0))).collect(),
                runs: self.runs.iter().enumerate().map(|(i, r)| r.domain(vid, branch_id(r.branch), i as i64)).collect(),
                estimates: vec![],
                spent_total: None,
            }
        }

        pub fn view(&self, branch: usize) -> BranchView {
            let video = self.domain();
            video.branch_view(&video.branches[branch])
        }

        fn next_version(&self, parent: Option<CheckpointId>, phase: Phase) -> u32 {
            self.domain().next_version(parent, phase)
        }

        /// Applies a step; returns whether it was accepted.
        pub fn apply(&mut self, step: &Step) -> bool {
            match *step {
                Step::Continue { branch, target, force } => {
                    let Some(_) = self.heads.get(branch) else { return false };
                    let checkpoint = match target {
                        Target::Head => self.heads[branch],
                        Target::Nothing => None,
                        Target::Other(i) => self.cps.get(i % self.cps.len().max(1)).map(|c| c.id),
                    }
                    .map(|id| GivenCheckpoint { id, status: self.cp(id).status });
                    match decide(&self.view(branch), ContinueRequest { checkpoint, force_retry: force }, LIMITS) {
                        Ok(Decision::Start { kind, phase, from, attempt, approve }) => {
                            if approve {
                                let c = self.cps.iter_mut().find(|c| Some(c.id) == from).unwrap();
                                assert_eq!(c.status, Pending);
                                c.status = Approved;
                            }
                            let id = self.fresh_run();
                            self.runs.push(Run { id, branch, from, phase, attempt, kind, status: RunStatus::Queued });
                            true
                        }
                        Ok(Decision::ApproveFinal { checkpoint }) => {
                            self.cps.iter_mut().find(|c| c.id == checkpoint).unwrap().status = Approved;
                            true
                        }
                        Ok(Decision::AlreadyRunning { .. }) | Err(_) => false,
                    }
                }
                Step::Finish { branch, ok } => {
                    let Some(i) = self.runs.iter().position(|r| r.branch == branch && r.status.is_active()) else { return false };
                    if ok {
                        let (parent, phase) = (self.runs[i].from, self.runs[i].phase);
                        let id = self.fresh_cp();
                        let version = self.next_version(parent, phase);
                        self.cps.push(Cp { id, parent, phase, version, status: Pending });
                        self.heads[branch] = Some(id);
                        self.runs[i].status = RunStatus::Succeeded;
                    } else {
                        self.runs[i].status = RunStatus::Failed;
                    }
                    true
                }
                Step::Cancel { branch } => match self.heads.get(branch).map(|_| decide_cancel(&self.view(branch))) {
                    Some(Ok(id)) => {
                        self.runs.iter_mut().find(|r| r.id == id).unwrap().status = RunStatus::Cancelled;
                        true
                    }
                    _ => false,
                },
                Step::Edit { branch } => {
                    let Some(Some(head)) = self.heads.get(branch).copied() else { return false };
                    let c = self.cp(head).clone();
                    if decide_edit(&self.view(branch), c.phase, true).is_err() {
                        return false;
                    }
                    let id = self.fresh_cp();
                    let version = self.next_version(c.parent, c.phase);
                    self.cps.push(Cp { id, parent: c.parent, phase: c.phase, version, status: Pending });
                    self.heads[branch] = Some(id);
                    true
                }
                Step::Branch { from } => {
                    if self.cps.is_empty() || self.heads.len() >= 4 {
                        return false;
                    }
                    let id = self.cps[from % self.cps.len()].id;
                    self.heads.push(Some(id));
                    true
                }
            }
        }
    }

    fn check_invariants(before: &Video, after: &Video, accepted: bool) {
        if !accepted {
            assert_eq!(before, after, "a refused action changed nothing");
        }
        for b in 0..after.heads.len() {
            let active = after.runs.iter().filter(|r| r.branch == b && r.status.is_active()).count();
            assert!(active <= 1, "at most one active run on branch {b}");
        }
        for old in &before.cps {
            let new = after.cps.iter().find(|c| c.id == old.id).expect("checkpoints are never deleted");
            if old.status == Approved {
                assert_eq!(old, new, "an approved checkpoint never changes");
            } else {
                assert_eq!(Cp { status: new.status, ..old.clone() }, *new, "only the status of a pending checkpoint changes");
            }
        }
        let mut groups: std::collections::BTreeMap<(Option<CheckpointId>, Phase), Vec<u32>> = Default::default();
        for c in &after.cps {
            groups.entry((c.parent, c.phase)).or_default().push(c.version);
        }
        for versions in groups.values_mut() {
            versions.sort();
            assert_eq!(*versions, (1..=versions.len() as u32).collect::<Vec<_>>(), "versions are 1..n without gaps");
        }
        let mut attempts: std::collections::BTreeMap<(usize, Option<CheckpointId>), Vec<u32>> = Default::default();
        for r in &after.runs {
            attempts.entry((r.branch, r.from)).or_default().push(r.attempt);
        }
        for seq in attempts.values() {
            assert_eq!(*seq, (1..=seq.len() as u32).collect::<Vec<_>>(), "attempts count up per (branch, checkpoint)");
        }
    }

    /// `can_continue` and `can_retry` promise exactly what continue does.
    fn check_promises(video: &Video) {
        for b in 0..video.heads.len() {
            let view = video.view(b);
            let allowed = allowed_actions(&view, LIMITS);
            let mut probe = video.clone();
            let accepted = probe.apply(&Step::Continue { branch: b, target: Target::Head, force: false });
            assert_eq!(allowed.can_continue, accepted, "can_continue on branch {b} must match continue: {view:?}");
            let mut probe = video.clone();
            let retried = probe.apply(&Step::Continue { branch: b, target: Target::Head, force: true });
            let was_retry = retried && probe.runs.len() > video.runs.len() && probe.runs.last().unwrap().kind == RunKind::Retry;
            assert_eq!(allowed.can_retry, was_retry, "can_retry on branch {b} must match continue(force_retry): {view:?}");
        }
    }

    pub const CASES: u32 = 2000;

    proptest! {
        #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]
        #[test]
        fn random_sessions_keep_every_invariant(steps in proptest::collection::vec(step(), 1..60)) {
            let mut video = Video::new();
            for step in &steps {
                check_promises(&video);
                let before = video.clone();
                let accepted = video.apply(step);
                check_invariants(&before, &video, accepted);
            }
        }
    }
}

/// In the page's own dollars (tenths of a cent): in cents a spent budget read "$0.05 of $0.05"
/// and a tiny estimate "$0.00, more than the $0.00 left".
#[test]
fn budget_refusals_say_dollars_as_the_page_does() {
    let spent = Refusal::BudgetExhausted { spent_micros: 52_000, budget_micros: 50_000 };
    assert_eq!(spent.to_string(), "The budget is spent: $0.052 of $0.050");
    let over = Refusal::OverBudget { estimate_micros: 1_234_999, spent_micros: 2_000_000, budget_micros: 1_995_000 };
    assert_eq!(over.to_string(), "The next phase is estimated at $1.235, more than the -$0.005 left of the budget");
    let even = Refusal::OverBudget { estimate_micros: 125_000_000, spent_micros: 0, budget_micros: 4_000 };
    assert_eq!(even.to_string(), "The next phase is estimated at $125.000, more than the $0.004 left of the budget");
}
