//! The PostgreSQL store: the conformance suite, each case in a database of its own on the
//! test server (`support::postgres`), then what only PostgreSQL has: migrations that are
//! idempotent and safe when two replicas start at once, TLS, and a DSN that never shows its
//! password; and the issuer's tables holding codes and refresh tokens only as hashes.

use crate::fixtures;
use crate::store_suite;
use crate::support;

use support::postgres::postgres;
use tokenwarden::store::{DatabaseUrl, PostgresStore, Store, StoreError};

use store_suite::{Harness, ROTATING, refresh, start_family};

/// A fresh database; every `open` is a new pool on it, as a restarted replica would make.
struct Postgres {
    url: DatabaseUrl,
}

impl Postgres {
    async fn new() -> Self {
        let server = postgres();
        let db = server.new_database().await;
        Self {
            url: DatabaseUrl::new(server.url(&db)),
        }
    }
}

impl Harness for Postgres {
    type S = PostgresStore;
    async fn open(&self) -> PostgresStore {
        PostgresStore::connect(&self.url)
            .await
            .expect("connect to the test database")
    }
}

store_suite!(Postgres::new().await);

/// A new database on the test server (its name) and a store connected to it.
async fn store_on_a_new_database() -> (String, PostgresStore) {
    let server = postgres();
    let db = server.new_database().await;
    let store = PostgresStore::connect(&DatabaseUrl::new(server.url(&db)))
        .await
        .expect("connect to the test database");
    (db, store)
}

