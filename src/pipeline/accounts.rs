//! Accounts: sign-up, sign-in with argon2id and throttling, sessions in the database, and the
//! ownership check every server function makes before it touches a video.
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use uuid::Uuid;

use super::{CoreError, Engine, now_ms};
use crate::domain::{Account, AccountId, Denial, Email, Entity, InvalidInput, LimitReached, Password, Refusal, Timestamp, VideoId};
use crate::storage::{self, Constraint, Retryable, Store};

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
        key_hash(&self.0)
    }
}

/// Tries counted per key in fixed windows: sign-in tries per email and per client address,
/// sign-ups per client address. The counts live in the database (`storage::count_tries`), so
/// every process of a deployment counts against the same numbers, and a restart forgives nothing.
pub struct Throttle {
    window: Duration,
    /// When this process last deleted the counts whose window ended (ms since the epoch).
    swept_at: AtomicI64,
    /// Keys this process saw refused, and when their window ends: tries at a locked key are
    /// refused here, without a write (a flood of guesses at a locked account costs no more than
    /// it did when the counts lived in memory). A refused try counts nothing, so a lock lasts
    /// until its window ends whatever happens meanwhile.
    locked: Mutex<HashMap<String, Timestamp>>,
}

/// Failed sign-ins allowed per window: for one email, and from one address (which may hold many
/// people behind one router).
pub const FAILURES_PER_ACCOUNT: u32 = 5;
pub const FAILURES_PER_ADDRESS: u32 = 20;

/// How often a process deletes the counts whose window ended, and how many rows a statement
/// deletes at most (a transaction each, so none holds SQLite's write lock for long).
const SWEEP_EVERY_MS: i64 = 60_000;
const SWEEP_BATCH: i64 = 500;

/// What the database holds for a key or a session id: its sha-256. For the counts' keys it is a
/// pseudonym, not a secret: whoever holds the table and guesses an email or an address can hash
/// it and find its row.
fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Throttle {
    pub fn new(window: Duration) -> Throttle {
        Throttle { window, swept_at: AtomicI64::new(0), locked: Mutex::new(HashMap::new()) }
    }

    fn email_key(email: &Email) -> String {
        key_hash(&format!("email:{email}"))
    }

    fn address_key(client: IpAddr) -> String {
        key_hash(&format!("addr:{}", network(client)))
    }

    /// Counts one more against every key, unless one of them has used its number in the current
    /// window: then nothing is counted (the transaction rolls back) and the answer is `refused`
    /// given the seconds until that window ends. The check and the count are one step, so tries
    /// sent at once, to this process or another, are counted as they arrive.
    async fn take(
        &self,
        store: &Store,
        mut keys: Vec<(String, u32)>,
        now: Timestamp,
        refused: impl Fn(u64) -> CoreError,
    ) -> Result<(), CoreError> {
        // Whole seconds, rounded up: "try again in 0 seconds" would be wrong.
        let seconds_until = |until: Timestamp| u64::try_from(until.saturating_sub(now)).unwrap_or(0).div_ceil(1000);
        let known_lock = {
            let mut locked = self.locked.lock().expect("throttle lock");
            if locked.len() > 10_000 {
                locked.retain(|_, until| *until > now);
            }
            keys.iter().filter_map(|(key, _)| locked.get(key).copied()).filter(|until| *until > now).max()
        };
        if let Some(until) = known_lock {
            return Err(refused(seconds_until(until)));
        }
        // One order for every caller: two transactions never wait for each other's rows.
        keys.sort();
        let window_ms = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        let (counted, limits): (Vec<(String, i64)>, Vec<u32>) = keys.into_iter().map(|(key, limit)| ((key, window_ms), limit)).unzip();
        let answer = store
            .write_retrying(async move |tx| {
                let counts = storage::count_tries(tx, &counted, now).await?;
                let used_up: Vec<(String, Timestamp)> = counted
                    .iter()
                    .zip(&limits)
                    .zip(&counts)
                    .filter(|((_, limit), (n, _))| *n > i64::from(**limit))
                    .map(|(((key, _), _), (_, until))| (key.clone(), *until))
                    .collect();
                // A refusal counts nothing: the transaction rolls back.
                if used_up.is_empty() { Ok(()) } else { Err(Taken::Refused(used_up)) }
            })
            .await;
        self.sweep(store, now);
        match answer {
            Ok(()) => Ok(()),
            Err(Taken::Failed(e)) => Err(e),
            Err(Taken::Refused(used_up)) => {
                let until = used_up.iter().map(|(_, until)| *until).max().unwrap_or(now);
                self.locked.lock().expect("throttle lock").extend(used_up);
                Err(refused(seconds_until(until)))
            }
        }
    }

    /// At most once a minute per process, deletes the counts whose window ended, in batches, in a
    /// task of its own (the request does not wait for it) whose transactions wait for no
    /// sign-in's rows.
    fn sweep(&self, store: &Store, now: Timestamp) {
        let last = self.swept_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) < SWEEP_EVERY_MS
            || self.swept_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        self.locked.lock().expect("throttle lock").retain(|_, until| *until > now);
        let store = store.clone();
        tokio::spawn(async move {
            let backend = store.backend();
            loop {
                match store.write_retrying(async move |tx| storage::delete_ended_tries(tx, backend, now, SWEEP_BATCH).await).await {
                    Ok(n) if n >= SWEEP_BATCH.unsigned_abs() => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!("deleting the sign-in counts whose window ended: {e}");
                        break;
                    }
                }
            }
        });
    }

    /// A sign-in try at `now`, counted as a failure until it succeeds (`new_session` forgives it).
    pub async fn begin_sign_in(&self, store: &Store, email: &Email, client: IpAddr, now: Timestamp) -> Result<(), CoreError> {
        let keys = vec![(Self::email_key(email), FAILURES_PER_ACCOUNT), (Self::address_key(client), FAILURES_PER_ADDRESS)];
        self.take(store, keys, now, |retry_after_s| Denial::TooManyAttempts { retry_after_s }.into()).await
    }

    /// A sign-up from `client` at `now`, counted whatever its outcome.
    pub async fn begin_sign_up(&self, store: &Store, client: IpAddr, limit: u32, now: Timestamp) -> Result<(), CoreError> {
        let keys = vec![(key_hash(&format!("sign-up:{}", network(client))), limit)];
        self.take(store, keys, now, |_| LimitReached::SignUps { limit }.into()).await
    }
}

