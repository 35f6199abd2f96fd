//! What the branch has made so far: the script, storyboard, clips and the final video.
use futures::FutureExt;
use leptos::either::Either;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use crate::api::{RegenerateBeat, VideoStatusWire, regenerate_beat};
use crate::ui::components::editor::EditButton;
use crate::ui::live::shared;

#[component]
pub fn Artifacts(s: VideoStatusWire) -> impl IntoView {
    let a = s.artifacts.clone();
    let idle = s.allowed.can_edit;
    // Regenerate buttons only where the server would take them; otherwise why not, once a section.
    let regenerable = idle && s.allowed.regenerate_refused.is_none();
    let refused = s.allowed.regenerate_refused.clone().filter(|_| idle).map(|r| {
        let line = format!("Regenerating a beat is refused: {r}. {}", r.next_step());
        move || view! { <p class="muted small refusal">{line.clone()}</p> }
    });
    let (video_id, branch) = (s.video_id.clone(), s.branch.clone());
    let regenerate = move |checkpoint: String, beat: usize, label: String| {
        view! { <RegenerateButton video_id=video_id.clone() branch=branch.clone() checkpoint beat=beat as u32 label/> }
    };
    let video = a.video_url.clone().map(|url| {
        let size = a
            .video_bytes
            .map(|b| format!("{} MB", crate::api::decimal(i64::try_from(b).unwrap_or(i64::MAX), 1_000_000, 1)))
            .unwrap_or_default();
        let secs = a.video_duration_ms.map(|d| format!("{} s", crate::api::decimal(i64::from(d), 1000, 1))).unwrap_or_default();
        view! {
            <section class="card final-video" aria-labelledby="video-heading">
                <h2 id="video-heading">"Your video"</h2>
                <video controls preload="metadata" src=url.clone() poster=a.poster_url.clone() width="1280" height="720">
                    {a.captions_url.clone().map(|vtt| view! { <track kind="captions" srclang="en" label="English" default src=vtt/> })}
                </video>
                <p class="muted">{format!("{secs} · {size} · H.264 MP4 · ")}<a href=url download="reelsmith.mp4">"Download"</a></p>
            </section>
        }
    });
    let script = a.script.clone().map(|script| {
        view! {
            <section class="card script" aria-labelledby="script-heading">
                <div class="section-head">
                    <h2 id="script-heading">{format!("Script: {}", script.title)}</h2>
                    {a.script_checkpoint.as_ref().map(|c| view! { <span class="muted small">{format!("v{} · {}", c.version, c.status)}</span> })}
                    {idle.then(|| view! { <EditButton label="Edit script".into() small=true/> })}
                </div>
                <p class="muted small">{voice_line(&script.narration)}</p>
                <ol class="beats">
                    {script.beats.iter().enumerate().map(|(i, b)| view! {
                        <li>
                            <p>{b.narration.clone()}</p>
                            <p class="muted small">{format!("{} · {}", b.visual, beat_length(&script, i, a.narrations.get(i).map(|n| n.duration_ms)))}</p>
                        </li>
                    }).collect_view()}
                </ol>
            </section>
        }
    });
    let storyboard = a.storyboard_checkpoint.clone().map(|c| {
        let frames = a.storyboard.clone();
        let narrations = a.narrations.clone();
        view! {
            <section class="card storyboard" aria-labelledby="storyboard-heading">
                <div class="section-head">
                    <h2 id="storyboard-heading">"Storyboard"</h2>
                    <span class="muted small">{format!("v{} · {}", c.version, c.status)}</span>
                </div>
                {refused.clone().map(|line| line())}
                <ul class="frames">
                    {frames.into_iter().enumerate().map(|(i, url)| {
                        let id = c.id.clone();
                        view! {
                            <li>
                                <img src=url alt=format!("Storyboard beat {}", i + 1) loading="lazy" width="320" height="180"/>
                                {narrations.get(i).map(|n| view! { <NarrationPlayer index=i audio_url=n.audio_url.clone() duration_ms=n.duration_ms/> })}
                                {regenerable.then(|| regenerate(id, i, format!("Regenerate beat {}", i + 1)))}
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </section>
        }
    });
    let clips = a.clips_checkpoint.clone().map(|c| {
        view! {
            <section class="card clips" aria-labelledby="clips-heading">
                <div class="section-head">
                    <h2 id="clips-heading">"Clips"</h2>
                    <span class="muted small">{format!("v{} · {}", c.version, c.status)}</span>
                </div>
                {refused.clone().map(|line| line())}
                <ul class="frames">
                    {a.clips.iter().enumerate().map(|(i, clip)| {
                        let id = c.id.clone();
                        let poster = a.storyboard.get(i).cloned();
                        view! {
                            <li>
                                <ClipPreview index=i url=clip.preview_url.clone() poster=poster/>
                                {regenerable.then(|| regenerate(id, i, format!("Regenerate clip {}", i + 1)))}
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </section>
        }
    });
    view! { {video} {script} {storyboard} {clips} }
}

/// How long a beat lasts, as the script card says it: the beat's own length, or, when its
/// narration makes the clip longer, that length: from the narration made (`spoken_ms`, once the
/// storyboard has it), else about, from the words.
fn beat_length(script: &crate::domain::Script, i: usize, spoken_ms: Option<u32>) -> String {
    let own = script.beats[i].duration_ms;
    let secs = |ms: u32| crate::api::decimal(i64::from(ms), 1000, 1);
    match spoken_ms.map(|spoken| crate::domain::narration::clip_length_ms(own, Some(spoken))) {
        Some(made) if made > own => format!("{} s with its narration", secs(made)),
        None if script.estimated_beat_ms(i) > own => format!("about {} s with its narration", secs(script.estimated_beat_ms(i))),
        _ => format!("{} s", crate::api::decimal(i64::from(own), 1000, 2)),
    }
}

/// How the script is spoken, in words.
fn voice_line(n: &crate::domain::Narration) -> String {
    if n.is_silent() {
        return "Not narrated".into();
    }
    let captions = if n.burn_captions { "captions burned in" } else { "captions as a track" };
    format!("Narrated: voice {} at {} words per minute · {captions}", n.voice, n.speed_wpm)
}

/// A beat's narration: the browser's own audio player (its play button, keyboard and seeking),
/// loading nothing until played.
#[component]
fn NarrationPlayer(index: usize, audio_url: String, duration_ms: u32) -> impl IntoView {
    view! {
        <div class="narration">
            <audio class="narration-audio" controls preload="none" src=audio_url
                aria-label=format!("Narration for beat {}", index + 1)></audio>
            <span class="muted small">{format!("{} s spoken", crate::api::decimal(i64::from(duration_ms), 1000, 1))}</span>
        </div>
    }
}

/// Makes a beat's storyboard frame or clip again (a new version of the checkpoint).
#[island]
fn RegenerateButton(video_id: String, branch: String, checkpoint: String, beat: u32, label: String) -> impl IntoView {
    // A form, so it works without JavaScript too (see `ContinueButton`).
    let (fields, key) = ((video_id.clone(), branch.clone(), checkpoint.clone()), label.clone());
    let regenerate = shared()
        .action(move |_: ()| regenerate_beat(video_id.clone(), Some(branch.clone()), checkpoint.clone(), beat).map(|r| r.map(|_| ())));
    view! {
        <form class="action" method="post" action=RegenerateBeat::url() on:submit=move |ev| {
            ev.prevent_default();
            regenerate.dispatch(());
        }>
            <input type="hidden" name="video_id" value=fields.0/>
            <input type="hidden" name="branch" value=fields.1/>
            <input type="hidden" name="checkpoint_id" value=fields.2/>
            <input type="hidden" name="beat" value=beat.to_string()/>
            <button type="submit" class="small" data-focus=key disabled=move || regenerate.pending().get()>{label}</button>
        </form>
    }
}

/// A clip shows its still until asked to play: the page then holds one <video> (the final one)
/// until a person opens a clip, and no bandwidth goes on previews nobody watches.
#[island]
fn ClipPreview(index: usize, url: String, poster: Option<String>) -> impl IntoView {
    let playing = RwSignal::new(false);
    let label = format!("Play clip {}", index + 1);
    view! {
        {move || if playing.get() {
            Either::Left(view! {
                <video class="clip-video" src=url.clone() autoplay muted controls width="320" height="180"
                    aria-label=format!("Clip for beat {}", index + 1)></video>
            })
        } else {
            Either::Right(view! {
                <button class="clip-poster" aria-label=label.clone() on:click=move |_| playing.set(true)>
                    {poster.clone().map(|p| view! { <img src=p alt="" loading="lazy" width="320" height="180"/> })}
                    <span class="play" aria-hidden="true">"▶"</span>
                </button>
            })
        }}
    }
}
