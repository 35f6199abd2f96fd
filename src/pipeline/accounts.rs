//! Accounts: sign-up, sign-in with argon2id and throttling, sessions in the database, and the
//! ownership check every server function makes before it touches a video.
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::{CoreError, Engine, now_ms};
use crate::domain::{Account, AccountId, Denial, Email, Entity, InvalidInput, Password, Refusal, VideoId};
use crate::storage::{self, Constraint};

/// Live channels (status pages open) one account may hold at once.
pub const SOCKETS_PER_ACCOUNT: usize = 32;

/// How long a session lasts without signing in again.
pub const SESSION_DAYS: i64 = 30;

/// A session's secret, as the cookie carries it. Never logged: `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(String);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

impl SessionKey {
    /// 244 random bits from the operating system (two v4 uuids).
    fn new() -> SessionKey {
        SessionKey(format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()))
    }

    /// What a cookie says; anything that is not 64 hex digits is no session.
    pub fn from_cookie(raw: &str) -> Option<SessionKey> {
        (raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit())).then(|| SessionKey(raw.to_ascii_lowercase()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database stores: a leaked table signs nobody in.
    fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// Failed sign-ins counted per email and per client address, in fixed windows.
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    window: Duration,
}

/// Failed sign-ins allowed per window: for one email, and from one address (which may hold many
/// people behind one router).
pub const FAILURES_PER_ACCOUNT: u32 = 5;
pub const FAILURES_PER_ADDRESS: u32 = 20;

impl Throttle {
    pub fn new(window: Duration) -> Throttle {
        Throttle { failures: Mutex::new(HashMap::new()), window }
    }

    fn keys(email: &Email, client: IpAddr) -> [(String, u32); 2] {
        [(format!("email:{email}"), FAILURES_PER_ACCOUNT), (format!("addr:{client}"), FAILURES_PER_ADDRESS)]
    }

    /// Refuses when either key has used its failures in the current window.
    fn check(&self, email: &Email, client: IpAddr) -> Result<(), Denial> {
        let map = self.failures.lock().expect("throttle lock");
        for (key, limit) in Self::keys(email, client) {
            if let Some((_, since)) = map.get(&key).filter(|(n, since)| *n >= limit && since.elapsed() < self.window) {
                let retry_after_s = self.window.saturating_sub(since.elapsed()).as_secs();
                return Err(Denial::TooManyAttempts { retry_after_s });
            }
        }
        Ok(())
    }

    fn fail(&self, email: &Email, client: IpAddr) {
        let mut map = self.failures.lock().expect("throttle lock");
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < self.window);
        }
        for (key, _) in Self::keys(email, client) {
            let entry = map.entry(key).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= self.window {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }

    fn succeed(&self, email: &Email) {
        self.failures.lock().expect("throttle lock").remove(&format!("email:{email}"));
    }
}

fn hash_password(password: &Password) -> Result<String, CoreError> {
    let salt = SaltString::encode_b64(Uuid::new_v4().as_bytes()).map_err(|e| CoreError::Internal(format!("salt: {e}")))?;
    let hash = argon2::Argon2::default().hash_password(password.expose().as_bytes(), &salt);
    Ok(hash.map_err(|e| CoreError::Internal(format!("password hash: {e}")))?.to_string())
}

/// Compares in constant time; a stored value that is no argon2 hash (the local account's) never
/// matches.
fn verify_password(password: &Password, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| argon2::Argon2::default().verify_password(password.expose().as_bytes(), &hash).is_ok())
}

/// A real hash to check unknown emails against, so a sign-in takes as long whether or not the
/// email has an account.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&Password::parse_given(&Uuid::new_v4().to_string()).expect("short")).unwrap_or_default())
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, CoreError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| CoreError::Internal(format!("password hashing task: {e}")))
}

