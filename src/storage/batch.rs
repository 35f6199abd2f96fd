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
    MaybeInt(Option<i64>),
    MaybeBytes(Option<Vec<u8>>),
}

/// One statement and its values, numbered from `$1`: run alone (`run`) or in a `Batch`.
pub struct Statement {
    pub sql: &'static str,
    pub values: Vec<Value>,
}

impl Statement {
    pub async fn run(self, conn: &mut AnyConnection) -> Result<Answer, StorageError> {
        let mut answers = answers(conn, self.sql, self.values, 1).await?;
        Ok(answers.pop().unwrap_or_default())
    }
}

/// `sql` with every `$N` raised by `by` (a statement numbered from `$1` placed after others').
fn shifted(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
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

/// The query with `values` bound in order (moved, so a group's bytes are not copied again).
fn bound(sql: impl sqlx::SqlSafeStr, values: Vec<Value>) -> sqlx::query::Query<'static, Any, AnyArguments> {
    values.into_iter().fold(sqlx::query(sql), |query, value| match value {
        Value::Text(text) => query.bind(text),
        Value::Int(n) => query.bind(n),
        Value::MaybeText(text) => query.bind(text),
        Value::MaybeInt(n) => query.bind(n),
        Value::MaybeBytes(bytes) => query.bind(bytes),
    })
}

/// Runs `sql` (`statements` of them, separated by `;`) in one call, and returns what each
/// statement answered: its rows come back followed by its result (`Either::Left`).
async fn answers(
    conn: &mut AnyConnection,
    sql: impl sqlx::SqlSafeStr,
    values: Vec<Value>,
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
    let mut batch = Batch::new(Backend::of_connection(conn));
    batch.push_set(set, values.to_vec());
    batch.run(conn).await
}

/// Statements written at run time (multi-row inserts), run in order like a `StatementSet`: in
/// one call on SQLite, where each statement numbers its values after the previous one's, and
/// one by one on PostgreSQL, where each numbers them from `$1`.
pub struct Batch {
    backend: Backend,
    statements: Vec<String>,
    values: Vec<Vec<Value>>,
    /// How many statements each entry of `statements` holds (a set's are joined in one).
    answers: Vec<usize>,
}

impl Batch {
    pub fn new(backend: Backend) -> Batch {
        Batch { backend, statements: Vec::new(), values: Vec::new(), answers: Vec::new() }
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
        self.answers.push(1);
    }

    /// Adds a statement numbered from `$1`, renumbered to follow the others on SQLite.
    pub fn push_statement(&mut self, statement: Statement) {
        let sql = match self.first_placeholder() {
            1 => statement.sql.to_string(),
            first => shifted(statement.sql, first - 1),
        };
        self.push(sql, statement.values);
    }

    /// Adds the statements of `set`, which share `values` (`$1` up), each answering in turn.
    pub fn push_set(&mut self, set: &StatementSet, values: Vec<Value>) {
        match self.backend {
            Backend::Sqlite => {
                let sql = match self.first_placeholder() {
                    1 => set.joined.to_string(),
                    first => shifted(set.joined, first - 1),
                };
                self.statements.push(sql);
                self.values.push(values);
                self.answers.push(set.statements.len());
            }
            Backend::Postgres => {
                for sql in set.statements {
                    self.push(sql.to_string(), values[..placeholders(sql)].to_vec());
                }
            }
        }
    }

    /// Adds `other`'s statements after these (renumbered to follow them on SQLite); their
    /// answers follow these statements' answers.
    pub fn append(&mut self, other: Batch) {
        debug_assert!(self.backend == other.backend);
        let first = self.first_placeholder();
        for ((sql, values), answers) in other.statements.into_iter().zip(other.values).zip(other.answers) {
            let sql = match (self.backend, first) {
                (Backend::Sqlite, first) if first > 1 => shifted(&sql, first - 1),
                _ => sql,
            };
            self.statements.push(sql);
            self.values.push(values);
            self.answers.push(answers);
        }
    }

    /// How many answers the batch's statements give.
    pub fn answer_count(&self) -> usize {
        self.answers.iter().sum()
    }

    pub async fn run(self, conn: &mut AnyConnection) -> Result<Vec<Answer>, StorageError> {
        self.run_around(None, None, conn).await
    }

