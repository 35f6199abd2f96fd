//! Fault plans (SPEC §7): rules that make a phase fail, hang, slow down or crash the process, on purpose.
use serde::{Deserialize, Serialize};

use super::model::Phase;
use super::validate::InvalidInput;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    Fail,
    Hang,
    Delay,
    Crash,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    pub phase: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beat: Option<u32>,
    pub action: FaultAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    /// Phase 2 only: the rule hits the beat's narration instead of its still.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub narration: bool,
}

impl FaultRule {
    pub fn phase(&self) -> Phase {
        Phase::from_number(i64::from(self.phase)).expect("validated on parse")
    }

    /// How many runs of a unit this rule affects (`fail` and `crash` only).
    pub fn times(&self) -> u32 {
        self.times.unwrap_or(1)
    }

    pub fn message(&self) -> &str {
        self.message.as_deref().unwrap_or("Injected failure")
    }

    /// Whether the rule hits a unit: of `phase`, making `beat`, a narration unit or not.
    pub fn matches(&self, phase: Phase, beat: Option<u32>, narration: bool) -> bool {
        self.phase == phase.number() && (self.beat.is_none() || self.beat == beat) && self.narration == narration
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultPlan {
    pub rules: Vec<FaultRule>,
}

impl FaultPlan {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Parses and checks a plan for a video of `beats` beats; the error names the bad field.
    pub fn parse(json: &str, beats: u32) -> Result<FaultPlan, InvalidInput> {
        if json.len() > 16 * 1024 {
            return Err(InvalidInput::new("fault_plan", "the fault plan is larger than 16 KB"));
        }
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| InvalidInput::new("fault_plan", format!("the fault plan is not valid JSON: {e}")))?;
        let items = value.as_array().ok_or_else(|| InvalidInput::new("fault_plan", "the fault plan must be a JSON array of rules"))?;
        if items.len() > 32 {
            return Err(InvalidInput::new("fault_plan", "a fault plan has at most 32 rules"));
        }
        let mut rules = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let field = |name: &str| format!("fault_plan[{i}].{name}");
            let obj = item.as_object().ok_or_else(|| InvalidInput::new(format!("fault_plan[{i}]"), "each rule must be a JSON object"))?;
            if let Some(unknown) =
                obj.keys().find(|k| !["phase", "beat", "action", "times", "message", "ms", "narration"].contains(&k.as_str()))
            {
                return Err(InvalidInput::new(field(unknown), format!("unknown field \"{unknown}\"")));
            }
            let rule = FaultRule {
                phase: match obj.get("phase") {
                    None => return Err(InvalidInput::new(field("phase"), "every rule needs a phase (1 to 4)")),
                    Some(v) => v
                        .as_u64()
                        .and_then(|n| u8::try_from(n).ok())
                        .ok_or_else(|| InvalidInput::new(field("phase"), format!("phase must be a number 1 to 4, not {v}")))?,
                },
                beat: optional_u64(obj, "beat", &field)?.map(|b| u32::try_from(b).unwrap_or(u32::MAX)),
                action: match obj.get("action") {
                    None => return Err(InvalidInput::new(field("action"), "every rule needs an action: fail, hang, delay or crash")),
                    Some(v) => serde_json::from_value(v.clone())
                        .map_err(|_| InvalidInput::new(field("action"), format!("action must be fail, hang, delay or crash, not {v}")))?,
                },
                times: optional_u64(obj, "times", &field)?.map(|t| u32::try_from(t).unwrap_or(u32::MAX)),
                message: match obj.get("message") {
                    None => None,
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(v) => return Err(InvalidInput::new(field("message"), format!("message must be text, not {v}"))),
                },
                ms: optional_u64(obj, "ms", &field)?,
                narration: match obj.get("narration") {
                    None => false,
                    Some(serde_json::Value::Bool(b)) => *b,
                    Some(v) => return Err(InvalidInput::new(field("narration"), format!("narration must be true or false, not {v}"))),
                },
            };
            if rule.narration && rule.phase != 2 {
                return Err(InvalidInput::new(field("narration"), "narration units are in phase 2 only"));
            }
            if !(1..=4).contains(&rule.phase) {
                return Err(InvalidInput::new(field("phase"), format!("phase must be 1 to 4, not {}", rule.phase)));
            }
            if let Some(beat) = rule.beat {
                if rule.phase == 1 || rule.phase == 4 {
                    return Err(InvalidInput::new(field("beat"), format!("phase {} has one unit, not one per beat", rule.phase)));
                }
                if beat >= beats {
                    return Err(InvalidInput::new(field("beat"), format!("beat {beat} does not exist in a {beats}-beat video (0-based)")));
                }
            }
            if rule.times.is_some() && !matches!(rule.action, FaultAction::Fail | FaultAction::Crash) {
                return Err(InvalidInput::new(field("times"), "times applies to fail and crash only"));
            }
            if rule.times == Some(0) || rule.times.is_some_and(|t| t > 100) {
                return Err(InvalidInput::new(field("times"), "times must be 1 to 100"));
            }
            match rule.action {
                FaultAction::Delay => match rule.ms {
                    None => return Err(InvalidInput::new(field("ms"), "a delay needs ms")),
                    Some(ms) if ms > 600_000 => return Err(InvalidInput::new(field("ms"), "a delay is at most 600000 ms")),
                    _ => {}
                },
                _ if rule.ms.is_some() => return Err(InvalidInput::new(field("ms"), "ms applies to delay only")),
                _ => {}
            }
            if rule.message.is_some() && rule.action != FaultAction::Fail {
                return Err(InvalidInput::new(field("message"), "message applies to fail only"));
            }
            if rule.message.as_ref().is_some_and(|m| m.chars().count() > 500) {
                return Err(InvalidInput::new(field("message"), "the message is longer than 500 characters"));
            }
            rules.push(rule);
        }
        Ok(FaultPlan { rules })
    }
}

