//! The whole app (guard, pages, server functions, artifacts) served in-process on `127.0.0.1:0`
//! over the test's own database, so the HTTP-level checks of accounts run on SQLite and
//! PostgreSQL alike; a real HTTP client talks to it.
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use std::net::SocketAddr;

use crate::common::TestEnv;
use reelsmith::server::guard::Guard;
use reelsmith::server::options::AuthMode;

pub struct Web {
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Web {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What a server answered: status, headers, and the body as JSON when it is JSON.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The `name=value` of the session cookie this answer sets.
    pub fn session_cookie(&self) -> Option<String> {
        self.set_cookie().and_then(|c| c.split(';').next().map(str::to_string)).filter(|c| !c.ends_with('='))
    }

    pub fn set_cookie(&self) -> Option<String> {
        self.headers.get("set-cookie").and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

/// The test's HTTP client. An answer that does not come within a minute fails the test, naming
/// the request, instead of holding the whole suite (and CI) up.
fn client(follow_redirects: bool) -> reqwest::Client {
    let redirects = if follow_redirects { reqwest::redirect::Policy::default() } else { reqwest::redirect::Policy::none() };
    reqwest::Client::builder().redirect(redirects).timeout(std::time::Duration::from_secs(60)).build().unwrap()
}

impl Web {
    pub async fn start(env: &TestEnv, mode: AuthMode) -> Web {
        let guard = Guard { engine: env.engine.clone(), mode, scheme: "http".into(), host: "127.0.0.1".into() };
        let options = leptos::prelude::LeptosOptions::builder().output_name("reelsmith").build();
        let app = reelsmith::server::router(guard, options, "test");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
        });
        Web { addr, server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The page's own origin, as a browser sends it.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A server-function call posted as a form, as the pages do, from the page's own origin.
    pub async fn call(&self, cookie: Option<&str>, name: &str, fields: &[(&str, &str)]) -> Answer {
        self.call_with(cookie, name, fields, &[("origin", &self.origin())]).await
    }

    pub async fn call_with(&self, cookie: Option<&str>, name: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Answer {
        let mut request = client(true).post(self.url(&format!("/api/{name}"))).header("accept", "application/json").form(fields);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_str(value).unwrap());
        }
        answer(request.send().await.expect("a server-function call")).await
    }

    /// A form the browser posts by itself (JavaScript off: HTML wanted, the page it is on as the
    /// `Referer`, no redirects followed).
    pub async fn post_form(&self, cookie: Option<&str>, name: &str, fields: &[(&str, &str)], from: &str) -> Answer {
        let mut request = client(false)
            .post(self.url(&format!("/api/{name}")))
            .header("accept", "text/html")
            .header("origin", self.origin())
            .header("referer", self.url(from))
            .form(fields);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        answer(request.send().await.expect("a form post")).await
    }

    /// A GET as a browser makes it (HTML wanted, no redirects followed).
    pub async fn get(&self, cookie: Option<&str>, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = client(false).get(self.url(path)).header("accept", "text/html");
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer(request.send().await.expect("a GET")).await
    }

    /// A GET's status, headers and raw bytes (for artifacts).
    pub async fn get_bytes(&self, cookie: &str, path: &str, range: Option<&str>) -> (u16, HeaderMap, Vec<u8>) {
        let mut request = client(true).get(self.url(path)).header("cookie", cookie);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        let response = request.send().await.expect("a GET");
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.bytes().await.expect("a body").to_vec())
    }

    /// A new account, signed in: its session cookie (`name=value`).
    pub async fn sign_up(&self, email: &str) -> String {
        let answer = self.call(None, "sign_up", &[("email", email), ("password", "correct horse battery")]).await;
        assert_eq!(answer.status, 200, "sign-up: {}", answer.body);
        answer.session_cookie().expect("sign-up sets the session cookie")
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
}