    /// On SQLite, `before`, the batch and `after` (statements with no values and no rows, such
    /// as `BEGIN IMMEDIATE` and `COMMIT`) in one call; the answers are the batch's. Only for
    /// SQLite: PostgreSQL runs one statement per call.
    pub async fn run_around(
        self,
        before: Option<&'static str>,
        after: Option<&'static str>,
        conn: &mut AnyConnection,
    ) -> Result<Vec<Answer>, StorageError> {
        debug_assert!(self.backend == Backend::Sqlite || (before.is_none() && after.is_none()));
        let statements: usize = self.answers.iter().sum();
        if statements == 0 && before.is_none() && after.is_none() {
            return Ok(Vec::new());
        }
        if self.backend == Backend::Sqlite {
            let values: Vec<Value> = self.values.into_iter().flatten().collect();
            let sql = before.map(str::to_string).into_iter().chain(self.statements).chain(after.map(str::to_string)).collect::<Vec<_>>();
            let (first, last) = (usize::from(before.is_some()), usize::from(after.is_some()));
            let mut all = answers(conn, sqlx::AssertSqlSafe(sql.join(";\n")), values, first + statements + last).await?;
            all.truncate(first + statements);
            return Ok(all.split_off(first));
        }
        let mut all = Vec::with_capacity(statements);
        for (sql, values) in self.statements.into_iter().zip(self.values) {
            all.extend(answers(&mut *conn, sqlx::AssertSqlSafe(sql), values, 1).await?);
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
    fn a_statement_placed_after_others_is_renumbered_past_their_values() {
        assert_eq!(super::shifted("UPDATE t SET a = $1 WHERE b = $2 AND c = $10", 3), "UPDATE t SET a = $4 WHERE b = $5 AND c = $13");
        assert_eq!(super::shifted("SELECT 1", 5), "SELECT 1");
        let mut batch = super::Batch::new(super::Backend::Sqlite);
        batch.push_statement(super::Statement { sql: "DELETE FROM a WHERE id = $1", values: vec![super::Value::Int(1)] });
        batch.push_statement(super::Statement {
            sql: "DELETE FROM b WHERE id = $1 AND x = $2",
            values: vec![super::Value::Int(2), super::Value::Int(3)],
        });
        assert_eq!(batch.statements, ["DELETE FROM a WHERE id = $1", "DELETE FROM b WHERE id = $2 AND x = $3"]);
        let mut batch = super::Batch::new(super::Backend::Postgres);
        batch.push_statement(super::Statement { sql: "DELETE FROM a WHERE id = $1", values: vec![super::Value::Int(1)] });
        batch.push_statement(super::Statement { sql: "DELETE FROM b WHERE id = $1", values: vec![super::Value::Int(2)] });
        assert_eq!(batch.statements, ["DELETE FROM a WHERE id = $1", "DELETE FROM b WHERE id = $1"], "PostgreSQL runs each alone");
    }

    #[test]
    fn an_appended_batch_is_renumbered_past_the_first_ones_values_and_answers_after_it() {
        let one = |sql: &'static str, n: i64| super::Statement { sql, values: (0..n).map(super::Value::Int).collect() };
        for backend in [super::Backend::Sqlite, super::Backend::Postgres] {
            let mut first = super::Batch::new(backend);
            first.push_statement(one("UPDATE a SET x = $1 WHERE id = $2", 2));
            let mut second = super::Batch::new(backend);
            second.push_statement(one("DELETE FROM b WHERE id = $1", 1));
            second.push_statement(one("DELETE FROM c WHERE id = $1 AND y = $2", 2));
            first.append(second);
            let expected = match backend {
                super::Backend::Sqlite => {
                    ["UPDATE a SET x = $1 WHERE id = $2", "DELETE FROM b WHERE id = $3", "DELETE FROM c WHERE id = $4 AND y = $5"]
                }
                super::Backend::Postgres => {
                    ["UPDATE a SET x = $1 WHERE id = $2", "DELETE FROM b WHERE id = $1", "DELETE FROM c WHERE id = $1 AND y = $2"]
                }
            };
            assert_eq!(first.statements, expected, "{backend:?}");
            assert_eq!(first.values.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1, 2], "each statement keeps its own values");
            assert_eq!(first.answer_count(), 3);
        }
    }

    #[test]
    fn placeholders_reads_the_highest_number() {
        assert_eq!(placeholders("SELECT 1"), 0);
        assert_eq!(placeholders("UPDATE t SET a = $2 WHERE b = $10 AND c = $1"), 10);
    }
}
