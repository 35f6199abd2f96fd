//! The pipeline with the real local providers: memoization, retries that redo only what failed,
//! takeover of a dead worker's run, determinism, regeneration and garbage collection.

use crate::common::*;
use reelsmith::domain::{CheckpointId, Manifest, Phase, TryOutcome, VideoId};
use reelsmith::pipeline::Engine;
use reelsmith::pipeline::providers::instant::Instant as Instantly;
use reelsmith::pipeline::providers::{Answer, ProviderError, Providers, StoryboardArtist, UnitCall};
use reelsmith::pipeline::worker::WorkOutcome;
use reelsmith::storage::VideoState;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn local_env() -> TestEnv {
    env_with(Providers::local(), fast_config()).await
}

fn head(state: &VideoState, branch: &str) -> CheckpointId {
    state.branch_named(branch).unwrap().head_id.unwrap()
}

async fn final_video(env: &TestEnv, state: &VideoState) -> Vec<u8> {
    let render = state.checkpoints.iter().rev().find(|c| c.phase == Phase::Render).expect("a render checkpoint");
    let Manifest::Render { video, .. } = &render.manifest else { unreachable!() };
    env.engine.blob_bytes(video).await.unwrap()
}

fn final_blob(state: &VideoState) -> reelsmith::domain::BlobRef {
    let render = state.checkpoints.iter().rev().find(|c| c.phase == Phase::Render).expect("a render checkpoint");
    let Manifest::Render { video, .. } = &render.manifest else { unreachable!() };
    video.clone()
}

fn calls(e: &Engine) -> [u64; 4] {
    Phase::ALL.map(|p| e.providers.calls_of(p))
}

/// The durations of the MP4's video and audio tracks, in ms, read back from its boxes.
fn track_ms(mp4: &[u8]) -> (f64, Option<f64>) {
    let reader = mp4::Mp4Reader::read_header(std::io::Cursor::new(mp4), mp4.len() as u64).expect("a readable MP4");
    let of = |kind: mp4::TrackType| {
        reader.tracks().values().find(|t| t.track_type().ok() == Some(kind)).map(|t| t.duration().as_secs_f64() * 1000.0)
    };
    (of(mp4::TrackType::Video).expect("a video track"), of(mp4::TrackType::Audio))
}

fn storyboard_of(state: &VideoState, nth: usize) -> (Vec<reelsmith::domain::BlobRef>, Vec<reelsmith::domain::NarrationRef>) {
    let board = state.checkpoints.iter().filter(|c| c.phase == Phase::Storyboard).nth(nth).expect("a storyboard");
    let Manifest::Storyboard { frames, narrations, .. } = &board.manifest else { unreachable!() };
    (frames.clone(), narrations.clone())
}

/// An 8-beat video made without faults (its final bytes), and the same video in a second
/// environment, failed in phase 2 under the fault `plan`.
async fn reference_and_failed(plan: &str) -> (Vec<u8>, TestEnv, VideoId) {
    let clean = local_env().await;
    let v = new_video(&clean.engine, "Eight beats of a rainy city", 8, true, None).await;
    drain(&clean.engine).await;
    let expected = final_video(&clean, &clean.engine.video_state(v).await.unwrap()).await;
    let env = local_env().await;
    let video = new_video(&env.engine, "Eight beats of a rainy city", 8, true, Some(plan)).await;
    drain_expect(&env.engine, "SF").await;
    (expected, env, video)
}

async fn approve_head(e: &Engine, video: VideoId) {
    let state = e.video_state(video).await.unwrap();
    e.approve(video, head(&state, "main"), None).await.unwrap();
}

#[tokio::test]
async fn a_retry_redoes_only_the_failed_unit_and_the_video_is_identical() {
    let plan = r#"[{"phase":2,"beat":0,"action":"fail","times":1,"message":"Replicate API error: 502 Bad Gateway"}]"#;
    let (expected, env, video) = reference_and_failed(plan).await;
    let e = &env.engine;
    let state = e.video_state(video).await.unwrap();
    let failed = state.runs.last().unwrap();
    assert_eq!((failed.phase, failed.failed_unit), (Phase::Storyboard, Some(0)));
    assert_eq!(calls(e)[1], 7, "the other 7 beats were made and kept");
    let script = head(&state, "main");
    e.continue_video(video, Some(script), None, true).await.unwrap();
    let before = calls(e);
    let retry = step(e).await;
    assert!(matches!(retry, WorkOutcome::Succeeded { .. }), "{retry:?}");
    assert_eq!(calls(e)[1] - before[1], 1, "the retry made exactly one storyboard call, not 8");
    drain_expect(e, "SS").await;
    let state = e.video_state(video).await.unwrap();
    let got = final_video(&env, &state).await;
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the finished video is byte-identical to one made without the failure");
    assert_eq!(calls(e), [1, 8, 8, 1]);
}

