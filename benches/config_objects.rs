//! The configuration at 10,000 APIs and 10,000 clients, each client with its own secret hash
//! (incompressible, as in a real cluster): what the controller pays to build and encode it on
//! every reconcile, and the issuer to read it back, whole and by part.
//!
//! `cargo bench --bench config_objects`. The previous format (JSON) is measured beside it.

use criterion::{Criterion, criterion_group, criterion_main};
use std::io::Read as _;
use tokenwarden::config::{self, IssuerConfig};
use tokenwarden::config_objects;

#[path = "support/at_scale.rs"]
mod at_scale;

fn bench(c: &mut Criterion) {
    let declared = at_scale::declared(10_000);
    let config = config::build(&declared).config;
    let encoded = config_objects::encode(&config).expect("encode");
    let json = serde_json::to_vec(&config).expect("json");
    println!(
        "{} KiB uncompressed ({} KiB as JSON), compressed {} KiB, {} shard(s)",
        encoded.uncompressed_bytes / 1024,
        json.len() / 1024,
        encoded.compressed_bytes / 1024,
        encoded.shards.len()
    );
    let manifest = encoded.manifest(1);
    let shards: Vec<_> = (1..=encoded.shards.len())
        .map(|i| config_objects::shard_object("ns", &encoded, i))
        .collect();
    let compressed: Vec<u8> = encoded.shards.concat();
    let mut uncompressed = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .read_to_end(&mut uncompressed)
        .expect("gunzip");

    let mut group = c.benchmark_group("config_objects_10000");
    group.sample_size(20);
    group.bench_function("config::build (controller, every reconcile)", |b| {
        b.iter(|| config::build(&declared))
    });
    group.bench_function("encode (controller)", |b| {
        b.iter(|| config_objects::encode(&config).expect("encode"))
    });
    group.bench_function("assemble (issuer reload, whole)", |b| {
        b.iter(|| config_objects::assemble(&manifest, &shards).expect("assemble"))
    });
    group.bench_function("part: gunzip", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(uncompressed.len());
            flate2::read::GzDecoder::new(compressed.as_slice())
                .read_to_end(&mut out)
                .expect("gunzip");
            out
        })
    });
    group.bench_function("part: SHA-256", |b| {
        use sha2::Digest as _;
        b.iter(|| sha2::Sha256::digest(&uncompressed))
    });
    group.bench_function("part: postcard decode", |b| {
        b.iter(|| postcard::from_bytes::<IssuerConfig>(&uncompressed).expect("decode"))
    });
    group.bench_function("part: postcard encode", |b| {
        b.iter(|| postcard::to_stdvec(&config).expect("encode"))
    });
    // The previous format, for comparison.
    group.bench_function("JSON parse", |b| {
        b.iter(|| serde_json::from_slice::<IssuerConfig>(&json).expect("parse"))
    });
    group.bench_function("JSON encode", |b| {
        b.iter(|| serde_json::to_vec(&config).expect("json"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
