//! Work units: what each phase's units take as input, their memo keys, and how outputs become a manifest.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{CoreError, Engine, EngineConfig, mix_seed};
use crate::domain::video::{Checkpoint, Run, Video};
use crate::domain::{BlobRef, ClipRef, Manifest, Phase, Script};

#[derive(Clone, Debug)]
pub enum UnitInput {
    Script { prompt: String, beats: u32, seed: u64 },
    Frame { script: Script, index: usize, seed: u64, width: u32, height: u32 },
    Clip { still: BlobRef, prompt: String, caption: String, duration_ms: u32, fps: u32, seed: u64 },
    Render { streams: Vec<BlobRef>, poster_still: BlobRef, title: String, fps: u32 },
}

impl UnitInput {
    /// The same unit with a new seed, for the `n`th try after a moderation refusal (the memo
    /// keeps the unit's own key: what it stores is the unit's output, whichever seed made it).
    pub fn rerolled(self, n: u32) -> UnitInput {
        let new = |seed: u64| mix_seed(seed, 0x7e_4011, u64::from(n));
        match self {
            UnitInput::Script { prompt, beats, seed } => UnitInput::Script { prompt, beats, seed: new(seed) },
            UnitInput::Frame { script, index, seed, width, height } => UnitInput::Frame { script, index, seed: new(seed), width, height },
            UnitInput::Clip { still, prompt, caption, duration_ms, fps, seed } => {
                UnitInput::Clip { still, prompt, caption, duration_ms, fps, seed: new(seed) }
            }
            render @ UnitInput::Render { .. } => render,
        }
    }
}

#[derive(Clone, Debug)]
pub struct UnitPlan {
    pub index: u32,
    /// The beat this unit makes, for phases with one unit per beat.
    pub beat: Option<u32>,
    pub input: UnitInput,
    pub key: String,
}

/// A unit's result as memoized: blob references, never bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UnitOutput {
    Script { script: Script },
    Frame { frame: BlobRef },
    Clip { clip: ClipRef },
    Render { video: BlobRef, poster: BlobRef, duration_ms: u32, frames: u32 },
}

impl UnitOutput {
    pub fn blobs(&self) -> Vec<&BlobRef> {
        match self {
            UnitOutput::Script { .. } => vec![],
            UnitOutput::Frame { frame } => vec![frame],
            UnitOutput::Clip { clip } => vec![&clip.stream, &clip.preview],
            UnitOutput::Render { video, poster, .. } => vec![video, poster],
        }
    }
}

