//! An independent reference model of SPEC §3/§4 (checkpoints, branches, runs and the one rule
//! table), driven side by side with the real engine on a fresh SQLite database per case.
//!
//! The model is written from the SPEC's table, not from `src/domain/rules.rs`: nothing in
//! `reelsmith::domain::rules` is called here. After every random step the test compares the
//! outcome (started / already running / completed / refused and the refusal's kind), the whole
//! state (branches, checkpoints, runs, costs), the status page's word and buttons
//! (`api::convert::status`), and engine-side invariants (one active run per branch, checkpoints
//! only go pending → approved, versions 1..n, attempts 1..n per branch and checkpoint, with
//! regenerations numbered on their own, a refused or idempotent step changes no row of any table).
//!
//! Failures are made by a provider switch wrapped around the instant providers: when the switch
//! is on, every provider call fails with a permanent error, so the run fails. Its provider id
//! changes on every worker step and after every provider call (a checkpoint's commit plans the
//! run its worker claims next, after that run's calls), so the memo never answers for it: a run
//! asked to fail always fails, and every successful unit costs the instant provider's 1 micro-dollar. That makes the
//! cost ledger predictable: a successful run costs its unit count (phase 1 and 4: 1, phase 2: two
//! per beat, a still and a narration, phase 3: one per beat), a failed or cancelled one nothing.
//!
//! Readings of the SPEC where it is silent or ambiguous are marked "SPEC reading" below.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reelsmith::domain::{BranchStatus, CheckpointId, CheckpointStatus, Manifest, NewVideo, RunId, RunStatus, Script, VideoId};
use reelsmith::pipeline::commands::ContinueOutcome;
use reelsmith::pipeline::providers::instant::Instant;
use reelsmith::pipeline::providers::{
    Answer, ClipAnimator, ClipBytes, ClipRequest, Narrator, ProviderError, Providers, RenderBytes, RenderRequest, Renderer, ScriptWriter,
    SpeechBytes, SpeechRequest, StoryboardArtist, UnitCall,
};
use reelsmith::pipeline::worker::WorkOutcome;
use reelsmith::pipeline::{CoreError, Engine, EngineConfig, blobs::BlobStore};
use reelsmith::storage::{Store, VideoState};
use tokio::sync::watch;

// ---------------------------------------------------------------------------------------------
// The provider switch
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Switch {
    fail: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl Switch {
    fn id(&self) -> String {
        format!("model-switch/{}", self.generation.load(Ordering::SeqCst))
    }
    fn refuse<T: Send + 'static>(&self) -> Option<Answer<T>> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.fail.load(Ordering::SeqCst).then(|| {
            let answer: Answer<T> =
                Box::pin(std::future::ready(Err(ProviderError::Permanent("the model test failed this unit".into()).into())));
            answer
        })
    }
}

impl ScriptWriter for Switch {
    fn id(&self) -> String {
        Switch::id(self)
    }
    fn write(&self, call: &UnitCall, prompt: String, beats: u32, seed: u64) -> Answer<Script> {
        self.refuse().unwrap_or_else(|| Instant.write(call, prompt, beats, seed))
    }
}

impl StoryboardArtist for Switch {
    fn id(&self) -> String {
        Switch::id(self)
    }
    fn draw(&self, call: &UnitCall, script: Script, index: usize, seed: u64, width: u32, height: u32) -> Answer<Vec<u8>> {
        self.refuse().unwrap_or_else(|| Instant.draw(call, script, index, seed, width, height))
    }
}

impl ClipAnimator for Switch {
    fn id(&self) -> String {
        Switch::id(self)
    }
    fn animate(&self, call: &UnitCall, clip: ClipRequest) -> Answer<ClipBytes> {
        self.refuse().unwrap_or_else(|| Instant.animate(call, clip))
    }
}

impl Narrator for Switch {
    fn id(&self) -> String {
        Switch::id(self)
    }
    fn speak(&self, call: &UnitCall, speech: SpeechRequest) -> Answer<SpeechBytes> {
        self.refuse().unwrap_or_else(|| Instant.speak(call, speech))
    }
}

impl Renderer for Switch {
    fn id(&self) -> String {
        Switch::id(self)
    }
    fn render(&self, call: &UnitCall, render: RenderRequest) -> Answer<RenderBytes> {
        self.refuse().unwrap_or_else(|| Instant.render(call, render))
    }
}

// ---------------------------------------------------------------------------------------------
// The reference model (SPEC §3 and §4)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CpStatus {
    Pending,
    Approved,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RStatus {
    Queued,
    Succeeded,
    Failed,
    Cancelled,
}