async fn applied_versions(db: &str) -> Vec<i32> {
    postgres()
        .client(db)
        .await
        .query(
            "SELECT version FROM tokenwarden_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("read the migrations table")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn all_versions() -> Vec<i32> {
    tokenwarden::store::postgres::MIGRATIONS
        .iter()
        .map(|(v, _)| *v)
        .collect()
}

#[tokio::test]
async fn migrations_run_once_and_a_second_start_changes_nothing() {
    let db = postgres().new_database().await;
    let url = DatabaseUrl::new(postgres().url(&db));
    let store = PostgresStore::connect(&url).await.unwrap();
    let (_, first) = start_family(&store, 0, ROTATING).await;
    drop(store);
    let store = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(applied_versions(&db).await, all_versions());
    assert!(store.lookup_refresh_token(first).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_at_the_same_moment_migrate_once_and_both_work() {
    let db = postgres().new_database().await;
    let url = DatabaseUrl::new(postgres().url(&db));
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap().expect("every replica starts"));
    }
    assert_eq!(applied_versions(&db).await, all_versions());
    // What one replica stores, another sees and rotates.
    let (_, first) = start_family(&stores[0], 0, ROTATING).await;
    let (outcome, _) = refresh(&stores[3], first, 1, ROTATING).await;
    assert!(outcome.granted().is_some(), "{outcome:?}");
}

#[tokio::test]
async fn a_database_with_a_newer_schema_is_refused() {
    let db = postgres().new_database().await;
    let url = DatabaseUrl::new(postgres().url(&db));
    drop(PostgresStore::connect(&url).await.unwrap());
    postgres()
        .client(&db)
        .await
        .execute(
            "INSERT INTO tokenwarden_migrations (version) VALUES (9999)",
            &[],
        )
        .await
        .unwrap();
    match PostgresStore::connect(&url).await {
        Err(StoreError::SchemaVersion { found: 9999, .. }) => {}
        other => panic!("expected a schema version error, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_with_the_servers_ca_works_and_an_unknown_ca_is_refused() {
    let server = postgres();
    let db = server.new_database().await;
    let store = PostgresStore::connect(&DatabaseUrl::new(server.tls_url(&db)))
        .await
        .expect("connect over TLS, verifying the server");
    start_family(&store, 0, ROTATING).await;

    // The system's roots do not know the test CA: the certificate check must fail.
    let unverified = format!(
        "postgres://tokenwarden:{}@localhost:{}/{db}?sslmode=require",
        server.password(),
        server.port()
    );
    let error = PostgresStore::connect(&DatabaseUrl::new(unverified))
        .await
        .expect_err("a server certificate from an unknown CA is refused");
    assert!(error.is_unavailable(), "{error:?}");
    // Refused for its certificate, not for anything else that makes a store unavailable.
    let mut chain = format!("{error:?}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        chain.push_str(&format!(" {cause:?}"));
        source = cause.source();
    }
    assert!(chain.contains("UnknownIssuer"), "{chain}");
}

#[tokio::test]
async fn errors_and_debug_output_never_show_the_password() {
    let server = postgres();
    let wrong_port = format!(
        "postgres://tokenwarden:{}@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2",
        server.password()
    );
    let wrong_password = format!(
        "postgres://tokenwarden:not-{}@127.0.0.1:{}/postgres?sslmode=disable",
        server.password(),
        server.port()
    );
    for dsn in [wrong_port, wrong_password] {
        let url = DatabaseUrl::new(dsn);
        let error = PostgresStore::connect(&url).await.unwrap_err();
        let mut shown = format!("{url:?} {error} {error:?}");
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            shown.push_str(&format!(" {cause} {cause:?}"));
            source = cause.source();
        }
        assert!(!shown.contains(server.password()), "{shown}");
        assert!(error.is_unavailable(), "{shown}");
    }
}

/// How many rows `table` has, and whether it is unlogged (no WAL flush per write).
async fn rows_and_unlogged(db: &str, table: &str) -> (i64, bool) {
    let client = postgres().client(db).await;
    let rows: i64 = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count the rows")
        .get(0);
    let persistence: i8 = client
        .query_one(
            "SELECT relpersistence FROM pg_class WHERE relname = $1",
            &[&table],
        )
        .await
        .expect("read the table's persistence")
        .get(0);
    (rows, persistence as u8 == b'u')
}

#[tokio::test]
async fn sign_ins_are_an_unlogged_table_whose_expired_rows_clean_up_deletes() {
    let (db, store) = store_on_a_new_database().await;
    store_suite::stale_and_live_sign_ins(&store).await;
    let report = store.purge_expired(150, 100).await.unwrap();
    assert_eq!(report.sign_ins, 1);
    let (rows, unlogged) = rows_and_unlogged(&db, "sign_ins").await;
    assert_eq!(rows, 1, "only the live sign-in is left");
    assert!(unlogged, "unlogged: a login page costs no WAL flush");
}

#[tokio::test]
async fn failed_sign_ins_are_an_unlogged_table_whose_stale_rows_clean_up_deletes() {
    let (db, store) = store_on_a_new_database().await;
    let limits = store_suite::LIMITS;
    let (stale, recent) = (store_suite::lockout_key(), store_suite::lockout_key());
    store.count_failure(stale, limits, 1000).await.unwrap();
    store.count_failure(recent, limits, 1001).await.unwrap();
    let forgotten = 1000 + limits.forget_after_secs;
    let report = store.purge_expired(forgotten, 100).await.unwrap();
    assert_eq!(report.lockout_keys, 1);
    let (rows, unlogged) = rows_and_unlogged(&db, "sign_in_failures").await;
    assert_eq!(rows, 1, "only the recent failure is left");
    assert!(unlogged, "unlogged: a failed sign-in costs no WAL flush");
}

/// A primary demoted in a failover still answers, but refuses writes (SQLSTATE 25006): that is
/// the store being unavailable (503 `temporarily_unavailable`), not a server error. Here the
/// database turns read-only for new sessions, as a standby's are, and the pool's sessions are
/// ended, as a failover ends them.
#[tokio::test]
async fn a_write_refused_by_a_read_only_server_is_unavailable() {
    let (db, store) = store_on_a_new_database().await;
    store
        .put_sign_in(store_suite::secret(), vec![1], None, 100, 0)
        .await
        .expect("a write while the database is writable");
    postgres().make_read_only(&db).await;
    // The first attempts may meet the ended sessions (unavailable too); then a new session
    // meets the read-only server.
    for _ in 0..10 {
        let error = store
            .put_sign_in(store_suite::secret(), vec![1], None, 100, 0)
            .await
            .expect_err("a write to a read-only database");
        let StoreError::Unavailable(source) = &error else {
            panic!("not unavailable: {error:?}");
        };
        let code = source
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::code);
        if code == Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION) {
            return;
        }
    }
    panic!("no write reached the read-only server");
}

