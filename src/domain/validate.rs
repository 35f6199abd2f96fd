//! Input validation: what a person may type, with errors that name the field.
use serde::{Deserialize, Serialize};
use std::fmt;

use super::fault::FaultPlan;

/// A rejected input: which field, and a sentence about what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidInput {
    pub field: String,
    pub message: String,
}

impl InvalidInput {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for InvalidInput {}

/// A branch name: `[a-z0-9][a-z0-9-_]{0,39}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BranchName(String);

impl BranchName {
    pub const MAIN: &'static str = "main";

    pub fn parse(raw: &str) -> Result<BranchName, InvalidInput> {
        let bad = |why: &str| {
            InvalidInput::new("branch_name", format!("{why}; use 1–40 of a-z, 0-9, '-' and '_', starting with a letter or digit"))
        };
        let mut chars = raw.chars();
        match chars.next() {
            None => return Err(bad("the branch name is empty")),
            Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit()) => {
                return Err(bad("a branch name must start with a lowercase letter or a digit"));
            }
            _ => {}
        }
        if raw.chars().count() > 40 {
            return Err(bad("the branch name is longer than 40 characters"));
        }
        if let Some(c) = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')) {
            return Err(bad(&format!("'{c}' is not allowed in a branch name")));
        }
        Ok(BranchName(raw.to_string()))
    }

    pub fn main() -> BranchName {
        BranchName(Self::MAIN.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BranchName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const MAX_PROMPT_CHARS: usize = 2000;
pub const MAX_BEATS: u32 = 12;

/// A validated request for a new video.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewVideo {
    pub prompt: String,
    pub beats: u32,
    pub auto_continue: bool,
    pub fault_plan: FaultPlan,
    /// Budget in micro-dollars; `None` is unlimited.
    pub budget_micros: Option<i64>,
}

impl NewVideo {
    /// Validates the form's raw values. A fault plan is only accepted when the server runs with
    /// fault injection, so a production server can never be made to fail on purpose.
    pub fn parse(
        prompt: &str,
        beats: u32,
        auto_continue: bool,
        fault_plan_json: Option<&str>,
        fault_injection_enabled: bool,
    ) -> Result<NewVideo, InvalidInput> {
        let prompt = prompt.trim();
        if prompt.is_empty() {
            return Err(InvalidInput::new("prompt", "describe the video you want in the prompt"));
        }
        if prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(InvalidInput::new(
                "prompt",
                format!("the prompt is longer than {MAX_PROMPT_CHARS} characters ({})", prompt.chars().count()),
            ));
        }
        if !(1..=MAX_BEATS).contains(&beats) {
            return Err(InvalidInput::new("beats", format!("a video has 1 to {MAX_BEATS} beats, not {beats}")));
        }
        let fault_plan = match fault_plan_json.map(str::trim).filter(|s| !s.is_empty()) {
            None => FaultPlan::default(),
            Some(_) if !fault_injection_enabled => {
                return Err(InvalidInput::new("fault_plan", "fault plans are only accepted when the server runs with --fault-injection"));
            }
            Some(json) => FaultPlan::parse(json, beats)?,
        };
        Ok(NewVideo { prompt: prompt.to_string(), beats, auto_continue, fault_plan, budget_micros: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_follow_the_rule() {
        for ok in ["main", "a", "alt-1", "x_y", "0abc", &"a".repeat(40)] {
            assert!(BranchName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "_a", "Alt", "a b", "a/b", "ü", &"a".repeat(41)] {
            let err = BranchName::parse(bad).unwrap_err();
            assert_eq!(err.field, "branch_name", "{bad}");
        }
        assert!(BranchName::parse("a/b").unwrap_err().message.contains("'/'"));
    }

    #[test]
    fn new_video_rejects_bad_fields_by_name() {
        assert_eq!(NewVideo::parse("  ", 4, false, None, false).unwrap_err().field, "prompt");
        assert_eq!(NewVideo::parse(&"p".repeat(2001), 4, false, None, false).unwrap_err().field, "prompt");
        assert_eq!(NewVideo::parse("p", 0, false, None, false).unwrap_err().field, "beats");
        assert_eq!(NewVideo::parse("p", 13, false, None, false).unwrap_err().field, "beats");
        let plan = r#"[{"phase":2,"action":"fail"}]"#;
        let err = NewVideo::parse("p", 4, false, Some(plan), false).unwrap_err();
        assert_eq!(err.field, "fault_plan");
        assert!(err.message.contains("--fault-injection"));
        let ok = NewVideo::parse(" p ", 4, true, Some(plan), true).unwrap();
        assert_eq!(ok.prompt, "p");
        assert_eq!(ok.fault_plan.rules.len(), 1);
        assert!(NewVideo::parse("p", 4, false, Some("  "), false).is_ok(), "an empty plan is no plan");
    }
}
