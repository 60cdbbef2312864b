//! Minting an access token per algorithm, next to the raw signature of the same key over an
//! input of the same length, so the cost the minter adds (claims JSON, base64url, jti) shows
//! as the ratio of the two.
//!
//! Run: `cargo bench --bench mint -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tokenwarden::tokens::{AccessTokenClaims, Algorithm, KeySet};

const NOW: u64 = 1_800_000_000;

fn mint(c: &mut Criterion) {
    let mut set = KeySet::new();
    set.ensure(&Algorithm::ALL, NOW).expect("generate keys");
    let minter = set.minter();
    let claims = AccessTokenClaims {
        issuer: "https://issuer.example.com",
        subject: "payments.billing-worker@clients",
        audience: "https://banking.example.com",
        client_id: "payments.billing-worker",
        scope: "accounts:read accounts:write",
        session: None,
    };
    for alg in Algorithm::ALL {
        let mut group = c.benchmark_group(alg.as_str());
        group.bench_function("mint", |b| {
            b.iter(|| {
                minter
                    .mint(alg, black_box(&claims), 600, NOW)
                    .expect("mint")
            })
        });
        let key = minter.signing_key(alg).expect("key");
        let token = minter.mint(alg, &claims, 600, NOW).expect("mint").token;
        let signing_input = &token.as_bytes()[..token.rfind('.').expect("compact JWS")];
        group.bench_function("raw signature", |b| {
            b.iter(|| key.sign(black_box(signing_input)).expect("sign"))
        });
        group.finish();
    }
}

criterion_group!(benches, mint);
criterion_main!(benches);
