//! Reaching PostgreSQL: the DSN as a secret, its TLS settings, and the connection pool.
//!
//! Owns: [`DatabaseUrl`] (the DSN, whose `Debug` and errors never show it, since it usually
//! holds a password), reading `sslmode` and `sslrootcert` out of it, the rustls client
//! configuration, and building the deadpool pool. Must not run SQL: that is `schema` and the
//! store.
//!
//! TLS decisions (docs/postgresql.md): without `sslmode`, and with `require`, `verify-ca` or
//! `verify-full`, TLS or no connection; `sslmode=disable` is plain TCP; `prefer` and `allow`
//! (libpq's default, not ours) use TLS when the server offers it. Whenever TLS is used the
//! server's certificate chain *and* host name are verified (libpq's `verify-full`), against
//! `sslrootcert=FILE` (PEM) when given, else the system's trusted roots. So unless plain TCP is
//! asked for, the password goes only to a server we verified.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::pki_types::pem::PemObject as _;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::SslMode;
use zeroize::Zeroizing;

use crate::store::StoreError;

/// Connections the pool of one issuer keeps open at most.
pub(crate) const POOL_SIZE: usize = 16;
/// How long a request waits for a free connection, or for a new one to be made, before it is
/// answered 503; also the connect timeout when the DSN sets none.
pub(crate) const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// Unacknowledged data older than this marks a connection dead (when the DSN sets none), so a
/// server that vanished without closing its sockets does not hang requests for minutes.
pub(super) const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// Server-side limits every session starts with, so no session holds rows, and no request
/// waits, for long: a request gives up on a row lock after 5 s and on a statement after 10 s
/// (503, try again), and the server ends a session left inside a transaction for 15 s, as one
/// is whose issuer lost the network between `BEGIN` and `COMMIT` (without this, its row locks
/// stay until TCP keep-alive notices, about two hours by default, and every refresh of that
/// family waits on them). Options in the DSN come after these and win over them.
pub(super) const SESSION_LIMITS: &str = "-c lock_timeout=5s -c statement_timeout=10s \
                                  -c idle_in_transaction_session_timeout=15s";

/// A PostgreSQL connection string (URL `postgres://...` or `key=value` form), kept as a
/// secret: its `Debug` shows only that it is set, and it is wiped from memory when dropped.
#[derive(Clone)]
pub struct DatabaseUrl(Zeroizing<String>);

impl DatabaseUrl {
    pub fn new(dsn: impl Into<String>) -> Self {
        Self(Zeroizing::new(dsn.into()))
    }

    /// Reads the DSN from `path` (a mounted Kubernetes Secret), without surrounding space.
    pub(crate) fn from_file(path: &Path) -> std::io::Result<Self> {
        let text = Zeroizing::new(std::fs::read_to_string(path)?);
        Ok(Self::new(text.trim()))
    }

    /// The DSN itself, for the one place that connects.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseUrl(<redacted>)")
    }
}

impl FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    // Infallible on purpose: a parse error from the command-line parser would print the value.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

/// How to use TLS, as read from the DSN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

/// Builds the pool for `url`. Connects lazily: nothing is dialled until the first `get`.
pub(super) fn pool(url: &DatabaseUrl) -> Result<Pool, StoreError> {
    let (dsn, tls) = split_tls_settings(url.expose())?;
    let mut config = tokio_postgres::Config::from_str(&dsn).map_err(invalid_url)?;
    config.ssl_mode(tls.mode);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(POOL_TIMEOUT);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("tokenwarden");
    }
    let options = match config.get_options() {
        Some(own) => format!("{SESSION_LIMITS} {own}"),
        None => SESSION_LIMITS.to_owned(),
    };
    config.options(&options);
    let manager_config = ManagerConfig {
        // A connection the server closed (restart, failover) reports `is_closed` and is
        // dropped at its next checkout, so no dead connection is handed out twice.
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls.mode {
        SslMode::Disable => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        _ => Manager::from_config(
            config,
            tokio_postgres_rustls::MakeRustlsConnect::new(client_config(&tls)?),
            manager_config,
        ),
    };
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::InvalidDatabaseUrl(e.to_string()))
}

