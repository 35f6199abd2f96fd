//! The one error that crosses to the browser: typed, with a sentence and a next step, no internals.
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use leptos::server_fn::{Bytes, Encodes};
use serde::{Deserialize, Serialize};

use crate::domain::{Denial, Entity, LimitReached, Refusal};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("{what} not found")]
    NotFound { what: Entity, id: String },
    #[error("{message}")]
    InvalidInput { field: String, message: String },
    #[error("{0}")]
    Refused(Refusal),
    #[error("{0}")]
    Denied(Denial),
    #[error("{0}")]
    Limit(LimitReached),
    #[error("Something went wrong on the server")]
    Internal,
    #[error("The server could not be reached: {0}")]
    Transport(String),
}

impl AppError {
    /// The sentence a person reads.
    pub fn sentence(&self) -> String {
        match self {
            AppError::NotFound { what, .. } => format!("{} not found.", what.label()),
            AppError::InvalidInput { message, .. } => {
                let mut s = message.clone();
                if let Some(first) = s.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                if !s.ends_with('.') {
                    s.push('.');
                }
                s
            }
            AppError::Refused(r) => format!("{r}."),
            AppError::Denied(d) => format!("{d}."),
            AppError::Limit(l) => format!("{l}."),
            AppError::Internal => "Something went wrong on the server.".into(),
            AppError::Transport(_) => "The server could not be reached.".into(),
        }
    }

