//! Refresh with rotation on the embedded store: latency of one refresh alone, and throughput
//! with many refreshes in flight (as under load, where group commit shares each fsync).
//!
//! `cargo bench --bench store`. The database goes to `TOKENWARDEN_BENCH_DIR` if set, else the
//! system temporary directory; it must be on the disk you care about (not tmpfs) for the fsync
//! cost to be real.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::time::{Duration, Instant};
use tokenwarden::store::{
    EmbeddedStore, FamilyId, NewFamily, OpaqueToken, RefreshRequest, RefreshRules, Store, TokenHash,
};

const RULES: RefreshRules = RefreshRules {
    rotating: true,
    absolute_lifetime_secs: 2_592_000,
    idle_lifetime_secs: 1_296_000,
    reuse_interval_secs: 0,
};

/// A fresh refresh token's key, as the issuer makes it.
fn key(family: FamilyId) -> TokenHash {
    OpaqueToken::generate_refresh(family)
        .expect("entropy")
        .refresh_key()
}

fn data_dir() -> tempfile::TempDir {
    match std::env::var_os("TOKENWARDEN_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("temporary directory")
}

async fn start(store: &EmbeddedStore) -> (FamilyId, TokenHash) {
    let id = FamilyId::generate().expect("entropy");
    let first = key(id);
    let family = NewFamily {
        id,
        client_id: "bench".into(),
        audience: "https://api.example.com".into(),
        subject: "alice".into(),
        scope: "offline_access".into(),
    };
    store
        .create_family(family, first, 0, RULES)
        .await
        .expect("create family");
    (id, first)
}

/// `count` rotations along one family's chain; returns its newest token.
async fn rotate(
    store: &EmbeddedStore,
    (family, mut token): (FamilyId, TokenHash),
    count: u64,
) -> TokenHash {
    for i in 0..count {
        let new = key(family);
        let request = RefreshRequest {
            presented: token,
            new,
            client_id: "bench".into(),
            audience: "https://api.example.com".into(),
        };
        let outcome = store.refresh(request, 1 + i, RULES).await.expect("refresh");
        assert!(outcome.granted().is_some(), "{outcome:?}");
        token = new;
    }
    token
}

fn refresh_with_rotation(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = data_dir();
    let store = EmbeddedStore::open(dir.path()).expect("open");

    let mut group = c.benchmark_group("refresh_with_rotation");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(10));
    group.sample_size(20);

    group.bench_function("one_in_flight", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let token = start(&store).await;
                let began = Instant::now();
                rotate(&store, token, iters).await;
                began.elapsed()
            })
        })
    });

    for in_flight in [8u64, 64, 256] {
        group.bench_function(format!("{in_flight}_in_flight"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let per_task = iters.div_ceil(in_flight);
                    let mut chains = Vec::new();
                    for _ in 0..in_flight {
                        chains.push(start(&store).await);
                    }
                    let began = Instant::now();
                    let tasks: Vec<_> = chains
                        .into_iter()
                        .map(|token| {
                            let store = store.clone();
                            tokio::spawn(async move { rotate(&store, token, per_task).await })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task");
                    }
                    // Scale to the iterations asked for (the last round may overshoot).
                    began
                        .elapsed()
                        .mul_f64(iters as f64 / (per_task * in_flight) as f64)
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, refresh_with_rotation);
criterion_main!(benches);
