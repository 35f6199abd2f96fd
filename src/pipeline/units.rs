//! Work units: what each phase's units take as input, their memo keys, and how outputs become a manifest.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{CoreError, Engine, EngineConfig, mix_seed};
use crate::domain::video::{Checkpoint, Run, Video};
use crate::domain::{BlobRef, BranchId, ClipRef, Manifest, NarrationRef, Phase, Script, Timestamp};

#[derive(Clone, Debug)]
pub enum UnitInput {
    Script {
        prompt: String,
        beats: u32,
        seed: u64,
    },
    Frame {
        script: Script,
        index: usize,
        seed: u64,
        width: u32,
        height: u32,
    },
    Narration {
        text: String,
        voice: String,
        speed_wpm: u32,
    },
    /// `narration`: the audio the clip is timed to (its length sets `duration_ms`).
    Clip {
        still: BlobRef,
        prompt: String,
        caption: String,
        duration_ms: u32,
        fps: u32,
        seed: u64,
        narration: Option<BlobRef>,
    },
    /// `narration`: per beat, its audio (none when silent) and its text; `captions`: make WebVTT.
    Render {
        streams: Vec<BlobRef>,
        poster_still: BlobRef,
        title: String,
        fps: u32,
        narration: Vec<(Option<BlobRef>, String)>,
        captions: bool,
    },
}

impl UnitInput {
    /// The same unit with a new seed, for the `n`th try after a moderation refusal (the memo
    /// keeps the unit's own key: what it stores is the unit's output, whichever seed made it).
    pub fn rerolled(self, n: u32) -> UnitInput {
        let new = |seed: u64| mix_seed(seed, 0x7e_4011, u64::from(n));
        match self {
            UnitInput::Script { prompt, beats, seed } => UnitInput::Script { prompt, beats, seed: new(seed) },
            UnitInput::Frame { script, index, seed, width, height } => UnitInput::Frame { script, index, seed: new(seed), width, height },
            UnitInput::Clip { still, prompt, caption, duration_ms, fps, seed, narration } => {
                UnitInput::Clip { still, prompt, caption, duration_ms, fps, seed: new(seed), narration }
            }
            same @ (UnitInput::Render { .. } | UnitInput::Narration { .. }) => same,
        }
    }
}

