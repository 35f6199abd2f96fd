//! What a form posted without JavaScript was answered, when the server refused it.
//!
//! Such a post comes back to its page with the refusal in the address (Leptos's `__path` and
//! `__err`). The sign-in, sign-up and new-video forms show it beside their fields (Leptos's
//! `ServerAction` reads it; `answer_shown` filters it); for the status page's forms (Approve & Continue, Retry, Cancel,
//! Regenerate, the budget) this card says it at the top of the page. Anyone can write such an address, so only what the server's
//! own typed refusals say is shown in their words; a free-text message (an invalid field) is not
//! repeated, only that the form was not accepted.
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos::server_fn::error::ServerFnUrlError;
use leptos_router::hooks::use_query_map;

use crate::api::{AppError, CancelRun, ContinueVideo, RegenerateBeat, SetBudget};
use crate::domain::Refusal;

/// The refusal to show, if the address carries one for a form that does not show its own.
pub fn posted_refusal(path: &str, encoded: &str) -> Option<(String, String)> {
    // Only the status page's forms that work without JavaScript get here.
    if ![ContinueVideo::PATH, CancelRun::PATH, RegenerateBeat::PATH, SetBudget::PATH].contains(&path) {
        return None;
    }
    trusted_from_address(ServerFnUrlError::<AppError>::decode_err(encoded)).map(|e| (e.sentence(), e.next_step()))
}

/// A refusal read from an address, as a page may show it: a typed refusal as it is; an invalid
/// field with a fixed sentence instead of the address's text; nothing for what the forms cannot
/// be answered with (what does not decode reads as "could not reach the server"; no form that
/// posts without JavaScript is refused for a branch's name).
fn trusted_from_address(e: AppError) -> Option<AppError> {
    match e {
        AppError::Transport(_) | AppError::Refused(Refusal::BranchNameTaken { .. }) => None,
        AppError::InvalidInput { field, .. } => {
            Some(AppError::InvalidInput { field, message: "what the form sent was not accepted; check it and send it again".into() })
        }
        e => Some(e),
    }
}

/// A form's answer as its page shows it. Before the form has sent anything from this page
/// (`dispatched` is its action's version), an error can only have come from the address, which
/// Leptos's `ServerAction` reads and anyone can write: it is shown as `trusted_from_address` says.
pub fn answer_shown<T>(answer: Option<Result<T, AppError>>, dispatched: usize) -> Option<Result<T, AppError>> {
    match answer {
        Some(Err(e)) if dispatched == 0 => trusted_from_address(e).map(Err),
        other => other,
    }
}

#[component]
pub fn PostedRefusal() -> impl IntoView {
    let query = use_query_map().get_untracked();
    let refusal = query.get_str("__path").zip(query.get_str("__err")).and_then(|(path, err)| posted_refusal(path, err));
    refusal.map(|(sentence, next)| {
        view! {
            <section class="card error-card posted" role="alert" aria-labelledby="posted-heading">
                <h2 id="posted-heading">"That was not done"</h2>
                <p class="error-text">{sentence}</p>
                <p>{next}</p>
            </section>
        }
    })
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;
    use leptos::server_fn::error::FromServerFnError;

    fn encoded(e: &AppError) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE.encode(e.ser())
    }

    #[test]
    fn a_refusal_reads_in_its_own_words_and_free_text_is_not_repeated() {
        let refused = AppError::Refused(Refusal::RetryLimitReached { limit: 5 });
        let shown = posted_refusal(ContinueVideo::PATH, &encoded(&refused)).expect("shown");
        assert_eq!(shown.0, "Retry limit reached (5).");
        let invalid = AppError::InvalidInput { field: "dollars".into(), message: "Call 555-0100 to unlock your account".into() };
        let shown = posted_refusal(SetBudget::PATH, &encoded(&invalid)).expect("shown");
        assert!(!shown.0.contains("555") && !shown.1.contains("555"), "{shown:?}");
        // The forms that read the address themselves: the same, until they send something.
        let from_address = answer_shown::<()>(Some(Err(invalid.clone())), 0).unwrap().unwrap_err();
        assert!(!from_address.sentence().contains("555") && from_address.field() == Some("dollars"), "{from_address:?}");
        assert_eq!(answer_shown::<()>(Some(Err(invalid.clone())), 1), Some(Err(invalid.clone())), "the server's own answer");
        assert_eq!(posted_refusal(SetBudget::PATH, "not base64!"), None, "garbage shows nothing");
        let taken = AppError::Refused(Refusal::BranchNameTaken { name: "Call 555-0100 now".into() });
        assert_eq!(posted_refusal(ContinueVideo::PATH, &encoded(&taken)), None, "no form here is refused for a name");
        assert_eq!(posted_refusal("/api/sign_in", &encoded(&refused)), None, "the sign-in form shows its own");
        assert_eq!(posted_refusal("/api/anything", &encoded(&refused)), None, "only the status page's forms");
    }
}
