//! The static-users connector: people who sign in with a username and password kept in a
//! YAML file (`--users FILE`), as `{username, passwordHash, subject?, email?}` with argon2id or
//! bcrypt hashes. Passwords are verified against the hash only; an unknown username costs the
//! same work as a wrong password (it is checked against a real hash of the file, whose result
//! is thrown away).
//!
//! Hashes too cheap to stop offline guessing are refused when the file is loaded
//! (`hash_strength`: OWASP's Password Storage Cheat Sheet minimums). bcrypt reads at most
//! 72 bytes of a password, so a longer one is refused rather than compared by its prefix.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
pub struct Users {
    by_name: BTreeMap<String, User>,
    /// The hash an unknown username is checked against: the first user's, so that it costs what
    /// a known username costs (same algorithm and parameters).
    decoy: Option<String>,
    /// Permits for password checks in progress ([`concurrent_checks`]).
    checks: Arc<tokio::sync::Semaphore>,
}

impl Default for Users {
    fn default() -> Self {
        Self {
            by_name: BTreeMap::new(),
            decoy: None,
            checks: Arc::new(tokio::sync::Semaphore::new(concurrent_checks())),
        }
    }
}

/// How many passwords are checked at once: twice the cores. An argon2id check at the default
/// cost holds 19 MiB and a core for tens of milliseconds, so a burst of sign-ins waits for a
/// permit instead of taking gigabytes; and the brute-force limits, checked again once a
/// permit is held, can be overrun by at most this many guesses less one per issuer.
pub fn concurrent_checks() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

impl std::fmt::Debug for Users {
    /// Usernames and subjects only, never a hash.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.values()).finish()
    }
}

/// The least bcrypt cost (log2 of the rounds) a users file may use: OWASP's minimum.
pub const MIN_BCRYPT_COST: u32 = 10;

/// OWASP's argon2id configurations of equal strength, as (t, the least m in KiB at that t):
/// m=19456 KiB with t=2 is the one usually quoted; a higher t may use less memory. p is not
/// counted: the lanes share the m blocks.
const ARGON2ID_MINIMUMS: [(u32, u32); 5] =
    [(1, 47104), (2, 19456), (3, 12288), (4, 9216), (5, 7168)];

/// bcrypt reads at most this many bytes of a password.
pub(crate) const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;

