//! The status page's client side: the state its islands share, the live channel, and the refresh
//! that swaps the server's newer HTML in while keeping every island whose props did not change.
use leptos::prelude::*;
use std::future::Future;

use crate::api::AppError;

/// The id of the element a refresh replaces: the whole status page but the shell around it.
pub const REGION: &str = "status-region";
/// The id of the "Next step" panel, where the focus goes when the control of an action that
/// changed the page is gone (Approve & Continue, once the phase runs).
pub const FALLBACK_FOCUS: &str = "next-step";

/// What the islands of one status page share. Islands are separate roots (no common context), so
/// the browser keeps one set for the page; the server renders every island in its first state.
#[derive(Clone, Copy)]
pub struct Shared {
    /// Bumped to ask for the page's newest HTML (after an action, or when the channel says so).
    pub refresh: RwSignal<u64>,
    /// The last action's refusal or failure, shown until dismissed or the next action succeeds.
    pub error: RwSignal<Option<AppError>>,
    pub editing: RwSignal<bool>,
    /// Which checkpoint's "Create branch" form is open.
    pub branch_form: RwSignal<Option<String>>,
    /// What the person is typing in the budget field; kept when the controls are re-rendered.
    pub budget_draft: RwSignal<Option<String>>,
}

/// The browser's one set of the page's shared signals.
#[cfg(feature = "hydrate")]
#[derive(Default)]
struct PageState {
    refresh: ArcRwSignal<u64>,
    error: ArcRwSignal<Option<AppError>>,
    editing: ArcRwSignal<bool>,
    branch_form: ArcRwSignal<Option<String>>,
    budget_draft: ArcRwSignal<Option<String>>,
}

#[cfg(feature = "hydrate")]
thread_local! {
    static PAGE: PageState = PageState::default();
}

pub fn shared() -> Shared {
    #[cfg(feature = "hydrate")]
    {
        PAGE.with(|p| Shared {
            refresh: p.refresh.clone().into(),
            error: p.error.clone().into(),
            editing: p.editing.clone().into(),
            branch_form: p.branch_form.clone().into(),
            budget_draft: p.budget_draft.clone().into(),
        })
    }
    #[cfg(not(feature = "hydrate"))]
    Shared {
        refresh: RwSignal::new(0),
        error: RwSignal::new(None),
        editing: RwSignal::new(false),
        branch_form: RwSignal::new(None),
        budget_draft: RwSignal::new(None),
    }
}

impl Shared {
    /// An action whose result refreshes the page, or shows its error as a sentence.
    pub fn action<I, Fut>(self, f: impl Fn(I) -> Fut + Send + Sync + 'static) -> Action<I, ()>
    where
        I: Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), AppError>> + Send + 'static,
    {
        Action::new(move |input: &I| {
            #[cfg(feature = "hydrate")]
            client::remember_focus();
            let fut = f(input.clone());
            async move {
                let result = fut.await;
                self.error.set(result.err());
                self.refresh.update(|n| *n += 1);
            }
        })
    }
}