/// How a counting transaction ended when it did not commit: a try refused (the keys that had
/// used their number, and when each one's window ends), or the database failing.
enum Taken {
    Refused(Vec<(String, Timestamp)>),
    Failed(CoreError),
}

impl From<storage::StorageError> for Taken {
    fn from(e: storage::StorageError) -> Taken {
        Taken::Failed(e.into())
    }
}

impl Retryable for Taken {
    fn is_retryable(&self) -> bool {
        matches!(self, Taken::Failed(e) if e.is_retryable())
    }
}

/// What the address limits count by: an IPv4 address, or an IPv6 address's /64 network (one
/// subscriber's, who may use any of its 2^64 addresses); an IPv4 address written as IPv6
/// (`::ffff:a.b.c.d`) counts as that IPv4 address.
fn network(client: IpAddr) -> String {
    match client {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Password hashes running at once: each takes 19 MiB and a core for tens of milliseconds, so a
/// burst of sign-ins or sign-ups waits its turn instead of taking the server's memory.
const HASHES_AT_ONCE: usize = 4;

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

/// Runs a password hash or check on the blocking pool, at most `HASHES_AT_ONCE` at a time.
/// The turn is held by the hash itself, not by the request: a client that hangs up while its
/// hash runs does not free a turn for another hash.
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, CoreError> {
    static TURNS: OnceLock<std::sync::Arc<tokio::sync::Semaphore>> = OnceLock::new();
    let turns = TURNS.get_or_init(|| std::sync::Arc::new(tokio::sync::Semaphore::new(HASHES_AT_ONCE))).clone();
    let turn = turns.acquire_owned().await.map_err(|e| CoreError::Internal(format!("password hashing turns: {e}")))?;
    let work = move || {
        let answer = work();
        drop(turn);
        answer
    };
    tokio::task::spawn_blocking(work).await.map_err(|e| CoreError::Internal(format!("password hashing task: {e}")))
}

impl Engine {
    /// A new account, signed in: its first session's key. `client`'s sign-ups are limited per
    /// hour (`Quotas::sign_ups_per_hour`).
    pub async fn sign_up(&self, email: &str, password: &str, client: IpAddr) -> Result<SessionKey, CoreError> {
        let email = Email::parse(email)?;
        let password = Password::parse_new(password)?;
        self.sign_ups.begin_sign_up(&self.store, client, self.config.quotas.sign_ups_per_hour, now_ms()).await?;
        let password_hash = hashing(move || hash_password(&password)).await??;
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
        self.new_session(id, None, None).await
    }

    /// Checks the password and starts a new session (ending `old`, the one the browser had, so a
    /// session id fixed before sign-in is worth nothing after it).
    pub async fn sign_in(&self, email: &str, password: &str, client: IpAddr, old: Option<&SessionKey>) -> Result<SessionKey, CoreError> {
        let (Ok(email), Ok(password)) = (Email::parse(email), Password::parse_given(password)) else {
            return Err(Denial::BadCredentials.into());
        };
        self.throttle.begin_sign_in(&self.store, &email, client, now_ms()).await?;
        let mut conn = self.store.pool().acquire().await?;
        let account = storage::account_by_email(&mut conn, &email).await?;
        drop(conn);
        let stored = account.as_ref().map(|a| a.password_hash.clone()).unwrap_or_else(|| decoy_hash().to_string());
        let matches = hashing(move || verify_password(&password, &stored)).await?;
        let Some(account) = account.filter(|_| matches) else {
            tracing::info!(%client, "sign-in failed");
            return Err(Denial::BadCredentials.into());
        };
        // The email's failures are forgiven, and the address's count gives this try back.
        let forgiven = (Throttle::email_key(&email), Throttle::address_key(client));
        self.new_session(account.id, old, Some(forgiven)).await
    }

    /// A new session for `account`, ending `old`; a sign-in's tries `forgiven` in the same commit.
    async fn new_session(
        &self,
        account: AccountId,
        old: Option<&SessionKey>,
        forgiven: Option<(String, String)>,
    ) -> Result<SessionKey, CoreError> {
        let key = SessionKey::new();
        let (new_hash, old_hash) = (key.hash(), old.map(SessionKey::hash));
        self.store
            .write_retrying(async move |tx| {
                let now = now_ms();
                if let Some((email_key, address_key)) = &forgiven {
                    storage::forgive_sign_in(tx, email_key, address_key).await?;
                }
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
    /// first), so no worker is left writing for a video that is gone. Remote jobs its runs
    /// still had out (a cancel's own cancelling not done yet) are cancelled after the commit.
    pub async fn delete_video(&self, video: VideoId) -> Result<(), CoreError> {
        let backend = self.store.backend();
        let jobs = self
            .store
            .write_retrying(async move |tx| {
                storage::lock_video(tx, backend, video).await?;
                let state = super::commands::load(tx, video).await?;
                if let Some(run) = state.runs.iter().find(|r| r.status.is_active()) {
                    return Err(Refusal::Busy { run: run.id }.into());
                }
                let mut jobs = Vec::new();
                for run in &state.runs {
                    jobs.extend(storage::jobs_of_run(tx, run.id).await?.into_iter().map(|job| (run.phase, job.job_id)));
                }
                storage::delete_video(tx, video).await?;
                Ok::<_, CoreError>(jobs)
            })
            .await?;
        self.events.changed(video);
        if !jobs.is_empty() {
            let providers = self.providers.clone();
            tokio::spawn(async move {
                for (phase, job) in jobs {
                    providers.cancel(phase, job).await;
                }
            });
        }
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
    fn an_ipv6_client_is_counted_by_its_network_not_by_each_of_its_addresses() {
        let net = |s: &str| network(s.parse().unwrap());
        assert_eq!(net("2001:db8:1:2::1"), net("2001:db8:1:2:ffff:1:2:3"), "another address of the same /64");
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"), "the next /64 is someone else");
        assert_eq!(net("::ffff:192.0.2.7"), net("192.0.2.7"), "an IPv4 address written as IPv6 is the same address");
        assert_ne!(net("192.0.2.7"), net("192.0.2.8"));
        assert_ne!(Throttle::address_key("192.0.2.7".parse().unwrap()), Throttle::email_key(&Email::parse("a@b.org").unwrap()));
        assert!(!Throttle::email_key(&Email::parse("ann@x.org").unwrap()).contains("ann"), "the database holds no email");
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
