//! Every SQL statement: the schema's records, the queries, transactions, and constraint → outcome mapping.
//!
//! One code path serves SQLite (the embedded default) and PostgreSQL (scale-out) through sqlx's
//! `Any` driver; the schema keeps to types both understand.

/// A stored row's struct and its `FromRow` for sqlx's `Any` rows, each field read by its name.
/// A field written `name: Type as Raw` reads the column as `Raw` and converts it with `TryFrom`,
/// so an id or word that does not parse is a decode error naming its column. (sqlx's derive does
/// the same, but its proc-macro crate builds sqlx and SQLite a second time, for the build
/// machine: 102 of the 625 units of the server's build from nothing.)
macro_rules! row {
    ($(#[$meta:meta])* $vis:vis struct $name:ident {
        $($(#[$fmeta:meta])* $fvis:vis $field:ident: $ty:ty $(as $raw:ty)?),* $(,)?
    }) => {
        $(#[$meta])* $vis struct $name { $($(#[$fmeta])* $fvis $field: $ty),* }

        impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for $name {
            fn from_row(row: &'r sqlx::any::AnyRow) -> std::result::Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok($name { $($field: row!(@get row, $field, $ty $(, $raw)?)),* })
            }
        }
    };
    (@get $row:ident, $field:ident, $ty:ty) => {
        $row.try_get(stringify!($field))?
    };
    (@get $row:ident, $field:ident, $ty:ty, $raw:ty) => {
        <$ty>::try_from($row.try_get::<$raw, _>(stringify!($field))?)
            .map_err(|e| sqlx::Error::ColumnDecode { index: stringify!($field).to_string(), source: Box::new(e) })?
    };
}

mod accounts;
pub mod batch;
mod constraints;
mod finished;
mod queries;
mod records;
mod slices;

pub use accounts::*;
pub use constraints::{Constraint, violated};
pub use finished::*;
pub use queries::*;
pub use records::*;
pub use slices::*;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Transaction};

use batch::{Answer, Batch, Statement};
use std::str::FromStr;
use std::time::Duration;

pub type Tx = Transaction<'static, Any>;

/// How long a writer waits for the write lock before giving up and saying so. Well under the
/// shortest lease a worker holds by default (10 s), so a worker that waits on the lock notices a
/// lost lease in time.
pub const LOCK_WAIT: Duration = Duration::from_secs(3);
/// SQLite's own wait inside one statement, shorter than `LOCK_WAIT` so the statement's "busy"
/// reaches our retry logic before the outer wait gives up.
const BUSY_TIMEOUT_MS: u64 = 2_500;
/// How many times `write_retrying` runs its work before it reports a lost race or a busy database.
const ATTEMPTS: u32 = 8;
/// How long `write_retrying` keeps starting attempts: long enough for a burst of lost races or a
/// deadlock's quick refusal, shorter than one statement's lock wait, so a write that already
/// waited that out is reported rather than made to wait again.
const RETRY_WINDOW: Duration = Duration::from_millis(BUSY_TIMEOUT_MS / 2);
/// How often SQLite's background checkpointer looks for commits to copy from the WAL into the
/// database file; it also runs every `CHECKPOINT_IDLE_TICKS` ticks, for writes not counted.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
const CHECKPOINT_IDLE_TICKS: u32 = 20;

/// A write transaction that counts its commit (the benchmark's commits-per-run figure).
///
/// On SQLite it runs on the store's one write connection (`Writer`); on PostgreSQL it is a
/// pooled connection's transaction. Either way it derefs to the connection, in the transaction.
pub struct WriteTx {
    inner: Inner,
    commits: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Statements that run at the commit (`defer`), before it.
    deferred: Option<Batch>,
}

enum Inner {
    Pooled(Tx),
    /// SQLite's write connection, held until the transaction ends. `open`: a `BEGIN` may have
    /// run and no `COMMIT` or `ROLLBACK` has ended it (a dropped transaction is rolled back
    /// before the connection serves another writer).
    Own {
        slot: Option<tokio::sync::OwnedMutexGuard<WriterSlot>>,
        open: bool,
    },
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        match &self.inner {
            Inner::Pooled(tx) => tx,
            Inner::Own { slot, .. } => slot.as_ref().and_then(|s| s.conn.as_ref()).expect("a write transaction's connection"),
        }
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        match &mut self.inner {
            Inner::Pooled(tx) => tx,
            Inner::Own { slot, .. } => slot.as_mut().and_then(|s| s.conn.as_mut()).expect("a write transaction's connection"),
        }
    }
}

impl WriteTx {
    /// Runs `statement` at the commit, just before it (in the same call on SQLite). For writes
    /// whose answer nothing waits for: an error in one fails the commit, which rolls back.
    pub fn defer(&mut self, statement: Statement) {
        let backend = Backend::of_connection(self);
        self.deferred.get_or_insert_with(|| Batch::new(backend)).push_statement(statement);
    }

    /// Runs the statements deferred so far and then `batch` (in one call on SQLite), and answers
    /// for `batch` alone: for statements that must see what the deferred ones wrote.
    pub async fn flush_with(&mut self, batch: Batch) -> Result<Vec<Answer>, StorageError> {
        let backend = Backend::of_connection(self);
        let mut all = self.deferred.take().unwrap_or_else(|| Batch::new(backend));
        let deferred = all.answer_count();
        all.append(batch);
        let mut answers = all.run(self).await?;
        Ok(answers.split_off(deferred))
    }

    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let deferred = self.deferred.take();
        let unwrapped = |e: StorageError| match e {
            StorageError::Database(e) => e,
            other => sqlx::Error::Protocol(other.to_string()),
        };
        match &mut self.inner {
            Inner::Own { slot, open } => {
                let conn = slot.as_mut().and_then(|s| s.conn.as_mut()).expect("a write transaction's connection");
                match deferred {
                    Some(deferred) => {
                        deferred.run_around(None, Some("COMMIT"), conn).await.map_err(unwrapped)?;
                    }
                    None => {
                        sqlx::raw_sql("COMMIT").execute(conn).await?;
                    }
                }
                *open = false;
            }
            Inner::Pooled(tx) => {
                if let Some(deferred) = deferred {
                    deferred.run(tx).await.map_err(unwrapped)?;
                }
                let Inner::Pooled(tx) = std::mem::replace(&mut self.inner, Inner::Own { slot: None, open: false }) else { unreachable!() };
                tx.commit().await?;
            }
        }
        self.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        match &mut self.inner {
            Inner::Own { slot, open } => {
                let Some(slot) = slot.as_mut() else { return Ok(()) };
                let rolled_back = rollback(slot).await;
                *open = false;
                rolled_back
            }
            Inner::Pooled(_) => {
                let Inner::Pooled(tx) = std::mem::replace(&mut self.inner, Inner::Own { slot: None, open: false }) else { unreachable!() };
                tx.rollback().await
            }
        }
    }
}

