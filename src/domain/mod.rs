//! The pure core: ids, phases, checkpoints, branches, runs, artifacts, fault plans, the rule table
//! and the read model of one video with its projection for the status page (`video`).
//!
//! Nothing in here touches a database, a clock, a random source or the web: time and new ids
//! are passed in, so every rule can be tested exhaustively.

pub mod account;
pub mod fault;
pub mod ids;
pub mod manifest;
pub mod model;
pub mod narration;
pub mod quota;
mod records;
pub mod rules;
pub mod script;
pub mod settings;
pub mod validate;
pub mod video;
pub mod words;

pub use account::{Account, AccountId, Denial, Email, Password};
pub use fault::{FaultAction, FaultPlan, FaultRule};
pub use ids::{BranchId, CheckpointId, RunId, VideoId};
pub use manifest::{BlobRef, ClipRef, Manifest, NarrationRef};
pub use model::{BranchStatus, CheckpointStatus, Entity, Origin, Phase, RunKind, RunStatus, Timestamp, TryOutcome, UnknownWord};
pub use narration::Narration;
pub use quota::{LimitReached, Quotas, Usage};
pub use rules::{BranchView, Decision, HeadView, Refusal, RunView, decide};
pub use script::{Beat, Script};
pub use settings::ProviderSetting;
pub use validate::{BranchName, InvalidInput, NewVideo};
pub use video::Video;
