//! tokenwarden: declare per-API access-token lifetimes and offline access as Kubernetes
//! resources, reconcile them into an issuer's configuration, and issue tokens that follow it.
//!
//! Data flows one way: YAML -> API server (schema, CEL) -> declared objects -> verdicts and
//! the issuer configuration -> configuration objects -> the snapshot in force -> a grant ->
//! token (docs/architecture.md names each step).
//!
//! - [`api`]: the resource types and their validation, no I/O.
//! - [`config`]: the one pure function from declared objects to the issuer's configuration.
//! - [`config_objects`]: that configuration as the ConfigMaps the controller writes and the
//!   issuer reads in cluster mode.
//! - [`controller`]: the operator (`tokenwarden controller`).
//! - [`issuer`]: the OAuth 2.0 endpoints (`tokenwarden issuer`), standalone or cluster mode.
//! - [`tokens`]: signing keys, their rotation, and the access tokens they sign.
//! - [`store`]: refresh-token families, codes, revocations and sign-ins, embedded or in
//!   PostgreSQL.
//! - [`manifests`]: reading YAML files as the API server would admit them.
//! - [`validate`]: the offline check for GitOps pipelines.
//! - [`mod@serve`]: the HTTP serving loop the issuer and the controller share.
//! - [`watch_backoff`]: the retry backoff of the controller's and the issuer's watches.
//! - [`file_modes`]: the data folder 0700 and its files with secrets 0600.
//! - [`telemetry`]: logs and the audit trail.
//! - [`cli`]: the subcommands.

#![forbid(unsafe_code)]
// `pub(crate)` is the default: `pub` marks what tests, benchmarks and the binary use.
#![warn(unreachable_pub)]
// The docs are built with the private items (scripts/test.sh), so the module maps may link them.
#![allow(rustdoc::private_intra_doc_links)]

pub mod api;
pub mod cli;
pub mod config;
pub mod config_objects;
pub mod controller;
pub(crate) mod file_modes;
pub mod issuer;
pub mod manifests;
pub mod serve;
pub mod store;
pub(crate) mod telemetry;
pub mod tokens;
pub mod validate;
pub(crate) mod watch_backoff;

// The benchmarks' generator of declared objects at scale lives with them, out of the library;
// the unit tests that measure sizes include it too, under the crate's public name.
#[cfg(test)]
extern crate self as tokenwarden;
#[cfg(test)]
#[path = "../benches/support/at_scale.rs"]
mod at_scale;