/// Ends the write connection's transaction, if one is open. A connection whose rollback failed
/// for another reason is closed (SQLite rolls back what a closing connection left open), and the
/// next writer opens a new one.
async fn rollback(slot: &mut WriterSlot) -> Result<(), sqlx::Error> {
    let Some(conn) = slot.conn.as_mut() else { return Ok(()) };
    match sqlx::raw_sql("ROLLBACK").execute(conn).await {
        Ok(_) => Ok(()),
        // A BEGIN that failed (the lock stayed busy) left nothing to roll back.
        Err(sqlx::Error::Database(e)) if e.message().contains("no transaction is active") => Ok(()),
        Err(e) => {
            slot.conn = None;
            Err(e)
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        // A pooled transaction queues its own rollback; the write connection's is done here,
        // before the slot is free for the next writer.
        if let Inner::Own { slot, open: true } = &mut self.inner
            && let Some(mut slot) = slot.take()
        {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        let _ = rollback(&mut slot).await;
                    });
                }
                // No runtime to roll back on: closing the connection rolls back.
                Err(_) => slot.conn = None,
            }
        }
    }
}

/// SQLite's write connection. SQLite has one writer at a time, so the store keeps one connection
/// for every write transaction instead of taking one from the pool for each: writers queue here
/// (in order) rather than in SQLite's busy handler, and a transaction costs no pool hand-out and
/// no hand-back (sqlx tests a connection coming back to its pool with a round trip to the
/// connection's thread). Reads still use the pool, and other processes' writers SQLite's lock.
#[derive(Clone)]
struct Writer {
    slot: std::sync::Arc<tokio::sync::Mutex<WriterSlot>>,
    options: AnyConnectOptions,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

struct WriterSlot {
    conn: Option<sqlx::AnyConnection>,
    /// When `conn` was opened (ms since the process started, as `WRITE_FAILED_AT`).
    opened_at: u64,
}

impl Writer {
    /// The write connection, once the writers before this one are done: a new one when there
    /// is none or when the database failed to write since it was opened (as the pool's
    /// `before_acquire` retires its connections).
    async fn take(&self) -> Result<tokio::sync::OwnedMutexGuard<WriterSlot>, StorageError> {
        let mut slot = self.slot.clone().lock_owned().await;
        let failed_at = WRITE_FAILED_AT.load(std::sync::atomic::Ordering::Acquire);
        if failed_at > 0
            && slot.opened_at <= failed_at
            && let Some(old) = slot.conn.take()
        {
            let _ = sqlx::Connection::close(old).await;
        }
        if slot.conn.is_none() {
            let opened_at = since_start().as_millis() as u64;
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&self.options).await?;
            set_up(&mut conn, Backend::Sqlite).await?;
            *slot = WriterSlot { conn: Some(conn), opened_at };
        }
        Ok(slot)
    }

