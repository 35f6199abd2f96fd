//! Several statements sent to the database in one call where the backend allows it.
//!
//! sqlx's SQLite driver runs every call on its connection's own thread, and the trip there and
//! back (two thread wake-ups, about 60 µs on 2 cores) costs more than a small statement. SQLite
//! takes several statements in one string and binds each one's `$N` by number, so a statement
//! set goes in one call there. PostgreSQL's extended protocol takes one statement per call, so
//! there the statements go one by one, in the same transaction, each bound with the values it
//! names: statement `i` uses `$1` to `$k` for its own `k` (checked by a unit test for every set).
//!
//! sqlx calls SQLite's several-statements-with-binds deprecated (launchbadge/sqlx#3108) without
//! a replacement that binds values; the storage suites read and write through these sets on
//! SQLite, so they fail the day a new sqlx stops it.
use futures::TryStreamExt;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, AnyConnection, Either, FromRow};

use super::{Backend, StorageError};

/// Statements run together, in order; `joined` is `statements` separated by `;` (both written
/// once by `statement_set!`).
pub struct StatementSet {
    pub statements: &'static [&'static str],
    pub joined: &'static str,
}

macro_rules! statement_set {
    ($first:literal $(, $rest:literal)* $(,)?) => {
        $crate::storage::batch::StatementSet {
            statements: &[$first $(, $rest)*],
            joined: concat!($first $(, ";\n", $rest)*),
        }
    };
}
pub(crate) use statement_set;

/// A value bound to `$N`.
#[derive(Clone, Debug)]
pub enum Value {
    Text(String),
    Int(i64),
    MaybeText(Option<String>),
    MaybeBytes(Option<Vec<u8>>),
}

/// What one statement of a set answered.
#[derive(Default)]
pub struct Answer {
    pub rows: Vec<AnyRow>,
    pub rows_affected: u64,
}

impl Answer {
    /// The rows as records of type `R`.
    pub fn rows_as<R: for<'r> FromRow<'r, AnyRow>>(&self) -> Result<Vec<R>, StorageError> {
        self.rows.iter().map(|row| R::from_row(row).map_err(StorageError::from)).collect()
    }
}

/// The highest `$N` a statement names: PostgreSQL wants exactly that many values bound.
pub fn placeholders(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut highest = 0;
    for (i, _) in sql.match_indices('$') {
        let digits: String = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).map(|&b| char::from(b)).collect();
        highest = highest.max(digits.parse().unwrap_or(0));
    }
    highest
}

fn bound(sql: impl sqlx::SqlSafeStr, values: &[Value]) -> sqlx::query::Query<'static, Any, AnyArguments> {
    values.iter().fold(sqlx::query(sql), |query, value| match value {
        Value::Text(text) => query.bind(text.clone()),
        Value::Int(n) => query.bind(*n),
        Value::MaybeText(text) => query.bind(text.clone()),
        Value::MaybeBytes(bytes) => query.bind(bytes.clone()),
    })
}

/// Runs `sql` (`statements` of them, separated by `;`) in one call, and returns what each
/// statement answered: its rows come back followed by its result (`Either::Left`).
async fn answers(
    conn: &mut AnyConnection,
    sql: impl sqlx::SqlSafeStr,
    values: &[Value],
    statements: usize,
) -> Result<Vec<Answer>, StorageError> {
    let mut answers = Vec::with_capacity(statements);
    let mut rows = Vec::new();
    let mut results = sqlx::Executor::fetch_many(&mut *conn, bound(sql, values));
    while let Some(item) = results.try_next().await? {
        match item {
            Either::Right(row) => rows.push(row),
            Either::Left(done) => answers.push(Answer { rows: std::mem::take(&mut rows), rows_affected: done.rows_affected() }),
        }
    }
    if answers.len() != statements || !rows.is_empty() {
        return Err(StorageError::Database(sqlx::Error::Protocol(format!("{statements} statements answered {} times", answers.len()))));
    }
    Ok(answers)
}

/// Runs each statement of `set` in order and returns what each answered.
pub async fn run_set(conn: &mut AnyConnection, set: &StatementSet, values: &[Value]) -> Result<Vec<Answer>, StorageError> {
    if Backend::of_connection(conn) == Backend::Sqlite {
        return answers(conn, set.joined, values, set.statements.len()).await;
    }
    let mut all = Vec::with_capacity(set.statements.len());
    for sql in set.statements {
        all.extend(answers(&mut *conn, *sql, &values[..placeholders(sql)], 1).await?);
    }
    Ok(all)
}

/// Statements written at run time (multi-row inserts), run in order like a `StatementSet`: in
/// one call on SQLite, where each statement numbers its values after the previous one's, and
/// one by one on PostgreSQL, where each numbers them from `$1`.
pub struct Batch {
    backend: Backend,
    statements: Vec<String>,
    values: Vec<Vec<Value>>,
}

impl Batch {
    pub fn new(backend: Backend) -> Batch {
        Batch { backend, statements: Vec::new(), values: Vec::new() }
    }

    /// The number of the next statement's first `$N`.
    pub fn first_placeholder(&self) -> usize {
        match self.backend {
            Backend::Sqlite => self.values.iter().map(Vec::len).sum::<usize>() + 1,
            Backend::Postgres => 1,
        }
    }

    /// Adds a statement whose placeholders start at `first_placeholder()`.
    pub fn push(&mut self, sql: String, values: Vec<Value>) {
        self.statements.push(sql);
        self.values.push(values);
    }

    pub async fn run(self, conn: &mut AnyConnection) -> Result<Vec<Answer>, StorageError> {
        if self.statements.is_empty() {
            return Ok(Vec::new());
        }
        if self.backend == Backend::Sqlite {
            let values: Vec<Value> = self.values.concat();
            return answers(conn, sqlx::AssertSqlSafe(self.statements.join(";\n")), &values, self.statements.len()).await;
        }
        let mut all = Vec::with_capacity(self.statements.len());
        for (sql, values) in self.statements.into_iter().zip(self.values) {
            all.extend(answers(&mut *conn, sqlx::AssertSqlSafe(sql), &values, 1).await?);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn every_statement_of_a_set_names_its_values_from_one_up() {
        for set in super::super::STATEMENT_SETS {
            assert_eq!(set.joined.split(";\n").collect::<Vec<_>>(), set.statements, "joined is the statements in order");
            for sql in set.statements {
                let named: Vec<usize> = sql
                    .match_indices('$')
                    .map(|(i, _)| sql[i + 1..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap())
                    .collect();
                for n in 1..=placeholders(sql) {
                    assert!(named.contains(&n), "${n} is missing from {sql}");
                }
            }
        }
    }

    #[test]
    fn placeholders_reads_the_highest_number() {
        assert_eq!(placeholders("SELECT 1"), 0);
        assert_eq!(placeholders("UPDATE t SET a = $2 WHERE b = $10 AND c = $1"), 10);
    }
}