    /// What to do next.
    pub fn next_step(&self) -> String {
        match self {
            AppError::NotFound { .. } => "Go back to the list of videos and pick one that exists.".into(),
            AppError::InvalidInput { .. } => "Correct the field and try again.".into(),
            AppError::Refused(r) => r.next_step().into(),
            AppError::Denied(d) => d.next_step().into(),
            AppError::Limit(l) => l.next_step().into(),
            AppError::Internal => "Try again in a moment; the details are in the server log.".into(),
            AppError::Transport(_) => "Check that the server is running, then try again.".into(),
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            AppError::InvalidInput { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::MissingArg(m) => {
                AppError::InvalidInput { field: "request".into(), message: format!("the request was malformed: {m}") }
            }
            other => AppError::Transport(other.to_string()),
        }
    }

    /// Called on the server only, to send the error as a server function's answer: the moment
    /// the error sets the response's HTTP status (`AppError::respond`).
    fn ser(&self) -> Bytes {
        #[cfg(feature = "ssr")]
        self.respond();
        <JsonEncoding as Encodes<Self>>::encode(self).expect("an AppError is plain data")
    }
}

#[cfg(feature = "ssr")]
impl AppError {
    /// The HTTP status the error answers with: 404 not found, 409 refused, 422 invalid, 401 not
    /// signed in (or wrong password), 429 a limit or too many sign-ins, 500 for the rest.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            AppError::NotFound { .. } => StatusCode::NOT_FOUND,
            AppError::Refused(_) => StatusCode::CONFLICT,
            AppError::Denied(Denial::TooManyAttempts { .. }) | AppError::Limit(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Denied(_) => StatusCode::UNAUTHORIZED,
            AppError::InvalidInput { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Internal | AppError::Transport(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Sets the status of the server function's response (leptos_axum applies it). Not for a
    /// form posted without JavaScript (it accepts HTML): that answer stays a redirect to the page.
    fn respond(&self) {
        if let (false, Some(response)) = (posted_without_javascript(), leptos::prelude::use_context::<leptos_axum::ResponseOptions>()) {
            response.set_status(self.status());
        }
    }
}

/// Whether the server function was called by a form the browser posted itself (JavaScript off:
/// the request accepts HTML), rather than by the page's code (which asks for JSON).
#[cfg(feature = "ssr")]
pub fn posted_without_javascript() -> bool {
    leptos::prelude::use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.headers.get(axum::http::header::ACCEPT)?.to_str().ok().map(|a| a.contains("text/html")))
        .unwrap_or(false)
}

/// Where a form posted without JavaScript goes when the server refuses it: back to `page`, with
/// the refusal (`__path`, `__err`, as Leptos writes them) and what was typed in the form's fields,
/// so that the form shows both and nothing is typed again. The address stays within
/// `MAX_REFUSED_ADDRESS`: a field that would not fit is left out (the next ones may still fit).
#[cfg(feature = "ssr")]
pub fn refused_form_url(page: &str, path: &str, error: &AppError, typed: &[(&str, &str)]) -> String {
    use base64::Engine;
    let error = base64::engine::general_purpose::URL_SAFE.encode(error.ser());
    let refusal = format!("__path={}&__err={}", percent_encoded(path, b""), percent_encoded(&error, b""));
    let mut url = format!("{page}?");
    for (name, value) in typed.iter().filter(|(_, value)| !value.is_empty()) {
        let field = format!("{}={}&", percent_encoded(name, b""), percent_encoded(value, b""));
        if url.len() + field.len() + refusal.len() <= MAX_REFUSED_ADDRESS {
            url += &field;
        }
    }
    url + &refusal
}

/// The page of the list (`/?page=N`) a form posted without JavaScript was sent from, read from
/// its `Referer`: a refused form goes back to that page of the list.
#[cfg(feature = "ssr")]
pub fn list_page_posted_from() -> Option<u32> {
    let parts = leptos::prelude::use_context::<axum::http::request::Parts>()?;
    list_page_of(parts.headers.get(axum::http::header::REFERER)?.to_str().ok()?)
}

#[cfg(feature = "ssr")]
fn list_page_of(referer: &str) -> Option<u32> {
    let query = referer.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|pair| pair.strip_prefix("page=")?.parse().ok())
}

/// The longest address a refused form is sent back to: a proxy in front of the server may refuse
/// a longer one (nginx's default header buffers are 4–8 KB). A 2,000-character prompt in Latin
/// letters fits; in letters that take three bytes, each written as three `%XX`, it does not.
#[cfg(feature = "ssr")]
pub const MAX_REFUSED_ADDRESS: usize = 4 * 1024;

/// `s` for an address: every byte but ASCII letters, digits, `-_.~` and those in `keep` as `%XX`.
#[cfg(feature = "ssr")]
pub fn percent_encoded(s: &str, keep: &[u8]) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || keep.contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(feature = "ssr")]
impl From<crate::pipeline::CoreError> for AppError {
    fn from(e: crate::pipeline::CoreError) -> Self {
        use crate::pipeline::CoreError;
        match e {
            CoreError::NotFound { what, id } => AppError::NotFound { what, id },
            CoreError::Invalid(i) => AppError::InvalidInput { field: i.field, message: i.message },
            CoreError::Refused(r) => AppError::Refused(r),
            CoreError::Denied(d) => AppError::Denied(d),
            CoreError::Limit(l) => AppError::Limit(l),
            other => {
                // Logged once here, never sent: the browser gets a generic sentence.
                tracing::error!(error = %other, "internal error in a server function");
                AppError::Internal
            }
        }
    }
}

#[cfg(feature = "ssr")]
impl From<crate::domain::InvalidInput> for AppError {
    fn from(i: crate::domain::InvalidInput) -> Self {
        AppError::InvalidInput { field: i.field, message: i.message }
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;
    use leptos::server_fn::error::ServerFnUrlError;
    use leptos_router::location::RequestUrl;

    /// The address a refused form goes back to reads, as the page reads it, as what was typed and
    /// the refusal; an empty field is left out, and so is one that would make the address too long.
    #[test]
    fn a_refused_form_goes_back_with_what_was_typed() {
        let refusal = AppError::InvalidInput { field: "fault_plan".into(), message: "the fault plan is not valid JSON".into() };
        let prompt = "Gulls & tides: 100% sure? ü 灯台 a+b=c #1\nline two </textarea>";
        let long = "x".repeat(MAX_REFUSED_ADDRESS);
        let typed = [("prompt", prompt), ("fault_plan", long.as_str()), ("beats", "3"), ("note", "")];
        let url = refused_form_url("/", "/api/create_video", &refusal, &typed);
        assert!(url.starts_with("/?") && url.is_ascii() && !url.contains([' ', '\n', '#', '+', '<']), "{url}");
        let read = RequestUrl::new(&url).parse().expect("an address");
        assert_eq!(read.path(), "/");
        let q = read.search_params();
        assert_eq!(q.get_str("prompt"), Some(prompt));
        assert_eq!(q.get_str("beats"), Some("3"), "a field after one left out still goes");
        assert_eq!(q.get_str("note"), None, "an empty field is left out");
        assert_eq!(q.get_str("fault_plan"), None, "too long for the address");
        assert_eq!(q.get_str("__path"), Some("/api/create_video"));
        assert_eq!(ServerFnUrlError::<AppError>::decode_err(q.get_str("__err").unwrap()), refusal);

        // The longest prompt the form sends: in Latin letters it fits; in CJK it does not, and
        // the refusal still goes back whole.
        let latin = "a tide ".repeat(2000 / 7);
        let url = refused_form_url("/", "/api/create_video", &refusal, &[("prompt", latin.as_str()), ("beats", "3")]);
        assert!(url.len() <= MAX_REFUSED_ADDRESS, "{}", url.len());
        assert_eq!(RequestUrl::new(&url).parse().unwrap().search_params().get_str("prompt"), Some(latin.as_str()));
        let cjk = "灯".repeat(2000);
        let url = refused_form_url("/", "/api/create_video", &refusal, &[("prompt", cjk.as_str()), ("beats", "3")]);
        assert!(url.len() <= MAX_REFUSED_ADDRESS, "{}", url.len());
        let q = RequestUrl::new(&url).parse().unwrap().search_params().clone();
        assert_eq!((q.get_str("prompt"), q.get_str("beats")), (None, Some("3")));
        assert_eq!(ServerFnUrlError::<AppError>::decode_err(q.get_str("__err").unwrap()), refusal);
    }

    #[test]
    fn a_refused_form_goes_back_to_the_page_of_the_list_it_was_on() {
        assert_eq!(list_page_of("http://127.0.0.1:3000/?page=2"), Some(2));
        assert_eq!(list_page_of("http://h/?prompt=x&page=12#top"), Some(12));
        assert_eq!(list_page_of("http://h/"), None);
        assert_eq!(list_page_of("http://h/?page=-1"), None);
        assert_eq!(list_page_of("http://h/?page=2%3Cb%3E"), None, "only a number");
        assert_eq!(list_page_of("http://h/?apage=3"), None);
    }
}
