//! tokenwarden: declare per-API access-token lifetimes and offline access as Kubernetes
//! resources, reconcile them into an issuer's configuration, and issue tokens that follow it.
//!
//! Data flows one way: YAML -> API server (schema, CEL) -> controller -> issuer config ->
//! issuer -> token. `api` holds the resource types and their validation, with no I/O.

pub mod api;
pub mod cli;
pub mod validate;
pub mod tokens;
