//! The vocabulary of the model: phases, statuses, kinds and origins, with their wire names.
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch; passed in by the caller so the domain stays pure.
pub type Timestamp = i64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    #[serde(rename = "phase1_script")]
    Script,
    #[serde(rename = "phase2_storyboard")]
    Storyboard,
    #[serde(rename = "phase3_clips")]
    Clips,
    #[serde(rename = "phase4_render")]
    Render,
}

impl Phase {
    pub const ALL: [Phase; 4] = [Phase::Script, Phase::Storyboard, Phase::Clips, Phase::Render];

    pub fn number(self) -> u8 {
        match self {
            Phase::Script => 1,
            Phase::Storyboard => 2,
            Phase::Clips => 3,
            Phase::Render => 4,
        }
    }

    pub fn from_number(n: i64) -> Option<Phase> {
        match n {
            1 => Some(Phase::Script),
            2 => Some(Phase::Storyboard),
            3 => Some(Phase::Clips),
            4 => Some(Phase::Render),
            _ => None,
        }
    }

    pub fn wire(self) -> &'static str {
        match self {
            Phase::Script => "phase1_script",
            Phase::Storyboard => "phase2_storyboard",
            Phase::Clips => "phase3_clips",
            Phase::Render => "phase4_render",
        }
    }

    /// The word a person reads: "Script", "Storyboard", "Clips", "Render".
    pub fn label(self) -> &'static str {
        match self {
            Phase::Script => "Script",
            Phase::Storyboard => "Storyboard",
            Phase::Clips => "Clips",
            Phase::Render => "Render",
        }
    }

    pub fn next(self) -> Option<Phase> {
        Phase::from_number(i64::from(self.number()) + 1)
    }

    pub fn previous(self) -> Option<Phase> {
        Phase::from_number(i64::from(self.number()) - 1)
    }
}

/// A stored word or number that names no variant (a corrupt row, or one from a newer schema).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} {word:?} is not one this version knows")]
pub struct UnknownWord {
    pub what: &'static str,
    pub word: String,
}

impl TryFrom<i64> for Phase {
    type Error = UnknownWord;
    fn try_from(n: i64) -> Result<Self, UnknownWord> {
        Phase::from_number(n).ok_or_else(|| UnknownWord { what: "phase", word: n.to_string() })
    }
}

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn wire(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn from_wire(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownWord;
            fn try_from(word: String) -> Result<Self, UnknownWord> {
                $name::from_wire(&word).ok_or(UnknownWord { what: stringify!($name), word })
            }
        }

        /// The wire name, for pages and CSS classes.
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.wire())
            }
        }
    };
}

wire_enum!(CheckpointStatus { Pending => "pending", Approved => "approved" });
wire_enum!(Origin { Generated => "generated", Edited => "edited" });
wire_enum!(RunKind {
    Initial => "initial",
    Continue => "continue",
    Auto => "auto",
    Retry => "retry",
    Regenerate => "regenerate",
});
wire_enum!(
    /// How one try of one unit ended (`unit_tries.outcome`; the schema lists the same words).
    TryOutcome {
        Ok => "ok",
        Memo => "memo",
        Transient => "transient",
        Permanent => "permanent",
        Cancelled => "cancelled",
    }
);
wire_enum!(
    /// What a "not found" is about: the words of the error and the 404 page.
    Entity { Video => "video", Branch => "branch", Checkpoint => "checkpoint", Run => "run" }
);

impl Entity {
    /// The word that starts a sentence: "Video", "Branch", …
    pub fn label(self) -> &'static str {
        match self {
            Entity::Video => "Video",
            Entity::Branch => "Branch",
            Entity::Checkpoint => "Checkpoint",
            Entity::Run => "Run",
        }
    }
}

wire_enum!(RunStatus {
    Queued => "queued",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Cancelled => "cancelled",
});

impl RunStatus {
    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    pub fn is_failure(self) -> bool {
        matches!(self, RunStatus::Failed | RunStatus::Cancelled)
    }
}

/// What the status page shows for a branch (the video's status is its `main` branch's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BranchStatus {
    Processing,
    AwaitingApproval,
    Failed,
    Completed,
}

impl BranchStatus {
    pub fn wire(self) -> &'static str {
        match self {
            BranchStatus::Processing => "processing",
            BranchStatus::AwaitingApproval => "awaiting_approval",
            BranchStatus::Failed => "failed",
            BranchStatus::Completed => "completed",
        }
    }

    /// The words on the badge: "awaiting approval" rather than the wire's underscore.
    pub fn words(self) -> &'static str {
        match self {
            BranchStatus::Processing => "processing",
            BranchStatus::AwaitingApproval => "awaiting approval",
            BranchStatus::Failed => "failed",
            BranchStatus::Completed => "completed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_walk_forward_and_back() {
        assert_eq!(Phase::Script.next(), Some(Phase::Storyboard));
        assert_eq!(Phase::Render.next(), None);
        assert_eq!(Phase::Script.previous(), None);
        for p in Phase::ALL {
            assert_eq!(Phase::from_number(i64::from(p.number())), Some(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.wire()));
        }
        assert_eq!(Phase::from_number(0), None);
        assert_eq!(Phase::from_number(5), None);
    }

    #[test]
    fn wire_names_round_trip() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::from_wire(s.wire()), Some(*s));
        }
        for k in RunKind::ALL {
            assert_eq!(RunKind::from_wire(k.wire()), Some(*k));
        }
        for o in TryOutcome::ALL {
            assert_eq!(TryOutcome::from_wire(o.wire()), Some(*o));
            assert_eq!(serde_json::to_string(o).unwrap(), format!("\"{}\"", o.wire()));
        }
        for e in Entity::ALL {
            assert_eq!(serde_json::to_string(e).unwrap(), format!("\"{e}\""));
            assert_eq!(e.label().to_lowercase(), e.wire());
        }
        assert_eq!(RunStatus::from_wire("done"), None);
    }
}