impl Engine {
    /// A new account, signed in: its first session's key.
    pub async fn sign_up(&self, email: &str, password: &str) -> Result<SessionKey, CoreError> {
        let email = Email::parse(email)?;
        let password = Password::parse_new(password)?;
        let password_hash = blocking(move || hash_password(&password)).await??;
        let account = Account { id: AccountId(Uuid::new_v4()), email, password_hash };
        let inserted = self
            .store
            .write_retrying(async move |tx| {
                storage::insert_account(tx, &account, now_ms()).await?;
                Ok::<_, CoreError>(account.id)
            })
            .await;
        let id = match inserted {
            Err(CoreError::Storage(e)) if storage::violated(&e) == Some(Constraint::AccountEmail) => {
                return Err(InvalidInput::new("email", "an account with this email already exists; sign in instead").into());
            }
            other => other?,
        };
        self.new_session(id, None).await
    }

    /// Checks the password and starts a new session (ending `old`, the one the browser had, so a
    /// session id fixed before sign-in is worth nothing after it).
    pub async fn sign_in(&self, email: &str, password: &str, client: IpAddr, old: Option<&SessionKey>) -> Result<SessionKey, CoreError> {
        let (Ok(email), Ok(password)) = (Email::parse(email), Password::parse_given(password)) else {
            return Err(Denial::BadCredentials.into());
        };
        self.throttle.check(&email, client)?;
        let mut conn = self.store.pool().acquire().await?;
        let account = storage::account_by_email(&mut conn, &email).await?;
        drop(conn);
        let stored = account.as_ref().map(|a| a.password_hash.clone()).unwrap_or_else(|| decoy_hash().to_string());
        let matches = blocking(move || verify_password(&password, &stored)).await?;
        let Some(account) = account.filter(|_| matches) else {
            self.throttle.fail(&email, client);
            tracing::info!(%client, "sign-in failed");
            return Err(Denial::BadCredentials.into());
        };
        self.throttle.succeed(&email);
        self.new_session(account.id, old).await
    }

    async fn new_session(&self, account: AccountId, old: Option<&SessionKey>) -> Result<SessionKey, CoreError> {
        let key = SessionKey::new();
        let (new_hash, old_hash) = (key.hash(), old.map(SessionKey::hash));
        self.store
            .write_retrying(async move |tx| {
                let now = now_ms();
                if let Some(old) = &old_hash {
                    storage::delete_session(tx, old, now).await?;
                }
                storage::insert_session(tx, &new_hash, account, now, now + SESSION_DAYS * 86_400_000).await?;
                Ok::<_, CoreError>(())
            })
            .await?;
        Ok(key)
    }

    pub async fn sign_out(&self, key: &SessionKey) -> Result<(), CoreError> {
        let hash = key.hash();
        self.store.write_retrying(async move |tx| Ok::<_, CoreError>(storage::delete_session(tx, &hash, now_ms()).await?)).await
    }

    /// The account a session key belongs to, while the session lasts.
    pub async fn session_account(&self, key: &SessionKey) -> Result<Option<AccountId>, CoreError> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(storage::session_account(&mut conn, &key.hash(), now_ms()).await?)
    }

    pub async fn account_email(&self, id: AccountId) -> Result<Option<Email>, CoreError> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(storage::account_by_id(&mut conn, id).await?.map(|a| a.email))
    }

    /// The video, if `viewer` owns it. Another account's video is "not found", exactly like an
    /// unknown one: the answer tells nothing about other accounts.
    pub async fn owned(&self, viewer: AccountId, video: VideoId) -> Result<VideoId, CoreError> {
        let mut conn = self.store.pool().acquire().await?;
        match storage::video_owner(&mut conn, video).await? {
            Some(owner) if owner == viewer => Ok(video),
            _ => Err(CoreError::not_found(Entity::Video, video)),
        }
    }

    /// Deletes a video for good. Refused while a phase of it is queued or running (cancel it
    /// first), so no worker is left writing for a video that is gone.
    pub async fn delete_video(&self, video: VideoId) -> Result<(), CoreError> {
        let backend = self.store.backend();
        self.store
            .write_retrying(async move |tx| {
                storage::lock_video(tx, backend, video).await?;
                let state = super::commands::load(tx, video).await?;
                if let Some(run) = state.runs.iter().find(|r| r.status.is_active()) {
                    return Err(Refusal::Busy { run: run.id }.into());
                }
                Ok::<_, CoreError>(storage::delete_video(tx, video).await?)
            })
            .await?;
        self.events.changed(video);
        Ok(())
    }

    /// Whether the artifact with this hash may be served to `viewer` under `video`'s URL.
    pub async fn may_see_blob(&self, viewer: AccountId, video: VideoId, sha256: &str) -> Result<bool, CoreError> {
        if self.owned(viewer, video).await.is_err() {
            return Ok(false);
        }
        let mut conn = self.store.pool().acquire().await?;
        Ok(storage::video_holds_blob(&mut conn, video, sha256).await?)
    }
}

