//! Typed ids: one newtype per entity so a run id can never be passed where a checkpoint id goes.
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use super::validate::InvalidInput;

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub const WHAT: &'static str = $what;

            /// Parses user input; the error names the field so the page can show it next to it.
            pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidInput> {
                Uuid::parse_str(raw.trim()).map(Self).map_err(|_| InvalidInput {
                    field: field.to_string(),
                    message: format!("\"{}\" is not a valid {} id", truncate(raw, 64), $what),
                })
            }
        }

        /// A stored id: the text column holds the uuid.
        impl TryFrom<String> for $name {
            type Error = uuid::Error;
            fn try_from(raw: String) -> Result<Self, uuid::Error> {
                Uuid::parse_str(&raw).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(VideoId, "video");
id_type!(CheckpointId, "checkpoint");
id_type!(BranchId, "branch");
id_type!(RunId, "run");
id_type!(AccountId, "account");

fn truncate(raw: &str, max: usize) -> String {
    if raw.chars().count() <= max {
        raw.to_string()
    } else {
        let cut: String = raw.chars().take(max).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_ids_name_the_field_and_the_kind() {
        let err = VideoId::parse("video_id", "not-a-uuid").unwrap_err();
        assert_eq!(err.field, "video_id");
        assert!(err.message.contains("not a valid video id"), "{}", err.message);
        let long = "x".repeat(500);
        let err = CheckpointId::parse("checkpoint_id", &long).unwrap_err();
        assert!(err.message.len() < 120, "long input is cut in the message");
    }

    #[test]
    fn ids_round_trip_through_text() {
        let id = RunId(Uuid::from_u128(42));
        assert_eq!(RunId::parse("run", &id.to_string()).unwrap(), id);
    }
}