#[tokio::test]
async fn editing_one_beats_narration_remakes_only_its_voice_its_clip_and_the_render() {
    let env = local_env().await;
    let e = &env.engine;
    let video = new_video(e, "A lighthouse keeper and a gull", 8, true, None).await;
    drain_expect(e, "SSSS").await;
    assert_eq!((calls(e), e.providers.narration_calls()), ([1, 8, 8, 1], 8));
    let state = e.video_state(video).await.unwrap();
    let script_cp = state.checkpoints.iter().find(|c| c.phase == Phase::Script).unwrap();
    let mut script = script_cp.manifest.script().unwrap().clone();
    script.beats[3].narration = "The gull reads the whole tide table aloud, badly, twice, and then once more for luck.".into();
    let v2 = e.edit_script(video, None, script_cp.id, &serde_json::to_string(&script).unwrap()).await.unwrap();
    e.continue_video(video, Some(v2), None, false).await.unwrap();
    drain_expect(e, "SSS").await;
    assert_eq!(calls(e), [1, 8, 9, 2], "no still was redrawn; beat 4's clip and the render were made again");
    assert_eq!(e.providers.narration_calls(), 9, "exactly one narration was spoken again");
    let state = e.video_state(video).await.unwrap();
    let ((frames_a, voices_a), (frames_b, voices_b)) = (storyboard_of(&state, 0), storyboard_of(&state, 1));
    assert_eq!(frames_a, frames_b, "captions are not burned in, so the stills do not show the narration");
    for i in 0..8 {
        assert_eq!(voices_a[i] == voices_b[i], i != 3, "narration {i}");
    }
    assert!(voices_b[3].duration_ms > voices_a[3].duration_ms, "the longer line lasts longer");
}

#[tokio::test]
async fn a_failed_narration_is_retried_alone_and_the_video_is_identical() {
    let plan = r#"[{"phase":2,"beat":1,"narration":true,"action":"fail","times":1,"message":"speech server 503"}]"#;
    let (expected, env, video) = reference_and_failed(plan).await;
    let e = &env.engine;
    let state = e.video_state(video).await.unwrap();
    let failed = state.runs.last().unwrap();
    assert_eq!((failed.phase, failed.failed_unit), (Phase::Storyboard, Some(1)));
    assert!(failed.error.as_deref().unwrap().contains("narration for beat 2: speech server 503"), "{:?}", failed.error);
    assert_eq!((calls(e)[1], e.providers.narration_calls()), (8, 7), "every still and the other 7 narrations were kept");
    let tries = e.unit_tries(video).await.unwrap();
    assert!(tries.iter().any(|t| t.unit == 9 && t.outcome == TryOutcome::Transient), "the narration's tries are in the attempts");
    e.continue_video(video, Some(head(&state, "main")), None, true).await.unwrap();
    let retry = step(e).await;
    assert!(matches!(retry, WorkOutcome::Succeeded { .. }), "{retry:?}");
    assert_eq!((calls(e)[1], e.providers.narration_calls()), (8, 8), "the retry spoke beat 2 alone and drew nothing");
    drain_expect(e, "SS").await;
    let got = final_video(&env, &e.video_state(video).await.unwrap()).await;
    assert!(got == expected, "the finished video is byte-identical to one made without the failure");
}

#[tokio::test]
async fn a_bad_voice_or_speed_is_refused_and_changes_nothing() {
    let env = local_env().await;
    let e = &env.engine;
    let video = new_video(e, "Voices", 2, false, None).await;
    step_ok(e).await;
    let state = e.video_state(video).await.unwrap();
    let script_cp = state.checkpoints.iter().find(|c| c.phase == Phase::Script).unwrap();
    let before = snapshot(e).await;
    for (field, value) in [("voice", serde_json::json!("klingon")), ("speed_wpm", serde_json::json!(5000))] {
        let mut doc = serde_json::to_value(script_cp.manifest.script().unwrap()).unwrap();
        doc["narration"][field] = value;
        let err = e.edit_script(video, None, script_cp.id, &doc.to_string()).await.unwrap_err();
        assert!(err.to_string().contains(if field == "voice" { "unknown voice" } else { "words per minute" }), "{err}");
        assert_eq!(snapshot(e).await, before, "nothing changed");
    }
}

/// A beat whose narration, spoken, would last longer than a clip may (120 s with its pause) is
/// refused at the edit, saying what to do. It failed in phase 3, "clip duration 150300 ms is too
/// long", after every still and narration was paid for, and again on every retry.
#[tokio::test]
async fn a_narration_too_long_for_a_clip_is_refused_at_the_edit() {
    let env = env().await;
    let e = &env.engine;
    let video = new_video(e, "Long-winded", 2, false, None).await;
    step_ok(e).await;
    let state = e.video_state(video).await.unwrap();
    let script_cp = state.checkpoints.iter().find(|c| c.phase == Phase::Script).unwrap();
    let mut script = script_cp.manifest.script().unwrap().clone();
    script.narration.speed_wpm = reelsmith::domain::narration::MIN_WPM;
    script.beats[1].narration = "I ".repeat(200).trim_end().to_string();
    let before = snapshot(e).await;
    let err = e.edit_script(video, None, script_cp.id, &serde_json::to_string(&script).unwrap()).await.unwrap_err();
    let said = err.to_string();
    assert!(said.contains("beat 2's narration is too long to say: it lasts 150.0 s when spoken"), "{said}");
    assert!(said.contains("at most 120 s: shorten the narration or raise the speed"), "{said}");
    assert_eq!(snapshot(e).await, before, "nothing changed");
}

