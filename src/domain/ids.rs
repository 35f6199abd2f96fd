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

            /// A new id, ordered by when it was made (see `new_row_id`).
            #[cfg(feature = "ssr")]
            pub fn fresh() -> Self {
                Self(new_row_id())
            }

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

/// A new row id: a UUIDv7, whose first 48 bits are the time in milliseconds and whose other 74
/// are random (and, within one millisecond, one process's ids still increase). Rows keyed by
/// time-ordered ids go to the end of their indexes: a commit's new rows share the last pages of
/// each index instead of landing on random ones (with UUIDv4 ids a run's commits wrote ~80 more
/// SQLite pages). The id shows when the row was made, which every page shows anyway; the random
/// part keeps it unguessable, and every read checks who owns it regardless.
#[cfg(feature = "ssr")]
pub fn new_row_id() -> Uuid {
    Uuid::now_v7()
}

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

    /// The stored text of new ids sorts in the order they were made, within one millisecond
    /// too: what keeps a commit's new rows at the end of each index.
    #[cfg(feature = "ssr")]
    #[test]
    fn new_ids_sort_as_text_in_the_order_they_were_made() {
        let made: Vec<String> = (0..2_000).map(|_| RunId::fresh().to_string()).collect();
        assert!(made.windows(2).all(|w| w[0] < w[1]), "ids out of order");
        assert!(made.iter().all(|id| Uuid::parse_str(id).unwrap().get_version_num() == 7));
    }

    #[test]
    fn ids_round_trip_through_text() {
        let id = RunId(Uuid::from_u128(42));
        assert_eq!(RunId::parse("run", &id.to_string()).unwrap(), id);
    }
}