/// The live indicator; in the browser it also keeps the channel open and runs the refreshes.
/// As the server sends it, it says the page is as of now (without JavaScript it stays so: a
/// reload shows what changed); once the page runs in the browser it says "connecting", then
/// "live". The switch is an effect, which runs only in the browser and after hydration, so the
/// page hydrates the same text the server sent.
#[island]
pub fn Live(video_id: String) -> impl IntoView {
    let live = RwSignal::new(false);
    let running = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    {
        Effect::new(move |_| running.set(true));
        client::start(video_id, live, shared());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = video_id;
    let title = move || if running.get() { "Updates appear without reloading" } else { "Reload the page to see what changed" };
    view! {
        <span class="live" title=title data-testid="live">
            {move || match (running.get(), live.get()) {
                (false, _) => "○ not live",
                (true, false) => "○ connecting",
                (true, true) => "● live",
            }}
        </span>
    }
}

/// Where an action's refusal appears, in words, until dismissed.
#[island]
pub fn ActionError() -> impl IntoView {
    let sh = shared();
    view! {
        <div aria-live="assertive" class="action-error-region">
            {move || sh.error.get().map(|e| view! {
                <div class="action-error card">
                    <strong>{e.sentence()}</strong> " " {e.next_step()}
                    <button class="link" on:click=move |_| sh.error.set(None)>"Dismiss"</button>
                </div>
            })}
        </div>
    }
}

#[cfg(feature = "hydrate")]
mod client {
    use futures::StreamExt;
    use futures::channel::mpsc::{UnboundedSender, unbounded};
    use leptos::prelude::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{Document, Element, HtmlElement};

    use super::{FALLBACK_FOCUS, REGION, Shared};
    use crate::api::{WatchRequest, watch_video};

    thread_local! {
        /// The `data-focus` of the control whose action is under way: a button that is disabled
        /// while its action runs, or replaced when the page shows what it did, loses the focus,
        /// and the refresh after it gives the focus back (see `refocus`).
        static FOCUS_AFTER: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    }

    /// Notes the focused control of an action that starts (by its `data-focus`).
    pub fn remember_focus() {
        let key = document()
            .active_element()
            .and_then(|el| el.closest("[data-focus]").ok().flatten())
            .and_then(|el| el.get_attribute("data-focus"));
        FOCUS_AFTER.with(|f| *f.borrow_mut() = key);
    }

    /// After a refresh: if an action's control had the focus and the page has none now, the
    /// focus goes back to that control (the same `data-focus`, enabled), or else to the "Next
    /// step" panel, which says what the action led to. A refresh that no action asked for never
    /// moves the focus.
    fn refocus(doc: &Document) {
        let Some(key) = FOCUS_AFTER.with(|f| f.borrow_mut().take()) else { return };
        let lost = doc.active_element().is_none_or(|el| el.tag_name().eq_ignore_ascii_case("body"));
        if !lost {
            return;
        }
        let target = doc
            .query_selector(&format!("[data-focus=\"{key}\"]:not([disabled])"))
            .ok()
            .flatten()
            .or_else(|| doc.get_element_by_id(FALLBACK_FOCUS));
        if let Some(el) = target.and_then(|el| el.dyn_into::<HtmlElement>().ok()) {
            let _ = el.focus();
        }
    }

    pub fn start(video_id: String, live: RwSignal<bool>, sh: Shared) {
        let shown = Rc::new(Cell::new(region_changes(&document())));
        let (kick, mut kicks) = unbounded::<()>();
        // Every bump after the first run asks for a refresh.
        let first = Cell::new(true);
        let on_bump = kick.clone();
        Effect::new(move |_| {
            sh.refresh.track();
            if !first.replace(false) {
                let _ = on_bump.unbounded_send(());
            }
        });
        let seen = shown.clone();
        leptos::task::spawn_local(watch(video_id, live, seen, kick));
        leptos::task::spawn_local(async move {
            // One refresh at a time; the requests that came during one are served by the next.
            while kicks.next().await.is_some() {
                while kicks.try_recv().is_ok() {}
                if let Err(e) = refresh(&shown).await {
                    leptos::logging::warn!("refresh failed: {e:?}");
                }
            }
        });
    }

    /// The server's change counter of the snapshot on screen.
    fn region_changes(doc: &Document) -> i64 {
        doc.get_element_by_id(REGION).and_then(|r| r.get_attribute("data-changes")).and_then(|c| c.parse().ok()).unwrap_or(-1)
    }

    /// Asks for a refresh whenever the server's change counter is ahead of the snapshot on
    /// screen: the first message (sent on every connect, reconnects included) catches whatever
    /// changed before the channel opened, and later ones whatever changes after.
    async fn watch(video_id: String, live: RwSignal<bool>, shown: Rc<Cell<i64>>, kick: UnboundedSender<()>) {
        let mut backoff_ms = 250;
        loop {
            let (mut tx, rx) = futures::channel::mpsc::channel(1);
            let _ = tx.try_send(Ok(WatchRequest { video_id: video_id.clone() }));
            if let Ok(mut events) = watch_video(rx.into()).await {
                while let Some(event) = events.next().await {
                    let Ok(event) = event else { break };
                    live.set(true);
                    backoff_ms = 250;
                    if event.changes > shown.get() {
                        let _ = kick.unbounded_send(());
                    }
                }
            }
            drop(tx);
            live.set(false);
            gloo_timers::future::TimeoutFuture::new(backoff_ms).await;
            backoff_ms = (backoff_ms * 2).min(5000);
        }
    }

    /// Fetches this address again and puts its status region in place of the one on screen.
    /// Islands whose props are unchanged (and media elements that are unchanged) stay: the old
    /// element moves into the new region, with its state and its handlers. The other islands are
    /// new, and hydrate here. The focused field keeps the focus and its selection.
    async fn refresh(shown: &Cell<i64>) -> Result<(), JsValue> {
        let window = window();
        let doc = document();
        let init = web_sys::RequestInit::new();
        init.set_cache(web_sys::RequestCache::NoStore);
        let href = window.location().href()?;
        let response: web_sys::Response = JsFuture::from(window.fetch_with_str_and_init(&href, &init)).await?.dyn_into()?;
        let html = JsFuture::from(response.text()?).await?.as_string().unwrap_or_default();
        let fresh = web_sys::DomParser::new()?.parse_from_string(&html, web_sys::SupportedType::TextHtml)?;
        let (Some(old), Some(new)) = (doc.get_element_by_id(REGION), fresh.get_element_by_id(REGION)) else {
            // Not a status page any more (deleted, signed out): show what the server says.
            return window.location().reload();
        };
        let changes = region_changes(&fresh);
        if changes >= 0 && changes < shown.get() {
            return Ok(()); // an older snapshot than the one on screen (a slow response)
        }
        // The focused field, by id: it may be in an island that is made again (new props).
        let focused = doc.active_element().filter(|el| old.contains(Some(el)) && !el.id().is_empty());
        let focus = focused.map(|el| (el.id(), selection_of(&el)));
        // A focused control without an id (an action's button) loses the focus when its element
        // moves into the new region: `refocus` gives it back by its `data-focus`.
        if let Some(key) =
            doc.active_element().filter(|el| old.contains(Some(el)) && el.id().is_empty()).and_then(|el| el.get_attribute("data-focus"))
        {
            FOCUS_AFTER.with(|f| *f.borrow_mut() = Some(key));
        }
        let mut keep = elements(&old)?;
        let mut hydrate = Vec::new();
        for (key, el) in elements(&new)? {
            match keep.iter().position(|(k, _)| *k == key) {
                Some(i) => {
                    let (_, kept) = keep.swap_remove(i);
                    el.replace_with_with_node_1(&kept)?;
                }
                None if el.tag_name().eq_ignore_ascii_case("leptos-island") => hydrate.push(el),
                None => {}
            }
        }
        old.replace_with_with_node_1(&new)?;
        shown.set(changes);
        let hydrate_island = js_sys::Reflect::get(&window, &JsValue::from_str("__hydrateIsland"))?.dyn_into::<js_sys::Function>()?;
        for el in hydrate {
            let component = el.get_attribute("data-component").unwrap_or_default();
            hydrate_island.call2(&JsValue::NULL, &el, &JsValue::from_str(&component))?;
        }
        if let Some((id, selection)) = focus
            && let Some(el) = doc.get_element_by_id(&id)
        {
            if let Ok(el) = el.clone().dyn_into::<HtmlElement>() {
                let _ = el.focus();
            }
            if let Some((start, end)) = selection {
                restore_selection(&el, start, end);
            }
        }
        refocus(&doc);
        Ok(())
    }

    /// The islands and media players of a region, each with what identifies it.
    fn elements(region: &Element) -> Result<Vec<(String, Element)>, JsValue> {
        let list = region.query_selector_all("leptos-island, video, audio")?;
        let mut out = Vec::with_capacity(list.length() as usize);
        for i in 0..list.length() {
            if let Some(el) = list.item(i).and_then(|n| n.dyn_into::<Element>().ok()) {
                // Media inside an island belong to the island.
                if !el.tag_name().eq_ignore_ascii_case("leptos-island") && el.closest("leptos-island")?.is_some() {
                    continue;
                }
                out.push((key_of(&el), el));
            }
        }
        Ok(out)
    }

    fn key_of(el: &Element) -> String {
        if el.tag_name().eq_ignore_ascii_case("leptos-island") {
            format!("{}\u{1}{}", el.get_attribute("data-component").unwrap_or_default(), el.get_attribute("data-props").unwrap_or_default())
        } else {
            el.outer_html()
        }
    }

    fn selection_of(el: &Element) -> Option<(u32, u32)> {
        if let Some(input) = el.dyn_ref::<web_sys::HtmlInputElement>() {
            return Some((input.selection_start().ok()??, input.selection_end().ok()??));
        }
        let area = el.dyn_ref::<web_sys::HtmlTextAreaElement>()?;
        Some((area.selection_start().ok()??, area.selection_end().ok()??))
    }

    fn restore_selection(el: &Element, start: u32, end: u32) {
        if let Some(input) = el.dyn_ref::<web_sys::HtmlInputElement>() {
            let _ = input.set_selection_range(start, end);
        } else if let Some(area) = el.dyn_ref::<web_sys::HtmlTextAreaElement>() {
            let _ = area.set_selection_range(start, end);
        }
    }
}
