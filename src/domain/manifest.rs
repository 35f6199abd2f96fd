//! What a checkpoint holds: the artifacts of its phase, by content address.
use serde::{Deserialize, Serialize};

use super::ids::VideoId;
use super::model::Phase;
use super::script::Script;

/// A stored blob, addressed by the sha-256 of its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobRef {
    pub sha256: String,
    pub bytes: u64,
    pub media_type: String,
}

impl BlobRef {
    /// Where the blob is served from, under the video that shows it: the server checks that the
    /// person asking owns that video and that the video holds the blob.
    pub fn url(&self, video: VideoId) -> String {
        let ext = match self.media_type.as_str() {
            "image/png" => "png",
            "video/mp4" => "mp4",
            "audio/wav" => "wav",
            "text/vtt" => "vtt",
            _ => "bin",
        };
        format!("/artifacts/videos/{video}/{}/{}.{ext}", &self.sha256[..2], self.sha256)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipRef {
    /// Encoded frames in the project's own framing, concatenated by the render phase.
    pub stream: BlobRef,
    /// A playable MP4 of this clip alone, for previews.
    pub preview: BlobRef,
    pub frames: u32,
}

/// One beat's spoken narration (48 kHz mono WAV) and how long it really lasts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NarrationRef {
    pub audio: BlobRef,
    pub duration_ms: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Manifest {
    Script {
        script: Script,
        seed: u64,
    },
    /// The stills and, unless the script is silent, each beat's narration.
    Storyboard {
        frames: Vec<BlobRef>,
        seeds: Vec<u64>,
        #[serde(default)]
        narrations: Vec<NarrationRef>,
    },
    Clips {
        clips: Vec<ClipRef>,
        seeds: Vec<u64>,
    },
    /// The video, its poster and (unless captions are burned in) its WebVTT captions.
    Render {
        video: BlobRef,
        poster: BlobRef,
        duration_ms: u32,
        frames: u32,
        #[serde(default)]
        captions: Option<BlobRef>,
    },
}

impl Manifest {
    pub fn phase(&self) -> Phase {
        match self {
            Manifest::Script { .. } => Phase::Script,
            Manifest::Storyboard { .. } => Phase::Storyboard,
            Manifest::Clips { .. } => Phase::Clips,
            Manifest::Render { .. } => Phase::Render,
        }
    }

    /// Every blob this manifest keeps alive (for garbage collection).
    pub fn blobs(&self) -> Vec<&BlobRef> {
        match self {
            Manifest::Script { .. } => vec![],
            Manifest::Storyboard { frames, narrations, .. } => frames.iter().chain(narrations.iter().map(|n| &n.audio)).collect(),
            Manifest::Clips { clips, .. } => clips.iter().flat_map(|c| [&c.stream, &c.preview]).collect(),
            Manifest::Render { video, poster, captions, .. } => [video, poster].into_iter().chain(captions).collect(),
        }
    }

    /// Per-beat seeds of a storyboard or clips manifest.
    pub fn seeds(&self) -> Option<&[u64]> {
        match self {
            Manifest::Storyboard { seeds, .. } | Manifest::Clips { seeds, .. } => Some(seeds),
            _ => None,
        }
    }

    pub fn script(&self) -> Option<&Script> {
        match self {
            Manifest::Script { script, .. } => Some(script),
            _ => None,
        }
    }
}