/// Live channels open per account: each holds a connection and a task, so one account cannot
/// hold them all.
pub struct SocketCap {
    open: Mutex<HashMap<AccountId, usize>>,
    pub per_account: usize,
}

/// One open live channel, counted until dropped.
pub struct SocketSlot {
    cap: std::sync::Arc<SocketCap>,
    account: AccountId,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self.cap.open.lock().expect("socket cap lock");
        if let Some(n) = open.get_mut(&self.account) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.account);
            }
        }
    }
}

impl SocketCap {
    pub fn new(per_account: usize) -> SocketCap {
        SocketCap { open: Mutex::new(HashMap::new()), per_account }
    }

    /// A slot for one more channel, or none when the account has `per_account` open.
    pub fn acquire(cap: &std::sync::Arc<SocketCap>, account: AccountId) -> Option<SocketSlot> {
        let mut open = cap.open.lock().expect("socket cap lock");
        let n = open.entry(account).or_insert(0);
        (*n < cap.per_account).then(|| {
            *n += 1;
            SocketSlot { cap: cap.clone(), account }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_holds_at_most_its_share_of_live_channels_and_closing_one_frees_it() {
        let cap = std::sync::Arc::new(SocketCap::new(2));
        let (a, b) = (AccountId(Uuid::from_u128(1)), AccountId(Uuid::from_u128(2)));
        let first = SocketCap::acquire(&cap, a).expect("first");
        let _second = SocketCap::acquire(&cap, a).expect("second");
        assert!(SocketCap::acquire(&cap, a).is_none(), "a third is refused");
        assert!(SocketCap::acquire(&cap, b).is_some(), "another account is not held back");
        drop(first);
        assert!(SocketCap::acquire(&cap, a).is_some(), "a closed channel frees its slot");
    }

    #[test]
    fn failures_lock_an_email_for_the_window_and_success_clears_it() {
        let throttle = Throttle::new(Duration::from_secs(60));
        let (ann, bob) = (Email::parse("ann@x.org").unwrap(), Email::parse("bob@x.org").unwrap());
        let here: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..FAILURES_PER_ACCOUNT - 1 {
            throttle.fail(&ann, here);
        }
        assert!(throttle.check(&ann, here).is_ok());
        throttle.succeed(&ann);
        for _ in 0..FAILURES_PER_ACCOUNT {
            throttle.fail(&ann, here);
        }
        assert!(matches!(throttle.check(&ann, here), Err(Denial::TooManyAttempts { retry_after_s }) if retry_after_s <= 60));
        assert!(throttle.check(&bob, "10.0.0.2".parse().unwrap()).is_ok(), "others are not locked out");
        let brief = Throttle::new(Duration::from_millis(0));
        for _ in 0..FAILURES_PER_ACCOUNT {
            brief.fail(&ann, here);
        }
        assert!(brief.check(&ann, here).is_ok(), "the lock ends with its window");
    }

    #[test]
    fn only_well_formed_session_cookies_are_looked_up_and_keys_never_print() {
        let key = SessionKey::new();
        assert_eq!(SessionKey::from_cookie(key.expose()), Some(key.clone()));
        for bad in ["", "forged", &"g".repeat(64), &"a".repeat(65)] {
            assert_eq!(SessionKey::from_cookie(bad), None, "{bad}");
        }
        assert_eq!(format!("{key:?}"), "SessionKey(…)");
        assert_ne!(key.hash(), key.expose(), "the database never holds the key itself");
    }
}
