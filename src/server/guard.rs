//! The door every request passes: the `Host` allow-list (DNS rebinding), the same-origin check
//! for state-changing requests and socket upgrades (cross-site requests), and who is asking (the
//! session cookie, or the local account with `--auth none`).
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, Response, StatusCode, header};
use axum::middleware::Next;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::options::AuthMode;
use crate::domain::AccountId;
use crate::pipeline::Engine;
use crate::pipeline::accounts::{SESSION_DAYS, SessionKey};

pub const SESSION_COOKIE: &str = "reelsmith_session";

/// Who is asking, put in the request's extensions for server functions, pages and artifacts.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The signed-in account (the local one with `--auth none`); none when signed out.
    pub account: Option<AccountId>,
    /// The session the browser presented, valid or not (sign-in ends it, sign-out deletes it).
    pub session: Option<SessionKey>,
    pub client: IpAddr,
    pub mode: AuthMode,
    /// Whether cookies get `Secure` (the public URL is https).
    pub secure: bool,
}

impl Caller {
    /// The `Set-Cookie` value that starts a session in the browser.
    pub fn session_cookie(&self, key: &SessionKey) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}", key.expose(), SESSION_DAYS * 86_400)
    }

    /// The `Set-Cookie` value that forgets the session.
    pub fn cleared_cookie(&self) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
    }
}

/// What the guard knows about this server.
#[derive(Clone)]
pub struct Guard {
    pub engine: Engine,
    pub mode: AuthMode,
    /// `http` or `https`, from the public URL.
    pub scheme: String,
    /// The public URL's host name (no port), lowercased.
    pub host: String,
}

const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// The host name of a `Host` header value, without the port.
pub fn host_name(authority: &str) -> String {
    let authority = authority.trim().to_ascii_lowercase();
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or_default().to_string();
    }
    authority.split(':').next().unwrap_or_default().to_string()
}

impl Guard {
    fn allowed_host(&self, authority: &str) -> bool {
        let name = host_name(authority);
        !name.is_empty() && (name == self.host || LOOPBACK_NAMES.contains(&name.as_str()))
    }

    /// The request's authority, if it names this server.
    fn checked_host<'a>(&self, req: &'a Request) -> Option<&'a str> {
        let authority = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri().authority().map(|a| a.as_str()));
        authority.filter(|a| self.allowed_host(a))
    }

    /// Whether a request comes from this server's own pages (see `same_origin`).
    fn same_origin(&self, headers: &HeaderMap, authority: &str) -> bool {
        same_origin(&self.scheme, &self.host, headers, authority)
    }

    async fn account(&self, session: Option<&SessionKey>) -> Option<AccountId> {
        match self.mode {
            AuthMode::None => Some(AccountId::LOCAL),
            AuthMode::Accounts => {
                let key = session?;
                match self.engine.session_account(key).await {
                    Ok(account) => account,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the session");
                        None
                    }
                }
            }
        }
    }
}

/// A browser says where a request comes from (`Origin`, or `Sec-Fetch-Site`); a request that
/// says neither is not from a browser page, so no other site can have sent it. Under the public
/// URL's host name the origin must also have its scheme (`http://videos.example.org` is another
/// origin than `https://videos.example.org`); under a loopback name either scheme is this server.
fn same_origin(scheme: &str, public_host: &str, headers: &HeaderMap, authority: &str) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null").to_ascii_lowercase();
        let authority = authority.to_ascii_lowercase();
        let name = host_name(&authority);
        if name == public_host && !LOOPBACK_NAMES.contains(&name.as_str()) {
            return origin == format!("{scheme}://{authority}");
        }
        return origin == format!("http://{authority}") || origin == format!("https://{authority}");
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site == "same-origin" || site == "none",
        None => true,
    }
}

fn changes_state(req: &Request) -> bool {
    let upgrade = req.headers().get(header::UPGRADE).is_some();
    upgrade || !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
}

fn session_of(headers: &HeaderMap) -> Option<SessionKey> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == SESSION_COOKIE).then(|| SessionKey::from_cookie(value)).flatten()
    })
}

