//! Deleting a video: one button, then a question to confirm, then back to the list.
use leptos::either::Either;
use leptos::prelude::*;

use crate::api::delete_video;
use crate::ui::go_to;
use crate::ui::live::shared;

#[island]
pub fn DeleteVideo(video_id: String) -> impl IntoView {
    let sh = shared();
    let asking = RwSignal::new(false);
    let delete = Action::new(move |_: &()| delete_video(video_id.clone()));
    Effect::new(move |_| match delete.value().get() {
        Some(Ok(())) => go_to("/"),
        Some(Err(e)) => {
            sh.error.set(Some(e));
            asking.set(false);
        }
        None => {}
    });
    view! {
        <section class="card delete-video" aria-label="Delete video">
            {move || if asking.get() {
                Either::Left(view! {
                    <p>"Delete this video, its branches and its history for good? This cannot be undone."</p>
                    <div class="row">
                        <button class="danger" disabled=move || delete.pending().get() on:click=move |_| { delete.dispatch(()); }>
                            {move || if delete.pending().get() { "Deleting…" } else { "Yes, delete it" }}
                        </button>
                        <button on:click=move |_| asking.set(false)>"Keep it"</button>
                    </div>
                })
            } else {
                Either::Right(view! { <button on:click=move |_| asking.set(true)>"Delete video"</button> })
            }}
        </section>
    }
}