impl RStatus {
    fn active(self) -> bool {
        self == RStatus::Queued
    }
    fn failure(self) -> bool {
        matches!(self, RStatus::Failed | RStatus::Cancelled)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Initial,
    Continue,
    Auto,
    Retry,
    /// SPEC §3 lists no kind for a regeneration run; the engine calls it `regenerate`.
    Regenerate,
}

impl Kind {
    fn wire(self) -> &'static str {
        match self {
            Kind::Initial => "initial",
            Kind::Continue => "continue",
            Kind::Auto => "auto",
            Kind::Retry => "retry",
            Kind::Regenerate => "regenerate",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct MCp {
    parent: Option<usize>,
    phase: u8,
    version: u32,
    status: CpStatus,
    edited: bool,
    branch: usize,
}

#[derive(Clone, Debug, PartialEq)]
struct MRun {
    branch: usize,
    from: Option<usize>,
    phase: u8,
    attempt: u32,
    kind: Kind,
    status: RStatus,
    cost: i64,
    /// For a regenerate run: the checkpoint it makes a new version of.
    of: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
struct MBranch {
    name: String,
    head: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
struct Model {
    beats: u32,
    limit: u32,
    auto: bool,
    budget: Option<i64>,
    branches: Vec<MBranch>,
    cps: Vec<MCp>,
    runs: Vec<MRun>,
}

/// Why the model expects a refusal. `Any` accepts every refusal whose words the SPEC leaves open
/// (but not "not found" or "invalid input", which must be asked for).
#[derive(Clone, Debug, PartialEq)]
enum Refuse {
    AlreadyApproved,
    UseForceRetry,
    RetryLimit,
    Budget,
    /// A run is active on the branch (the engine's `Busy`; the SPEC gives no words).
    Busy,
    NotFound,
    Invalid,
    Any,
}

#[derive(Clone, Debug, PartialEq)]
enum Out {
    Started {
        run: usize,
        kind: Kind,
        attempt: u32,
    },
    AlreadyRunning {
        run: usize,
    },
    Completed {
        cp: usize,
    },
    /// One of these reasons.
    Refused(Vec<Refuse>),
    Cancelled {
        run: usize,
    },
    Edited {
        cp: usize,
    },
    Branched,
    Queued {
        run: usize,
    },
    Done,
    Idle,
    Succeeded {
        cp: usize,
    },
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Given {
    Nothing,
    Cp(usize),
    Unknown,
}

#[derive(Clone, Debug, PartialEq)]
enum Dec {
    Start { kind: Kind, phase: u8, from: Option<usize>, approve: bool },
    Final { cp: usize },
    Running { run: usize },
    Refuse(Vec<Refuse>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Word {
    Processing,
    AwaitingApproval,
    Failed,
    Completed,
}

fn next_phase(phase: u8) -> Option<u8> {
    (phase < 4).then_some(phase + 1)
}

/// SPEC §4: `[a-z0-9][a-z0-9-_]{0,39}`.
fn valid_branch_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 40
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

impl Model {
    /// A new video: its `main` branch and the first run of phase 1 (kind `initial`, attempt 1).
    fn new(beats: u32, limit: u32, auto: bool) -> Model {
        Model {
            beats,
            limit,
            auto,
            budget: None,
            branches: vec![MBranch { name: "main".into(), head: None }],
            cps: vec![],
            runs: vec![MRun {
                branch: 0,
                from: None,
                phase: 1,
                attempt: 1,
                kind: Kind::Initial,
                status: RStatus::Queued,
                cost: 0,
                of: None,
            }],
        }
    }

    fn active(&self, b: usize) -> Option<usize> {
        self.runs.iter().position(|r| r.branch == b && r.status.active())
    }

    /// Runs on branch `b` that started from `from`, oldest first, regenerate runs left out: §4's
    /// "latest run from it" and §3's attempt numbers are about the continue/retry line of runs, and
    /// regenerations are numbered on their own (see `regenerate`).
    fn runs_from(&self, b: usize, from: Option<usize>) -> Vec<usize> {
        (0..self.runs.len())
            .filter(|&i| self.runs[i].branch == b && self.runs[i].from == from && self.runs[i].kind != Kind::Regenerate)
            .collect()
    }

    fn spent(&self) -> i64 {
        self.runs.iter().map(|r| r.cost).sum()
    }

    /// "A run that would start after the budget is spent is refused."
    fn budget_spent(&self) -> bool {
        self.budget.is_some_and(|b| self.spent() >= b)
    }

    fn next_version(&self, parent: Option<usize>, phase: u8) -> u32 {
        self.cps.iter().filter(|c| c.parent == parent && c.phase == phase).map(|c| c.version).max().unwrap_or(0) + 1
    }

    fn units(&self, phase: u8) -> i64 {
        match phase {
            // Phase 2 speaks each beat too: a still and a narration per beat.
            2 => 2 * i64::from(self.beats),
            3 => i64::from(self.beats),
            _ => 1,
        }
    }

    /// The checkpoints from the branch's head back to phase 1.
    fn line(&self, b: usize) -> Vec<usize> {
        let mut line = vec![];
        let mut next = self.branches[b].head;
        while let Some(c) = next {
            line.push(c);
            next = self.cps[c].parent;
        }
        line
    }

    fn head_given(&self, b: usize) -> Given {
        self.branches[b].head.map_or(Given::Nothing, Given::Cp)
    }

    /// The rule table of SPEC §4, row by row.
    fn decide(&self, b: usize, given: Given, force: bool) -> Dec {
        use Refuse::*;
        let cp = match given {
            Given::Unknown => return Dec::Refuse(vec![NotFound]),
            Given::Nothing => None,
            Given::Cp(i) => Some(i),
        };
        // Row 6: a run is active on the branch, asked from the checkpoint it runs from.
        if let Some(a) = self.active(b) {
            if self.runs[a].from == cp {
                return Dec::Running { run: a };
            }
            // Row 7: anything else approved is refused with "Checkpoint already approved", running
            // or not. SPEC reading: a pending checkpoint or none while a run is active is refused
            // because the branch is busy.
            return match cp {
                Some(i) if self.cps[i].status == CpStatus::Approved => Dec::Refuse(vec![AlreadyApproved]),
                _ => Dec::Refuse(vec![Busy]),
            };
        }
        let head = self.branches[b].head;
        let Some(i) = cp else {
            // Row 5: phase 1 failed (no checkpoint yet), none, force → retry phase 1.
            if head.is_none() {
                let latest = self.runs_from(b, None).last().copied();
                if latest.is_some_and(|r| self.runs[r].status.failure()) && force {
                    return self.retry(b, None, 1);
                }
            }
            // SPEC reading: every other request without a checkpoint is refused (words open).
            return Dec::Refuse(vec![Any]);
        };
        if Some(i) != head {
            // Row 7 for approved checkpoints; a pending non-head (a superseded version) is refused too.
            return Dec::Refuse(vec![if self.cps[i].status == CpStatus::Approved { AlreadyApproved } else { Any }]);
        }
        let c = &self.cps[i];
        match (c.status, next_phase(c.phase)) {
            // Row 1 on the last phase: approving it completes the video; no run starts, so no budget.
            (CpStatus::Pending, None) => Dec::Final { cp: i },
            // Row 1: approve it, start the next phase (kind continue).
            (CpStatus::Pending, Some(n)) => {
                if self.budget_spent() {
                    Dec::Refuse(vec![Budget])
                } else {
                    Dec::Start { kind: Kind::Continue, phase: n, from: Some(i), approve: true }
                }
            }
            // Row 7: the final checkpoint approved: anything else approved.
            (CpStatus::Approved, None) => Dec::Refuse(vec![AlreadyApproved]),
            (CpStatus::Approved, Some(n)) => match self.runs_from(b, Some(i)).last().copied() {
                // Row 4: no run from it on this branch yet.
                None => {
                    if self.budget_spent() {
                        Dec::Refuse(vec![Budget])
                    } else {
                        Dec::Start { kind: Kind::Continue, phase: n, from: Some(i), approve: false }
                    }
                }
                // Rows 2, 3, 8.
                Some(r) if self.runs[r].status.failure() => {
                    if force {
                        self.retry(b, Some(i), n)
                    } else {
                        Dec::Refuse(vec![UseForceRetry])
                    }
                }
                // Row 7.
                Some(_) => Dec::Refuse(vec![AlreadyApproved]),
            },
        }
    }

    /// Rows 2, 5 and 8: a retry, unless the retries from this checkpoint (on this branch) reached
    /// the limit or the budget is spent. SPEC reading: when both hold, either refusal is right.
    fn retry(&self, b: usize, from: Option<usize>, phase: u8) -> Dec {
        let retries = self.runs_from(b, from).iter().filter(|&&r| self.runs[r].kind == Kind::Retry).count() as u32;
        let mut why = vec![];
        if retries >= self.limit {
            why.push(Refuse::RetryLimit);
        }
        if self.budget_spent() {
            why.push(Refuse::Budget);
        }
        if why.is_empty() { Dec::Start { kind: Kind::Retry, phase, from, approve: false } } else { Dec::Refuse(why) }
    }

    fn apply(&mut self, b: usize, dec: Dec, automatic: bool) -> Out {
        match dec {
            Dec::Start { kind, phase, from, approve } => {
                if approve {
                    let c = from.expect("approving needs a checkpoint");
                    assert_eq!(self.cps[c].status, CpStatus::Pending, "model: only pending checkpoints are approved");
                    self.cps[c].status = CpStatus::Approved;
                }
                let kind = if automatic && kind == Kind::Continue { Kind::Auto } else { kind };
                // SPEC §3: attempt 1 for the first run from that checkpoint on that branch, then + 1.
                let attempt = self.runs_from(b, from).len() as u32 + 1;
                self.runs.push(MRun { branch: b, from, phase, attempt, kind, status: RStatus::Queued, cost: 0, of: None });
                Out::Started { run: self.runs.len() - 1, kind, attempt }
            }
            Dec::Final { cp } => {
                self.cps[cp].status = CpStatus::Approved;
                Out::Completed { cp }
            }
            Dec::Running { run } => Out::AlreadyRunning { run },
            Dec::Refuse(why) => Out::Refused(why),
        }
    }

    fn continue_(&mut self, b: usize, given: Given, force: bool) -> Out {
        let dec = self.decide(b, given, force);
        self.apply(b, dec, false)
    }

    /// The worker finished run `r`. A success makes a checkpoint (same parent as the run's
    /// starting point, version + 1, pending) that becomes the branch head; with auto-continue it is
    /// approved at once and the next phase starts (kind auto).
    fn finish(&mut self, r: usize, ok: bool) -> Out {
        assert!(self.runs[r].status.active());
        if !ok {
            self.runs[r].status = RStatus::Failed;
            return Out::Failed;
        }
        let (b, from, phase) = (self.runs[r].branch, self.runs[r].from, self.runs[r].phase);
        self.runs[r].status = RStatus::Succeeded;
        self.runs[r].cost = self.units(phase);
        let version = self.next_version(from, phase);
        self.cps.push(MCp { parent: from, phase, version, status: CpStatus::Pending, edited: false, branch: b });
        let cp = self.cps.len() - 1;
        self.branches[b].head = Some(cp);
        // SPEC §4: "each new checkpoint" = each one a run made, regenerations included (not a
        // person's edit). A refusal (a spent budget) leaves it pending, like a refused continue.
        if self.auto {
            let dec = self.decide(b, Given::Cp(cp), false);
            if matches!(dec, Dec::Start { .. } | Dec::Final { .. }) {
                self.apply(b, dec, true);
            }
        }
        Out::Succeeded { cp }
    }

    fn cancel(&mut self, b: usize) -> Out {
        match self.active(b) {
            Some(r) => {
                self.runs[r].status = RStatus::Cancelled;
                Out::Cancelled { run: r }
            }
            None => Out::Refused(vec![Refuse::Any]),
        }
    }

    /// Edit a script checkpoint on the branch's line: a new version (same parent, version + 1,
    /// pending, origin edited) becomes the branch head; allowed when nothing runs on the branch.
    fn edit(&mut self, b: usize, c: usize) -> Out {
        if self.active(b).is_some() || self.cps[c].phase != 1 {
            return Out::Refused(vec![Refuse::Any]);
        }
        let parent = self.cps[c].parent;
        let version = self.next_version(parent, 1);
        self.cps.push(MCp { parent, phase: 1, version, status: CpStatus::Pending, edited: true, branch: b });
        self.branches[b].head = Some(self.cps.len() - 1);
        Out::Edited { cp: self.cps.len() - 1 }
    }

    /// Regenerate one beat of a storyboard or clips checkpoint on the branch's line: a run of that
    /// phase from the checkpoint's parent, which makes a new version of it.
    fn regenerate(&mut self, b: usize, c: usize, beat: u32) -> Out {
        let mut why = vec![];
        if self.active(b).is_some() || !matches!(self.cps[c].phase, 2 | 3) || beat >= self.beats {
            why.push(Refuse::Any);
        }
        if self.budget_spent() {
            why.push(Refuse::Budget);
        }
        if !why.is_empty() {
            return Out::Refused(why);
        }
        let from = self.cps[c].parent;
        // Gap in SPEC §3: its run kinds do not include `regenerate`, so it does not say how such
        // runs are numbered. Documented reading: per regenerated checkpoint on the branch (1 for the
        // first regeneration of checkpoint c on this branch, 2 for the second, …), apart from the
        // continue/retry attempts from the same starting checkpoint.
        let attempt = self.runs.iter().filter(|r| r.branch == b && r.kind == Kind::Regenerate && r.of == Some(c)).count() as u32 + 1;
        let phase = self.cps[c].phase;
        self.runs.push(MRun { branch: b, from, phase, attempt, kind: Kind::Regenerate, status: RStatus::Queued, cost: 0, of: Some(c) });
        Out::Queued { run: self.runs.len() - 1 }
    }

    fn branch(&mut self, from: Given, name: &str) -> Out {
        let mut why = vec![];
        if !valid_branch_name(name) {
            why.push(Refuse::Invalid);
        }
        if from == Given::Unknown {
            why.push(Refuse::NotFound);
        }
        if !why.is_empty() {
            return Out::Refused(why);
        }
        if self.branches.iter().any(|b| b.name == name) {
            return Out::Refused(vec![Refuse::Any]);
        }
        let Given::Cp(c) = from else { unreachable!("steps always name a checkpoint") };
        self.branches.push(MBranch { name: name.into(), head: Some(c) });
        Out::Branched
    }

    fn set_budget(&mut self, budget: Option<i64>) -> Out {
        if budget.is_some_and(|b| !(0..=1_000_000_000_000).contains(&b)) {
            return Out::Refused(vec![Refuse::Invalid]);
        }
        self.budget = budget;
        Out::Done
    }

    /// SPEC §3's status words. SPEC reading: "failed (the latest run failed or was cancelled)"
    /// means the latest run from the branch head (with no head, the latest phase-1 run), the "latest
    /// run from it" of §4's rows: a regenerate run, or a run from another checkpoint, does not make
    /// the branch failed. A branch whose head is an approved phase 4 checkpoint is completed. A
    /// branch that fits none of the words (a fresh branch from an approved checkpoint, a failed
    /// regeneration) waits for a person.
    fn word(&self, b: usize) -> Word {
        if self.active(b).is_some() {
            return Word::Processing;
        }
        let head = self.branches[b].head;
        match head.map(|h| &self.cps[h]) {
            Some(c) if c.status == CpStatus::Pending => return Word::AwaitingApproval,
            Some(c) if c.phase == 4 => return Word::Completed,
            _ => {}
        }
        if self.runs_from(b, head).last().is_some_and(|&r| self.runs[r].status.failure()) {
            return Word::Failed;
        }
        Word::AwaitingApproval
    }

    /// What the status page must offer: exactly what the commands would do (SPEC §4, first lines).
    fn buttons(&self, b: usize) -> Buttons {
        let proceed = self.decide(b, self.head_given(b), false);
        let retry = self.decide(b, self.head_given(b), true);
        let head = self.branches[b].head;
        let from_head = self.runs_from(b, head);
        let needs_retry = self.active(b).is_none() && from_head.last().is_some_and(|&r| self.runs[r].status.failure());
        Buttons {
            can_continue: matches!(proceed, Dec::Start { .. } | Dec::Final { .. }),
            can_retry: matches!(retry, Dec::Start { kind: Kind::Retry, .. }),
            can_cancel: self.active(b).is_some(),
            can_edit: self.active(b).is_none(),
            needs_retry,
            retry_refused: match (&retry, needs_retry) {
                (Dec::Refuse(why), true) => Some(why.clone()),
                _ => None,
            },
            continue_refused_by_budget: proceed == Dec::Refuse(vec![Refuse::Budget]),
            // "Retry #n": attempt n + 1 is the n-th retry.
            next_retry_number: from_head.len() as u32,
        }
    }
}

#[derive(Debug)]
struct Buttons {
    can_continue: bool,
    can_retry: bool,
    can_cancel: bool,
    can_edit: bool,
    needs_retry: bool,
    retry_refused: Option<Vec<Refuse>>,
    continue_refused_by_budget: bool,
    next_retry_number: u32,
}

// ---------------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Target {
    Head,
    Nothing,
    Cp(usize),
    Unknown,
}

#[derive(Clone, Copy, Debug)]
enum BudgetChoice {
    Unlimited,
    /// Exactly what has been spent: the budget is spent.
    Spent,
    /// Spent + n.
    Above(i64),
    Negative,
}

#[derive(Clone, Debug)]
enum Step {
    Continue {
        branch: usize,
        target: Target,
        force: bool,
        via_approve: bool,
    },
    Work {
        ok: bool,
    },
    Cancel {
        branch: usize,
    },
    /// A command naming a branch that does not exist.
    UnknownBranch {
        cancel: bool,
    },
    Edit {
        branch: usize,
        pick: usize,
    },
    Regenerate {
        branch: usize,
        pick: usize,
        beat: u32,
    },
    Branch {
        from: Target,
        name: usize,
    },
    Budget(BudgetChoice),
    Auto(bool),
}

const NAMES: [&str; 8] = ["alt", "b2", "x_y-1", "alt", "main", "Bad", "-no", ""];

fn step_strategy(ok_weight: f64) -> impl Strategy<Value = Step> {
    let target = prop_oneof![
        12 => Just(Target::Head),
        1 => Just(Target::Nothing),
        3 => (0usize..64).prop_map(Target::Cp),
        1 => Just(Target::Unknown),
    ];
    let from = prop_oneof![12 => (0usize..64).prop_map(Target::Cp), 1 => Just(Target::Unknown)];
    let budget = prop_oneof![
        2 => Just(BudgetChoice::Unlimited),
        2 => Just(BudgetChoice::Spent),
        3 => (1i64..8).prop_map(BudgetChoice::Above),
        1 => Just(BudgetChoice::Negative),
    ];
    prop_oneof![
        12 => (0usize..8, target, any::<bool>(), any::<bool>())
            .prop_map(|(branch, target, force, via_approve)| Step::Continue { branch, target, force, via_approve }),
        12 => proptest::bool::weighted(ok_weight).prop_map(|ok| Step::Work { ok }),
        1 => (0usize..8).prop_map(|branch| Step::Cancel { branch }),
        1 => any::<bool>().prop_map(|cancel| Step::UnknownBranch { cancel }),
        2 => (0usize..8, 0usize..8).prop_map(|(branch, pick)| Step::Edit { branch, pick }),
        3 => (0usize..8, 0usize..8, 0u32..4).prop_map(|(branch, pick, beat)| Step::Regenerate { branch, pick, beat }),
        2 => (from, 0usize..NAMES.len()).prop_map(|(from, name)| Step::Branch { from, name }),
        1 => budget.prop_map(Step::Budget),
        1 => any::<bool>().prop_map(Step::Auto),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    beats: u32,
    limit: u32,
    auto: bool,
    steps: Vec<Step>,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (2u32..=3, prop_oneof![Just(1u32), Just(2), Just(5)], any::<bool>(), prop_oneof![Just(0.3f64), Just(0.6), Just(0.85)]).prop_flat_map(
        |(beats, limit, auto, ok_weight)| {
            proptest::collection::vec(step_strategy(ok_weight), 1..=40).prop_map(move |steps| Case { beats, limit, auto, steps })
        },
    )
}

// ---------------------------------------------------------------------------------------------
// The engine side
// ---------------------------------------------------------------------------------------------

/// What the engine did, with engine ids (mapped to the model's after the step).
#[allow(dead_code)] // the texts are read through Debug in failure reports
#[derive(Clone, Debug)]
enum Got {
    Started { run: RunId, kind: &'static str, attempt: u32 },
    AlreadyRunning { run: RunId },
    Completed { cp: CheckpointId },
    Refused { kind: Refuse, message: String },
    Cancelled { run: RunId },
    Edited { cp: CheckpointId },
    Branched,
    Queued { run: RunId },
    Done,
    Idle,
    Succeeded { cp: CheckpointId },
    Failed(String),
    Stopped,
}

/// Sorts an engine refusal by the SPEC's words: the exact sentences of §4 where it gives them.
fn classify(e: CoreError, limit: u32) -> Result<Got, String> {
    let message = e.to_string();
    let kind = match &e {
        CoreError::NotFound { .. } => Refuse::NotFound,
        CoreError::Invalid(_) => Refuse::Invalid,
        CoreError::Refused(r) => {
            let words = r.to_string();
            if words == "Checkpoint already approved" {
                Refuse::AlreadyApproved
            } else if words == "Checkpoint already approved. To retry, use force_retry=true" {
                Refuse::UseForceRetry
            } else if words == format!("Retry limit reached ({limit})") {
                Refuse::RetryLimit
            } else if words.to_lowercase().contains("budget") {
                Refuse::Budget
            } else if words.contains("already active") {
                Refuse::Busy
            } else {
                Refuse::Any
            }
        }
        _ => return Err(format!("the engine failed instead of answering: {e:?}")),
    };
    Ok(Got::Refused { kind, message })
}

fn accepts(expected: &[Refuse], got: &Refuse) -> bool {
    expected.iter().any(|e| e == got || (*e == Refuse::Any && !matches!(got, Refuse::NotFound | Refuse::Invalid)))
}

struct Harness {
    engine: Engine,
    video: VideoId,
    fail: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    model: Model,
    cp_ids: Vec<CheckpointId>,
    run_ids: Vec<RunId>,
    prev: VideoState,
    edits: u32,
    log: Vec<String>,
    dir: PathBuf,
}

fn scratch_dir() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() { shm } else { std::env::temp_dir() };
    base.join(format!("reelsmith-model-{}", uuid::Uuid::new_v4()))
}

impl Harness {
    async fn new(case: &Case) -> Harness {
        let dir = scratch_dir();
        std::fs::create_dir_all(&dir).unwrap();
        // Always SQLite: a fresh file per case.
        let store = Store::open(&format!("sqlite://{}/reelsmith.db", dir.display()), 4).await.expect("open store");
        let fail = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let switch = Arc::new(Switch { fail: fail.clone(), generation: generation.clone() });
        let providers = Providers { narration: switch.clone(), ..Providers::new(switch.clone(), switch.clone(), switch.clone(), switch) };
        let config = EngineConfig {
            retry_limit: case.limit,
            backoff_base_ms: 1,
            lease_ms: 10_000,
            width: 64,
            height: 36,
            fps: 12,
            ..EngineConfig::default()
        };
        let engine = Engine::new(store, BlobStore::new(&dir), providers, config);
        let new = NewVideo::parse("A lighthouse keeper's long night", case.beats, case.auto, None, false).expect("valid video");
        let video = engine.create_video(reelsmith::domain::AccountId::LOCAL, new, Some(7)).await.expect("create video");
        let state = engine.video_state(video).await.unwrap();
        let model = Model::new(case.beats, case.limit, case.auto);
        let run_ids = state.runs.iter().map(|r| r.id).collect();
        Harness {
            engine,
            video,
            fail,
            generation,
            model,
            cp_ids: vec![],
            run_ids,
            prev: state,
            edits: 0,
            log: vec![format!("new video: {} beats, retry limit {}, auto-continue {}", case.beats, case.limit, case.auto)],
            dir,
        }
    }

    fn branch_sel(&self, i: usize) -> usize {
        i % self.model.branches.len()
    }

    fn branch_name(&self, b: usize) -> Option<String> {
        // `None` names main the way the pages do; use both spellings.
        let name = &self.model.branches[b].name;
        (name != "main" || self.log.len() % 2 == 1).then(|| name.clone())
    }

    fn given(&self, b: usize, t: Target) -> Given {
        match t {
            Target::Head => self.model.head_given(b),
            Target::Nothing => Given::Nothing,
            Target::Cp(_) if self.model.cps.is_empty() => Given::Nothing,
            Target::Cp(i) => Given::Cp(i % self.model.cps.len()),
            Target::Unknown => Given::Unknown,
        }
    }

    fn engine_cp(&self, g: Given) -> Option<CheckpointId> {
        match g {
            Given::Nothing => None,
            Given::Cp(i) => Some(self.cp_ids[i]),
            Given::Unknown => Some(CheckpointId(uuid::Uuid::new_v4())),
        }
    }

    fn run_index(&self, id: RunId) -> Result<usize, String> {
        self.run_ids.iter().position(|r| *r == id).ok_or_else(|| format!("run {id} is not one the model knows"))
    }

    fn cp_index(&self, id: CheckpointId) -> Result<usize, String> {
        self.cp_ids.iter().position(|c| *c == id).ok_or_else(|| format!("checkpoint {id} is not one the model knows"))
    }

    async fn state(&self) -> VideoState {
        self.engine.video_state(self.video).await.expect("video state")
    }

    /// Runs one step on both sides and compares everything.
    async fn step(&mut self, step: &Step) -> Result<(), String> {
        let before = crate::common::snapshot(&self.engine).await;
        let model_before = self.model.clone();
        let limit = self.model.limit;
        let e = self.engine.clone();
        let v = self.video;
        let (desc, expected, got): (String, Option<Out>, Got) = match *step {
            Step::Continue { branch, target, force, via_approve } => {
                let b = self.branch_sel(branch);
                let given = self.given(b, target);
                let cp = self.engine_cp(given);
                let name = self.branch_name(b);
                let result = match cp {
                    Some(cp) if via_approve && !force => e.approve(v, cp, name.as_deref()).await,
                    _ => e.continue_video(v, cp, name.as_deref(), force).await,
                };
                let got = match result {
                    Ok(ContinueOutcome::Started { run, kind, attempt }) => Got::Started { run, kind: kind.wire(), attempt },
                    Ok(ContinueOutcome::AlreadyRunning { run }) => Got::AlreadyRunning { run },
                    Ok(ContinueOutcome::Completed { checkpoint }) => Got::Completed { cp: checkpoint },
                    Err(err) => classify(err, limit)?,
                };
                let out = self.model.continue_(b, given, force);
                (format!("continue(branch {}, {given:?}, force_retry={force})", self.model.branches[b].name), Some(out), got)
            }
            Step::Work { ok } => {
                self.fail.store(!ok, Ordering::SeqCst);
                self.generation.fetch_add(1, Ordering::SeqCst);
                let (_tx, rx) = watch::channel(false);
                let outcome = e.work_once("model-worker", &rx).await.map_err(|err| format!("worker step failed: {err:?}"))?;
                self.fail.store(false, Ordering::SeqCst);
                let got = match outcome {
                    WorkOutcome::Idle => Got::Idle,
                    WorkOutcome::Succeeded { checkpoint } => Got::Succeeded { cp: checkpoint },
                    WorkOutcome::Failed { error } => Got::Failed(error),
                    WorkOutcome::Stopped => Got::Stopped,
                };
                // Which run did the worker take? The one the model has active that the engine has
                // ended. (A step runs one run to its end; the run its checkpoint claimed for the
                // worker's next step is still active, as the model's queued runs are.)
                let state = self.state().await;
                let claimed: Vec<usize> = (0..self.run_ids.len())
                    .filter(|&i| self.model.runs[i].status.active())
                    .filter(|&i| state.runs.iter().any(|r| r.id == self.run_ids[i] && !r.status.is_active()))
                    .collect();
                let out = match (claimed.as_slice(), &got) {
                    ([], Got::Idle) if self.model.runs.iter().all(|r| !r.status.active()) => Out::Idle,
                    ([], Got::Idle) => {
                        return Err(self.fail_report(step, "the worker found nothing to do while the model has a queued run".into()));
                    }
                    ([r], _) => self.model.finish(*r, ok),
                    _ => {
                        return Err(self.fail_report(step, format!("the worker step ended runs {claimed:?} with {got:?}")));
                    }
                };
                (format!("worker finishes a run ({})", if ok { "success" } else { "failure" }), Some(out), got)
            }
            Step::Cancel { branch } => {
                let b = self.branch_sel(branch);
                let got = match e.cancel(v, self.branch_name(b).as_deref()).await {
                    Ok(run) => Got::Cancelled { run },
                    Err(err) => classify(err, limit)?,
                };
                (format!("cancel(branch {})", self.model.branches[b].name), Some(self.model.cancel(b)), got)
            }
            Step::UnknownBranch { cancel } => {
                let result = if cancel {
                    e.cancel(v, Some("no-such-branch")).await.map(|run| Got::Cancelled { run })
                } else {
                    e.continue_video(v, None, Some("no-such-branch"), true).await.map(|_| Got::Done)
                };
                let got = match result {
                    Ok(g) => g,
                    Err(err) => classify(err, limit)?,
                };
                ("a command on an unknown branch".into(), Some(Out::Refused(vec![Refuse::NotFound])), got)
            }
            Step::Edit { branch, pick } => {
                let b = self.branch_sel(branch);
                let line = self.model.line(b);
                if line.is_empty() {
                    return Ok(());
                }
                let c = line[pick % line.len()];
                let state = self.state().await;
                let target = state.checkpoint(self.cp_ids[c]).ok_or("a mapped checkpoint vanished")?;
                // A script with one narration changed; for other phases, the branch's script (the
                // engine must refuse: only scripts are edited as text).
                let script = match &target.manifest {
                    Manifest::Script { script, .. } => script.clone(),
                    _ => state
                        .checkpoints
                        .iter()
                        .find_map(|c| c.manifest.script().cloned())
                        .ok_or("a checkpoint without a script before it")?,
                };
                let mut script = script;
                self.edits += 1;
                script.beats[0].narration = format!("Edited narration number {}", self.edits);
                let json = serde_json::to_string(&script).unwrap();
                let got = match e.edit_script(v, self.branch_name(b).as_deref(), self.cp_ids[c], &json).await {
                    Ok(cp) => Got::Edited { cp },
                    Err(err) => classify(err, limit)?,
                };
                let out = self.model.edit(b, c);
                (format!("edit(branch {}, checkpoint #{c})", self.model.branches[b].name), Some(out), got)
            }
            Step::Regenerate { branch, pick, beat } => {
                let b = self.branch_sel(branch);
                let line = self.model.line(b);
                if line.is_empty() {
                    return Ok(());
                }
                let c = line[pick % line.len()];
                let got = match e.regenerate_beat(v, self.branch_name(b).as_deref(), self.cp_ids[c], beat).await {
                    Ok(run) => Got::Queued { run },
                    Err(err) => classify(err, limit)?,
                };
                let out = self.model.regenerate(b, c, beat);
                (format!("regenerate(branch {}, checkpoint #{c}, beat {beat})", self.model.branches[b].name), Some(out), got)
            }
            Step::Branch { from, name } => {
                let given = self.given(0, from);
                if given == Given::Nothing {
                    return Ok(());
                }
                let name = NAMES[name];
                let got = match e.create_branch(v, self.engine_cp(given).unwrap(), name).await {
                    Ok(_) => Got::Branched,
                    Err(err) => classify(err, limit)?,
                };
                (format!("create_branch({given:?}, {name:?})"), Some(self.model.branch(given, name)), got)
            }
            Step::Budget(choice) => {
                let spent = self.model.spent();
                let budget = match choice {
                    BudgetChoice::Unlimited => None,
                    BudgetChoice::Spent => Some(spent),
                    BudgetChoice::Above(n) => Some(spent + n),
                    BudgetChoice::Negative => Some(-1),
                };
                let got = match e.set_budget(v, budget).await {
                    Ok(()) => Got::Done,
                    Err(err) => classify(err, limit)?,
                };
                (format!("set_budget({budget:?}) with {spent} spent"), Some(self.model.set_budget(budget)), got)
            }
            Step::Auto(on) => {
                let got = match e.set_auto_continue(v, on).await {
                    Ok(()) => Got::Done,
                    Err(err) => classify(err, limit)?,
                };
                self.model.auto = on;
                (format!("set_auto_continue({on})"), Some(Out::Done), got)
            }
        };
        let expected = expected.expect("every step has an expectation");
        cover(match (&expected, step) {
            (Out::Started { kind: Kind::Retry, run, .. }, _) if self.model.runs[*run].from.is_none() => {
                "continue: started retry (phase 1)".to_string()
            }
            (Out::Started { kind: Kind::Retry, .. }, _) => "continue: started retry".to_string(),
            (Out::Started { .. }, _) if model_before.cps.iter().zip(&self.model.cps).any(|(a, b)| a.status != b.status) => {
                "continue: started continue (approve)".to_string()
            }
            (Out::Started { .. }, _) => "continue: started continue (fresh branch)".to_string(),
            (Out::AlreadyRunning { .. }, _) => "continue: already running".to_string(),
            (Out::Completed { .. }, _) => "continue: completed".to_string(),
            (Out::Refused(why), _) => format!("refused: {:?}", why[0]),
            (Out::Cancelled { .. }, _) => "cancel: cancelled".to_string(),
            (Out::Edited { .. }, _) => "edit: new version".to_string(),
            (Out::Queued { run }, _) if self.model.runs[*run].attempt > 1 => "regenerate: queued again".to_string(),
            (Out::Queued { .. }, _) => "regenerate: queued".to_string(),
            (Out::Succeeded { cp }, _)
                if self.model.cps[*cp].status == CpStatus::Approved
                    && (0..model_before.runs.len()).any(|i| {
                        model_before.runs[i].status.active()
                            && model_before.runs[i].kind == Kind::Regenerate
                            && self.model.runs[i].status == RStatus::Succeeded
                    }) =>
            {
                "worker: regenerated, auto-continued".to_string()
            }
            (Out::Branched, _) => "branch: created".to_string(),
            (Out::Succeeded { .. }, _) => "worker: succeeded".to_string(),
            (Out::Failed, _) => "worker: failed".to_string(),
            (Out::Idle, _) => "worker: idle".to_string(),
            (Out::Done, _) => "setting changed".to_string(),
        });
        for b in 0..self.model.branches.len() {
            cover(format!("status: {:?}", self.model.word(b)));
        }
        self.log.push(format!("{desc}: model {expected:?}, engine {got:?}"));
        let state = self.state().await;
        self.sync_ids(&state).map_err(|m| self.fail_report(step, m))?;
        self.compare_outcome(&expected, &got).map_err(|m| self.fail_report(step, m))?;
        if matches!(expected, Out::Refused(_) | Out::AlreadyRunning { .. } | Out::Idle) || matches!(got, Got::Refused { .. }) {
            // Returning the active run changes nothing either, not even the video row's counter.
            let after = crate::common::snapshot(&self.engine).await;
            if after != before {
                let gone: Vec<_> = before.iter().filter(|r| !after.contains(r)).collect();
                let came: Vec<_> = after.iter().filter(|r| !before.contains(r)).collect();
                return Err(self.fail_report(
                    step,
                    format!("a refused (or idempotent) step changed rows in the database:\n  before {gone:#?}\n  after {came:#?}"),
                ));
            }
            if self.model != model_before {
                return Err(self.fail_report(step, "model bug: a refusal changed the model".into()));
            }
        }
        self.compare_state(&state).await.map_err(|m| self.fail_report(step, m))?;
        self.invariants(&state).map_err(|m| self.fail_report(step, m))?;
        self.prev = state;
        Ok(())
    }

    fn fail_report(&self, step: &Step, message: String) -> String {
        format!("{message}\n  at step {step:?}\n  history:\n    {}", self.log.join("\n    "))
    }

    /// Pairs the engine's new runs and checkpoints with the model's (at most one new run per
    /// branch and one new checkpoint per step).
    fn sync_ids(&mut self, state: &VideoState) -> Result<(), String> {
        let name_of = |id| state.branches.iter().find(|b| b.id == id).map(|b| b.name.clone()).unwrap_or_default();
        let mut new_runs: Vec<_> = state.runs.iter().filter(|r| !self.run_ids.contains(&r.id)).collect();
        if new_runs.len() != self.model.runs.len() - self.run_ids.len() {
            return Err(format!(
                "the engine made {} new run(s), the model {}: {:?}",
                new_runs.len(),
                self.model.runs.len() - self.run_ids.len(),
                new_runs.iter().map(|r| (name_of(r.branch_id), r.phase, r.kind, r.attempt, r.status)).collect::<Vec<_>>()
            ));
        }
        for i in self.run_ids.len()..self.model.runs.len() {
            let want = &self.model.branches[self.model.runs[i].branch].name;
            let at =
                new_runs.iter().position(|r| name_of(r.branch_id) == *want).ok_or_else(|| format!("no new engine run on branch {want}"))?;
            self.run_ids.push(new_runs.remove(at).id);
        }
        let mut new_cps: Vec<_> = state.checkpoints.iter().filter(|c| !self.cp_ids.contains(&c.id)).collect();
        if new_cps.len() != self.model.cps.len() - self.cp_ids.len() {
            return Err(format!(
                "the engine made {} new checkpoint(s), the model {}",
                new_cps.len(),
                self.model.cps.len() - self.cp_ids.len()
            ));
        }
        for i in self.cp_ids.len()..self.model.cps.len() {
            let want = &self.model.branches[self.model.cps[i].branch].name;
            let at = new_cps
                .iter()
                .position(|c| name_of(c.branch_id) == *want)
                .ok_or_else(|| format!("no new engine checkpoint on branch {want}"))?;
            self.cp_ids.push(new_cps.remove(at).id);
        }
        Ok(())
    }

    fn compare_outcome(&self, expected: &Out, got: &Got) -> Result<(), String> {
        let same = match (expected, got) {
            (Out::Started { run, kind, attempt }, Got::Started { run: r, kind: k, attempt: a }) => {
                self.run_index(*r)? == *run && kind.wire() == *k && attempt == a
            }
            (Out::AlreadyRunning { run }, Got::AlreadyRunning { run: r }) => self.run_index(*r)? == *run,
            (Out::Completed { cp }, Got::Completed { cp: c }) => self.cp_index(*c)? == *cp,
            (Out::Refused(why), Got::Refused { kind, .. }) => accepts(why, kind),
            (Out::Cancelled { run }, Got::Cancelled { run: r }) => self.run_index(*r)? == *run,
            (Out::Edited { cp }, Got::Edited { cp: c }) => self.cp_index(*c)? == *cp,
            (Out::Queued { run }, Got::Queued { run: r }) => self.run_index(*r)? == *run,
            (Out::Succeeded { cp }, Got::Succeeded { cp: c }) => self.cp_index(*c)? == *cp,
            (Out::Branched, Got::Branched) | (Out::Done, Got::Done) | (Out::Idle, Got::Idle) | (Out::Failed, Got::Failed(_)) => true,
            _ => false,
        };
        if same {
            return Ok(());
        }
        Err(format!("OUTCOME differs: SPEC model expects {expected:?}, engine answered {got:?}"))
    }

    /// Every branch, checkpoint and run, field by field; then the status page of every branch.
    async fn compare_state(&self, state: &VideoState) -> Result<(), String> {
        let m = &self.model;
        let mut diffs = vec![];
        if state.branches.len() != m.branches.len() {
            diffs.push(format!("branches: engine {} model {}", state.branches.len(), m.branches.len()));
        }
        for mb in &m.branches {
            match state.branch_named(&mb.name) {
                None => diffs.push(format!("branch {} missing in the engine", mb.name)),
                Some(eb) => {
                    let head = eb.head_id.map(|id| self.cp_index(id)).transpose()?;
                    if head != mb.head {
                        diffs.push(format!("branch {}: head engine #{head:?}, model #{:?}", mb.name, mb.head));
                    }
                }
            }
        }
        if state.checkpoints.len() != m.cps.len() {
            diffs.push(format!("checkpoints: engine {} model {}", state.checkpoints.len(), m.cps.len()));
        }
        for (i, mc) in m.cps.iter().enumerate() {
            let Some(c) = state.checkpoint(self.cp_ids[i]) else {
                diffs.push(format!("checkpoint #{i} missing"));
                continue;
            };
            let parent = c.parent_id.map(|p| self.cp_index(p)).transpose()?;
            let status = if c.status == CheckpointStatus::Pending { CpStatus::Pending } else { CpStatus::Approved };
            let branch = state.branch(c.branch_id).map(|b| b.name.as_str()).unwrap_or("?");
            let engine = (parent, c.phase.number(), c.version, status, c.origin.wire() == "edited", branch);
            let model = (mc.parent, mc.phase, mc.version, mc.status, mc.edited, m.branches[mc.branch].name.as_str());
            if engine != model {
                diffs.push(format!("checkpoint #{i} (parent, phase, version, status, edited, branch): engine {engine:?}, model {model:?}"));
            }
        }
        // Between steps at most one run is `running`: the one the worker's last checkpoint
        // claimed for its next step, not started (no unit done).
        let running: Vec<_> = state.runs.iter().filter(|r| r.status == RunStatus::Running).collect();
        if running.len() > 1 || running.iter().any(|r| r.lease_owner.as_deref() != Some("model-worker") || r.units_done != 0) {
            diffs.push(format!("runs running between steps, other than one claimed and not started: {running:?}"));
        }
        for (i, mr) in m.runs.iter().enumerate() {
            let Some(r) = state.runs.iter().find(|r| r.id == self.run_ids[i]) else {
                diffs.push(format!("run #{i} missing"));
                continue;
            };
            let from = r.from_checkpoint.map(|p| self.cp_index(p)).transpose()?;
            // The model knows no "running": between steps a run is queued, or claimed by the
            // worker with the last checkpoint (`running`, not started). Both are its "queued".
            let status = match r.status {
                RunStatus::Queued | RunStatus::Running => "queued",
                RunStatus::Succeeded => "succeeded",
                RunStatus::Failed => "failed",
                RunStatus::Cancelled => "cancelled",
            };
            let mstatus = match mr.status {
                RStatus::Queued => "queued",
                RStatus::Succeeded => "succeeded",
                RStatus::Failed => "failed",
                RStatus::Cancelled => "cancelled",
            };
            let branch = state.branch(r.branch_id).map(|b| b.name.as_str()).unwrap_or("?");
            let of = r.regenerate.as_ref().map(|g| self.cp_index(g.of)).transpose()?;
            let engine = (branch, from, r.phase.number(), r.attempt, r.kind.wire(), status, r.cost_micros, of);
            let model = (m.branches[mr.branch].name.as_str(), mr.from, mr.phase, mr.attempt, mr.kind.wire(), mstatus, mr.cost, mr.of);
            if engine != model {
                diffs.push(format!(
                    "run #{i} (branch, from, phase, attempt, kind, status, cost, regenerated): engine {engine:?}, model {model:?}"
                ));
            }
        }
        if state.spent_micros() != m.spent() {
            diffs.push(format!("spent: engine {}, model {}", state.spent_micros(), m.spent()));
        }
        if (state.video.auto_continue, state.video.budget_micros) != (m.auto, m.budget) {
            diffs.push(format!(
                "settings (auto, budget): engine {:?}, model {:?}",
                (state.video.auto_continue, state.video.budget_micros),
                (m.auto, m.budget)
            ));
        }
        // The status page, branch by branch: what it says and which buttons it offers.
        // Read as the server reads it: a bounded slice of the video, not its whole state.
        for (b, mb) in m.branches.iter().enumerate() {
            let slice =
                self.engine.status_page(self.video, &mb.name, Default::default()).await.map_err(|e| format!("status page: {e:?}"))?;
            let page =
                reelsmith::api::convert::status(&slice, &self.engine.config).map_err(|e| format!("status page of {}: {e:?}", mb.name))?;
            let word = match page.status {
                BranchStatus::Processing => Word::Processing,
                BranchStatus::AwaitingApproval => Word::AwaitingApproval,
                BranchStatus::Failed => Word::Failed,
                BranchStatus::Completed => Word::Completed,
            };
            let want = m.buttons(b);
            let a = &page.allowed;
            let mut say = |what: &str, engine: String, model: String| {
                if engine != model {
                    diffs.push(format!("branch {}: {what}: engine {engine}, model {model}", mb.name));
                }
            };
            say("status", format!("{word:?}"), format!("{:?}", m.word(b)));
            say("total cost", page.total_cost_micros.to_string(), m.spent().to_string());
            say("can_continue", a.can_continue.to_string(), want.can_continue.to_string());
            say("can_retry", a.can_retry.to_string(), want.can_retry.to_string());
            say("can_cancel", a.can_cancel.to_string(), want.can_cancel.to_string());
            say("can_edit", a.can_edit.to_string(), want.can_edit.to_string());
            say("retry_limit", a.retry_limit.to_string(), m.limit.to_string());
            say(
                "continue_refused (budget)",
                a.continue_refused.as_ref().is_some_and(|r| r.to_string().to_lowercase().contains("budget")).to_string(),
                want.continue_refused_by_budget.to_string(),
            );
            if want.needs_retry {
                say("next_retry_number", a.next_retry_number.to_string(), want.next_retry_number.to_string());
            }
            let refused = a.retry_refused.as_ref().map(|r| classify(CoreError::Refused(r.clone()), m.limit));
            match (&want.retry_refused, refused) {
                (None, None) => {}
                (Some(why), Some(Ok(Got::Refused { kind, .. }))) if accepts(why, &kind) => {}
                (w, g) => say("retry_refused", format!("{g:?}"), format!("{w:?}")),
            }
            for wire in &page.active_branches {
                if wire.branch_name == mb.name {
                    say("branch list can_continue", wire.can_continue.to_string(), want.can_continue.to_string());
                    say("branch list status", format!("{:?}", wire.branch_status), format!("{:?}", page.status));
                }
            }
        }
        if diffs.is_empty() { Ok(()) } else { Err(format!("STATE differs from the SPEC model:\n  {}", diffs.join("\n  "))) }
    }

    /// Checked on the engine's own state, whatever the model says.
    fn invariants(&self, state: &VideoState) -> Result<(), String> {
        for b in &state.branches {
            let active = state.runs.iter().filter(|r| r.branch_id == b.id && r.status.is_active()).count();
            if active > 1 {
                return Err(format!("INVARIANT: {active} active runs on branch {}", b.name));
            }
        }
        for old in &self.prev.checkpoints {
            let Some(new) = state.checkpoint(old.id) else { return Err("INVARIANT: a checkpoint disappeared".into()) };
            let same = (new.parent_id, new.phase, new.version, new.origin, new.branch_id, &new.manifest, new.created_at)
                == (old.parent_id, old.phase, old.version, old.origin, old.branch_id, &old.manifest, old.created_at);
            let status_ok =
                new.status == old.status || (old.status == CheckpointStatus::Pending && new.status == CheckpointStatus::Approved);
            if !same || !status_ok {
                return Err(format!("INVARIANT: checkpoint {} changed beyond pending → approved", old.id));
            }
        }
        let mut versions: std::collections::BTreeMap<(Option<CheckpointId>, u8), Vec<u32>> = Default::default();
        for c in &state.checkpoints {
            versions.entry((c.parent_id, c.phase.number())).or_default().push(c.version);
        }
        for v in versions.values_mut() {
            v.sort();
            if *v != (1..=v.len() as u32).collect::<Vec<_>>() {
                return Err(format!("INVARIANT: versions {v:?} are not 1..n"));
            }
        }
        // SPEC §3: attempt 1 for the first run from that checkpoint on that branch, then 2, 3, …;
        // regenerate runs (a gap in §3) per regenerated checkpoint on the branch, on their own.
        let mut attempts: std::collections::BTreeMap<(String, bool, Option<CheckpointId>), Vec<u32>> = Default::default();
        for r in &state.runs {
            let key = match &r.regenerate {
                Some(g) => (r.branch_id.to_string(), true, Some(g.of)),
                None => (r.branch_id.to_string(), false, r.from_checkpoint),
            };
            attempts.entry(key).or_default().push(r.attempt);
        }
        for (key, seq) in &attempts {
            if *seq != (1..=seq.len() as u32).collect::<Vec<_>>() {
                let name = state.branches.iter().find(|b| b.id.to_string() == key.0).map(|b| b.name.as_str()).unwrap_or("?");
                return Err(format!("INVARIANT: attempts of the runs from one checkpoint on branch {name} are {seq:?}, not 1..n"));
            }
        }
        Ok(())
    }

    async fn close(self) {
        self.engine.store.pool().close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn run_case(case: Case) -> Result<usize, String> {
    let mut h = Harness::new(&case).await;
    let first = h.state().await;
    let result = async {
        if first.runs.len() != 1 || first.branches.len() != 1 {
            return Err("a new video must have main and one queued run".to_string());
        }
        h.compare_state(&first).await?;
        for step in &case.steps {
            h.step(step).await?;
        }
        Ok(case.steps.len())
    }
    .await;
    h.close().await;
    result
}

fn cases() -> u32 {
    std::env::var("MODEL_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(192)
}

/// How often each row and outcome was seen over the whole run, to show what the cases covered.
static COVERAGE: std::sync::Mutex<std::collections::BTreeMap<String, usize>> = std::sync::Mutex::new(std::collections::BTreeMap::new());

fn cover(key: impl Into<String>) {
    *COVERAGE.lock().unwrap().entry(key.into()).or_default() += 1;
}

#[test]
fn the_engine_follows_the_spec_rule_table() {
    // The rarest paths for random steps, walked first so that every run compares them: approving
    // a pending phase 4 checkpoint by hand (about one case in thirty), regenerating one checkpoint
    // twice on a branch (the first regeneration must fail), and a regeneration auto-continued.
    let by_hand = |via_approve| Step::Continue { branch: 0, target: Target::Head, force: false, via_approve };
    let work = |ok| Step::Work { ok };
    let regenerate = |beat| Step::Regenerate { branch: 0, pick: 0, beat };
    let walks = [
        (
            "to an approved phase 4",
            vec![
                work(true),
                by_hand(true),
                work(true),
                by_hand(false),
                work(true),
                by_hand(true),
                work(true),
                by_hand(false),
                by_hand(true),
            ],
        ),
        (
            "through regenerations",
            vec![
                work(true),
                by_hand(false),
                work(true),
                regenerate(0),
                work(false),
                regenerate(1),
                work(true),
                Step::Auto(true),
                regenerate(0),
                work(true),
            ],
        ),
    ];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (name, steps) in walks {
        if let Err(e) = rt.block_on(run_case(Case { beats: 2, limit: 1, auto: false, steps })) {
            panic!("the scripted walk {name}: {e}");
        }
    }
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 400,
        max_shrink_time: 90_000,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&case_strategy(), |case| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_case(case)).map(|_| ()).map_err(TestCaseError::fail)
    });
    let coverage = COVERAGE.lock().unwrap().clone();
    eprintln!("coverage over {} cases:", cases());
    for (k, n) in &coverage {
        eprintln!("  {k}: {n}");
    }
    if let Err(e) = result {
        panic!("{e}");
    }
    // The rows of SPEC §4 the random cases must reach (each is common at 32+ cases).
    for key in [
        "continue: started continue (approve)",
        "continue: started retry",
        "continue: started continue (fresh branch)",
        "continue: already running",
        "continue: completed",
        "refused: UseForceRetry",
        "refused: AlreadyApproved",
        "refused: RetryLimit",
        "refused: Budget",
        "status: Failed",
        "status: Completed",
        "worker: failed",
        "edit: new version",
        "regenerate: queued",
        "regenerate: queued again",
        "worker: regenerated, auto-continued",
        "branch: created",
        "cancel: cancelled",
    ] {
        if cases() >= 32 {
            assert!(coverage.contains_key(key), "no case reached \"{key}\"");
        }
    }
}