/// A voice slower than the estimate (a language the estimate reads as few words): the narration
/// that comes back too long fails its beat in phase 2, saying what to do, before any clip.
#[tokio::test]
async fn a_narration_that_comes_back_too_long_fails_its_beat_in_phase_2() {
    struct Drawling;
    impl reelsmith::pipeline::providers::Narrator for Drawling {
        fn id(&self) -> String {
            "drawling/1".into()
        }
        fn speak(
            &self,
            _: &UnitCall,
            _: reelsmith::pipeline::providers::SpeechRequest,
        ) -> Answer<reelsmith::pipeline::providers::SpeechBytes> {
            let speech = reelsmith::pipeline::providers::SpeechBytes { wav: b"slow".to_vec(), duration_ms: 150_000 };
            Box::pin(async move { Ok(reelsmith::pipeline::providers::Costed { value: speech, cost_micros: 3_000 }) })
        }
    }
    let env = env_with(Providers { narration: Arc::new(Drawling), ..Providers::instant() }, fast_config()).await;
    let e = &env.engine;
    let video = new_video(e, "Said slowly", 2, true, None).await;
    drain_expect(e, "SF").await;
    let failed = e.video_state(video).await.unwrap().runs.last().unwrap().clone();
    assert_eq!(failed.phase, Phase::Storyboard);
    assert!(failed.failed_beat().is_some(), "a beat's narration failed");
    let error = failed.error.unwrap();
    assert!(error.contains(": it lasts 150.0 s when spoken, and with the 0.3 s pause after it a beat may last at most 120 s"), "{error}");
    assert_eq!(calls(e)[2], 0, "no clip was made");
    // The voice answered and was paid: its refused tries cost what it charged, and so does the run.
    let tries = e.unit_tries(video).await.unwrap();
    let refused: Vec<_> =
        tries.iter().filter(|t| t.run_id == failed.id && t.message.as_deref().is_some_and(|m| m.contains("when spoken"))).collect();
    assert!(!refused.is_empty() && refused.iter().all(|t| t.cost_micros == 3_000), "{refused:?}");
    let paid: i64 = tries.iter().filter(|t| t.run_id == failed.id).map(|t| t.cost_micros).sum();
    assert_eq!(failed.cost_micros, paid, "the run's cost is what its tries were paid");
    assert!(failed.cost_micros >= 3_000 * refused.len() as i64);
}

#[tokio::test]
async fn burned_in_captions_redraw_the_stills_and_drop_the_webvtt_track() {
    let env = local_env().await;
    let e = &env.engine;
    let video = new_video(e, "Captions two ways", 3, true, None).await;
    drain_expect(e, "SSSS").await;
    let state = e.video_state(video).await.unwrap();
    let render = state.checkpoints.iter().find(|c| c.phase == Phase::Render).unwrap();
    let Manifest::Render { captions: Some(vtt), .. } = &render.manifest else { panic!("a WebVTT track by default") };
    let vtt = String::from_utf8(e.blob_bytes(vtt).await.unwrap()).unwrap();
    let script_cp = state.checkpoints.iter().find(|c| c.phase == Phase::Script).unwrap();
    let mut script = script_cp.manifest.script().unwrap().clone();
    assert_eq!(vtt.matches(" --> ").count(), 3, "one cue per beat: {vtt}");
    assert!(vtt.contains(&script.beats[2].narration), "{vtt}");
    script.narration.burn_captions = true;
    let v2 = e.edit_script(video, None, script_cp.id, &serde_json::to_string(&script).unwrap()).await.unwrap();
    e.continue_video(video, Some(v2), None, false).await.unwrap();
    drain_expect(e, "SSS").await;
    assert_eq!(calls(e)[1..], [6, 6, 2], "every still now shows its narration");
    assert_eq!(e.providers.narration_calls(), 3, "the voice is the same");
    let state = e.video_state(video).await.unwrap();
    let render = state.checkpoints.iter().rev().find(|c| c.phase == Phase::Render).unwrap();
    assert!(matches!(&render.manifest, Manifest::Render { captions: None, .. }), "no WebVTT when captions are burned in");
    assert!(track_ms(&final_video(&env, &state).await).1.is_some(), "still narrated");
}

