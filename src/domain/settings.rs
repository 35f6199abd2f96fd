//! What the settings page shows about the provider of one phase.
use serde::{Deserialize, Serialize};

/// One phase's provider: never the key, only whether it is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderSetting {
    pub phase: String,
    pub provider: String,
    pub model: String,
    pub base_url: String,
    pub key_env: String,
    pub key_present: bool,
    pub prices: String,
}
