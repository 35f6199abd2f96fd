//! Applies a video's fault plan to one unit of one run (only when the server enables fault injection).
use crate::domain::{FaultAction, FaultPlan, Phase, RunId, VideoId};
use crate::storage::{self, StorageError, Store};

/// What the plan does to this unit in this run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    pub delay_ms: u64,
    pub hang: bool,
    /// Every try of the unit fails with this message (a transient-looking error, so the
    /// automatic retries are exercised and fail too).
    pub fail: Option<String>,
    pub crash: bool,
}

/// Which unit a rule may hit: its phase, its index in the run, its beat, and whether it speaks.
#[derive(Clone, Copy, Debug)]
pub struct UnitSpot {
    pub phase: Phase,
    pub unit: u32,
    pub beat: Option<u32>,
    pub narration: bool,
}

pub fn unit_key(phase: Phase, unit: u32) -> String {
    format!("p{}:u{unit}", phase.number())
}

/// Decides the effects and records which runs `fail` and `crash` rules affected, so `times`
/// counts runs across retries and restarts. A crash is recorded as spent before it fires.
pub async fn effects(store: &Store, video: VideoId, plan: &FaultPlan, spot: UnitSpot, run: RunId) -> Result<Effects, StorageError> {
    let UnitSpot { phase, unit, beat, narration } = spot;
    let mut effects = Effects::default();
    for (index, rule) in plan.rules.iter().enumerate() {
        if !rule.matches(phase, beat, narration) {
            continue;
        }
        match rule.action {
            FaultAction::Delay => effects.delay_ms += rule.ms.unwrap_or(0),
            FaultAction::Hang => effects.hang = true,
            FaultAction::Fail | FaultAction::Crash => {
                let (key, crash, times) = (unit_key(phase, unit), rule.action == FaultAction::Crash, rule.times());
                let affected = store
                    .write_retrying(async move |tx| {
                        let hits = storage::fault_hits(tx, video, index, &key).await?;
                        let affected = (hits.len() as u32) < times || (!crash && hits.contains(&run));
                        if affected {
                            storage::record_fault_hit(tx, video, index, &key, run).await?;
                        }
                        Ok::<_, StorageError>(affected)
                    })
                    .await?;
                if affected {
                    match rule.action {
                        FaultAction::Crash => effects.crash = true,
                        _ => effects.fail = Some(rule.message().to_string()),
                    }
                }
            }
        }
    }
    Ok(effects)
}
