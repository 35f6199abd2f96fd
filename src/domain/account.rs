//! Accounts: who owns a video, and what a person may type to make or use an account.
use serde::{Deserialize, Serialize};
use std::fmt;

use super::validate::InvalidInput;

pub use super::ids::AccountId;

impl AccountId {
    /// The account of a single-user server (`--auth none`), and the owner of every video made
    /// before accounts existed. Nobody can sign in as it: its stored hash is no argon2 hash.
    pub const LOCAL: AccountId = AccountId(uuid::Uuid::nil());
}

/// The longest email address a mailbox can have (RFC 5321's path limit).
pub const EMAIL_MAX: usize = 254;
/// Passwords: long enough to resist guessing, short enough that hashing one is cheap to refuse.
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;

/// An email address as an account's name: trimmed and lowercased, so `Ann@X.org` and
/// `ann@x.org ` are the same account.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, InvalidInput> {
        let email = raw.trim().to_lowercase();
        let bad = |why: &str| InvalidInput::new("email", why);
        if email.is_empty() {
            return Err(bad("enter your email address"));
        }
        if email.chars().count() > EMAIL_MAX {
            return Err(bad(&format!("the email address is longer than {EMAIL_MAX} characters")));
        }
        let valid = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !domain.contains('@')
        });
        if !valid || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("that does not look like an email address (name@example.org)"));
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new account's password. Never `Serialize`, never `Display`, and `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// A password for a new account: 8 to 128 characters.
    pub fn parse_new(raw: &str) -> Result<Password, InvalidInput> {
        let n = raw.chars().count();
        if n < PASSWORD_MIN {
            return Err(InvalidInput::new("password", format!("the password must have at least {PASSWORD_MIN} characters")));
        }
        Self::parse_given(raw)
    }

    /// A password typed to sign in: only its size is checked (a short one simply fails to match).
    pub fn parse_given(raw: &str) -> Result<Password, InvalidInput> {
        if raw.chars().count() > PASSWORD_MAX {
            return Err(InvalidInput::new("password", format!("the password must have at most {PASSWORD_MAX} characters")));
        }
        Ok(Password(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

/// An account as stored; the hash stays on the server (no `Serialize`).
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub email: Email,
    pub password_hash: String,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account").field("id", &self.id).field("email", &self.email).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_one_account_whatever_the_case_and_spaces() {
        assert_eq!(Email::parse(" Ann@Example.ORG ").unwrap().as_str(), "ann@example.org");
    }

    #[test]
    fn bad_emails_name_the_field() {
        for raw in ["", "ann", "ann@", "@x.org", "ann@x", "a b@x.org", "ann@x.org@y.org", &format!("{}@x.org", "a".repeat(260))] {
            let err = Email::parse(raw).unwrap_err();
            assert_eq!(err.field, "email", "{raw:?}");
        }
    }

    #[test]
    fn passwords_have_a_size_and_never_print() {
        assert!(Password::parse_new("short").unwrap_err().message.contains("at least 8"));
        assert!(Password::parse_new(&"x".repeat(129)).unwrap_err().message.contains("at most 128"));
        assert!(Password::parse_given(&"x".repeat(129)).is_err());
        let p = Password::parse_new("correct horse").unwrap();
        assert_eq!(format!("{p:?}"), "Password(…)");
        let a = Account { id: AccountId::LOCAL, email: Email::parse("a@b.co").unwrap(), password_hash: "$argon2id$secret".into() };
        assert!(!format!("{a:?}").contains("secret"));
    }
}

/// Why the server did not let someone in. Sign-in failures say the same thing whether the email
/// has an account or not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case", try_from = "super::records::DenialRecord")]
pub enum Denial {
    /// Unknown email or wrong password: one sentence for both.
    BadCredentials,
    /// Too many failed sign-ins for this email or from this address.
    TooManyAttempts { retry_after_s: u64 },
    /// The request carries no live session.
    SignedOut,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::BadCredentials => f.write_str("Email or password is incorrect"),
            Denial::TooManyAttempts { retry_after_s } => {
                let minutes = super::words::count(retry_after_s.div_ceil(60).max(1), "minute", "minutes");
                write!(f, "Too many failed sign-ins; try again in {minutes}")
            }
            Denial::SignedOut => f.write_str("You are signed out"),
        }
    }
}

impl std::error::Error for Denial {}

impl Denial {
    pub fn next_step(&self) -> &'static str {
        match self {
            Denial::BadCredentials => "Check the email and password, or create an account.",
            Denial::TooManyAttempts { .. } => "Wait, then sign in again.",
            Denial::SignedOut => "Sign in to see your videos.",
        }
    }
}
