//! The providers file (SPEC §7): one TOML table per phase, a table left out means the local
//! provider. Keys come from the environment variables the file names, never from the file.
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

use super::Endpoint;
use super::openai::{OpenAiImages, OpenAiScript};
use super::replicate::{Replicate, ReplicateClips, ReplicateImages};
use super::speech::OpenAiSpeech;
use crate::pipeline::providers::Providers;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Openai,
    Replicate,
    Local,
}

/// One phase's table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseTable {
    pub kind: Option<Kind>,
    pub base_url: Option<String>,
    pub model: Option<String>,
    /// Replicate: a model version hash instead of `model`.
    pub version: Option<String>,
    pub api_key_env: Option<String>,
    pub price_per_1k_input_tokens: Option<f64>,
    pub price_per_1k_output_tokens: Option<f64>,
    pub price_per_image: Option<f64>,
    pub price_per_second: Option<f64>,
    pub price_per_1k_chars: Option<f64>,
    /// OpenAI images: the size asked for (the answer is scaled to the video's format anyway).
    pub size: Option<String>,
    /// Replicate clips: the input field that takes the still (models differ; default "image").
    pub image_field: Option<String>,
    /// Replicate: how long a prediction usually runs, in seconds, for cost estimates (default 10).
    pub expected_seconds: Option<f64>,
    /// How long one HTTP exchange may take, in milliseconds (default 90000).
    pub timeout_ms: Option<u64>,
    /// Replicate: how often a running prediction is polled, in milliseconds (default 1000).
    pub poll_ms: Option<u64>,
    /// Replicate: how long a prediction may run before it is cancelled and its try fails, in
    /// milliseconds (default 1800000, 30 minutes).
    pub max_wait_ms: Option<u64>,
    /// Narration: the remote provider's own voice (e.g. "alloy").
    pub voice: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersFile {
    pub script: Option<PhaseTable>,
    pub storyboard: Option<PhaseTable>,
    pub clips: Option<PhaseTable>,
    pub narration: Option<PhaseTable>,
}

pub use crate::domain::ProviderSetting as PhaseSetting;

pub type Settings = Vec<PhaseSetting>;

impl ProvidersFile {
    /// Reads and checks a providers file; the error names the file and the bad key.
    pub fn load(path: &std::path::Path) -> Result<ProvidersFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the providers file {}: {e}", path.display()))?;
        ProvidersFile::parse(&text).map_err(|e| format!("the providers file {} is invalid: {e}", path.display()))
    }

    /// Reads and checks the text of a providers file.
    pub fn parse(text: &str) -> Result<ProvidersFile, String> {
        let file: ProvidersFile = toml::from_str(text).map_err(|e| e.to_string())?;
        file.check()?;
        Ok(file)
    }

    fn check(&self) -> Result<(), String> {
        let allowed: [(&str, &Option<PhaseTable>, &[Kind]); 4] = [
            ("script", &self.script, &[Kind::Openai, Kind::Local]),
            ("storyboard", &self.storyboard, &[Kind::Openai, Kind::Replicate, Kind::Local]),
            ("clips", &self.clips, &[Kind::Replicate, Kind::Local]),
            ("narration", &self.narration, &[Kind::Openai, Kind::Local]),
        ];
        for (phase, table, kinds) in allowed {
            let Some(table) = table else { continue };
            let kind = table.kind.ok_or_else(|| format!("[{phase}] needs a kind"))?;
            if !kinds.contains(&kind) {
                return Err(format!("[{phase}] cannot be kind = {kind:?} (allowed: {kinds:?})").to_lowercase());
            }
            if kind != Kind::Local {
                table.remote_fields(phase, kind)?;
            }
        }
        Ok(())
    }

    /// The providers this file chooses, over the local ones for every phase it leaves out.
    /// `env` reads a key's variable (the process environment, or a test's map).
    pub fn build(&self, local: Providers, env: &dyn Fn(&str) -> Option<String>) -> Providers {
        let mut p = local;
        if let Some(t) = self.script.as_ref().filter(|t| t.kind == Some(Kind::Openai)) {
            p.script = Arc::new(OpenAiScript::new(t.endpoint("OpenAI", env), t));
        }
        match self.storyboard.as_ref().map(|t| (t, t.kind)) {
            Some((t, Some(Kind::Openai))) => p.storyboard = Arc::new(OpenAiImages::new(t.endpoint("OpenAI", env), t)),
            Some((t, Some(Kind::Replicate))) => p.storyboard = Arc::new(ReplicateImages(t.replicate(env))),
            _ => {}
        }
        if let Some(t) = self.clips.as_ref().filter(|t| t.kind == Some(Kind::Replicate)) {
            p.clips =
                Arc::new(ReplicateClips { replicate: t.replicate(env), image_field: t.image_field.clone().unwrap_or("image".into()) });
        }
        if let Some(t) = self.narration.as_ref().filter(|t| t.kind == Some(Kind::Openai)) {
            p.narration = Arc::new(OpenAiSpeech::new(t.endpoint("OpenAI", env), t));
        }
        p.settings = Arc::new(self.settings(env));
        p
    }

    /// Per phase: the provider and model in use, whether its key is set, and its prices.
    pub fn settings(&self, env: &dyn Fn(&str) -> Option<String>) -> Settings {
        let phases = [("Script", &self.script), ("Storyboard", &self.storyboard), ("Clips", &self.clips), ("Narration", &self.narration)];
        let mut rows: Settings = phases.into_iter().map(|(phase, table)| setting(phase, table.as_ref(), env)).collect();
        if self.narration.as_ref().is_none_or(|t| t.kind == Some(Kind::Local)) {
            rows[3].model = "eSpeak NG (Debian's espeak-ng)".into();
        }
        rows
    }
}