/// Without `sslmode`, a server that declines TLS (or anyone in between who says so for it) is
/// never sent the password: the connection ends after the TLS request. Here a listener plays
/// that server: it answers `N` to the SSLRequest and records whatever the client sends next.
#[tokio::test]
async fn without_sslmode_a_server_declining_tls_gets_no_password() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut ssl_request = [0u8; 8];
        socket
            .read_exact(&mut ssl_request)
            .await
            .expect("SSLRequest");
        socket.write_all(b"N").await.expect("decline TLS");
        let mut after = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            socket.read_to_end(&mut after),
        )
        .await;
        (ssl_request, after)
    });
    let url = DatabaseUrl::new(format!(
        "postgres://tw:CLEARTEXT-PASSWORD@127.0.0.1:{port}/tw"
    ));
    let error = match PostgresStore::connect(&url).await {
        Ok(_) => panic!("connected to a server without TLS"),
        Err(error) => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        }
    };
    let (ssl_request, after) = server.await.expect("the fake server");
    assert_eq!(
        ssl_request,
        [0, 0, 0, 8, 4, 210, 22, 47],
        "an SSLRequest first"
    );
    assert!(after.is_empty(), "sent after the refusal: {after:?}");
    assert!(error.contains("sslmode"), "{error}");
    assert!(!error.contains("CLEARTEXT-PASSWORD"), "{error}");
}

/// A refresh whose family row another session holds locked (an issuer that lost the network
/// between `BEGIN` and `COMMIT`, until the server ends that session) gives up after the lock
/// timeout and is unavailable (503, try again), instead of waiting with the request.
#[tokio::test]
async fn a_refresh_waiting_on_a_locked_family_gives_up_as_unavailable() {
    let (db, store) = store_on_a_new_database().await;
    let (family, first) = start_family(&store, 0, ROTATING).await;
    let mut holder = postgres().client(&db).await;
    let held = holder.transaction().await.expect("begin");
    held.batch_execute("SELECT * FROM families FOR UPDATE")
        .await
        .expect("lock the families");

    let waited = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        store.refresh(
            store_suite::request(first, store_suite::refresh_key(family.id)),
            1,
            ROTATING,
        ),
    )
    .await
    .expect("the refresh still waits on the lock after 30 s");
    let error = waited.expect_err("a refresh of a locked family");
    let StoreError::Unavailable(source) = &error else {
        panic!("not unavailable: {error:?}");
    };
    let code = source
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code);
    assert_eq!(
        code,
        Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE),
        "{error:?}"
    );

    held.rollback().await.expect("release the lock");
    let (outcome, _) = refresh(&store, first, 2, ROTATING).await;
    assert!(
        matches!(outcome, tokenwarden::store::RefreshOutcome::Rotated { .. }),
        "{outcome:?}"
    );
}