    /// Closes the connection once the writer holding it is done; a writer that is not done
    /// within `LOCK_WAIT` keeps it (it closes when the last store and transaction are dropped).
    async fn close(&self) {
        if let Ok(mut slot) = tokio::time::timeout(LOCK_WAIT, self.slot.lock()).await
            && let Some(conn) = slot.conn.take()
        {
            let _ = sqlx::Connection::close(conn).await;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(url: &str) -> Result<Backend, StorageError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(StorageError::BadUrl(redacted(url)))
        }
    }
}

impl Backend {
    /// The backend a connection talks to.
    pub fn of_connection(conn: &sqlx::AnyConnection) -> Backend {
        match conn.backend_name() {
            "PostgreSQL" => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

/// The URL with its password (`user:secret@`) replaced by `***`, for messages and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database URL must start with sqlite:// or postgres:// (got \"{0}\")")]
    BadUrl(String),
    #[error("cannot open the database: {0}")]
    Connect(String),
    #[error("cannot apply the database migrations: {0}")]
    Migrate(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("the database stayed locked for {0} s")]
    Locked(u64),
}

/// When the database last failed to write (ms since the process started): connections opened
/// before then are closed rather than reused, since SQLite can leave a connection that saw a disk
/// error unable to write even after the cause is gone.
static WRITE_FAILED_AT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn since_start() -> Duration {
    STARTED.get_or_init(std::time::Instant::now).elapsed()
}

/// Whether `e` leaves the connections opened before it suspect (`WRITE_FAILED_AT`): SQLite's
/// READONLY (8), IOERR (10 and its extended codes), CORRUPT (11), FULL (13), and the
/// transaction-depth confusion that follows a failed commit. SQLite's codes only: PostgreSQL's
/// SQLSTATEs are numbers too, and some read as these under the mask (21000, a subquery's second
/// row, is 8), which retired every pooled connection.
fn retires_connections(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                && d.code().and_then(|c| c.parse::<u32>().ok()).is_some_and(|c| matches!(c & 0xff, 8 | 10 | 11 | 13))
        }
        sqlx::Error::InvalidSavePointStatement | sqlx::Error::BeginFailed => true,
        _ => false,
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        if retires_connections(&e) {
            WRITE_FAILED_AT.store(since_start().as_millis() as u64 + 1, std::sync::atomic::Ordering::Release);
        }
        match e {
            // A row whose id, word or number does not read as its type, with the reason, cut
            // short: it can quote what the column holds (an unknown word, a JSON value), and it
            // goes to the log.
            sqlx::Error::ColumnDecode { index, source } => {
                let detail: String = source.to_string().chars().take(200).collect();
                StorageError::Corrupt(format!("column {index} does not read as its type: {detail}"))
            }
            e => StorageError::Database(e),
        }
    }
}