/// A phase's last unit has no group to share: its record commits with the checkpoint, and so do
/// the others' when every unit finished at once (instant providers: no group commits at all, so a
/// video is six commits: its creation, the first claim and four checkpoints). Every unit still
/// counts, has its try, and is memoized (a second video with the same seed makes nothing).
#[tokio::test]
async fn every_unit_of_a_finished_phase_is_counted_and_memoized_the_last_with_its_checkpoint() {
    // A lease renewal is a commit too: with a minute's lease none comes due on a slow machine.
    let mut config = fast_config();
    config.lease_ms = 60_000;
    let env = env_with(Providers::instant(), config).await;
    let commits = env.engine.store.commits();
    let first = new_video(&env.engine, "Four beats, every one recorded", 4, true, None).await;
    drain(&env.engine).await;
    assert_eq!(env.engine.store.commits() - commits, 6, "the units' records went with their checkpoints");
    let again = new_video(&env.engine, "Four beats, every one recorded", 4, true, None).await;
    drain(&env.engine).await;
    for (video, outcome) in [(first, TryOutcome::Ok), (again, TryOutcome::Memo)] {
        let state = env.engine.video_state(video).await.unwrap();
        let tries = env.engine.unit_tries(video).await.unwrap();
        assert_eq!(state.runs.len(), 4, "four phases");
        for run in &state.runs {
            assert_eq!((run.status, run.units_done), (reelsmith::domain::RunStatus::Succeeded, run.units_total), "{run:?}");
            let units: Vec<u32> = tries.iter().filter(|t| t.run_id == run.id).map(|t| t.unit).collect();
            assert_eq!(units.len() as u32, run.units_total, "one try per unit of {:?}: {units:?}", run.phase);
            assert!(tries.iter().filter(|t| t.run_id == run.id).all(|t| t.outcome == outcome), "{:?}: {tries:?}", run.phase);
        }
    }
}

