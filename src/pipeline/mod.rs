//! The engine: commands that change a video, the worker that runs phases, the blob store and providers.
//!
//! Data flows one way: a command validates with the rule table (`domain::rules`) and writes through
//! `storage` in one transaction; the worker claims queued runs, calls providers per unit, memoizes
//! each unit's output by content, and commits the checkpoint when the whole phase succeeded.

pub mod accounts;
pub mod blobs;
pub mod commands;
mod estimate;
pub mod events;
pub mod faults;
pub mod gc;
pub mod providers;
pub mod reads;
pub mod units;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::domain::rules::Limits;
use crate::domain::{Denial, Entity, InvalidInput, LimitReached, Quotas, Refusal, RunId, Timestamp};
use crate::storage::{Retryable, StorageError, Store};
use blobs::BlobStore;
use events::Events;
use providers::Providers;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub retry_limit: u32,
    pub fault_injection: bool,
    /// Units of one phase that run at once.
    pub unit_concurrency: usize,
    /// Automatic tries after a transient provider error, per unit.
    pub extra_tries: u32,
    pub backoff_base_ms: u64,
    /// How many times a unit whose content the provider's moderation refused is tried again
    /// with a new seed.
    pub rerolls: u32,
    pub lease_ms: i64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// What one account may use.
    pub quotas: Quotas,
    /// The live channel's clock (see `api::watch`).
    pub live: LiveTimes,
    /// Stored blobs `gc` removes per write transaction (it reads what is live again for each).
    pub gc_batch: usize,
}

/// How long a live channel waits for the page to name its video, how often an idle channel is
/// pinged, and how long a message may wait for a client that stopped reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveTimes {
    pub first_message: std::time::Duration,
    pub ping: std::time::Duration,
    pub send_timeout: std::time::Duration,
}

impl Default for LiveTimes {
    fn default() -> Self {
        use std::time::Duration;
        LiveTimes { first_message: Duration::from_secs(10), ping: Duration::from_secs(20), send_timeout: Duration::from_secs(10) }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retry_limit: 5,
            fault_injection: false,
            unit_concurrency: 2,
            extra_tries: 2,
            backoff_base_ms: 200,
            rerolls: 2,
            lease_ms: 10_000,
            width: 1280,
            height: 720,
            fps: 24,
            quotas: Quotas::default(),
            live: LiveTimes::default(),
            gc_batch: 1024,
        }
    }
}

impl EngineConfig {
    pub fn limits(&self) -> Limits {
        Limits { retry_limit: self.retry_limit }
    }
}

/// Everything a command or a worker needs, cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub store: Store,
    /// Signalled when a run is queued (here, or in another process on PostgreSQL), so idle workers
    /// claim it at once.
    pub wake: Arc<tokio::sync::Notify>,
    /// Runs cancelled by this process, so their workers stop without waiting for a heartbeat.
    pub cancelled: Arc<tokio::sync::watch::Sender<HashSet<RunId>>>,
    pub blobs: BlobStore,
    pub providers: Arc<Providers>,
    pub events: Events,
    pub config: Arc<EngineConfig>,
    /// Sign-in tries per email and per client address (15-minute windows).
    pub throttle: Arc<accounts::Throttle>,
    /// Sign-ups per client address (hour-long windows).
    pub sign_ups: Arc<accounts::Throttle>,
    /// Live channels open per account.
    pub sockets: Arc<accounts::SocketCap>,
    /// Runs claimed for a worker (with its last checkpoint, or by a command), by worker name,
    /// until its next step.
    claimed: Arc<std::sync::Mutex<HashMap<String, worker::Claimed>>>,
    /// This process's worker loops waiting for work, for a command to hand its run to.
    parked: Arc<worker::Parked>,
}

impl Engine {
    pub fn new(store: Store, blobs: BlobStore, providers: Providers, config: EngineConfig) -> Engine {
        let events = Events::new();
        Engine {
            store,
            wake: events.wake_handle(),
            cancelled: Arc::new(tokio::sync::watch::Sender::new(HashSet::new())),
            blobs,
            providers: Arc::new(providers),
            events,
            config: Arc::new(config),
            throttle: Arc::new(accounts::Throttle::new(std::time::Duration::from_secs(15 * 60))),
            sign_ups: Arc::new(accounts::Throttle::new(std::time::Duration::from_secs(3600))),
            sockets: Arc::new(accounts::SocketCap::new(accounts::SOCKETS_PER_ACCOUNT)),
            claimed: Arc::default(),
            parked: Arc::default(),
        }
    }
}

/// The pipeline layer's error: what went wrong, typed, for the API layer to turn into words.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{what} not found: {id}")]
    NotFound { what: Entity, id: String },
    #[error("invalid input: {0}")]
    Invalid(#[from] InvalidInput),
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error("denied: {0}")]
    Denied(#[from] Denial),
    #[error("limit: {0}")]
    Limit(#[from] LimitReached),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("internal error: {0}")]
    Internal(String),
    /// The worker's claim on its run was taken over, cancelled or ended: it must write nothing.
    #[error("the run is no longer held by this worker")]
    LeaseLost,
    /// A concurrent writer changed what this write read (e.g. approved the checkpoint first):
    /// running it again decides on the winner's write.
    #[error("lost a race with a concurrent writer")]
    LostRace,
}

impl From<sqlx::Error> for CoreError {
    fn from(e: sqlx::Error) -> Self {
        CoreError::Storage(StorageError::from(e))
    }
}

impl CoreError {
    /// The cause in plain words, without the driver's wrapping ("disk I/O error", "database is locked").
    pub fn plain(&self) -> String {
        match self {
            CoreError::Storage(StorageError::Database(sqlx::Error::Database(e))) => {
                format!("the database refused the write ({})", e.message())
            }
            CoreError::Storage(StorageError::Database(sqlx::Error::Io(e))) => format!("the database could not be reached ({e})"),
            other => other.to_string(),
        }
    }

    pub fn not_found(what: Entity, id: impl ToString) -> CoreError {
        CoreError::NotFound { what, id: id.to_string() }
    }
}

impl Retryable for CoreError {
    /// Lost a race with a concurrent writer, or the database was busy: trying again may succeed.
    fn is_retryable(&self) -> bool {
        match self {
            CoreError::LostRace => true,
            CoreError::Storage(s) => s.is_retryable(),
            _ => false,
        }
    }
}

pub fn now_ms() -> Timestamp {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A deterministic 64-bit mix (splitmix64) for deriving per-unit seeds from a video's seed.
pub fn mix_seed(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
