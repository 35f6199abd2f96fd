//! Which schema constraint a refused write broke, by name, on SQLite and PostgreSQL alike.
use super::StorageError;

/// A constraint of migrations/0001_init.sql whose violation means something to the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constraint {
    /// `branches_name_unique`: the video already has a branch of that name.
    BranchName,
    /// `runs_one_active_per_branch`: the branch already has a queued or running run.
    OneActiveRun,
    /// `runs_attempt_unique`: that attempt from that checkpoint exists on the branch.
    RunAttempt,
    /// `checkpoints_version_unique`: that version of the phase under that parent exists.
    CheckpointVersion,
    /// `accounts_email_unique`: an account with that email exists.
    AccountEmail,
    /// A table's primary key: a row with that key exists.
    PrimaryKey { table: &'static str },
}

/// Each named constraint with the columns SQLite lists when it names none.
const NAMED: [(Constraint, &str, &str); 5] = [
    (Constraint::AccountEmail, "accounts_email_unique", "accounts.email"),
    (Constraint::BranchName, "branches_name_unique", "branches.video_id, branches.name"),
    (Constraint::OneActiveRun, "runs_one_active_per_branch", "runs.branch_id"),
    (Constraint::RunAttempt, "runs_attempt_unique", "runs.branch_id, runs.from_key, runs.attempt"),
    (
        Constraint::CheckpointVersion,
        "checkpoints_version_unique",
        "checkpoints.video_id, checkpoints.parent_key, checkpoints.phase, checkpoints.version",
    ),
];

const TABLES: [&str; 10] =
    ["accounts", "sessions", "videos", "branches", "checkpoints", "runs", "unit_tries", "blobs", "memo", "fault_hits"];

/// SQLite's extended result code for a primary key violation.
const SQLITE_CONSTRAINT_PRIMARYKEY: &str = "1555";

/// The constraint a refused write broke, if it is one the code gives a meaning to.
///
/// PostgreSQL names the constraint (`<table>_pkey` for a primary key). SQLite names none: its
/// message lists the index's columns ("UNIQUE constraint failed: branches.video_id,
/// branches.name"), or the index itself ("UNIQUE constraint failed: index 'runs_one_active_per_branch'").
pub fn violated(error: &StorageError) -> Option<Constraint> {
    let StorageError::Database(sqlx::Error::Database(e)) = error else { return None };
    if let Some(name) = e.constraint() {
        return by_name(name).or_else(|| name.strip_suffix("_pkey").and_then(primary_key));
    }
    let failed = e.message().strip_prefix("UNIQUE constraint failed: ")?;
    if let Some(index) = failed.strip_prefix("index '").and_then(|rest| rest.strip_suffix('\'')) {
        return by_name(index);
    }
    if let Some(&(constraint, ..)) = NAMED.iter().find(|(_, _, columns)| *columns == failed) {
        return Some(constraint);
    }
    let table = failed.split_once('.').map(|(table, _)| table)?;
    e.code().is_some_and(|c| c == SQLITE_CONSTRAINT_PRIMARYKEY).then(|| primary_key(table)).flatten()
}

fn by_name(name: &str) -> Option<Constraint> {
    NAMED.iter().find(|(_, n, _)| *n == name).map(|&(constraint, ..)| constraint)
}

fn primary_key(table: &str) -> Option<Constraint> {
    TABLES.iter().find(|t| **t == table).map(|&table| Constraint::PrimaryKey { table })
}