/// The memo key: phase, provider and exactly the inputs the unit reads.
pub fn memo_key(phase: Phase, provider: &str, input: &UnitInput) -> String {
    let doc = match input {
        UnitInput::Script { prompt, beats, seed } => serde_json::json!({"prompt": prompt, "beats": beats, "seed": seed}),
        UnitInput::Frame { script, index, seed, width, height } => serde_json::json!({
            "title": script.title, "beats": script.beats.len(), "index": index, "beat": script.beats[*index],
            "seed": seed, "width": width, "height": height,
        }),
        UnitInput::Clip { still, prompt, caption, duration_ms, fps, seed } => serde_json::json!({
            "still": still.sha256, "prompt": prompt, "caption": caption, "duration_ms": duration_ms, "fps": fps, "seed": seed,
        }),
        UnitInput::Render { streams, poster_still, title, fps } => serde_json::json!({
            "streams": streams.iter().map(|s| &s.sha256).collect::<Vec<_>>(), "poster": poster_still.sha256,
            "title": title, "fps": fps,
        }),
    };
    let text = serde_json::json!({"phase": phase.wire(), "provider": provider, "input": doc}).to_string();
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn parent(state: &Video, id: Option<crate::domain::CheckpointId>, phase: Phase) -> Result<&Checkpoint, CoreError> {
    let c = id
        .and_then(|id| state.checkpoint(id))
        .ok_or_else(|| CoreError::Internal(format!("the {} checkpoint this phase needs is missing", phase.label())))?;
    if c.phase != phase {
        return Err(CoreError::Internal(format!("expected a {} checkpoint, found {}", phase.label(), c.phase.label())));
    }
    Ok(c)
}

fn script_of(c: &Checkpoint) -> Result<&Script, CoreError> {
    c.manifest.script().ok_or_else(|| CoreError::Internal("script checkpoint without a script".into()))
}

/// The seeds of a beat-per-unit phase: derived from the video's seed, except the regenerated beat.
fn seeds_for(engine_seed: u64, phase: Phase, beats: usize, run: &Run, state: &Video) -> Vec<u64> {
    let mut seeds: Vec<u64> = match &run.regenerate {
        Some(regen) => state
            .checkpoint(regen.of)
            .and_then(|c| c.manifest.seeds().map(<[u64]>::to_vec))
            .filter(|s| s.len() == beats)
            .unwrap_or_else(|| (0..beats).map(|i| mix_seed(engine_seed, u64::from(phase.number()), i as u64)).collect()),
        None => (0..beats).map(|i| mix_seed(engine_seed, u64::from(phase.number()), i as u64)).collect(),
    };
    if let Some(regen) = &run.regenerate
        && let Some(s) = seeds.get_mut(regen.beat as usize)
    {
        *s = regen.seed;
    }
    seeds
}

/// Plans the units of a run from the checkpoints it starts from. Returns the plans and the seeds.
pub fn plan(engine: &Engine, state: &Video, run: &Run) -> Result<(Vec<UnitPlan>, Vec<u64>), CoreError> {
    let cfg = &engine.config;
    let (inputs, seeds) = match run.phase {
        Phase::Script => {
            let video = &state.video;
            (vec![UnitInput::Script { prompt: video.prompt.clone(), beats: video.beats, seed: video.seed }], vec![])
        }
        Phase::Storyboard => frame_inputs(cfg, state, run)?,
        Phase::Clips => clip_inputs(cfg, state, run)?,
        Phase::Render => (vec![render_input(cfg, state, run)?], vec![]),
    };
    let provider = engine.providers.id_of(run.phase);
    let per_beat = matches!(run.phase, Phase::Storyboard | Phase::Clips);
    let plans = (0u32..)
        .zip(inputs)
        .map(|(index, input)| UnitPlan { key: memo_key(run.phase, &provider, &input), index, beat: per_beat.then_some(index), input })
        .collect();
    Ok((plans, seeds))
}

/// One storyboard frame per beat of the script the run starts from.
fn frame_inputs(cfg: &EngineConfig, state: &Video, run: &Run) -> Result<(Vec<UnitInput>, Vec<u64>), CoreError> {
    let script = script_of(parent(state, run.from_checkpoint, Phase::Script)?)?;
    let seeds = seeds_for(state.video.seed, Phase::Storyboard, script.beats.len(), run, state);
    let inputs = (0..script.beats.len())
        .map(|i| UnitInput::Frame { script: script.clone(), index: i, seed: seeds[i], width: cfg.width, height: cfg.height })
        .collect();
    Ok((inputs, seeds))
}

/// One clip per storyboard frame, as long as its beat.
fn clip_inputs(cfg: &EngineConfig, state: &Video, run: &Run) -> Result<(Vec<UnitInput>, Vec<u64>), CoreError> {
    let board = parent(state, run.from_checkpoint, Phase::Storyboard)?;
    let script = script_of(parent(state, board.parent_id, Phase::Script)?)?;
    let Manifest::Storyboard { frames, .. } = &board.manifest else {
        return Err(CoreError::Internal("storyboard checkpoint without frames".into()));
    };
    let seeds = seeds_for(state.video.seed, Phase::Clips, frames.len(), run, state);
    let inputs = frames
        .iter()
        .zip(&script.beats)
        .zip(&seeds)
        .map(|((frame, beat), &seed)| UnitInput::Clip {
            still: frame.clone(),
            prompt: beat.visual.clone(),
            caption: beat.narration.clone(),
            duration_ms: beat.duration_ms,
            fps: cfg.fps,
            seed,
        })
        .collect();
    Ok((inputs, seeds))
}

/// The one render: every clip's stream, the first frame as poster, the script's title.
fn render_input(cfg: &EngineConfig, state: &Video, run: &Run) -> Result<UnitInput, CoreError> {
    let clips = parent(state, run.from_checkpoint, Phase::Clips)?;
    let board = parent(state, clips.parent_id, Phase::Storyboard)?;
    let script = script_of(parent(state, board.parent_id, Phase::Script)?)?;
    let (Manifest::Clips { clips, .. }, Manifest::Storyboard { frames, .. }) = (&clips.manifest, &board.manifest) else {
        return Err(CoreError::Internal("render inputs are incomplete".into()));
    };
    let poster_still = frames.first().cloned().ok_or_else(|| CoreError::Internal("storyboard without frames".into()))?;
    Ok(UnitInput::Render {
        streams: clips.iter().map(|c| c.stream.clone()).collect(),
        poster_still,
        title: script.title.clone(),
        fps: cfg.fps,
    })
}

/// Assembles the checkpoint's manifest from the units' outputs, in unit order.
pub fn manifest_of(phase: Phase, video_seed: u64, seeds: Vec<u64>, outputs: Vec<UnitOutput>) -> Result<Manifest, CoreError> {
    let bad = || CoreError::Internal(format!("unit outputs do not match the {} phase", phase.label()));
    match phase {
        Phase::Script => match outputs.into_iter().next() {
            Some(UnitOutput::Script { script }) => Ok(Manifest::Script { script, seed: video_seed }),
            _ => Err(bad()),
        },
        Phase::Storyboard => {
            let frames = outputs
                .into_iter()
                .map(|o| if let UnitOutput::Frame { frame } = o { Ok(frame) } else { Err(bad()) })
                .collect::<Result<_, _>>()?;
            Ok(Manifest::Storyboard { frames, seeds })
        }
        Phase::Clips => {
            let clips = outputs
                .into_iter()
                .map(|o| if let UnitOutput::Clip { clip } = o { Ok(clip) } else { Err(bad()) })
                .collect::<Result<_, _>>()?;
            Ok(Manifest::Clips { clips, seeds })
        }
        Phase::Render => match outputs.into_iter().next() {
            Some(UnitOutput::Render { video, poster, duration_ms, frames }) => Ok(Manifest::Render { video, poster, duration_ms, frames }),
            _ => Err(bad()),
        },
    }
}

/// The words for a unit in an error message: "storyboard image for beat 1".
pub fn describe(phase: Phase, beat: Option<u32>) -> String {
    match (phase, beat) {
        (Phase::Script, _) => "script".into(),
        (Phase::Storyboard, Some(b)) => format!("storyboard image for beat {}", b + 1),
        (Phase::Clips, Some(b)) => format!("clip for beat {}", b + 1),
        (Phase::Render, _) => "final video".into(),
        (p, None) => p.label().to_lowercase(),
    }
}