fn optional_u64(
    obj: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    field: &dyn Fn(&str) -> String,
) -> Result<Option<u64>, InvalidInput> {
    match obj.get(name) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| InvalidInput::new(field(name), format!("{name} must be a whole number, not {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_parses() {
        let plan =
            FaultPlan::parse(r#"[{"phase":2,"beat":0,"action":"fail","times":1,"message":"Replicate API error: 502 Bad Gateway"}]"#, 8)
                .unwrap();
        let rule = &plan.rules[0];
        assert_eq!(rule.phase(), Phase::Storyboard);
        assert!(rule.matches(Phase::Storyboard, Some(0), false));
        assert!(!rule.matches(Phase::Storyboard, Some(1), false));
        assert!(!rule.matches(Phase::Storyboard, Some(0), true), "a still's rule leaves the narration alone");
        assert_eq!(rule.message(), "Replicate API error: 502 Bad Gateway");
    }

    #[test]
    fn defaults_apply() {
        let plan = FaultPlan::parse(r#"[{"phase":3,"action":"fail"},{"phase":4,"action":"crash"},{"phase":2,"action":"delay","ms":10},{"phase":1,"action":"hang"}]"#, 4).unwrap();
        assert_eq!(plan.rules[0].times(), 1);
        assert_eq!(plan.rules[0].message(), "Injected failure");
        assert!(plan.rules[0].matches(Phase::Clips, Some(3), false), "no beat = every unit");
        let plan = FaultPlan::parse(r#"[{"phase":2,"beat":1,"narration":true,"action":"fail"}]"#, 4).unwrap();
        assert!(plan.rules[0].matches(Phase::Storyboard, Some(1), true) && !plan.rules[0].matches(Phase::Storyboard, Some(1), false));
    }

    #[test]
    fn bad_plans_name_the_field() {
        let cases = [
            ("{}", "fault_plan"),
            ("nope", "fault_plan"),
            (r#"[1]"#, "fault_plan[0]"),
            (r#"[{"phase":5,"action":"fail"}]"#, "fault_plan[0].phase"),
            (r#"[{"phase":2,"action":"explode"}]"#, "fault_plan[0].action"),
            (r#"[{"phase":2}]"#, "fault_plan[0].action"),
            (r#"[{"action":"fail"}]"#, "fault_plan[0].phase"),
            (r#"[{"phase":2,"beat":9,"action":"fail"}]"#, "fault_plan[0].beat"),
            (r#"[{"phase":1,"beat":0,"action":"fail"}]"#, "fault_plan[0].beat"),
            (r#"[{"phase":2,"action":"fail","times":0}]"#, "fault_plan[0].times"),
            (r#"[{"phase":2,"action":"hang","times":2}]"#, "fault_plan[0].times"),
            (r#"[{"phase":2,"action":"delay"}]"#, "fault_plan[0].ms"),
            (r#"[{"phase":2,"action":"fail","colour":"red"}]"#, "fault_plan[0].colour"),
            (r#"[{"phase":2,"action":"fail","times":"x"}]"#, "fault_plan[0].times"),
            (r#"[{"phase":2,"action":"fail"},{"phase":"2","action":"fail"}]"#, "fault_plan[1].phase"),
            (r#"[{"phase":3,"narration":true,"action":"fail"}]"#, "fault_plan[0].narration"),
            (r#"[{"phase":2,"narration":"yes","action":"fail"}]"#, "fault_plan[0].narration"),
        ];
        for (json, field) in cases {
            let err = FaultPlan::parse(json, 8).unwrap_err();
            assert_eq!(err.field, field, "{json}: {}", err.message);
        }
    }
}