fn setting(phase: &str, table: Option<&PhaseTable>, env: &dyn Fn(&str) -> Option<String>) -> PhaseSetting {
    let local = PhaseSetting {
        phase: phase.into(),
        provider: "local (offline)".into(),
        model: "built in".into(),
        base_url: String::new(),
        key_env: String::new(),
        key_present: false,
        prices: "nominal".into(),
    };
    let Some(t) = table.filter(|t| t.kind.is_some_and(|k| k != Kind::Local)) else { return local };
    let key_env = t.api_key_env.clone().unwrap_or_default();
    PhaseSetting {
        provider: format!("{:?}", t.kind.expect("checked")).to_lowercase(),
        model: t.model.clone().or_else(|| t.version.clone()).unwrap_or_default(),
        base_url: t.base_url.clone().unwrap_or_default(),
        key_present: env(&key_env).is_some_and(|k| !k.is_empty()),
        key_env,
        prices: t.prices(),
        ..local
    }
}

impl PhaseTable {
    fn remote_fields(&self, phase: &str, kind: Kind) -> Result<(), String> {
        let base = self.base_url.as_deref().ok_or_else(|| format!("[{phase}] needs base_url"))?;
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(format!("[{phase}] base_url must start with https:// or http://"));
        }
        // The settings page shows base_url to every signed-in person: no secret may ride in it.
        let authority = base.split_once("://").map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
        if authority.contains('@') || base.contains(['?', '#']) {
            return Err(format!("[{phase}] base_url must carry no user, password or query: the key goes in api_key_env"));
        }
        if self.api_key_env.as_deref().is_none_or(str::is_empty) {
            return Err(format!("[{phase}] needs api_key_env, the environment variable that holds the key"));
        }
        if self.model.is_none() && !(kind == Kind::Replicate && self.version.is_some()) {
            return Err(format!("[{phase}] needs a model{}", if kind == Kind::Replicate { " or a version" } else { "" }));
        }
        let prices = [
            self.price_per_1k_input_tokens,
            self.price_per_1k_output_tokens,
            self.price_per_image,
            self.price_per_second,
            self.price_per_1k_chars,
        ];
        if prices.into_iter().flatten().any(|p| !p.is_finite() || p < 0.0) {
            return Err(format!("[{phase}] prices must be zero or more US dollars"));
        }
        Ok(())
    }

    fn endpoint(&self, name: &'static str, env: &dyn Fn(&str) -> Option<String>) -> Endpoint {
        let key_env = self.api_key_env.clone().unwrap_or_default();
        let key = env(&key_env).filter(|k| !k.is_empty());
        let timeout = Duration::from_millis(self.timeout_ms.unwrap_or(90_000).clamp(100, 600_000));
        Endpoint::new(name, self.base_url.as_deref().unwrap_or_default(), &key_env, key, timeout)
    }

    fn replicate(&self, env: &dyn Fn(&str) -> Option<String>) -> Replicate {
        Replicate {
            endpoint: self.endpoint("Replicate", env),
            model: self.model.clone(),
            version: self.version.clone(),
            price_per_second: self.price_per_second.unwrap_or(0.0),
            expected_seconds: self.expected_seconds.unwrap_or(10.0).max(0.0),
            poll: Duration::from_millis(self.poll_ms.unwrap_or(1000).clamp(10, 60_000)),
            max_wait: Duration::from_millis(self.max_wait_ms.unwrap_or(1_800_000).clamp(100, 86_400_000)),
        }
    }

    fn prices(&self) -> String {
        let priced = [
            (self.price_per_1k_input_tokens, "per 1k input tokens"),
            (self.price_per_1k_output_tokens, "per 1k output tokens"),
            (self.price_per_image, "per image"),
            (self.price_per_second, "per second of prediction"),
            (self.price_per_1k_chars, "per 1k characters"),
        ];
        let parts: Vec<String> = priced.iter().filter_map(|(p, what)| p.map(|p| format!("${p} {what}"))).collect();
        if parts.is_empty() { "no price set (costs $0)".into() } else { parts.join(", ") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = r#"
[script]
kind = "openai"
base_url = "https://api.openai.com/v1"
model = "gpt-4o-mini"
api_key_env = "OPENAI_API_KEY"
price_per_1k_input_tokens = 0.00015
price_per_1k_output_tokens = 0.0006

[storyboard]
kind = "openai"
base_url = "https://api.openai.com/v1"
model = "gpt-image-1"
api_key_env = "OPENAI_API_KEY"
price_per_image = 0.04

[clips]
kind = "replicate"
base_url = "https://api.replicate.com/v1"
model = "owner/model-name"
api_key_env = "REPLICATE_API_TOKEN"
price_per_second = 0.0014

[narration]
kind = "openai"
base_url = "https://api.openai.com/v1"
model = "gpt-4o-mini-tts"
voice = "alloy"
api_key_env = "OPENAI_API_KEY"
price_per_1k_chars = 0.015
"#;

    fn parse(text: &str) -> Result<ProvidersFile, String> {
        ProvidersFile::parse(text)
    }

    #[test]
    fn the_spec_example_reads_and_chooses_remote_providers() {
        let file = parse(SPEC_EXAMPLE).unwrap();
        let env = |name: &str| (name == "OPENAI_API_KEY").then(|| "sk-test".to_string());
        let providers = file.build(Providers::instant(), &env);
        assert_eq!(providers.script.id(), "openai-chat/gpt-4o-mini@https://api.openai.com/v1");
        assert_eq!(providers.clips.id(), "replicate-clips/owner/model-name@https://api.replicate.com/v1");
        assert_eq!(providers.render.id(), "instant/1", "render stays local");
        let settings = file.settings(&env);
        assert_eq!(*providers.settings, settings, "the settings page shows what was built");
        assert_eq!(settings[0].provider, "openai");
        assert!(settings[0].key_present && !settings[2].key_present, "{settings:?}");
        assert!(settings[2].prices.contains("$0.0014 per second"));
        assert!(!format!("{settings:?}").contains("sk-test"), "the key never reaches the settings");
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let cases = [
            ("[script]\nkind = \"replicate\"", "cannot be kind"),
            ("[clips]\nkind = \"openai\"", "cannot be kind"),
            ("[script]\nkind = \"openai\"\nmodel = \"m\"\napi_key_env = \"K\"", "needs base_url"),
            ("[script]\nkind = \"openai\"\nbase_url = \"ftp://x\"\nmodel = \"m\"\napi_key_env = \"K\"", "must start with"),
            ("[script]\nkind = \"openai\"\nbase_url = \"https://x\"\nmodel = \"m\"", "needs api_key_env"),
            ("[script]\nkind = \"openai\"\nbase_url = \"https://x\"\napi_key_env = \"K\"", "needs a model"),
            ("[script]\nkind = \"openai\"\nbase_url = \"https://x\"\nmodel = \"m\"\napi_key_env = \"K\"\nprice_per_image = -1.0", "prices"),
            ("[script]\nkind = \"openai\"\napi_key = \"sk-in-the-file\"", "unknown field"),
            ("[sound]\nkind = \"local\"", "unknown field"),
            (
                "[script]\nkind = \"openai\"\nbase_url = \"https://u:sk-1@proxy/v1\"\nmodel = \"m\"\napi_key_env = \"K\"",
                "no user, password",
            ),
            ("[script]\nkind = \"openai\"\nbase_url = \"https://proxy/v1?key=sk-1\"\nmodel = \"m\"\napi_key_env = \"K\"", "or query"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
