//! How the expected-outcome enums (`Refusal`, `Denial`, `LimitReached`) are read back from JSON.
//!
//! They are written tagged (`{"reason": "retry_limit_reached", "limit": 5}`). serde reads an
//! internally tagged enum by buffering the whole object into a generic tree first, which costs
//! the browser's bundle about as much code as everything else in its errors together. Read as one
//! flat record (the tag and every field any variant has), the same JSON decodes with a plain
//! struct's code, then converts; a field the tag needs and the JSON lacks is an error, as before.
use serde::Deserialize;

use super::ids::RunId;
use super::model::Phase;
use super::{Denial, LimitReached, Refusal};

fn need<T>(value: Option<T>, field: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("missing field `{field}`"))
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RefusalReason {
    AlreadyApproved,
    AlreadyApprovedUseForceRetry,
    RetryNeedsForce,
    RetryLimitReached,
    BudgetExhausted,
    OverBudget,
    Busy,
    NotBranchHead,
    NotOnBranch,
    NothingToCancel,
    OnlyScriptsAreEditable,
    NotRegenerable,
    BeatOutOfRange,
    BranchNameTaken,
}

#[derive(Deserialize)]
pub struct RefusalRecord {
    reason: RefusalReason,
    limit: Option<u32>,
    spent_micros: Option<i64>,
    budget_micros: Option<i64>,
    estimate_micros: Option<i64>,
    run: Option<RunId>,
    phase: Option<Phase>,
    beat: Option<u32>,
    beats: Option<u32>,
    name: Option<String>,
}

impl TryFrom<RefusalRecord> for Refusal {
    type Error = String;