/// A well-formed argon2id hash of a random password (default costs), the decoy of an empty
/// list.
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
            message: without_values(&e),
        })?;
        let decoy = list.first().map(|u| u.password_hash.clone());
        let mut by_name = BTreeMap::new();
        for (i, user) in list.into_iter().enumerate() {
            let invalid = |message: String| UsersError::Invalid {
                path: shown.clone(),
                message: format!("user {} ({}): {message}", i + 1, user.username),
            };
            hash_strength(&user.password_hash).map_err(&invalid)?;
            if by_name.contains_key(&user.username) {
                return Err(invalid("the username appears twice".into()));
            }
            if crate::issuer::protocol::is_reserved_for_clients(user.subject()) {
                return Err(invalid(format!(
                    "subject {:?} ends with {:?}, which only clients' tokens carry (so that no user is mistaken for a client); give this user another subject",
                    user.subject(),
                    crate::issuer::protocol::CLIENT_SUBJECT_SUFFIX
                )));
            }
            by_name.insert(user.username.clone(), user);
        }
        Ok(Self {
            by_name,
            decoy,
            ..Self::default()
        })
    }

    /// A permit to check one password, waiting at most `wait` for one ([`concurrent_checks`]).
    pub(crate) async fn check_permit(
        &self,
        wait: Duration,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        tokio::time::timeout(wait, self.checks.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The user, if the password matches. Slow on purpose (the hash's cost), and as slow for
    /// an unknown username: exactly one hash is checked either way (`hash_checked_for`).
    pub fn verify(&self, username: &str, password: &str) -> Option<&User> {
        let user = self.by_name.get(username);
        let matches = verify_hash(self.hash_checked_for(user), password);
        user.filter(|_| matches)
    }

    /// The hash a password is checked against: the user's, or for an unknown username a real
    /// hash of the same cost (the file's first, else a built-in argon2id one), whose answer
    /// [`Self::verify`] ignores.
    fn hash_checked_for<'a>(&'a self, user: Option<&'a User>) -> &'a str {
        match user {
            Some(user) => &user.password_hash,
            None => self.decoy.as_deref().unwrap_or(DECOY_HASH),
        }
    }
}

/// Whether `hash` is an argon2id or bcrypt hash of at least OWASP's minimum cost; else what
/// is wrong, naming the parameter and never quoting the hash.
fn hash_strength(hash: &str) -> Result<(), String> {
    if hash.starts_with("$argon2id$") {
        let params = argon2::PasswordHash::new(hash)
            .ok()
            .and_then(|parsed| argon2::Params::try_from(&parsed).ok())
            .ok_or("passwordHash is not a well-formed argon2id hash")?;
        let (m, t) = (params.m_cost(), params.t_cost());
        let least = ARGON2ID_MINIMUMS
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map_or(u32::MAX, |(_, least)| *least);
        if m < least {
            return Err(format!(
                "passwordHash: argon2id memory cost m={m} KiB is below {least} KiB, the least \
                 OWASP's Password Storage Cheat Sheet allows at t={t} (m=19456,t=2,p=1 or an \
                 equivalent); hash the password again"
            ));
        }
        Ok(())
    } else if hash.starts_with("$2") {
        let parts: bcrypt::HashParts = hash
            .parse()
            .map_err(|_| "passwordHash is not a well-formed bcrypt hash")?;
        let cost = parts.get_cost();
        if cost < MIN_BCRYPT_COST {
            return Err(format!(
                "passwordHash: bcrypt cost {cost} is below the minimum of {MIN_BCRYPT_COST}; \
                 hash the password again"
            ));
        }
        Ok(())
    } else {
        Err("passwordHash must be an argon2id or bcrypt hash".into())
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
        // bcrypt would compare only the first 72 bytes of a longer password. The hash is
        // computed all the same, so that the refusal costs what a wrong password costs, for a
        // known user as for an unknown one (checked against a decoy).
        let matches = bcrypt::verify(password, hash).unwrap_or(false);
        matches && password.len() <= BCRYPT_MAX_PASSWORD_BYTES
    }
}

/// serde_yaml's message without the value it quotes for a wrong type or value: a password
/// hash in the wrong place would otherwise reach the log.
fn without_values(error: &serde_yaml::Error) -> String {
    let message = error.to_string();
    let Some(at) = ["invalid type", "invalid value"]
        .iter()
        .find_map(|what| message.find(what))
    else {
        return message;
    };
    let location = error.location().map_or(String::new(), |l| {
        format!(" at line {} column {}", l.line(), l.column())
    });
    format!("{}a value of the wrong type{location}", &message[..at])
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher as _, SaltString};

    /// An argon2id hash at the least costs a users file may use; verification reads the costs
    /// from the hash itself.
    fn argon2id(password: &str) -> String {
        let params = argon2::Params::new(19456, 2, 1, None).expect("params");
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::encode_b64(b"tokenwarden-test").expect("salt");
        argon
            .hash_password(password.as_bytes(), &salt)
            .expect("hash")
            .to_string()
    }

    fn load(text: &str) -> Result<Users, UsersError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("users.yaml");
        std::fs::write(&path, text).expect("write");
        Users::load(&path)
    }

    fn users() -> Users {
        let text = format!(
            "- {{username: alice, passwordHash: '{}', email: alice@example.com}}\n\
             - {{username: bob, passwordHash: '{}', subject: user-0002}}\n",
            argon2id("alice-password"),
            bcrypt::hash("bob-password", MIN_BCRYPT_COST).expect("bcrypt"),
        );
        load(&text).expect("valid users")
    }

    /// `hash` with its costs changed: enough for loading, which reads the costs only.
    fn with_costs(hash: &str, from: &str, to: &str) -> String {
        assert!(hash.contains(from), "{hash}");
        hash.replacen(from, to, 1)
    }

    #[test]
    fn a_bcrypt_password_longer_than_72_bytes_is_refused_even_if_its_first_72_bytes_match() {
        let password = "p".repeat(BCRYPT_MAX_PASSWORD_BYTES);
        let text = format!(
            "- {{username: carol, passwordHash: '{}'}}\n",
            bcrypt::hash(&password, MIN_BCRYPT_COST).expect("bcrypt"),
        );
        let users = load(&text).expect("valid users");
        assert!(
            users.verify("carol", &password).is_some(),
            "72 bytes sign in"
        );
        assert!(users.verify("carol", &format!("{password}x")).is_none());
        assert!(users.verify("carol", &format!("{password}p")).is_none());
        // An unknown user with a long password is checked against the same decoy as ever.
        assert!(users.verify("dave", &format!("{password}x")).is_none());
    }

    #[test]
    fn hashes_under_the_minimum_cost_are_refused_naming_the_file_the_user_and_the_parameter() {
        let argon = argon2id("x");
        let bcrypt = bcrypt::hash("x", MIN_BCRYPT_COST).expect("bcrypt");
        let weak = [
            (
                with_costs(&bcrypt, "$10$", "$09$"),
                "bcrypt cost 9 is below the minimum of 10",
            ),
            (with_costs(&bcrypt, "$10$", "$04$"), "bcrypt cost 4"),
            (
                with_costs(&argon, "m=19456,t=2", "m=19455,t=2"),
                "argon2id memory cost m=19455 KiB is below 19456 KiB",
            ),
            (
                with_costs(&argon, "m=19456,t=2", "m=19456,t=1"),
                "m=19456 KiB is below 47104 KiB, the least OWASP's Password Storage Cheat Sheet \
                 allows at t=1",
            ),
            (
                with_costs(&argon, "m=19456,t=2", "m=1024,t=9"),
                "m=1024 KiB is below 7168 KiB",
            ),
            (
                with_costs(&argon, "$dG9rZW5", "$!!!"),
                "not a well-formed argon2id hash",
            ),
            (
                "$2b$10$tooshort".to_owned(),
                "not a well-formed bcrypt hash",
            ),
        ];
        for (hash, expected) in weak {
            let text = format!(
                "- {{username: alice, passwordHash: '{argon}'}}\n\
                 - {{username: bob, passwordHash: '{hash}'}}\n"
            );
            let error = load(&text).expect_err(&hash).to_string();
            assert!(error.contains("users.yaml: user 2 (bob): "), "{error}");
            assert!(error.contains(expected), "{hash}: {error}");
            assert!(!error.contains(&hash), "the hash is not quoted: {error}");
        }
        // OWASP's equivalent configurations, and anything costlier, are accepted.
        for costs in [
            "m=47104,t=1",
            "m=19456,t=2",
            "m=12288,t=3",
            "m=9216,t=4",
            "m=7168,t=5",
        ] {
            let hash = with_costs(&argon, "m=19456,t=2", costs);
            let text = format!("- {{username: a, passwordHash: '{hash}'}}\n");
            assert!(load(&text).is_ok(), "{costs}");
        }
        let text = format!(
            "- {{username: a, passwordHash: '{}'}}\n",
            with_costs(&bcrypt, "$10$", "$12$")
        );
        assert!(load(&text).is_ok(), "bcrypt cost 12");
    }

    #[test]
    fn an_argon2id_user_signs_in_with_the_right_password_only() {
        let users = users();
        let alice = users.verify("alice", "alice-password").expect("alice");
        assert_eq!(alice.subject(), "alice");
        assert!(users.verify("alice", "alice-passwore").is_none());
        assert!(users.verify("alice", "").is_none());
    }

    #[test]
    fn a_bcrypt_user_signs_in_with_the_right_password_and_their_subject() {
        let users = users();
        let bob = users.verify("bob", "bob-password").expect("bob");
        assert_eq!(bob.subject(), "user-0002");
        assert!(users.verify("bob", "alice-password").is_none());
    }

    #[test]
    fn an_unknown_user_is_refused_and_usernames_are_exact() {
        let users = users();
        assert!(users.verify("carol", "alice-password").is_none());
        assert!(users.verify("Alice", "alice-password").is_none());
        assert!(users.verify("alice ", "alice-password").is_none());
    }

    #[test]
    fn an_unknown_user_is_checked_against_a_real_hash_of_the_file() {
        let users = users();
        let alice = users.by_name.get("alice").expect("alice");
        let bob = users.by_name.get("bob").expect("bob");
        assert_eq!(users.hash_checked_for(None), alice.password_hash);
        assert_eq!(users.hash_checked_for(Some(bob)), bob.password_hash);
        let empty = load("[]\n").expect("an empty list");
        assert_eq!(empty.hash_checked_for(None), DECOY_HASH);
        // Even with a known user's password, an unknown username never signs in.
        assert!(users.verify("nobody", "alice-password").is_none());
    }

    #[test]
    fn the_decoy_of_an_empty_list_is_a_real_argon2id_hash() {
        let parsed = argon2::PasswordHash::new(DECOY_HASH).expect("parses");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(parsed.hash.is_some());
    }

    #[test]
    fn a_hash_in_the_wrong_place_is_not_quoted_in_the_error() {
        let hash = argon2id("x");
        for text in [
            format!("- '{hash}'\n"),
            format!("- {{username: a, passwordHash: ['{hash}']}}\n"),
            format!("- {{username: ['{hash}'], passwordHash: '{hash}'}}\n"),
        ] {
            let error = load(&text).expect_err("invalid").to_string();
            assert!(!error.contains(&hash), "{error}");
            assert!(error.contains("wrong type at line 1"), "{error}");
        }
    }

    #[test]
    fn debug_never_shows_a_password_hash() {
        let users = users();
        let text = format!("{users:?}");
        assert!(text.contains("alice") && !text.contains("$argon2id$") && !text.contains("$2"));
    }

    #[test]
    fn a_user_whose_subject_looks_like_a_clients_is_refused_by_name() {
        let hash = argon2id("x");
        for (text, expected) in [
            (
                format!(
                    "- {{username: alice, passwordHash: '{hash}'}}\n- {{username: bob, passwordHash: '{hash}', subject: worker@clients}}\n"
                ),
                "user 2 (bob): subject \"worker@clients\" ends with \"@clients\"",
            ),
            (
                format!("- {{username: worker@clients, passwordHash: '{hash}'}}\n"),
                "user 1 (worker@clients): subject \"worker@clients\"",
            ),
        ] {
            let error = load(&text).expect_err(&text).to_string();
            assert!(error.contains("users.yaml"), "{error}");
            assert!(error.contains(expected), "{error}");
        }
        let elsewhere =
            format!("- {{username: a, passwordHash: '{hash}', subject: a@clients.example}}\n");
        assert!(load(&elsewhere).is_ok(), "only the suffix is reserved");
    }

    #[test]
    fn bad_users_files_are_refused_with_the_file_and_the_user() {
        let hash = argon2id("x");
        let cases = [
            ("- {username: a, passwordHash: plaintext}\n", "user 1 (a)"),
            (
                "- {username: a, passwordHash: '$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA'}\n",
                "argon2id or bcrypt",
            ),
            (
                &*format!(
                    "- {{username: a, passwordHash: '{hash}'}}\n- {{username: a, passwordHash: '{hash}'}}\n"
                ),
                "user 2 (a): the username appears twice",
            ),
            (
                &*format!("- {{username: a, passwordHash: '{hash}', role: admin}}\n"),
                "unknown field",
            ),
            ("- {username: a}\n", "passwordHash"),
            ("username: a\n", "users.yaml"),
        ];
        for (text, expected) in cases {
            let error = load(text).expect_err(text).to_string();
            assert!(error.contains("users.yaml"), "{error}");
            assert!(error.contains(expected), "{text}: {error}");
        }
        let missing = Users::load(Path::new("/nonexistent/users.yaml")).expect_err("missing");
        assert!(matches!(missing, UsersError::Read { .. }), "{missing}");
    }

    #[test]
    fn an_empty_file_list_means_no_users() {
        assert!(load("[]\n").expect("empty list").is_empty());
    }
}
