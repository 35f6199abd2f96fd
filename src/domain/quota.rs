//! Per-account limits: what one account may use, so no account can fill the disk or the queue.
use serde::{Deserialize, Serialize};
use std::fmt;

use super::ids::AccountId;
use super::words::count;

/// The limits in force (server options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    pub videos_per_hour: u32,
    /// Queued or running runs over all the account's videos.
    pub active_runs: u32,
    pub edits_per_video: u32,
    pub branches_per_video: u32,
    pub regenerations_per_video: u32,
    /// Bytes of artifacts the account's checkpoints hold.
    pub storage_bytes: u64,
    /// New accounts made from one client address per hour (each one is a fresh set of the
    /// limits above, and each sign-up runs a password hash).
    pub sign_ups_per_hour: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            videos_per_hour: 30,
            active_runs: 10,
            edits_per_video: 50,
            branches_per_video: 20,
            regenerations_per_video: 100,
            storage_bytes: 2 << 30,
            sign_ups_per_hour: 10,
        }
    }
}

/// A limit an action would pass. Expected, with a sentence and a next step (HTTP 429).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "which", rename_all = "snake_case", try_from = "super::records::LimitRecord")]
pub enum LimitReached {
    VideosPerHour { limit: u32 },
    ActiveRuns { limit: u32 },
    Edits { limit: u32 },
    Branches { limit: u32 },
    Regenerations { limit: u32 },
    Storage { used: u64, limit: u64 },
    SignUps { limit: u32 },
}

impl fmt::Display for LimitReached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitReached::VideosPerHour { limit: 1 } => write!(f, "You have made a video in the last hour, the most allowed"),
            LimitReached::VideosPerHour { limit } => write!(f, "You have made {limit} videos in the last hour, the most allowed"),
            LimitReached::ActiveRuns { limit } => {
                write!(f, "You already have {} queued or running, the most allowed", count(*limit, "phase", "phases"))
            }
            LimitReached::Edits { limit } => write!(f, "This video already has {}, the most allowed", count(*limit, "edit", "edits")),
            LimitReached::Branches { limit } => {
                write!(f, "This video already has {}, the most allowed", count(*limit, "branch", "branches"))
            }
            LimitReached::Regenerations { limit } => {
                write!(f, "This video already has {}, the most allowed", count(*limit, "regenerated beat", "regenerated beats"))
            }
            LimitReached::Storage { used, limit } => {
                write!(f, "Your videos use {} MB of the {} MB allowed", used.div_ceil(1 << 20), limit / (1 << 20))
            }
            LimitReached::SignUps { limit: 1 } => write!(f, "An account was made from your address in the last hour, the most allowed"),
            LimitReached::SignUps { limit } => write!(f, "{limit} accounts were made from your address in the last hour, the most allowed"),
        }
    }
}

impl std::error::Error for LimitReached {}

impl LimitReached {
    pub fn next_step(&self) -> &'static str {
        match self {
            LimitReached::VideosPerHour { .. } => "Wait a while before making another video.",
            LimitReached::ActiveRuns { .. } => "Wait for a phase to finish, or cancel one.",
            LimitReached::Edits { .. } | LimitReached::Branches { .. } | LimitReached::Regenerations { .. } => {
                "Make a new video to go on exploring."
            }
            LimitReached::Storage { .. } => "Delete videos you no longer need.",
            LimitReached::SignUps { .. } => "Sign in to an account you have, or try again in an hour.",
        }
    }
}

/// What the account uses now, as far as a new video needs to know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub videos_last_hour: u32,
    pub active_runs: u32,
    pub storage_bytes: u64,
}

impl Quotas {
    pub const UNLIMITED: Quotas = Quotas {
        videos_per_hour: u32::MAX,
        active_runs: u32::MAX,
        edits_per_video: u32::MAX,
        branches_per_video: u32::MAX,
        regenerations_per_video: u32::MAX,
        storage_bytes: u64::MAX,
        sign_ups_per_hour: u32::MAX,
    };

    /// The limits for `owner`'s actions. The local account (`--auth none`, loopback only: one
    /// person on their own machine) has none, as before accounts existed.
    pub fn applying_to(self, owner: AccountId) -> Quotas {
        if owner == AccountId::LOCAL { Quotas::UNLIMITED } else { self }
    }

    /// Whether the account may queue one more run (a new video's first, a continue, a retry, a
    /// regeneration).
    pub fn check_run(&self, usage: Usage) -> Result<(), LimitReached> {
        if usage.active_runs >= self.active_runs {
            return Err(LimitReached::ActiveRuns { limit: self.active_runs });
        }
        if usage.storage_bytes >= self.storage_bytes {
            return Err(LimitReached::Storage { used: usage.storage_bytes, limit: self.storage_bytes });
        }
        Ok(())
    }

    pub fn check_new_video(&self, usage: Usage) -> Result<(), LimitReached> {
        if usage.videos_last_hour >= self.videos_per_hour {
            return Err(LimitReached::VideosPerHour { limit: self.videos_per_hour });
        }
        self.check_run(usage)
    }

    /// `count` of something per video (edits, branches, regenerations) against its limit.
    pub fn check_count(count: usize, limit: u32, reached: fn(u32) -> LimitReached) -> Result<(), LimitReached> {
        if count >= limit as usize { Err(reached(limit)) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_refuses_at_its_number() {
        let q = Quotas { videos_per_hour: 2, active_runs: 3, storage_bytes: 100, ..Quotas::default() };
        assert_eq!(q.check_new_video(Usage { videos_last_hour: 1, active_runs: 2, storage_bytes: 99 }), Ok(()));
        assert_eq!(q.check_new_video(Usage { videos_last_hour: 2, ..Usage::default() }), Err(LimitReached::VideosPerHour { limit: 2 }));
        assert_eq!(q.check_run(Usage { active_runs: 3, ..Usage::default() }), Err(LimitReached::ActiveRuns { limit: 3 }));
        assert_eq!(q.check_run(Usage { storage_bytes: 100, ..Usage::default() }), Err(LimitReached::Storage { used: 100, limit: 100 }));
        assert_eq!(Quotas::check_count(4, 5, |limit| LimitReached::Edits { limit }), Ok(()));
        assert_eq!(Quotas::check_count(5, 5, |limit| LimitReached::Edits { limit }), Err(LimitReached::Edits { limit: 5 }));
    }

    #[test]
    fn the_local_account_has_no_limits() {
        let q = Quotas { active_runs: 0, ..Quotas::default() };
        assert_eq!(q.applying_to(AccountId::LOCAL).check_run(Usage::default()), Ok(()));
        assert!(q.applying_to(AccountId(uuid::Uuid::from_u128(7))).check_run(Usage::default()).is_err());
    }

    #[test]
    fn limits_say_what_and_what_next() {
        let l = LimitReached::Storage { used: 3 << 20, limit: 2 << 20 };
        assert_eq!(l.to_string(), "Your videos use 3 MB of the 2 MB allowed");
        assert_eq!(
            LimitReached::SignUps { limit: 1 }.to_string(),
            "An account was made from your address in the last hour, the most allowed"
        );
        assert_eq!(
            LimitReached::SignUps { limit: 3 }.to_string(),
            "3 accounts were made from your address in the last hour, the most allowed"
        );
        assert_eq!(LimitReached::VideosPerHour { limit: 1 }.to_string(), "You have made a video in the last hour, the most allowed");
        assert!(!l.next_step().is_empty());
    }
}
