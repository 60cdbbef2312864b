//! The issuer, in-process and as the real binary, and its stores: every test that does not
//! use the test control plane and shares nothing else with the other tests of this binary.
//! Each test owns what it starts (an issuer process, a node-oidc-provider, Chromium, a
//! database on the binary's one PostgreSQL server, a temporary folder), so they run side by
//! side in one test binary (one link). Each file is a module named as its test binary was, so
//! `cargo test --test issuer issuer_tokens::` runs what `cargo test --test issuer_tokens` ran.
//! Tests that stop a server others use stay in binaries of their own: see tests/README.md.

#[path = "../fixtures/mod.rs"]
mod fixtures;
#[path = "../store_suite/mod.rs"]
mod store_suite;
#[path = "../support/mod.rs"]
mod support;

mod audit;
mod authorize;
mod browser_login;
mod interop_authlib;
mod issuer_postgres;
mod issuer_refresh;
mod issuer_restart;
mod issuer_revoke;
mod issuer_tokens;
mod store_embedded;
mod store_postgres;
mod traces;
mod upstream_oidc;
mod workload_federated;
