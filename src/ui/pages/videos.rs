//! `/`: the list of videos and the form that makes a new one.
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_query_map;

use crate::api::{AppError, CreateVideo, VideoSummary, dollars, list_videos, server_info};
use crate::domain::video::VIDEOS_PAGE;
use crate::domain::words::markup_text;
use crate::ui::components::badge::StatusBadge;
use crate::ui::components::pager::Pager;
use crate::ui::components::posted::answer_shown;
use crate::ui::{Submitted, go_to, timestamp};

#[component]
pub fn VideosPage() -> impl IntoView {
    let info = Resource::new(|| (), |_| server_info());
    let query = use_query_map();
    let page = Memo::new(move |_| query.read().get("page").and_then(|p| p.parse::<u32>().ok()).unwrap_or(0));
    let videos = Resource::new(move || page.get(), |page| list_videos(Some(page)));
    let draft = Draft::from_address(&query.get_untracked());
    view! {
        <div class="videos-page">
            <section class="card new-video">
                <h1>"Make a video"</h1>
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || {
                        let draft = draft.clone();
                        Suspend::new(async move {
                            let fault_injection = info.await.map(|i| i.fault_injection).unwrap_or(false);
                            view! { <NewVideoForm fault_injection draft/> }
                        })
                    }}
                </Transition>
            </section>
            <section class="video-list" aria-labelledby="videos-heading">
                <h2 id="videos-heading">"Your videos"</h2>
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match videos.await {
                            Ok(list) if list.total == 0 => view! { <p class="muted">"No videos yet. Describe one above."</p> }.into_any(),
                            Ok(list) => view! {
                                <ul class="cards">{list.videos.into_iter().map(|v| view! { <VideoCard v/> }).collect_view()}</ul>
                                <Pager what="videos" page=list.page size=VIDEOS_PAGE total=list.total href=|n| format!("/?page={n}")/>
                            }.into_any(),
                            Err(e) => view! { <p class="error-text" role="alert">{e.sentence()}</p> }.into_any(),
                        }
                    })}
                </Transition>
            </section>
        </div>
    }
}

#[component]
fn VideoCard(v: VideoSummary) -> impl IntoView {
    let href = format!("/videos/{}", v.video_id);
    view! {
        <li class="video-card">
            <a href=href class="video-link">
                {match v.poster_url {
                    Some(url) => view! { <img class="thumb" src=url alt="" loading="lazy" width="320" height="180"/> }.into_any(),
                    None => view! { <div class="thumb placeholder" aria-hidden="true">"▶"</div> }.into_any(),
                }}
                <span class="video-title">{v.title}</span>
            </a>
            <div class="video-meta">
                <StatusBadge status=v.status/>
                {v.current_phase.map(|p| view! { <span class="muted">{p.label()}</span> })}
                <span class="muted">{crate::domain::words::count(v.beats, "beat", "beats")}</span>
                <span class="muted">{timestamp(v.created_at)}</span>
                <span class="cost">{dollars(v.total_cost_micros)}</span>
            </div>
        </li>
    }
}

/// What a form posted without JavaScript had typed when the server refused it: the address it
/// was sent back to carries it (`api::error::refused_form_url`), beside the refusal. Not the
/// auto-continue box: anyone can write such an address, and a box ticked by a link would spend
/// without asking at each phase; a person ticks it again.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Draft {
    prompt: String,
    beats: Option<String>,
    fault_plan: String,
}

impl Draft {
    fn from_address(query: &leptos_router::params::ParamsMap) -> Draft {
        if query.get_str("__path") != Some(CreateVideo::PATH) {
            return Draft::default();
        }
        let text = |name| query.get_str(name).unwrap_or_default().to_string();
        Draft { prompt: text("prompt"), beats: query.get_str("beats").map(str::to_string), fault_plan: text("fault_plan") }
    }
}