/// A server that declines TLS where the URL asks for it: the likely cause is a URL without
/// `sslmode` for a server without TLS, which libpq would have used in plain TCP.
#[derive(Debug, thiserror::Error)]
#[error(
    "the server does not offer TLS, which the URL asks for (also without sslmode): turn TLS on \
     in the server, or add sslmode=disable to the URL for plain TCP on a trusted network"
)]
pub(super) struct TlsDeclined(#[source] Box<dyn std::error::Error + Send + Sync>);

/// `error`, explained by [`TlsDeclined`] when the server declined TLS.
pub(super) fn explain_declined_tls(error: StoreError) -> StoreError {
    match error {
        // tokio-postgres has no error kind to match; its text is the only sign.
        StoreError::Unavailable(source) if says_no_tls(&*source) => {
            StoreError::Unavailable(Box::new(TlsDeclined(source)))
        }
        other => other,
    }
}

fn says_no_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source())
        .any(|e| e.to_string().contains("does not support TLS"))
}

/// tokio-postgres names the option it refuses, and in a keyword string with an unquoted
/// space in the password that "option" is a piece of the password: its text is not repeated.
fn invalid_url(_: tokio_postgres::Error) -> StoreError {
    StoreError::InvalidDatabaseUrl(
        "tokio-postgres refused the connection string: an unknown option or a malformed value \
         (not repeated here: it may hold the password; quote values that contain spaces)"
            .into(),
    )
}