#[tokio::test]
async fn a_dead_workers_run_is_taken_over_and_only_unfinished_units_rerun() {
    let mut config = fast_config();
    config.lease_ms = 400;
    let env = env_with(Providers::local(), config).await;
    let e = &env.engine;
    // Beats 4..7 are slow, so the first worker dies with half the phase done.
    let plan = r#"[{"phase":2,"beat":4,"action":"delay","ms":3000},{"phase":2,"beat":5,"action":"delay","ms":3000},
                   {"phase":2,"beat":6,"action":"delay","ms":3000},{"phase":2,"beat":7,"action":"delay","ms":3000}]"#;
    let video = new_video(e, "Half done when the worker dies", 8, false, Some(plan)).await;
    step_ok(e).await;
    approve_head(e, video).await;
    let doomed = {
        let e = e.clone();
        tokio::spawn(async move { step(&e).await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = e.video_state(video).await.unwrap();
        if state.runs.last().unwrap().units_done >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "the first worker never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.abort();
    let _ = doomed.await;
    let done_by_first = e.video_state(video).await.unwrap().runs.last().unwrap().units_done;
    let calls_before = calls(e)[1];
    // Not claimable while the lease runs; then another worker takes it over.
    assert_eq!(step(e).await, WorkOutcome::Idle);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let taken = step(e).await;
    assert!(matches!(taken, WorkOutcome::Succeeded { .. }), "{taken:?}");
    let state = e.video_state(video).await.unwrap();
    let run = state.runs.last().unwrap();
    assert_eq!(run.attempt, 1, "the same run resumed, not a new attempt");
    let tries = e.unit_tries(video).await.unwrap();
    let reused = tries.iter().filter(|t| t.run_id == run.id && t.outcome == TryOutcome::Memo).count() as u32;
    assert!(reused >= done_by_first, "finished units came from the memo ({reused} < {done_by_first})");
    let reused_stills = tries.iter().filter(|t| t.run_id == run.id && t.outcome == TryOutcome::Memo && t.unit < 8).count() as u64;
    assert_eq!(calls(e)[1] - calls_before, 8 - reused_stills, "only unfinished units were made again");
    let blobs: Vec<_> = e.stored_blobs().await.unwrap();
    assert_eq!(blobs.len(), 16, "every beat's image and narration is stored exactly once");
}

#[tokio::test]
async fn the_same_prompt_and_seed_give_the_same_script_and_video() {
    let (a, b) = (local_env().await, local_env().await);
    let va = new_video(&a.engine, "Determinism, in three beats", 3, true, None).await;
    let vb = new_video(&b.engine, "Determinism, in three beats", 3, true, None).await;
    drain(&a.engine).await;
    drain(&b.engine).await;
    let (sa, sb) = (a.engine.video_state(va).await.unwrap(), b.engine.video_state(vb).await.unwrap());
    assert_eq!(sa.checkpoints[0].manifest, sb.checkpoints[0].manifest, "same script");
    assert!(final_video(&a, &sa).await == final_video(&b, &sb).await, "same video bytes");
    assert!(track_ms(&final_video(&a, &sa).await).1.is_some(), "a narrated video");
}

#[tokio::test]
async fn an_eight_beat_720p_video_is_made_locally() {
    let mut config = fast_config();
    (config.width, config.height, config.fps) = (1280, 720, 24);
    let env = env_with(Providers::local(), config).await;
    let e = &env.engine;
    let started = Instant::now();
    let video = new_video(e, "A paper boat crosses a city in the rain", 8, true, None).await;
    drain_expect(e, "SSSS").await;
    let wall = started.elapsed();
    let state = e.video_state(video).await.unwrap();
    let render = state.checkpoints.iter().find(|c| c.phase == Phase::Render).unwrap();
    let Manifest::Render { video: mp4, poster, duration_ms, frames, .. } = &render.manifest else { unreachable!() };
    let bytes = e.blob_bytes(mp4).await.unwrap();
    assert_eq!(&bytes[4..8], b"ftyp");
    assert!(*duration_ms >= 16_000 && *frames >= 384, "{duration_ms} ms, {frames} frames");
    let (video_ms, audio_ms) = track_ms(&bytes);
    let audio_ms = audio_ms.expect("an audio track");
    assert!((audio_ms - video_ms).abs() < 40.0, "audio {audio_ms} ms vs video {video_ms} ms");
    let (_, narrations) = storyboard_of(&state, 0);
    assert_eq!(narrations.len(), 8);
    assert!(narrations.iter().all(|n| n.duration_ms > 500), "{narrations:?}");
    assert_eq!(&e.blob_bytes(poster).await.unwrap()[1..4], b"PNG");
    println!(
        "local_video: 8 narrated beats 1280x720 in {:.2} s; {:.2} s of video, {} bytes",
        wall.as_secs_f64(),
        f64::from(*duration_ms) / 1000.0,
        bytes.len()
    );
}

#[tokio::test]
async fn regenerating_one_beat_makes_only_that_beat_with_a_new_seed() {
    let env = local_env().await;
    let e = &env.engine;
    let video = new_video(e, "Regenerate the third frame", 4, false, None).await;
    step_ok(e).await;
    approve_head(e, video).await;
    step_ok(e).await;
    let state = e.video_state(video).await.unwrap();
    let board = head(&state, "main");
    let before = calls(e);
    let snapshot_before = snapshot(e).await;
    let err = e.regenerate_beat(video, None, board, 9).await.unwrap_err();
    assert!(err.to_string().contains("Beat 10 does not exist"), "{err}");
    assert_eq!(snapshot(e).await, snapshot_before);
    e.regenerate_beat(video, None, board, 2).await.unwrap();
    assert!(matches!(step(e).await, WorkOutcome::Succeeded { .. }));
    assert_eq!(calls(e)[1] - before[1], 1);
    let state = e.video_state(video).await.unwrap();
    let new = state.checkpoint(head(&state, "main")).unwrap();
    let old = state.checkpoint(board).unwrap();
    assert_eq!((new.phase, new.version, new.parent_id), (Phase::Storyboard, 2, old.parent_id));
    let (Manifest::Storyboard { frames: a, seeds: sa, .. }, Manifest::Storyboard { frames: b, seeds: sb, .. }) =
        (&old.manifest, &new.manifest)
    else {
        unreachable!()
    };
    for i in 0..4 {
        assert_eq!(a[i] == b[i], i != 2, "frame {i}");
        assert_eq!(sa[i] == sb[i], i != 2, "seed {i}");
    }
}

/// A beat made again by hand keeps its new look when an edit of the script makes the storyboard
/// again: the next run starts from the branch's newest storyboard's seeds (it used to go back to
/// the video's, and the edit brought the old still back).
#[tokio::test]
async fn a_regenerated_beat_keeps_its_look_when_an_edit_makes_the_storyboard_again() {
    let env = local_env().await;
    let e = &env.engine;
    let video = new_video(e, "Keep the new third frame", 4, false, None).await;
    step_ok(e).await;
    approve_head(e, video).await;
    let board = step_ok(e).await;
    e.regenerate_beat(video, None, board, 2).await.unwrap();
    let regenerated = step_ok(e).await;
    let state = e.video_state(video).await.unwrap();
    let frames_and_seeds = |state: &VideoState, id| match &state.checkpoint(id).unwrap().manifest {
        Manifest::Storyboard { frames, seeds, .. } => (frames.clone(), seeds.clone()),
        _ => unreachable!(),
    };
    let (kept, kept_seeds) = frames_and_seeds(&state, regenerated);
    // Edit beat 1's picture: its still is drawn again, the others come back as they were.
    let script_cp = state.checkpoints.iter().find(|c| c.phase == Phase::Script).unwrap();
    let mut script = script_cp.manifest.script().unwrap().clone();
    script.beats[0].visual = "A lantern on a wet quay at night.".into();
    let edited = e.edit_script(video, None, script_cp.id, &serde_json::to_string(&script).unwrap()).await.unwrap();
    let before = calls(e);
    e.continue_video(video, Some(edited), None, false).await.unwrap();
    let again = step_ok(e).await;
    assert_eq!(calls(e)[1] - before[1], 1, "only the edited beat's still is drawn");
    let (frames, seeds) = frames_and_seeds(&e.video_state(video).await.unwrap(), again);
    assert_eq!(seeds, kept_seeds, "the storyboard's seeds carry on");
    assert_ne!(frames[0], kept[0], "the edited beat is new");
    assert_eq!(frames[1..], kept[1..], "the regenerated third still is the one kept, and so are the others");
}

/// A branch forked from a regenerated storyboard keeps that look when an edit on the branch makes
/// the storyboard again, and the page's estimate for the branch plans with the same seeds.
#[tokio::test]
async fn a_branch_forked_after_a_regeneration_keeps_the_regenerated_look() {
    let env = local_env().await;
    let e = &env.engine;
    let video = new_video(e, "Keep the third frame on the branch", 3, false, None).await;
    step_ok(e).await;
    approve_head(e, video).await;
    let board = step_ok(e).await;
    e.regenerate_beat(video, None, board, 2).await.unwrap();
    let regenerated = step_ok(e).await;
    e.create_branch(video, regenerated, "alt").await.unwrap();
    // Main makes beat 2 again after the fork: not the fork's history.
    e.regenerate_beat(video, None, regenerated, 1).await.unwrap();
    step_ok(e).await;
    let state = e.video_state(video).await.unwrap();
    let Manifest::Storyboard { frames: kept, seeds: kept_seeds, .. } = state.checkpoint(regenerated).unwrap().manifest.clone() else {
        unreachable!()
    };
    let script_cp = state.checkpoints.iter().find(|c| c.phase == Phase::Script).unwrap();
    let mut script = script_cp.manifest.script().unwrap().clone();
    script.beats[0].visual = "A lantern on a wet quay at night.".into();
    let edited = e.edit_script(video, Some("alt"), script_cp.id, &serde_json::to_string(&script).unwrap()).await.unwrap();
    let page = e.status_page(video, "alt", Default::default()).await.unwrap();
    let estimate = reelsmith::api::convert::status(&page, &e.config).unwrap().estimate_micros;
    let before = calls(e);
    e.continue_video(video, Some(edited), Some("alt"), false).await.unwrap();
    let again = step_ok(e).await;
    assert_eq!(calls(e)[1] - before[1], 1, "only the edited beat's still is drawn");
    let state = e.video_state(video).await.unwrap();
    let Manifest::Storyboard { frames, seeds, .. } = &state.checkpoint(again).unwrap().manifest else { unreachable!() };
    assert_eq!(seeds, &kept_seeds, "the fork's storyboard carries on the seeds it was forked with");
    assert_eq!(frames[1..], kept[1..], "the regenerated third still is the one kept");
    assert_eq!(Some(estimate), state.runs.last().map(|r| r.cost_micros), "the page's estimate is what the run cost");
}

#[tokio::test]
async fn permanent_errors_fail_at_once_and_transient_ones_are_retried() {
    let env = env().await;
    let e = &env.engine;
    // An injected failure looks transient: 1 try + 2 automatic retries, all recorded.
    let video =
        new_video(e, "Transient", 2, true, Some(r#"[{"phase":3,"beat":1,"action":"fail","message":"429 Too Many Requests"}]"#)).await;
    drain_expect(e, "SSF").await;
    let tries = e.unit_tries(video).await.unwrap();
    let failed: Vec<_> = tries.iter().filter(|t| t.outcome == TryOutcome::Transient).collect();
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|t| t.message.as_deref() == Some("429 Too Many Requests")));
    let state = e.video_state(video).await.unwrap();
    assert!(state.runs.last().unwrap().error.as_deref().unwrap().contains("clip for beat 2: 429 Too Many Requests"));

    // A permanent error (a content-policy refusal) is tried once: no automatic retry.
    let env = env_with(
        Providers::new(Arc::new(Instantly), Arc::new(Refuses { beat: 1 }), Arc::new(Instantly), Arc::new(Instantly)),
        fast_config(),
    )
    .await;
    let e = &env.engine;
    let video = new_video(e, "Permanent", 3, true, None).await;
    drain_expect(e, "SF").await;
    let tries = e.unit_tries(video).await.unwrap();
    let refused: Vec<_> = tries.iter().filter(|t| t.outcome != TryOutcome::Ok && t.outcome != TryOutcome::Memo).collect();
    assert_eq!(refused.len(), 1, "one try, not three: {tries:?}");
    assert_eq!((refused[0].outcome, refused[0].unit), (TryOutcome::Permanent, 1));
    assert_eq!(e.providers.calls_of(Phase::Storyboard), 3, "beats 0 and 2 once each, beat 1 once");
    let state = e.video_state(video).await.unwrap();
    let error = state.runs.last().unwrap().error.clone().unwrap();
    assert!(error.contains("storyboard image for beat 2: the prompt was refused by the content policy"), "{error}");
}

/// A storyboard artist that refuses one beat for good and draws the others instantly.
struct Refuses {
    beat: usize,
}

impl StoryboardArtist for Refuses {
    fn id(&self) -> String {
        "refuses/1".into()
    }
    fn draw(
        &self,
        call: &UnitCall,
        script: reelsmith::domain::Script,
        index: usize,
        seed: u64,
        width: u32,
        height: u32,
    ) -> Answer<Vec<u8>> {
        if index == self.beat {
            return Box::pin(async { Err(ProviderError::Permanent("the prompt was refused by the content policy".into()).into()) });
        }
        Instantly.draw(call, script, index, seed, width, height)
    }
}

#[tokio::test]
async fn gc_removes_only_unreferenced_blobs() {
    gc_removes_only_unreferenced_blobs_of(env().await).await;
}

/// Also run on the S3 backend by `scaleout::`.
pub async fn gc_removes_only_unreferenced_blobs_of(env: TestEnv) {
    let e = &env.engine;
    let video = new_video(e, "Garbage", 2, true, None).await;
    drain_expect(e, "SSSS").await;
    let kept = e.stored_blobs().await.unwrap().len();
    // More orphans than one of gc's batches (100 here) removes.
    let mut orphans = Vec::new();
    for i in 0..300 {
        orphans.push(e.blobs.put(format!("nobody needs me, number {i}").as_bytes(), "image/png").await.unwrap());
    }
    let report = e.gc(Some(Duration::ZERO)).await.unwrap();
    assert_eq!(report.removed, 300);
    assert_eq!(report.freed_bytes, orphans.iter().map(|o| o.bytes).sum::<u64>());
    assert_eq!(report.kept, kept);
    for orphan in &orphans {
        assert!(!e.blobs.intact(orphan).await, "{} is gone", orphan.sha256);
    }
    assert_eq!(e.stored_blobs().await.unwrap().len(), kept);
    let state = e.video_state(video).await.unwrap();
    assert_eq!(final_video(&env, &state).await.len() as u64, final_blob(&state).bytes, "the final video survived gc whole");
    let young = e.blobs.put(b"just written", "image/png").await.unwrap();
    assert_eq!(e.gc(None).await.unwrap().removed, 0, "a blob younger than the grace period may be in flight");
    assert!(e.blobs.intact(&young).await);
}

/// The sha256 of every blob the video's checkpoints hold.
fn held_by(state: &VideoState) -> std::collections::HashSet<String> {
    state.checkpoints.iter().flat_map(|c| c.manifest.blobs()).map(|b| b.sha256.clone()).collect()
}

/// `gc` reclaims what only a deleted video used, memo entries included, and keeps every byte a
/// live checkpoint needs.
#[tokio::test]
async fn gc_reclaims_a_deleted_videos_artifacts_and_memo() {
    let env = env().await;
    let e = &env.engine;
    let keep = new_video(e, "Kept", 2, true, None).await;
    drain_expect(e, "SSSS").await;
    let gone = new_video(e, "Deleted", 2, true, None).await;
    drain_expect(e, "SSSS").await;
    e.delete_video(gone).await.unwrap();
    let report = e.gc(Some(Duration::ZERO)).await.unwrap();
    let state = e.video_state(keep).await.unwrap();
    let left: std::collections::HashSet<String> = e.stored_blobs().await.unwrap().into_iter().map(|(sha, _)| sha).collect();
    assert_eq!(left, held_by(&state), "exactly the kept video's artifacts remain: {report:?}");
    assert!(report.removed > 0 && report.forgotten_memo > 0, "{report:?}");
    assert_eq!(final_video(&env, &state).await.len() as u64, final_blob(&state).bytes, "the kept video is whole");
    // The kept video's memo still answers: making it again reuses every unit.
    let again = new_video(e, "Kept", 2, true, None).await;
    drain_expect(e, "SSSS").await;
    let tries = e.unit_tries(again).await.unwrap();
    assert!(!tries.is_empty() && tries.iter().all(|t| t.outcome == TryOutcome::Memo), "{tries:?}");
}

/// A failed phase's finished units are kept for the retry (which reuses them), until the branch
/// moves on: then they are superseded and reclaimed.
#[tokio::test]
async fn gc_keeps_a_failed_runs_units_for_the_retry_and_reclaims_them_once_superseded() {
    let env = env().await;
    let e = &env.engine;
    let plan = r#"[{"phase":3,"beat":1,"action":"fail","times":2}]"#;
    let video = new_video(e, "Half made", 2, true, Some(plan)).await;
    drain_expect(e, "SSF").await;
    let report = e.gc(Some(Duration::ZERO)).await.unwrap();
    assert_eq!((report.removed, report.forgotten_memo), (0, 0), "the failed run's finished clip is kept: {report:?}");
    let state = e.video_state(video).await.unwrap();
    let storyboard = head(&state, "main");
    e.continue_video(video, Some(storyboard), None, true).await.unwrap();
    drain_expect(e, "F").await;
    let tries = e.unit_tries(video).await.unwrap();
    let retry = e.video_state(video).await.unwrap().runs.last().unwrap().id;
    assert!(tries.iter().any(|t| t.run_id == retry && t.unit == 0 && t.outcome == TryOutcome::Memo), "the retry reused beat 0's clip");

    // The person edits the script instead of retrying again: until the branch runs on from the
    // edit, the failed run is its latest, and a continue may still reuse what it made.
    let script = state.checkpoints.iter().find(|c| c.phase == Phase::Script).unwrap();
    let mut edited = script.manifest.script().unwrap().clone();
    edited.beats[0].narration = "A different opening.".into();
    let edit = e.edit_script(video, None, script.id, &serde_json::to_string(&edited).unwrap()).await.unwrap();
    let report = e.gc(Some(Duration::ZERO)).await.unwrap();
    assert_eq!((report.removed, report.forgotten_memo), (0, 0), "kept until the branch moves on: {report:?}");
    // It moves on: beat 0's clip is made again from the new narration, the old one is superseded.
    e.continue_video(video, Some(edit), None, false).await.unwrap();
    drain_expect(e, "SSS").await;
    let report = e.gc(Some(Duration::ZERO)).await.unwrap();
    assert_eq!((report.removed, report.forgotten_memo), (2, 1), "beat 0's old clip (stream and preview) and its memo entry: {report:?}");
    let left: std::collections::HashSet<String> = e.stored_blobs().await.unwrap().into_iter().map(|(sha, _)| sha).collect();
    assert_eq!(left, held_by(&e.video_state(video).await.unwrap()));
}

/// A phase is cancelled with one unit still under way, and `gc` runs before the person retries:
/// the retry (which the rules offer after a cancel) reuses the units finished before the cancel.
#[tokio::test]
async fn gc_after_a_cancel_keeps_what_the_retry_reuses() {
    let env = env().await;
    let e = &env.engine;
    let plan = r#"[{"phase":2,"beat":1,"action":"delay","ms":2000}]"#;
    let video = new_video(e, "Cancelled half way", 2, true, Some(plan)).await;
    assert!(matches!(step(e).await, WorkOutcome::Succeeded { .. }), "the script");
    let worker = {
        let e = e.clone();
        tokio::spawn(async move { step(&e).await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while e.video_state(video).await.unwrap().runs.last().unwrap().units_done < 3 {
        assert!(Instant::now() < deadline, "three of the four units never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    e.cancel(video, None).await.unwrap();
    assert_eq!(worker.await.unwrap(), WorkOutcome::Stopped);
    let report = e.gc(Some(Duration::ZERO)).await.unwrap();
    assert_eq!(report.forgotten_memo, 0, "the cancelled run's finished units are kept for the retry: {report:?}");
    let script = head(&e.video_state(video).await.unwrap(), "main");
    e.continue_video(video, Some(script), None, true).await.unwrap();
    drain_expect(e, "SSS").await;
    let state = e.video_state(video).await.unwrap();
    let retry = state.runs.iter().rev().find(|r| r.phase == Phase::Storyboard).unwrap().id;
    let tries = e.unit_tries(video).await.unwrap();
    let of = |outcome| tries.iter().filter(|t| t.run_id == retry && t.outcome == outcome).count();
    assert_eq!((of(TryOutcome::Memo), of(TryOutcome::Ok)), (3, 1), "only beat 1's still was made again: {tries:?}");
}

/// A phase fails on one beat; the person edits another beat's narration instead of retrying,
/// and `gc` runs before they continue: the continue still remakes only what the edit changed
/// and what failed (SPEC §2), reusing every other unit the failed run made.
#[tokio::test]
async fn gc_between_a_failure_and_the_edits_continue_keeps_what_the_continue_reuses() {
    let env = env().await;
    let e = &env.engine;
    let plan = r#"[{"phase":2,"beat":3,"action":"fail","times":1}]"#;
    let video = new_video(e, "Four beats, one fails", 4, true, Some(plan)).await;
    drain_expect(e, "SF").await;
    let state = e.video_state(video).await.unwrap();
    let failed = state.runs.last().unwrap().id;
    let made = |tries: &[reelsmith::domain::video::UnitTry], run| {
        tries.iter().filter(|t| t.run_id == run && t.outcome == TryOutcome::Ok).map(|t| t.unit).collect::<std::collections::BTreeSet<u32>>()
    };
    let before = made(&e.unit_tries(video).await.unwrap(), failed);
    assert_eq!(before.len(), 7, "every unit but beat 3's still was made: {before:?}");
    let script = state.checkpoints.iter().find(|c| c.phase == Phase::Script).unwrap();
    let mut edited = script.manifest.script().unwrap().clone();
    edited.beats[2].narration = "The third beat, said another way.".into();
    let edit = e.edit_script(video, None, script.id, &serde_json::to_string(&edited).unwrap()).await.unwrap();
    let report = e.gc(Some(Duration::ZERO)).await.unwrap();
    assert_eq!(report.forgotten_memo, 0, "{report:?}");
    e.continue_video(video, Some(edit), None, false).await.unwrap();
    // And again with the continue's run queued: it holds nothing yet, the failed run still does.
    let report = e.gc(Some(Duration::ZERO)).await.unwrap();
    assert_eq!(report.forgotten_memo, 0, "{report:?}");
    drain_expect(e, "SSS").await;
    let state = e.video_state(video).await.unwrap();
    let board = state.runs.iter().rev().find(|r| r.phase == Phase::Storyboard).unwrap().id;
    let tries = e.unit_tries(video).await.unwrap();
    let remade = made(&tries, board);
    assert_eq!(remade.len(), 2, "beat 3's still (it failed) and beat 2's narration (edited), no more: {tries:?}");
    let reused = tries.iter().filter(|t| t.run_id == board && t.outcome == TryOutcome::Memo).count();
    assert_eq!(reused, 6, "the failed run's other units came from the memo");
}