impl StorageError {
    /// A unique or partial-unique index refused the write: a concurrent caller got there first.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StorageError::Database(sqlx::Error::Database(e)) => {
                e.is_unique_violation() || e.code().is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
            }
            _ => false,
        }
    }

    /// "Database is locked/busy" (SQLite), a serialization failure, deadlock or lock timeout
    /// (PostgreSQL): a write that could not get its locks in time.
    pub fn is_busy(&self) -> bool {
        match self {
            StorageError::Locked(_) => true,
            StorageError::Database(sqlx::Error::Database(e)) => {
                e.code().is_some_and(|c| c == "5" || c == "517" || c == "40001" || c == "40P01" || c == "55P03")
            }
            _ => false,
        }
    }
}

/// An error `Store::write_retrying` can sort: it carries storage errors, and says whether another
/// attempt may succeed (a lost race, a busy database).
pub trait Retryable: From<StorageError> {
    fn is_retryable(&self) -> bool;
}

impl Retryable for StorageError {
    fn is_retryable(&self) -> bool {
        self.is_unique_violation() || self.is_busy()
    }
}

/// Every connection's set-up (the pool's and SQLite's write connection): how long a writer
/// waits for a lock, and how durable a commit is.
async fn set_up(conn: &mut sqlx::AnyConnection, backend: Backend) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        // Writers queue on the lock instead of failing at once.
        sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"))).execute(&mut *conn).await?;
        // WAL + NORMAL survives a killed process intact; a power cut may drop the last
        // commits, which the memo and leases recover from (a unit is made again).
        // REELSMITH_SQLITE_SYNCHRONOUS=full fsyncs every commit instead.
        let full = std::env::var("REELSMITH_SQLITE_SYNCHRONOUS").is_ok_and(|m| m.eq_ignore_ascii_case("full"));
        let pragma = if full { "PRAGMA synchronous = FULL" } else { "PRAGMA synchronous = NORMAL" };
        sqlx::query(pragma).execute(&mut *conn).await?;
        // Commits never checkpoint the WAL; the store's `Checkpointer` does, off the commit path.
        sqlx::query("PRAGMA wal_autocheckpoint = 0").execute(&mut *conn).await?;
        // A statement's undo journal (kept while a statement inside a transaction runs, should it
        // fail) stays in memory: past 64 KiB SQLite spilled it to a new file in /var/tmp, which
        // a run's checkpoint commit did once per run (a file made, written, deleted).
        sqlx::query("PRAGMA temp_store = MEMORY").execute(&mut *conn).await?;
        // Where a claim keeps the run it picked for the statements after it (`claim_batch`).
        sqlx::query(queries::CLAIM_PICK_TABLE).execute(&mut *conn).await?;
    } else {
        // PostgreSQL's counterpart of busy_timeout: a statement waiting on a row lock gives up
        // (55P03) instead of waiting forever.
        sqlx::query(sqlx::AssertSqlSafe(format!("SET lock_timeout = {BUSY_TIMEOUT_MS}"))).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The pool's per-connection set-up: how long a writer waits for a lock, how durable a commit is,
/// and never handing out a connection that a failed write may have broken.
fn pool_options(backend: Backend, max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        // `before_acquire` below runs a query on every connection it hands out, which is the
        // liveness test too (an error closes the connection): sqlx's own ping would be a second
        // round trip per transaction.
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| Box::pin(set_up(conn, backend)))
        // A commit that failed on a disk error can leave a connection that believes it is still
        // in a transaction (its rollback then fails too); such a connection is closed instead
        // of being handed out again. The query first lets any queued rollback finish (a dropped
        // transaction's rollback waits for the connection's next call). A SQLite connection
        // that is in no transaction has nothing queued and no network to lose, so it skips the
        // query: one trip to its thread less per transaction.
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                let failed_at = WRITE_FAILED_AT.load(std::sync::atomic::Ordering::Acquire);
                let opened_at = since_start().saturating_sub(meta.age).as_millis() as u64;
                if failed_at > 0 && opened_at <= failed_at {
                    return Ok(false);
                }
                if backend == Backend::Sqlite {
                    if sqlx::Connection::is_in_transaction(&*conn) {
                        sqlx::query("SELECT 1").execute(&mut *conn).await?;
                    }
                    return Ok(!sqlx::Connection::is_in_transaction(&*conn));
                }
                // A call dropped after its `BEGIN` reached PostgreSQL and before the answer came
                // back leaves the session inside a transaction that sqlx does not count; handed
                // out, its next `BEGIN` only warns and the read's `SET TRANSACTION` fails. `now()`
                // is the transaction's start: it equals this statement's own only when this
                // statement begins one. Such a connection is closed (its session rolls back).
                // Sent as a simple query (`raw_sql`, one message): with a prepared statement's
                // Bind and Execute, the transaction starts at the Bind and the statement's time
                // is the Execute's, a microsecond or more later, so every connection looked
                // left inside a transaction and was closed (a new one per acquire).
                let row = sqlx::raw_sql("SELECT now() = statement_timestamp()").fetch_one(&mut *conn).await?;
                let fresh: bool = sqlx::Row::try_get(&row, 0)?;
                if !fresh {
                    tracing::warn!("a pooled PostgreSQL connection was left inside a transaction (a dropped call); closed");
                    return Ok(false);
                }
                Ok(!sqlx::Connection::is_in_transaction(&*conn))
            })
        })
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Write transactions committed, for the benchmark's commits-per-run figure.
    commits: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// SQLite only: the one write connection.
    writer: Option<Writer>,
    /// SQLite only: the background checkpointer, stopped when the last clone goes away.
    _checkpointer: Option<std::sync::Arc<Checkpointer>>,
}