/// Every row of every table of the database `db` (schema `public`), as (table, the row's text
/// form): every column, bytea in hex.
async fn every_row(db: &str) -> Vec<(String, String)> {
    let client = postgres().client(db).await;
    let tables = client
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
            &[],
        )
        .await
        .expect("list the tables");
    let mut rows = Vec::new();
    for table in tables {
        let table: String = table.get(0);
        let sql = format!(r#"SELECT t::text FROM "{table}" t"#);
        for row in client.query(&sql, &[]).await.expect("read a table") {
            rows.push((table.clone(), row.get::<_, String>(0)));
        }
    }
    rows
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fails if a row of `db` holds `token` or its secret bytes (as text or as bytea); and, so
/// that the search is known to look where the store writes, if none holds `stored`, the key
/// the store keeps it under.
async fn assert_only_hashed(db: &str, what: &str, token: &str, stored: &[u8]) {
    let rows = every_row(db).await;
    for (table, row) in &rows {
        assert!(!row.contains(token), "{what} is in {table} in the clear");
        for form in fixtures::binary::plaintext_forms(token) {
            assert!(
                !row.contains(&hex(&form)),
                "{what} is in {table} in the clear (bytea)"
            );
        }
    }
    let tables: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    assert!(
        rows.iter().any(|(_, row)| row.contains(&hex(stored))),
        "the key of {what} is in no row (tables with rows: {tables:?})"
    );
}

/// The issuer (the real binary) on PostgreSQL keeps the authorization codes and refresh
/// tokens it hands out only as hashes: neither the value sent nor its secret bytes are in
/// any column of any table.
#[tokio::test]
async fn the_issuer_keeps_codes_and_refresh_tokens_in_postgresql_only_as_hashes() {
    use fixtures::binary::{
        alice_users_flags, folder_with_policies, free_port, sign_in_for_a_code,
        start_standalone_with,
    };
    use tokenwarden::store::OpaqueToken;
    let server = postgres();
    let db = server.new_database().await;
    let url = server.url(&db);
    let dir = folder_with_policies(fixtures::STANDARD);
    let flags = alice_users_flags(dir.path());
    let env = [("TOKENWARDEN_DATABASE_URL", url.as_str())];
    let issuer = start_standalone_with(dir.path(), free_port(), &flags, &env).await;

    let code = sign_in_for_a_code(&issuer.base).await;
    let code_key = OpaqueToken::from_presented(code.as_str()).hash();
    assert_only_hashed(&db, "the authorization code", &code, &code_key.0).await;
    let (first, second) = fixtures::binary::exchange_and_refresh(&issuer.base, &code).await;
    for (what, token) in [
        ("the first refresh token", &first),
        ("its successor", &second),
    ] {
        let key = OpaqueToken::from_presented(token.as_str()).refresh_key();
        assert_only_hashed(&db, what, token, &key.0).await;
    }
    // Exchanged, the code is still nowhere in the clear.
    for (table, row) in every_row(&db).await {
        assert!(!row.contains(&code), "the code is in {table} in the clear");
        for form in fixtures::binary::plaintext_forms(&code) {
            let form = hex(&form);
            assert!(!row.contains(&form), "the code is in {table} (bytea)");
        }
    }
}

/// A value of a type this build does not expect (a column changed behind its back) is a
/// database error (500, logged as an error), not the store being away (503, try again): no
/// retry would mend it.
#[tokio::test]
async fn a_column_of_another_type_is_an_error_not_an_outage() {
    let (db, store) = store_on_a_new_database().await;
    let (_, first) = start_family(&store, 0, ROTATING).await;
    postgres()
        .client(&db)
        .await
        .batch_execute(
            "ALTER TABLE families ALTER COLUMN client_id TYPE bytea USING client_id::bytea",
        )
        .await
        .expect("change a column's type");
    // A new pool, so no statement prepared before the change is in the way.
    let store = PostgresStore::connect(&DatabaseUrl::new(postgres().url(&db)))
        .await
        .expect("connect again");
    let error = store
        .lookup_refresh_token(first)
        .await
        .expect_err("a family whose client_id is bytea");
    assert!(
        matches!(error, StoreError::Database(_)),
        "not a database error: {error:?}"
    );
    assert!(
        format!("{error:?}").contains("FromSql"),
        "not the column's type: {error:?}"
    );
}