/// Pages a signed-out visitor may see; everything else that is a page leads to `/signin`.
fn needs_account(req: &Request) -> bool {
    const OPEN: [&str; 6] = ["/signin", "/signup", "/api/", "/pkg/", "/artifacts/", "/health"];
    let path = req.uri().path();
    let html = req.headers().get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    req.method() == Method::GET && html && !OPEN.iter().any(|p| path.starts_with(p))
}

fn refuse(status: StatusCode, why: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(why))
        .expect("static response")
}

fn to_signin(req: &Request) -> Response<Body> {
    let wanted = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let next = crate::api::error::percent_encoded(wanted, b"/");
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, format!("/signin?next={next}"))
        .body(Body::empty())
        .expect("static response")
}

/// Every answer says that no other site may frame it (a click on a framed button is a request
/// from this page's own origin) and that its content type is what it is (a caption file holds a
/// person's text).
pub async fn guard(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response<Body> {
    let mut response = guarded(&guard, req, next).await;
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static("frame-ancestors 'none'"));
    }
    response
}

async fn guarded(guard: &Guard, mut req: Request, next: Next) -> Response<Body> {
    let Some(authority) = guard.checked_host(&req).map(str::to_string) else {
        return refuse(StatusCode::FORBIDDEN, "This server does not answer for that host name.");
    };
    if changes_state(&req) && !guard.same_origin(req.headers(), &authority) {
        return refuse(StatusCode::FORBIDDEN, "Cross-site request refused.");
    }
    let session = session_of(req.headers());
    let account = guard.account(session.as_ref()).await;
    let client = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if account.is_none() && needs_account(&req) {
        return to_signin(&req);
    }
    let caller = Caller { account, session, client, mode: guard.mode, secure: guard.scheme == "https" };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(secure: bool) -> Caller {
        Caller { account: None, session: None, client: IpAddr::V4(Ipv4Addr::LOCALHOST), mode: AuthMode::Accounts, secure }
    }

    #[test]
    fn the_session_cookie_is_secure_exactly_when_the_public_url_is_https() {
        let key = SessionKey::from_cookie(&"ab".repeat(32)).unwrap();
        let plain = caller(false).session_cookie(&key);
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax") && !plain.contains("Secure"), "{plain}");
        let secure = caller(true).session_cookie(&key);
        assert!(secure.ends_with("; Secure"), "{secure}");
        assert!(caller(true).cleared_cookie().contains("Max-Age=0; Secure"));
    }

    #[test]
    fn an_origin_is_this_server_only_with_the_public_urls_scheme() {
        let origin = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ORIGIN, value.parse().unwrap());
            headers
        };
        let public = |o: &str, authority: &str| same_origin("https", "videos.example.org", &origin(o), authority);
        assert!(public("https://videos.example.org", "videos.example.org"));
        assert!(public("https://Videos.Example.org:8443", "videos.example.org:8443"));
        assert!(!public("http://videos.example.org", "videos.example.org"), "the same host over http is another origin");
        assert!(!public("https://evil.example", "videos.example.org"));
        assert!(!public("null", "videos.example.org"));
        assert!(public("http://localhost:3000", "localhost:3000"), "a loopback name is this machine either way");
        assert!(!public("http://localhost:3001", "localhost:3000"));
        let loopback = |o: &str| same_origin("http", "127.0.0.1", &origin(o), "127.0.0.1:3000");
        assert!(loopback("http://127.0.0.1:3000") && loopback("https://127.0.0.1:3000"), "the default public URL is a loopback name");
        let fetch_site = |site: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("sec-fetch-site", site.parse().unwrap());
            same_origin("https", "videos.example.org", &headers, "videos.example.org")
        };
        assert!(fetch_site("same-origin") && fetch_site("none") && !fetch_site("cross-site") && !fetch_site("same-site"));
        assert!(same_origin("https", "videos.example.org", &HeaderMap::new(), "videos.example.org"), "no browser, no other site");
    }

    #[test]
    fn host_names_are_read_without_their_port() {
        assert_eq!(host_name("Videos.Example.org:8443"), "videos.example.org");
        assert_eq!(host_name("[::1]:3000"), "[::1]");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
    }
}