    fn try_from(r: RefusalRecord) -> Result<Self, String> {
        use RefusalReason as R;
        Ok(match r.reason {
            R::AlreadyApproved => Refusal::AlreadyApproved,
            R::AlreadyApprovedUseForceRetry => Refusal::AlreadyApprovedUseForceRetry,
            R::RetryNeedsForce => Refusal::RetryNeedsForce,
            R::RetryLimitReached => Refusal::RetryLimitReached { limit: need(r.limit, "limit")? },
            R::BudgetExhausted => Refusal::BudgetExhausted {
                spent_micros: need(r.spent_micros, "spent_micros")?,
                budget_micros: need(r.budget_micros, "budget_micros")?,
            },
            R::OverBudget => Refusal::OverBudget {
                estimate_micros: need(r.estimate_micros, "estimate_micros")?,
                spent_micros: need(r.spent_micros, "spent_micros")?,
                budget_micros: need(r.budget_micros, "budget_micros")?,
            },
            R::Busy => Refusal::Busy { run: need(r.run, "run")? },
            R::NotBranchHead => Refusal::NotBranchHead,
            R::NotOnBranch => Refusal::NotOnBranch,
            R::NothingToCancel => Refusal::NothingToCancel,
            R::OnlyScriptsAreEditable => Refusal::OnlyScriptsAreEditable { phase: need(r.phase, "phase")? },
            R::NotRegenerable => Refusal::NotRegenerable { phase: need(r.phase, "phase")? },
            R::BeatOutOfRange => Refusal::BeatOutOfRange { beat: need(r.beat, "beat")?, beats: need(r.beats, "beats")? },
            R::BranchNameTaken => Refusal::BranchNameTaken { name: need(r.name, "name")? },
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DenialReason {
    BadCredentials,
    TooManyAttempts,
    SignedOut,
}

#[derive(Deserialize)]
pub struct DenialRecord {
    reason: DenialReason,
    retry_after_s: Option<u64>,
}

impl TryFrom<DenialRecord> for Denial {
    type Error = String;

    fn try_from(r: DenialRecord) -> Result<Self, String> {
        Ok(match r.reason {
            DenialReason::BadCredentials => Denial::BadCredentials,
            DenialReason::TooManyAttempts => Denial::TooManyAttempts { retry_after_s: need(r.retry_after_s, "retry_after_s")? },
            DenialReason::SignedOut => Denial::SignedOut,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Which {
    VideosPerHour,
    ActiveRuns,
    Edits,
    Branches,
    Regenerations,
    Storage,
    SignUps,
}

#[derive(Deserialize)]
pub struct LimitRecord {
    which: Which,
    limit: Option<u64>,
    used: Option<u64>,
}

impl TryFrom<LimitRecord> for LimitReached {
    type Error = String;

    fn try_from(r: LimitRecord) -> Result<Self, String> {
        let small = |limit: u64| u32::try_from(limit).map_err(|_| format!("limit {limit} is out of range"));
        Ok(match r.which {
            Which::VideosPerHour => LimitReached::VideosPerHour { limit: small(need(r.limit, "limit")?)? },
            Which::ActiveRuns => LimitReached::ActiveRuns { limit: small(need(r.limit, "limit")?)? },
            Which::Edits => LimitReached::Edits { limit: small(need(r.limit, "limit")?)? },
            Which::Branches => LimitReached::Branches { limit: small(need(r.limit, "limit")?)? },
            Which::Regenerations => LimitReached::Regenerations { limit: small(need(r.limit, "limit")?)? },
            Which::Storage => LimitReached::Storage { used: need(r.used, "used")?, limit: need(r.limit, "limit")? },
            Which::SignUps => LimitReached::SignUps { limit: small(need(r.limit, "limit")?)? },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::RunId;

    fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(value: T) {
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), value, "{json}");
    }

    #[test]
    fn every_variant_reads_back_as_written() {
        let run = RunId(uuid::Uuid::from_u128(7));
        for r in [
            Refusal::AlreadyApproved,
            Refusal::AlreadyApprovedUseForceRetry,
            Refusal::RetryNeedsForce,
            Refusal::RetryLimitReached { limit: 5 },
            Refusal::BudgetExhausted { spent_micros: 3, budget_micros: 2 },
            Refusal::OverBudget { estimate_micros: 9, spent_micros: 1, budget_micros: 4 },
            Refusal::Busy { run },
            Refusal::NotBranchHead,
            Refusal::NotOnBranch,
            Refusal::NothingToCancel,
            Refusal::OnlyScriptsAreEditable { phase: Phase::Clips },
            Refusal::NotRegenerable { phase: Phase::Render },
            Refusal::BeatOutOfRange { beat: 4, beats: 3 },
            Refusal::BranchNameTaken { name: "alt".into() },
        ] {
            round_trip(r);
        }
        for d in [Denial::BadCredentials, Denial::TooManyAttempts { retry_after_s: 90 }, Denial::SignedOut] {
            round_trip(d);
        }
        for l in [
            LimitReached::VideosPerHour { limit: 1 },
            LimitReached::ActiveRuns { limit: 2 },
            LimitReached::Edits { limit: 3 },
            LimitReached::Branches { limit: 4 },
            LimitReached::Regenerations { limit: 5 },
            LimitReached::Storage { used: u64::MAX, limit: 6 },
            LimitReached::SignUps { limit: 7 },
        ] {
            round_trip(l);
        }
    }

    #[test]
    fn the_wire_form_is_unchanged_and_missing_fields_are_errors() {
        let json = serde_json::to_value(Refusal::RetryLimitReached { limit: 5 }).unwrap();
        assert_eq!(json, serde_json::json!({"reason": "retry_limit_reached", "limit": 5}));
        let missing = serde_json::from_str::<Refusal>(r#"{"reason":"retry_limit_reached"}"#).unwrap_err();
        assert!(missing.to_string().contains("missing field `limit`"), "{missing}");
        assert!(serde_json::from_str::<Refusal>(r#"{"reason":"no_such_reason"}"#).is_err());
        assert!(serde_json::from_str::<Denial>(r#"{"reason":"too_many_attempts"}"#).is_err());
        let big = serde_json::from_str::<LimitReached>(r#"{"which":"edits","limit":5000000000}"#).unwrap_err();
        assert!(big.to_string().contains("out of range"), "{big}");
    }
}
