//! Seeds refresh-token families for `scripts/bench-issuer.sh` and
//! `scripts/bench-refresh-stores.sh`: into an issuer's data directory before the issuer starts
//! (the embedded store is one process's at a time), or into a PostgreSQL database when STORE
//! is a `postgres://` URL.
//!
//!   cargo run --release --example bench-seed -- STORE OUT_DIR FILES PER_FILE CLIENT AUDIENCE
//!
//! Writes FILES files `OUT_DIR/refresh-<n>.txt`, each with PER_FILE refresh tokens, one a line,
//! of fresh families of CLIENT for AUDIENCE (subject `alice`, scope `read`), stored under the
//! rules of a default rotating policy. One load run uses one file, so runs share no token.

use std::io::Write as _;
use tokenwarden::store::{
    AnyStore, DatabaseUrl, EmbeddedStore, FamilyId, NewFamily, OpaqueToken, PostgresStore,
    RefreshRules, Store,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [store, out_dir, files, per_file, client, audience] = &args[..] else {
        return Err(
            "usage: bench-seed DATA_DIR|postgres://... OUT_DIR FILES PER_FILE CLIENT AUDIENCE"
                .into(),
        );
    };
    let (files, per_file): (usize, usize) = (files.parse()?, per_file.parse()?);
    let store = if store.starts_with("postgres://") || store.starts_with("postgresql://") {
        AnyStore::Postgres(PostgresStore::connect(&DatabaseUrl::new(store.as_str())).await?)
    } else {
        AnyStore::Embedded(EmbeddedStore::open(std::path::Path::new(store))?)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let rules = RefreshRules {
        rotating: true,
        absolute_lifetime_secs: 2_592_000,
        idle_lifetime_secs: 1_296_000,
        reuse_interval_secs: 0,
    };
    for n in 0..files {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..per_file {
            let store = store.clone();
            let id = FamilyId::generate()?;
            let family = NewFamily {
                id,
                client_id: client.clone(),
                audience: audience.clone(),
                subject: "alice".into(),
                scope: "read".into(),
            };
            tasks.spawn(async move {
                let token = OpaqueToken::generate_refresh(id)?;
                store
                    .create_family(family, token.refresh_key(), now, rules)
                    .await?;
                Ok::<_, tokenwarden::store::StoreError>(token.expose().to_owned())
            });
        }
        let mut out = std::fs::File::create(format!("{out_dir}/refresh-{n}.txt"))?;
        while let Some(token) = tasks.join_next().await {
            writeln!(out, "{}", token??)?;
        }
    }
    Ok(())
}
