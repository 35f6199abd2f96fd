//! Who is calling a server function: the `Caller` the guard put in the request.
use leptos::prelude::*;

use super::AppError;
use crate::domain::{AccountId, Denial};
use crate::server::guard::Caller;

pub fn caller() -> Result<Caller, AppError> {
    let parts = use_context::<axum::http::request::Parts>().ok_or(AppError::Internal)?;
    parts.extensions.get::<Caller>().cloned().ok_or(AppError::Internal)
}

/// The signed-in account, or "You are signed out" (401).
pub fn viewer() -> Result<AccountId, AppError> {
    caller()?.account.ok_or(AppError::Denied(Denial::SignedOut))
}

/// Adds a `Set-Cookie` header to the response.
pub fn set_cookie(value: &str) -> Result<(), AppError> {
    let response = use_context::<leptos_axum::ResponseOptions>().ok_or(AppError::Internal)?;
    let value = axum::http::HeaderValue::from_str(value).map_err(|_| AppError::Internal)?;
    response.append_header(axum::http::header::SET_COOKIE, value);
    Ok(())
}

/// Where to go after signing in: a path on this site, never another site ("//evil.example").
/// Browsers drop tabs and line breaks from a URL before reading it ("/\t/evil.example" is
/// "//evil.example" to them), so a path with any whitespace or control character is refused too.
pub fn local_path(next: Option<&str>) -> String {
    let local = |p: &str| {
        p.starts_with('/')
            && !p.starts_with("//")
            && !p.chars().any(|c| c == '\\' || c.is_whitespace() || c.is_control())
            && p.len() <= 2_000
    };
    match next.map(str::trim) {
        Some(p) if local(p) => p.to_string(),
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(super::local_path(Some("/videos/x?branch=alt")), "/videos/x?branch=alt");
        let bad = [
            "//evil.example",
            "https://evil.example",
            "/\\\\evil.example",
            "evil",
            // Browsers drop tabs and line breaks before reading a URL: these are "//evil.example".
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            // Other whitespace and control characters have no place in a path either.
            "/ /evil.example",
            "/\u{a0}/evil.example",
            "/\u{b}/evil.example",
        ];
        for bad in bad {
            assert_eq!(super::local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(super::local_path(None), "/");
    }
}