impl UnitInput {
    /// The blobs the unit reads.
    pub fn blobs(&self) -> Vec<&BlobRef> {
        match self {
            UnitInput::Script { .. } | UnitInput::Frame { .. } | UnitInput::Narration { .. } => vec![],
            UnitInput::Clip { still, narration, .. } => std::iter::once(still).chain(narration).collect(),
            UnitInput::Render { streams, poster_still, narration, .. } => {
                streams.iter().chain([poster_still]).chain(narration.iter().filter_map(|(audio, _)| audio.as_ref())).collect()
            }
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
    /// The provider that makes it (narration units have their own in the storyboard phase).
    pub provider: String,
}

impl UnitPlan {
    pub fn is_narration(&self) -> bool {
        matches!(self.input, UnitInput::Narration { .. })
    }
}

/// A unit's result as memoized: blob references, never bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UnitOutput {
    Script { script: Script },
    Frame { frame: BlobRef },
    Narration { narration: NarrationRef },
    Clip { clip: ClipRef },
    Render { video: BlobRef, poster: BlobRef, duration_ms: u32, frames: u32, captions: Option<BlobRef> },
}

impl UnitOutput {
    pub fn blobs(&self) -> Vec<&BlobRef> {
        match self {
            UnitOutput::Script { .. } => vec![],
            UnitOutput::Frame { frame } => vec![frame],
            UnitOutput::Narration { narration } => vec![&narration.audio],
            UnitOutput::Clip { clip } => vec![&clip.stream, &clip.preview],
            UnitOutput::Render { video, poster, captions, .. } => [video, poster].into_iter().chain(captions).collect(),
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
        UnitInput::Narration { text, voice, speed_wpm } => serde_json::json!({"text": text, "voice": voice, "speed_wpm": speed_wpm}),
        UnitInput::Clip { still, prompt, caption, duration_ms, fps, seed, narration } => serde_json::json!({
            "still": still.sha256, "prompt": prompt, "caption": caption, "duration_ms": duration_ms, "fps": fps, "seed": seed,
            "narration": narration.as_ref().map(|n| &n.sha256),
        }),
        UnitInput::Render { streams, poster_still, title, fps, narration, captions } => serde_json::json!({
            "streams": streams.iter().map(|s| &s.sha256).collect::<Vec<_>>(), "poster": poster_still.sha256,
            "title": title, "fps": fps, "captions": captions,
            "narration": narration.iter().map(|(a, text)| (a.as_ref().map(|a| &a.sha256), text)).collect::<Vec<_>>(),
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

/// The seeds of a beat-per-unit phase. A regeneration starts from the seeds of the checkpoint it
/// makes again, with a new one for its beat; any other run from those of the newest version of
/// the phase in its branch's history, so a beat made again by hand keeps its new look (and its
/// memo entry) when an edit makes the phase again, on its branch or on a branch forked after it.
/// Without such a version, or when the number of beats changed, each beat's seed derives from the
/// video's.
fn seeds_for(engine_seed: u64, phase: Phase, beats: usize, run: &Run, state: &Video) -> Vec<u64> {
    let from = match &run.regenerate {
        Some(regen) => state.checkpoint(regen.of),
        None => newest_in_history(state, run.branch_id, phase),
    };
    let mut seeds = from
        .and_then(|c| c.manifest.seeds().map(<[u64]>::to_vec))
        .filter(|s| s.len() == beats)
        .unwrap_or_else(|| (0..beats).map(|i| mix_seed(engine_seed, u64::from(phase.number()), i as u64)).collect());
    if let Some(regen) = &run.regenerate
        && let Some(s) = seeds.get_mut(regen.beat as usize)
    {
        *s = regen.seed;
    }
    seeds
}

/// The newest checkpoint of `phase` in a branch's history: the branch's own, else (a branch that
/// has not made that phase yet) those of the branch it was forked from, up to the checkpoint it
/// was forked from, and so on up. What the parent made after the fork is not the fork's history
/// (by time: a checkpoint its parent made in the fork's own millisecond would count, which one
/// run at a time per branch makes as good as impossible). `storage::newest_beat_checkpoints`
/// reads the same checkpoints for a page.
fn newest_in_history(state: &Video, branch: BranchId, phase: Phase) -> Option<&Checkpoint> {
    let (mut branch, mut until) = (branch, Timestamp::MAX);
    // Each step goes to an older branch; the bound only guards against a malformed cycle.
    for _ in 0..=state.branches.len() {
        let on_branch = state.checkpoints.iter().filter(|c| c.branch_id == branch && c.phase == phase && c.created_at <= until);
        if let Some(newest) = on_branch.max_by_key(|c| c.created_at) {
            return Some(newest);
        }
        let fork = state.checkpoint(state.branches.iter().find(|b| b.id == branch)?.forked_from?)?;
        (branch, until) = (fork.branch_id, fork.created_at);
    }
    None
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
    let (phase_provider, voice) = (engine.providers.id_of(run.phase), engine.providers.narration.id());
    let per_beat = matches!(run.phase, Phase::Storyboard | Phase::Clips);
    let frames = seeds.len() as u32;
    let plans = (0u32..)
        .zip(inputs)
        .map(|(index, input)| {
            let narration = matches!(input, UnitInput::Narration { .. });
            let provider = if narration { voice.clone() } else { phase_provider.clone() };
            let beat = per_beat.then_some(if narration { index - frames } else { index });
            UnitPlan { key: memo_key(run.phase, &provider, &input), index, beat, input, provider }
        })
        .collect();
    Ok((plans, seeds))
}

/// One storyboard frame per beat of the script the run starts from, then (unless the script is
/// silent) one narration per beat. A still shows its narration only when captions are burned
/// in; otherwise its input leaves the narration out, so editing it does not redraw the still.
fn frame_inputs(cfg: &EngineConfig, state: &Video, run: &Run) -> Result<(Vec<UnitInput>, Vec<u64>), CoreError> {
    let script = script_of(parent(state, run.from_checkpoint, Phase::Script)?)?;
    let seeds = seeds_for(state.video.seed, Phase::Storyboard, script.beats.len(), run, state);
    let mut pictured = script.clone();
    if !script.narration.burn_captions {
        pictured.beats.iter_mut().for_each(|b| b.narration.clear());
    }
    let frames = (0..script.beats.len()).map(|i| UnitInput::Frame {
        script: pictured.clone(),
        index: i,
        seed: seeds[i],
        width: cfg.width,
        height: cfg.height,
    });
    let n = &script.narration;
    let spoken = script.beats.iter().filter(|_| !n.is_silent()).map(|b| UnitInput::Narration {
        text: b.narration.clone(),
        voice: n.voice.clone(),
        speed_wpm: n.speed_wpm,
    });
    Ok((frames.chain(spoken).collect(), seeds))
}

/// How long a beat's clip lasts: its narration and a pause, or the beat's own length if longer.
pub fn clip_ms(beat_ms: u32, narration: Option<&NarrationRef>) -> u32 {
    crate::domain::narration::clip_length_ms(beat_ms, narration.map(|n| n.duration_ms))
}

/// One clip per storyboard frame, as long as its beat.
fn clip_inputs(cfg: &EngineConfig, state: &Video, run: &Run) -> Result<(Vec<UnitInput>, Vec<u64>), CoreError> {
    let board = parent(state, run.from_checkpoint, Phase::Storyboard)?;
    let script = script_of(parent(state, board.parent_id, Phase::Script)?)?;
    let Manifest::Storyboard { frames, narrations, .. } = &board.manifest else {
        return Err(CoreError::Internal("storyboard checkpoint without frames".into()));
    };
    let seeds = seeds_for(state.video.seed, Phase::Clips, frames.len(), run, state);
    let burn = script.narration.burn_captions;
    let inputs = frames
        .iter()
        .zip(&script.beats)
        .zip(&seeds)
        .enumerate()
        .map(|(i, ((frame, beat), &seed))| UnitInput::Clip {
            still: frame.clone(),
            prompt: beat.visual.clone(),
            caption: if burn { beat.narration.clone() } else { String::new() },
            duration_ms: clip_ms(beat.duration_ms, narrations.get(i)),
            fps: cfg.fps,
            seed,
            narration: narrations.get(i).map(|n| n.audio.clone()),
        })
        .collect();
    Ok((inputs, seeds))
}

/// The one render: every clip's stream, the first frame as poster, the script's title.
fn render_input(cfg: &EngineConfig, state: &Video, run: &Run) -> Result<UnitInput, CoreError> {
    let clips = parent(state, run.from_checkpoint, Phase::Clips)?;
    let board = parent(state, clips.parent_id, Phase::Storyboard)?;
    let script = script_of(parent(state, board.parent_id, Phase::Script)?)?;
    let (Manifest::Clips { clips, .. }, Manifest::Storyboard { frames, narrations, .. }) = (&clips.manifest, &board.manifest) else {
        return Err(CoreError::Internal("render inputs are incomplete".into()));
    };
    let poster_still = frames.first().cloned().ok_or_else(|| CoreError::Internal("storyboard without frames".into()))?;
    Ok(UnitInput::Render {
        streams: clips.iter().map(|c| c.stream.clone()).collect(),
        poster_still,
        title: script.title.clone(),
        fps: cfg.fps,
        narration: script
            .beats
            .iter()
            .enumerate()
            .map(|(i, b)| (narrations.get(i).map(|n| n.audio.clone()), b.narration.clone()))
            .collect(),
        captions: !script.narration.burn_captions,
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
            let (mut frames, mut narrations) = (Vec::new(), Vec::new());
            for output in outputs {
                match output {
                    UnitOutput::Frame { frame } => frames.push(frame),
                    UnitOutput::Narration { narration } => narrations.push(narration),
                    _ => return Err(bad()),
                }
            }
            Ok(Manifest::Storyboard { frames, seeds, narrations })
        }
        Phase::Clips => {
            let clips = outputs
                .into_iter()
                .map(|o| if let UnitOutput::Clip { clip } = o { Ok(clip) } else { Err(bad()) })
                .collect::<Result<_, _>>()?;
            Ok(Manifest::Clips { clips, seeds })
        }
        Phase::Render => match outputs.into_iter().next() {
            Some(UnitOutput::Render { video, poster, duration_ms, frames, captions }) => {
                Ok(Manifest::Render { video, poster, duration_ms, frames, captions })
            }
            _ => Err(bad()),
        },
    }
}

/// The words for a unit in an error message: "storyboard image for beat 1".
pub fn describe(phase: Phase, beat: Option<u32>, narration: bool) -> String {
    match (phase, beat) {
        (Phase::Script, _) => "script".into(),
        (Phase::Storyboard, Some(b)) if narration => format!("narration for beat {}", b + 1),
        (Phase::Storyboard, Some(b)) => format!("storyboard image for beat {}", b + 1),
        (Phase::Clips, Some(b)) => format!("clip for beat {}", b + 1),
        (Phase::Render, _) => "final video".into(),
        (p, None) => p.label().to_lowercase(),
    }
}
