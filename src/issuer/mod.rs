//! The token issuer: the OAuth 2.0 endpoints that enforce the reconciled policies.
//!
//! - [`protocol`]: the decisions (which API, which scopes, may a refresh token exist), pure.
//! - [`grants`]: one module per token grant, each a function of the parsed request, the client,
//!   the configuration, a store and the time; no HTTP.
//! - [`authorization`]: the authorization request and its redirect, pure.
//! - [`client_auth`]: who the client is; [`users`]: who the person is; [`first_party`]: the
//!   clients the platform vouches for.
//! - [`login`]: the password form and its CSRF binding; [`sign_ins`]: sign-ins in progress,
//!   sealed in the store so any replica can finish them; [`throttle`]: brute-force limits,
//!   by username and by [`client_address`];
//!   [`page`]: the login and error pages; [`upstream`]: sign-in at an upstream OpenID Provider.
//! - [`form`]: hostile-input parsing of request parameters; [`error`]: RFC 6749 errors.
//! - [`routes`]: the endpoints; [`server`]: the routers ([`crate::serve`] serves them).
//! - [`snapshot`]: the configuration in force, swapped whole; [`standalone`]: its file source;
//!   [`cluster`]: its source in cluster mode, the objects the controller writes.
//! - [`audit`]: the audit trail and the request id.
//! - [`state`]: what handlers share; [`metrics`]: Prometheus metrics; [`key_file`]: standalone
//!   mode's signing keys, rotated in `--data-dir`.
//! - [`mod@run`]: `tokenwarden issuer`, standalone or cluster mode.

pub mod audit;
pub(crate) mod authorization;
pub(crate) mod client_address;
pub(crate) mod client_auth;
pub mod cluster;
pub(crate) mod error;
pub(crate) mod first_party;
pub(crate) mod form;
pub(crate) mod grants;
pub(crate) mod key_file;
pub(crate) mod login;
pub mod metrics;
pub(crate) mod page;
pub(crate) mod protocol;
pub(crate) mod routes;
pub(crate) mod run;
pub(crate) mod server;
pub(crate) mod sign_ins;
pub(crate) mod snapshot;
pub mod standalone;
pub(crate) mod state;
pub mod throttle;
pub(crate) mod token_times;
pub mod upstream;
pub mod users;
pub(crate) mod workload_identity;

pub(crate) use run::{IssuerOptions, run};
pub use server::{metrics_router, router};
pub use snapshot::{ConfigSource, InForce, Snapshot};
pub use state::{Clock, Issuer, Keys};
