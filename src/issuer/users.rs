//! The static-users connector: people who sign in with a username and password kept in a
//! YAML file (`--users FILE`), as `{username, passwordHash, subject?, email?}` with argon2id or
//! bcrypt hashes. Passwords are verified against the hash only; an unknown username costs the
//! same work as a wrong password.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A person who can sign in.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct User {
    pub username: String,
    pub password_hash: String,
    /// The `sub` claim; defaults to the username.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .field("subject", &self.subject())
            .finish_non_exhaustive()
    }
}

impl User {
    pub fn subject(&self) -> &str {
        self.subject.as_deref().unwrap_or(&self.username)
    }
}

/// Everything that can be wrong with a users file.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// The static users, by username.
#[derive(Debug, Default)]
pub struct Users {
    by_name: BTreeMap<String, User>,
}

/// A well-formed argon2id hash of a random password, verified when the username is unknown.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$Zr0eYVUGiHWtkTiKfWQQcS1mN8lN4WPRovdL9T3P3a8";

impl Users {
    /// Read a users file. Every user must have a known hash format.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: shown.clone(),
            source,
        })?;
        let list: Vec<User> = serde_yaml::from_str(&text).map_err(|e| UsersError::Invalid {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let mut by_name = BTreeMap::new();
        for (i, user) in list.into_iter().enumerate() {
            let invalid = |message: String| UsersError::Invalid {
                path: shown.clone(),
                message: format!("user {} ({}): {message}", i + 1, user.username),
            };
            if !(user.password_hash.starts_with("$argon2id$")
                || user.password_hash.starts_with("$2"))
            {
                return Err(invalid(
                    "passwordHash must be an argon2id or bcrypt hash".into(),
                ));
            }
            if by_name.contains_key(&user.username) {
                return Err(invalid("the username appears twice".into()));
            }
            by_name.insert(user.username.clone(), user);
        }
        Ok(Self { by_name })
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The user, if the password matches. Slow on purpose (the hash's cost).
    pub fn verify(&self, username: &str, password: &str) -> Option<&User> {
        match self.by_name.get(username) {
            Some(user) if verify_hash(&user.password_hash, password) => Some(user),
            Some(_) => None,
            None => {
                let _ = verify_hash(DECOY_HASH, password);
                None
            }
        }
    }
}

fn verify_hash(hash: &str, password: &str) -> bool {
    if hash.starts_with("$argon2") {
        use argon2::PasswordVerifier as _;
        argon2::PasswordHash::new(hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    } else {
        bcrypt::verify(password, hash).unwrap_or(false)
    }
}