fn client_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.root_cert {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                StoreError::InvalidDatabaseUrl(format!("sslrootcert {}: {e}", path.display()))
            })?;
            let mut found = false;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|_| {
                    StoreError::InvalidDatabaseUrl(format!(
                        "sslrootcert {}: not a PEM certificate file",
                        path.display()
                    ))
                })?;
                roots.add(cert).map_err(|_| {
                    StoreError::InvalidDatabaseUrl(format!(
                        "sslrootcert {}: a certificate cannot be used as a root",
                        path.display()
                    ))
                })?;
                found = true;
            }
            if !found {
                return Err(StoreError::InvalidDatabaseUrl(format!(
                    "sslrootcert {}: no certificate in the file",
                    path.display()
                )));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::InvalidDatabaseUrl(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Takes `sslmode` and `sslrootcert` out of `dsn` (URL or `key=value` form): tokio-postgres
/// knows neither `verify-ca`/`verify-full` nor `sslrootcert`. Returns the rest of the DSN
/// unchanged and the settings.
pub(crate) fn split_tls_settings(
    dsn: &str,
) -> Result<(Zeroizing<String>, TlsSettings), StoreError> {
    let mut mode = None;
    let mut root_cert = None;
    let mut take = |key: &str, value: &str| -> Result<bool, StoreError> {
        match key {
            "sslmode" => {
                mode = Some(match value {
                    "disable" => SslMode::Disable,
                    "prefer" | "allow" => SslMode::Prefer,
                    "require" | "verify-ca" | "verify-full" => SslMode::Require,
                    _ => {
                        return Err(StoreError::InvalidDatabaseUrl(
                            "sslmode must be disable, allow, prefer, require, verify-ca or verify-full"
                                .into(),
                        ));
                    }
                });
                Ok(true)
            }
            "sslrootcert" => {
                root_cert = Some(PathBuf::from(value));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let is_url = dsn.starts_with("postgres://") || dsn.starts_with("postgresql://");
    if !is_url && dsn.contains("://") {
        return Err(StoreError::InvalidDatabaseUrl(
            "a URL must start with postgres:// or postgresql:// (or give libpq's key=value form)"
                .into(),
        ));
    }
    let rest = match dsn.split_once('?') {
        Some((base, query)) if is_url => {
            let mut kept = Vec::new();
            for pair in query.split('&') {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                if !take(key, &percent_decode(value)?)? {
                    kept.push(pair);
                }
            }
            match kept.is_empty() {
                true => Zeroizing::new(base.to_owned()),
                false => Zeroizing::new(format!("{base}?{}", kept.join("&"))),
            }
        }
        _ if is_url => Zeroizing::new(dsn.to_owned()),
        _ => {
            let mut kept = String::new();
            for (start, end, key, value) in keyword_pairs(dsn)? {
                if !take(&key, &value)? {
                    kept.push_str(&dsn[start..end]);
                    kept.push(' ');
                }
            }
            Zeroizing::new(kept)
        }
    };
    let settings = TlsSettings {
        // Not libpq's `prefer`: a server (or anyone in between) that declines TLS would be sent
        // the password over plain TCP, in clear text if it asks for it.
        mode: mode.unwrap_or(SslMode::Require),
        root_cert,
    };
    Ok((rest, settings))
}

/// `(start, end, key, value)` of each `key = value` of a keyword DSN; values may be quoted
/// with `'` and escape with `\`, as in libpq.
fn keyword_pairs(dsn: &str) -> Result<Vec<(usize, usize, String, String)>, StoreError> {
    let malformed =
        || StoreError::InvalidDatabaseUrl("malformed key=value connection string".into());
    let bytes = dsn.as_bytes();
    let mut pairs = Vec::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i >= bytes.len() {
            return Ok(pairs);
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = dsn[start..i].to_owned();
        skip_space(&mut i);
        if bytes.get(i) != Some(&b'=') {
            return Err(malformed());
        }
        i += 1;
        skip_space(&mut i);
        let mut value = String::new();
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(malformed()),
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < bytes.len() => {
                        value.push(char::from(bytes[i + 1]));
                        i += 2;
                    }
                    Some(_) => {
                        let c = dsn[i..].chars().next().ok_or_else(malformed)?;
                        value.push(c);
                        i += c.len_utf8();
                    }
                }
            }
        } else {
            let from = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            value.push_str(&dsn[from..i]);
        }
        pairs.push((start, i, key, value));
    }
}

fn percent_decode(text: &str) -> Result<String, StoreError> {
    let bytes: Vec<u8> =
        form_urlencoded::parse(format!("v={}", text.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default();
    String::from_utf8(bytes)
        .map_err(|_| StoreError::InvalidDatabaseUrl("a DSN parameter is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_form_loses_only_the_tls_parameters() {
        let (rest, tls) = split_tls_settings(
            "postgres://u:p%40ss@db:5432/tw?sslmode=verify-full&application_name=x&sslrootcert=%2Fca.pem",
        )
        .unwrap();
        assert_eq!(&*rest, "postgres://u:p%40ss@db:5432/tw?application_name=x");
        assert_eq!(tls.mode, SslMode::Require);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn keyword_form_keeps_quoted_values_and_defaults_to_verified_tls() {
        let (rest, tls) =
            split_tls_settings("host=db password='a b\\'c' sslrootcert = /ca.pem dbname=tw")
                .unwrap();
        assert_eq!(&*rest, "host=db password='a b\\'c' dbname=tw ");
        assert_eq!(tls.mode, SslMode::Require);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/ca.pem")));
        let (_, tls) = split_tls_settings("postgres://u:p@db/tw?sslmode=prefer").unwrap();
        assert_eq!(tls.mode, SslMode::Prefer, "only when asked for");
    }

    #[test]
    fn a_url_of_another_database_is_refused_by_its_scheme() {
        let error = split_tls_settings("mysql://u:hunter2@db/tw").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("must start with postgres://"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn a_password_that_breaks_the_keyword_form_is_not_repeated() {
        let Err(error) = pool(&DatabaseUrl::new(
            "host=db user=u password=hunter2 secret=rest dbname=tw",
        )) else {
            panic!("an unknown option is refused");
        };
        let error = error.to_string();
        assert!(error.contains("refused the connection string"), "{error}");
        assert!(
            !error.contains("secret") && !error.contains("hunter2"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_sslmode_is_refused_without_echoing_the_dsn() {
        let error = split_tls_settings("postgres://u:hunter2@db/tw?sslmode=bogus").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn neither_debug_nor_a_bad_option_shows_the_password() {
        let url = DatabaseUrl::new("postgres://u:hunter2@db/tw?nonsense=1");
        assert!(!format!("{url:?}").contains("hunter2"));
        let error = pool(&url).unwrap_err();
        assert!(
            !format!("{error} {error:?}").contains("hunter2"),
            "{error:?}"
        );
    }
}