/// A textarea's first text, as its inner HTML: escaped, after a line break (the HTML parser drops
/// one right after `<textarea>`, so a text's own first line break stays). Not a child text: an
/// empty one is rendered as one space, which hides the placeholder and passes `required`.
fn textarea_text(text: &str) -> String {
    if text.is_empty() { String::new() } else { format!("\n{}", markup_text(text)) }
}

/// The page's one interactive part (an island): the form (with what a refused post had typed),
/// its errors, and on success the new video's page.
#[island]
fn NewVideoForm(fault_injection: bool, draft: Draft) -> impl IntoView {
    let create = ServerAction::<CreateVideo>::new();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        let form = Submitted::take(&ev);
        create.dispatch(CreateVideo {
            prompt: form.text("prompt"),
            // The field is a number input; anything else reaches the server's check as 0.
            beats: form.text("beats").trim().parse().unwrap_or(0),
            auto_continue: form.field("auto_continue"),
            fault_plan: form.field("fault_plan"),
            seed: None,
        });
    };
    Effect::new(move |_| {
        if let Some(Ok(id)) = create.value().get() {
            go_to(&format!("/videos/{id}"));
        }
    });
    let error = move || answer_shown(create.value().get(), create.version().get()).and_then(Result::err);
    let error_of = move |field: &'static str| {
        error().filter(|e: &AppError| e.field().is_some_and(|f| f == field || f.starts_with(&format!("{field}["))))
    };
    // Announced when it appears, and tied to its field (which is marked invalid).
    let field_error = move |field: &'static str| {
        move || error_of(field).map(|e| view! { <p class="field-error" id=format!("{field}-error") role="alert">{e.sentence()}</p> })
    };
    let invalid = move |field: &'static str| move || error_of(field).is_some().then_some("true");
    let described = move |field: &'static str| move || error_of(field).is_some().then(|| format!("{field}-error"));
    let other_error = move || {
        error()
            .filter(|e| !matches!(e.field(), Some(f) if ["prompt", "beats", "fault_plan"].iter().any(|k| f.starts_with(k))))
            .map(|e| view! { <p class="error-text" role="alert">{e.sentence()} " " {e.next_step()}</p> })
    };
    view! {
        <form class="form" method="post" action=CreateVideo::url() on:submit=submit>
            <label for="prompt">"Prompt"</label>
            <textarea id="prompt" name="prompt" rows="3" required maxlength="2000"
                aria-invalid=invalid("prompt") aria-describedby=described("prompt")
                placeholder="A lighthouse keeper teaches a gull to read the tides" inner_html=textarea_text(&draft.prompt)></textarea>
            {field_error("prompt")}
            <div class="row">
                <div>
                    <label for="beats">"Beats"</label>
                    <input id="beats" name="beats" type="number" min="1" max="12" value=draft.beats.unwrap_or_else(|| "4".into()) required
                        aria-invalid=invalid("beats") aria-describedby=described("beats")/>
                    {field_error("beats")}
                </div>
                <div class="checkbox">
                    <input id="auto_continue" name="auto_continue" type="checkbox" value="on"/>
                    <label for="auto_continue">"Auto-continue"</label>
                </div>
            </div>
            {fault_injection.then(|| view! {
                <label for="fault_plan">"Fault plan"</label>
                <textarea id="fault_plan" name="fault_plan" rows="2" class="mono"
                    aria-invalid=invalid("fault_plan") aria-describedby=described("fault_plan")
                    placeholder=r#"[{"phase":2,"beat":0,"action":"fail","times":1,"message":"Replicate API error: 502 Bad Gateway"}]"#
                    inner_html=textarea_text(&draft.fault_plan)></textarea>
                <p class="hint">"Fault injection is on: a JSON array of rules that make phases fail on purpose."</p>
                {field_error("fault_plan")}
            })}
            {other_error}
            <button type="submit" class="primary" disabled=move || create.pending().get()>
                {move || if create.pending().get() { "Creating…" } else { "Create video" }}
            </button>
        </form>
    }
}
