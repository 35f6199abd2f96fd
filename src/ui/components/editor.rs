//! "Edit Previous Phase": the script editor. Saving makes a new version at the branch head.
use leptos::prelude::*;

use crate::api::edit_script;
use crate::domain::Script;
use crate::domain::narration::{MAX_WPM, MIN_WPM, VOICES, estimated_speech_ms};
use crate::ui::live::{Shared, shared};

/// Opens the editor (the error card's "Edit Previous Phase", the script's "Edit script").
#[island]
pub fn EditButton(label: String, small: bool) -> impl IntoView {
    let sh = shared();
    view! { <button class:small=small on:click=move |_| sh.editing.set(true)>{label}</button> }
}

/// The editor of the branch's newest script; open while `editing` is set, and each time it
/// opens it starts from the saved script.
#[island]
pub fn ScriptEditor(
    video_id: String,
    branch: String,
    checkpoint: String,
    version: u32,
    saves: Option<u32>,
    script: Script,
) -> impl IntoView {
    let sh = shared();
    move || {
        sh.editing.get().then(|| editor_form(sh, video_id.clone(), branch.clone(), checkpoint.clone(), (version, saves), script.clone()))
    }
}

fn editor_form(
    sh: Shared,
    video_id: String,
    branch: String,
    checkpoint: String,
    versions: (u32, Option<u32>),
    script: Script,
) -> impl IntoView {
    let (version, saves) = versions;
    let draft = RwSignal::new(script.clone());
    let save = sh.action(move |(checkpoint, script): (String, Script)| {
        let json = serde_json::to_string(&script).unwrap_or_default();
        let saving = edit_script(video_id.clone(), Some(branch.clone()), checkpoint, json);
        async move {
            let saved = saving.await.map(|_| ());
            if saved.is_ok() {
                sh.editing.set(false);
            }
            saved
        }
    });
    let beats = (0..script.beats.len())
        .map(|i| {
            let n = i + 1;
            // Set once: a number field shows what is typed in it (an edit elsewhere must not
            // write "0" into one cleared while typing); a save says what an empty one needs.
            let duration = script.beats[i].duration_ms.to_string();
            view! {
                <fieldset class="beat-edit">
                    <legend>{format!("Beat {n}")}</legend>
                    <label for=format!("beat-{i}-narration")>{format!("Beat {n} narration")}</label>
                    <textarea id=format!("beat-{i}-narration") rows="2" maxlength="400"
                        prop:value=move || draft.with(|d| d.beats[i].narration.clone())
                        on:input=move |ev| draft.update(|d| d.beats[i].narration = event_target_value(&ev))></textarea>
                    <p class="muted small" id=format!("beat-{i}-spoken")>
                        {move || draft.with(|d| spoken_estimate(d, i))}
                    </p>
                    <label for=format!("beat-{i}-visual")>{format!("Beat {n} visual")}</label>
                    <textarea id=format!("beat-{i}-visual") rows="2" maxlength="400"
                        prop:value=move || draft.with(|d| d.beats[i].visual.clone())
                        on:input=move |ev| draft.update(|d| d.beats[i].visual = event_target_value(&ev))></textarea>
                    <label for=format!("beat-{i}-duration")>{format!("Beat {n} duration (ms)")}</label>
                    <input id=format!("beat-{i}-duration") type="number" min="500" max="10000" step="250"
                        prop:value=duration
                        on:input=move |ev| draft.update(|d| d.beats[i].duration_ms = event_target_value(&ev).parse().unwrap_or(0))/>
                </fieldset>
            }
        })
        .collect_view();
    view! {
        <section class="card editor" aria-labelledby="editor-heading">
            <h2 id="editor-heading">{match saves {
                Some(next) => format!("Edit Script v{version} — saves Script v{next}"),
                None => format!("Edit Script v{version} — saves a new version"),
            }}</h2>
            <form on:submit=move |ev| {
                ev.prevent_default();
                save.dispatch((checkpoint.clone(), draft.get_untracked()));
            }>
                <label for="script-title">"Title"</label>
                <input id="script-title" maxlength="120"
                    prop:value=move || draft.with(|d| d.title.clone())
                    on:input=move |ev| draft.update(|d| d.title = event_target_value(&ev))/>
                <NarrationFields draft=draft/>
                {beats}
                <div class="actions">
                    <button type="submit" class="primary" disabled=move || save.pending().get()>
                        {move || if save.pending().get() { "Saving…" } else { "Save new version" }}
                    </button>
                    <button type="button" on:click=move |_| sh.editing.set(false)>"Close editor"</button>
                </div>
            </form>
        </section>
    }
}

/// What the editor says under a beat's narration: about how long it takes to say.
fn spoken_estimate(script: &Script, i: usize) -> String {
    if script.narration.is_silent() {
        return "Not spoken (no narration)".into();
    }
    let ms = estimated_speech_ms(&script.beats[i].narration, script.narration.speed_wpm);
    format!("About {} s spoken", crate::api::decimal(i64::from(ms), 1000, 1))
}

/// The voice, its speed and the captions' place, for the whole script.
#[component]
fn NarrationFields(draft: RwSignal<Script>) -> impl IntoView {
    view! {
        <fieldset class="narration-edit">
            <legend>"Narration"</legend>
            <label for="narration-voice">"Voice"</label>
            <select id="narration-voice"
                prop:value=move || draft.with(|d| d.narration.voice.clone())
                on:change=move |ev| draft.update(|d| d.narration.voice = event_target_value(&ev))>
                {VOICES.iter().map(|(voice, name)| view! { <option value=*voice>{format!("{name} ({voice})")}</option> }).collect_view()}
            </select>
            <label for="narration-speed">"Speed (words per minute)"</label>
            <input id="narration-speed" type="number" min=MIN_WPM.to_string() max=MAX_WPM.to_string() step="5"
                prop:value=draft.with_untracked(|d| d.narration.speed_wpm.to_string())
                on:input=move |ev| draft.update(|d| d.narration.speed_wpm = event_target_value(&ev).parse().unwrap_or(0))/>
            <label class="inline">
                <input id="narration-burn" type="checkbox"
                    prop:checked=move || draft.with(|d| d.narration.burn_captions)
                    on:change=move |ev| draft.update(|d| d.narration.burn_captions = event_target_checked(&ev))/>
                "Burn captions into the picture (instead of a captions track)"
            </label>
        </fieldset>
    }
}
