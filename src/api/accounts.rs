//! Server functions for accounts: sign up, sign in, sign out, and who is signed in.
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::AppError;

/// Who the pages are showing: the signed-in email, or none (signed out, or `--auth none`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignedIn {
    pub email: Option<String>,
    /// False with `--auth none`: no sign-in, no sign-out.
    pub accounts: bool,
}

#[server(endpoint = "whoami")]
pub async fn whoami() -> Result<SignedIn, AppError> {
    use crate::server::options::AuthMode;
    let caller = super::caller()?;
    let accounts = caller.mode == AuthMode::Accounts;
    let email = match caller.account.filter(|_| accounts) {
        Some(id) => super::engine()?.account_email(id).await?.map(|e| e.to_string()),
        None => None,
    };
    Ok(SignedIn { email, accounts })
}

/// Makes the account and signs it in; answers the page to go to.
#[server(endpoint = "sign_up")]
pub async fn sign_up(email: String, password: String, next: Option<String>) -> Result<String, AppError> {
    let caller = super::caller()?;
    let key = super::engine()?.sign_up(&email, &password, caller.client).await?;
    super::session::set_cookie(&caller.session_cookie(&key))?;
    Ok(landing(next.as_deref()))
}

/// Signs in with a new session id (the one the browser had, if any, ends); answers the page to go to.
#[server(endpoint = "sign_in")]
pub async fn sign_in(email: String, password: String, next: Option<String>) -> Result<String, AppError> {
    let caller = super::caller()?;
    let key = super::engine()?.sign_in(&email, &password, caller.client, caller.session.as_ref()).await?;
    super::session::set_cookie(&caller.session_cookie(&key))?;
    Ok(landing(next.as_deref()))
}

/// The page to go to after signing in or up. A form posted without JavaScript is sent there
/// (Leptos would answer it with the form it came from, signed in but still asking to sign in);
/// the page's code goes there itself.
#[cfg(feature = "ssr")]
fn landing(next: Option<&str>) -> String {
    let path = super::session::local_path(next);
    if super::error::posted_without_javascript() {
        leptos_axum::redirect(&path);
    }
    path
}

#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    let caller = super::caller()?;
    if let Some(key) = &caller.session {
        super::engine()?.sign_out(key).await?;
    }
    super::session::set_cookie(&caller.cleared_cookie())
}