/// SQLite's WAL checkpoints, off the commit path. Every connection runs with
/// `wal_autocheckpoint = 0`, so no commit copies the WAL into the database file (SQLite's
/// default makes the commit that crosses 1,000 WAL pages do it, a few milliseconds that were the
/// tail of every commit-latency figure). This task does it instead, with PASSIVE checkpoints that
/// never wait for readers or writers, whenever something committed since its last one (and every
/// two seconds regardless). A checkpoint only moves committed pages from the WAL into the file,
/// so durability is the same; the WAL holds at most about one tick's commits more.
#[derive(Debug)]
struct Checkpointer(tokio::task::JoinHandle<()>);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Checkpointer {
    fn start(pool: AnyPool, commits: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Checkpointer {
        Checkpointer(tokio::spawn(async move {
            let (mut done, mut idle, mut failing) = (0, 0, false);
            loop {
                tokio::time::sleep(CHECKPOINT_EVERY).await;
                if pool.is_closed() {
                    return;
                }
                let now = commits.load(std::sync::atomic::Ordering::Relaxed);
                idle += 1;
                if now == done && idle < CHECKPOINT_IDLE_TICKS && !failing {
                    continue;
                }
                match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
                    Ok(_) => {
                        if failing {
                            tracing::info!("the SQLite WAL is checkpointed again");
                        }
                        (done, idle, failing) = (now, 0, false);
                    }
                    Err(_) if pool.is_closed() => return,
                    Err(e) => {
                        // Through `StorageError`, like every failed write: a disk or read-only
                        // error retires the connections opened before it (see `WRITE_FAILED_AT`).
                        let e = StorageError::from(e);
                        if !failing {
                            tracing::warn!(error = %e, "cannot checkpoint the SQLite WAL; trying again every {} ms", CHECKPOINT_EVERY.as_millis());
                        }
                        failing = true;
                    }
                }
            }
        }))
    }
}

/// The schema's migrations, in the binary, oldest first. sqlx's `migrate!` reads `migrations/` at
/// compile time through the same proc-macro crate as its derive; this list names the files
/// instead, and `tests::the_binary_holds_every_migration_as_sqlx_reads_it` checks it against the
/// directory (a new file missing here fails that test).
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init.sql", include_str!("../../migrations/0001_init.sql")),
    ("0002_fencing_and_changes.sql", include_str!("../../migrations/0002_fencing_and_changes.sql")),
    ("0003_provider_jobs.sql", include_str!("../../migrations/0003_provider_jobs.sql")),
    ("0004_accounts.sql", include_str!("../../migrations/0004_accounts.sql")),
    ("0005_inline_blobs.sql", include_str!("../../migrations/0005_inline_blobs.sql")),
    ("0006_tries_name_their_memo.sql", include_str!("../../migrations/0006_tries_name_their_memo.sql")),
    ("0007_attempt_counts.sql", include_str!("../../migrations/0007_attempt_counts.sql")),
];

/// `MIGRATIONS` as sqlx would read them from the directory: the version before the first `_`, the
/// rest of the name (without `.sql`, `_` as spaces) as the description, the SQL's own checksum,
/// so a database migrated by an older build sees the same migrations.
fn migrator() -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let migrations = MIGRATIONS
        .iter()
        .map(|(file, sql)| {
            let (version, rest) = file.split_once('_').expect("a migration's file name is <version>_<description>.sql");
            let version = version.parse().expect("a migration's file name starts with its version");
            let description = rest.trim_end_matches(".sql").replace('_', " ");
            let no_tx = sql.starts_with("-- no-transaction");
            Migration::new(version, description.into(), MigrationType::Simple, sqlx::SqlStr::from_static(sql), no_tx)
        })
        .collect();
    Migrator::with_migrations(migrations)
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies the migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Store, StorageError> {
        sqlx::any::install_default_drivers();
        since_start();
        let backend = Backend::of(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url).map_err(|e| StorageError::BadUrl(format!("{}: {e}", redacted(&url))))?;
        // One direct connection first: the pool would only say it timed out, this says why. It
        // also migrates the schema and is closed after: sqlx leaves a migration's statement
        // unfinished on the connection that ran it, and SQLite refuses to checkpoint the WAL on
        // such a connection ("database table is locked"; a pooled one made the checkpointer warn
        // at every first start).
        let connect = |e: sqlx::Error| StorageError::Connect(e.to_string());
        let mut direct = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options).await.map_err(connect)?;
        set_up(&mut direct, backend).await.map_err(connect)?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL").execute(&mut direct).await.map_err(connect)?;
        }
        migrator().run(&mut direct).await.map_err(|e| StorageError::Migrate(e.to_string()))?;
        let _ = sqlx::Connection::close(direct).await;
        let pool = pool_options(backend, max_connections).connect_with(options.clone()).await.map_err(connect)?;
        let commits = std::sync::Arc::<std::sync::atomic::AtomicU64>::default();
        let checkpointer = (backend == Backend::Sqlite).then(|| std::sync::Arc::new(Checkpointer::start(pool.clone(), commits.clone())));
        let writer = (backend == Backend::Sqlite)
            .then(|| Writer { slot: std::sync::Arc::new(tokio::sync::Mutex::new(WriterSlot { conn: None, opened_at: 0 })), options });
        Ok(Store { pool, backend, commits, writer, _checkpointer: checkpointer })
    }

    /// Write transactions that committed, since the store was opened.
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A write transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`), so two
    /// writers queue instead of one failing half-way when it upgrades its read lock.
    pub async fn write(&self) -> Result<WriteTx, StorageError> {
        Ok(self.write_starting(None).await?.0)
    }

    /// A write transaction whose first statements are `first`, and what they answered. On SQLite
    /// they go to the database in the same call as the `BEGIN`.
    pub async fn write_starting(&self, first: Option<Batch>) -> Result<(WriteTx, Vec<Answer>), StorageError> {
        // Never wait forever for the write lock: a caller that gives up can report it.
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        let locked = || {
            tracing::warn!("waited {} s for the database write lock", LOCK_WAIT.as_secs());
            StorageError::Locked(LOCK_WAIT.as_secs())
        };
        let commits = self.commits.clone();
        let Some(writer) = &self.writer else {
            let tx = tokio::time::timeout_at(deadline, self.pool.begin()).await.map_err(|_| locked())??;
            let mut tx = WriteTx { inner: Inner::Pooled(tx), commits, deferred: None };
            let Some(first) = first else { return Ok((tx, Vec::new())) };
            return match first.run(&mut tx).await {
                Ok(answers) => Ok((tx, answers)),
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            };
        };
        if self.pool.is_closed() {
            return Err(StorageError::Database(sqlx::Error::PoolClosed));
        }
        let slot = tokio::time::timeout_at(deadline, writer.take()).await.map_err(|_| locked())??;
        let mut tx = WriteTx { inner: Inner::Own { slot: Some(slot), open: true }, commits, deferred: None };
        let begin = async {
            match first {
                Some(first) => first.run_around(Some("BEGIN IMMEDIATE"), None, &mut tx).await,
                None => Ok(sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *tx).await.map(|_| Vec::new())?),
            }
        };
        // Its own bound, from when the connection is ours: the time spent queueing for it is
        // not the first statements' (SQLite's `busy_timeout`, shorter, bounds another
        // process's lock).
        match tokio::time::timeout(LOCK_WAIT, begin).await {
            Ok(Ok(answers)) => Ok((tx, answers)),
            Ok(Err(e)) => {
                let _ = tx.rollback().await;
                Err(e)
            }
            // Dropped: its rollback runs before the next writer's turn.
            Err(_) => Err(locked()),
        }
    }

    /// Runs `work` in a write transaction (`write`) and commits. When `work` or the commit loses
    /// a race (a unique index refused the write, or `work` says so) or finds the database busy,
    /// the transaction is rolled back and `work` runs again on what the winner wrote.
    ///
    /// The wait is bounded: at most `ATTEMPTS` attempts, none started after `RETRY_WINDOW`, each
    /// statement's wait capped by `busy_timeout`/`lock_timeout`, and a wait for the write lock
    /// (`LOCK_WAIT`) that timed out is reported, not repeated. So a worker's write gives up well
    /// within its lease.
    ///
    /// `work` should own what it captures (`async move`): an async closure that borrows from its
    /// caller's stack makes the caller's future fail the `Send` check (a current rustc
    /// limitation with async closures).
    pub async fn write_retrying<T, E: Retryable>(&self, work: impl AsyncFn(&mut WriteTx) -> Result<T, E>) -> Result<T, E> {
        self.write_retrying_starting(|| None, async move |tx, _| work(tx).await).await
    }

    /// `write_retrying`, each attempt's transaction starting with `first()` (`write_starting`),
    /// whose answers `work` gets.
    pub async fn write_retrying_starting<T, E: Retryable>(
        &self,
        first: impl Fn() -> Option<Batch>,
        work: impl AsyncFn(&mut WriteTx, Vec<Answer>) -> Result<T, E>,
    ) -> Result<T, E> {
        let started = std::time::Instant::now();
        let mut attempt = 1;
        loop {
            let error = match self.write_starting(first()).await {
                Ok((mut tx, answers)) => match work(&mut tx, answers).await {
                    Ok(value) => match tx.commit().await {
                        Ok(()) => return Ok(value),
                        Err(e) => E::from(StorageError::from(e)),
                    },
                    Err(e) => {
                        let _ = tx.rollback().await;
                        e
                    }
                },
                // A wait for the write lock that timed out is reported, not repeated; the first
                // statements' own lost race or busy lock is retried like `work`'s.
                Err(e @ StorageError::Locked(_)) => return Err(E::from(e)),
                Err(e) => E::from(e),
            };
            if attempt == ATTEMPTS || !error.is_retryable() || started.elapsed() >= RETRY_WINDOW {
                return Err(error);
            }
            attempt += 1;
        }
    }

    /// A read-only snapshot: every statement in it sees the same committed state. SQLite's
    /// read transaction is one already; PostgreSQL's default (read committed) takes a new
    /// snapshot per statement, so a page read in several statements could mix two states.
    pub async fn read(&self) -> Result<Tx, StorageError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    /// What the binary migrates is what sqlx reads from `migrations/` (the file list, versions,
    /// descriptions, checksums), so a file added there and not to `MIGRATIONS` fails here, and a
    /// database migrated by a build that read the directory opens unchanged.
    #[tokio::test]
    async fn the_binary_holds_every_migration_as_sqlx_reads_it() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let read = sqlx::migrate::Migrator::new(dir).await.expect("sqlx reads the migrations directory");
        let shape = |m: &sqlx::migrate::Migrator| {
            m.iter()
                .map(|m| (m.version, m.description.to_string(), m.migration_type, m.sql.as_str().to_string(), m.checksum.to_vec(), m.no_tx))
                .collect::<Vec<_>>()
        };
        let (ours, theirs) = (shape(&super::migrator()), shape(&read));
        assert_eq!(ours, theirs);
        let seventh = ours.iter().find(|m| m.0 == 7).expect("0007 is among them");
        assert_eq!(seventh.1, "attempt counts");
    }

    /// A fresh database's pooled connections hold nothing open after the store migrated it: each
    /// can checkpoint the WAL. (SQLite answers a checkpoint on a connection still inside a statement
    /// with "database table is locked", which the checkpointer logged as a warning at every first
    /// start.)
    #[tokio::test]
    async fn after_a_fresh_database_is_migrated_every_pooled_connection_can_checkpoint() {
        let dir = std::env::temp_dir().join(format!("reelsmith-fresh-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = super::Store::open(&format!("sqlite://{}/fresh.db", dir.display()), 4).await.unwrap();
        let open = store.pool().size();
        assert!(open >= 1, "the store keeps a connection");
        let mut conns = Vec::new();
        for _ in 0..open {
            conns.push(store.pool().acquire().await.unwrap());
        }
        for conn in &mut conns {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut **conn).await.expect("a pooled connection checkpoints");
        }
        drop(conns);
        store.pool().close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A real SQLite READONLY error (through the `Any` driver, as the store meets it) retires the
    /// connections; a constraint's error does not. (PostgreSQL's 21000, which reads as 8 under
    /// the mask, is checked against a real server in `tests/it/scaleout.rs`.)
    #[tokio::test]
    async fn sqlites_disk_errors_retire_connections_and_other_errors_do_not() {
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect("sqlite::memory:").await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)").execute(&mut conn).await.unwrap();
        let duplicate = sqlx::raw_sql("INSERT INTO t VALUES (1)").execute(&mut conn).await.unwrap_err();
        assert!(!super::retires_connections(&duplicate), "{duplicate}");
        sqlx::raw_sql("PRAGMA query_only = ON").execute(&mut conn).await.unwrap();
        let read_only = sqlx::raw_sql("INSERT INTO t VALUES (2)").execute(&mut conn).await.unwrap_err();
        let code = match &read_only {
            sqlx::Error::Database(d) => d.code().map(|c| c.to_string()),
            other => panic!("not a database error: {other}"),
        };
        assert_eq!(code.as_deref(), Some("8"), "SQLite's READONLY: {read_only}");
        assert!(super::retires_connections(&read_only), "{read_only}");
    }

    #[test]
    fn a_database_urls_password_never_reaches_a_message() {
        assert_eq!(super::redacted("postgres://ann:s3cr3t@db:5432/app"), "postgres://ann:***@db:5432/app");
        assert_eq!(super::redacted("mysql://ann:p@ss@db/app"), "mysql://ann:***@db/app");
        assert_eq!(super::redacted("postgres://db/app?user=x"), "postgres://db/app?user=x");
        assert_eq!(super::redacted("sqlite://data/reelsmith.db"), "sqlite://data/reelsmith.db");
        let err = super::Backend::of("mysql://ann:s3cr3t@db/app").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }
}
